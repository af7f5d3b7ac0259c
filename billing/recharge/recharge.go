// Package recharge runs creditgate's billing work off the request path: it performs
// auto-recharges through a Charger (the operator's charger webhook, or an
// off-session charge of the saved card at the payment provider), delivers operator
// notices through the notice webhook, and sweeps every account periodically so
// that expired credit is forfeited (with its expire event), expiring credit is
// announced, and recharges or notices a crash or a full queue left behind are
// completed.
//
// The ledger decides, atomically, when a recharge starts and when a notice is due
// (inside the settle or sweep script); this package only carries them out. A
// recharge is claimed with a lease, so one worker among all proxies performs it;
// the charger gets the same recharge id every time (the webhook's recharge_id and
// webhook-id, the provider's idempotency key), so it can be idempotent; a payment
// credits a grant whose id is the recharge id, so crediting twice is impossible. A
// worker that dies between the payment and the credit loses its lease, and the
// next sweep performs the recharge again with the same id: the charger answers
// "already paid" and the credit happens once. A provider whose payment settles
// later reports it by webhook, through RechargePaid and RechargeFailed.
package recharge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
)

// Store is the ledger's side of the work (billing/redisstore implements it).
type Store interface {
	AccountIDs(ctx context.Context) ([]string, error)
	Sweep(ctx context.Context, account string, q billing.SweepRequest) (billing.SweepResult, error)
	ClaimRecharge(ctx context.Context, account, id string, lease time.Duration) (billing.Recharge, error)
	// CompleteRecharge credits a paid recharge; paymentRef is the payment
	// provider's id of the charge ("" for the webhook charger, which has none).
	CompleteRecharge(ctx context.Context, account, id string, c billing.RechargeCredit) (billing.TopUpResult, error)
	FailRecharge(ctx context.Context, account, id string, f billing.RechargeFailure) (string, error)
	ClaimNotices(ctx context.Context, account string, ids []string, lease time.Duration, maxAttempts int) (claimed, dropped []billing.Notice, err error)
	AckNotice(ctx context.Context, account, id string) error
	TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error)
}

// Sender delivers one webhook (notify.Webhook).
type Sender interface {
	// Send delivers m; m.ID (the webhook-id) is the same every time a message is
	// sent again, so receivers can deduplicate.
	Send(ctx context.Context, m notify.Message) error
	// MaxDuration bounds one Send, retries included.
	MaxDuration() time.Duration
}

var _ Sender = (*notify.Webhook)(nil)

// Settings are the hot-reloadable parts of the configuration the worker reads.
type Settings struct {
	// CreditTTL is the lifetime of a recharged grant (billing.credit_ttl).
	CreditTTL time.Duration
	// LowBalance is the level of balance.low (notify.low_balance).
	LowBalance money.Micros
	// ExpiringWithin is how far ahead credits.expiring warns (notify.expiring_within).
	ExpiringWithin time.Duration
	// Ladder is the tier promotion ladder (billing.Policy.Ladder): each sweep
	// promotes the accounts whose days since their first payment now qualify
	// them, and each recharge's credit checks it too.
	Ladder billing.Ladder
}

// credit is how a paid recharge is credited under the current settings.
func (w *Worker) credit(paymentRef string) billing.RechargeCredit {
	set := w.o.Settings()
	return billing.RechargeCredit{CreditTTL: set.CreditTTL, PaymentRef: paymentRef, Ladder: set.Ladder}
}

// Defaults of Options.
const (
	DefaultWorkers            = 4
	DefaultQueueSize          = 1024
	DefaultSweepInterval      = time.Minute
	DefaultRechargeBackoff    = 15 * time.Minute
	DefaultRechargeMaxBackoff = 24 * time.Hour
	DefaultGiveUpAfter        = 24 * time.Hour
	DefaultNoticeAttempts     = 10
)

// leaseMargin is added to a delivery's longest duration to make a lease: the
// store calls around the delivery must fit in it too.
const leaseMargin = 30 * time.Second

// storeTimeout bounds each store call the worker makes.
const storeTimeout = 10 * time.Second

// Observer is told the outcome of every recharge, for metrics. Its method must
// not block.
type Observer interface {
	RechargeDone(Report)
}

// NoticeObserver, when the Observer also implements it, is told about each
// notice dropped after NoticeAttempts failed deliveries (metrics).
type NoticeObserver interface {
	NoticeDropped(noticeType string)
}

// Report is one recharge outcome.
type Report struct {
	// Charger is the charger's name ("webhook", "stripe", "demo").
	Charger string
	// Result is the charger's answer (Paid, Declined, …), or one of the outcomes
	// without an answer: NoAnswer (retried later) and GaveUp (failed after
	// GiveUpAfter without an answer).
	Result Result
	// Amount is the recharge's amount; Credited is true when this outcome
	// credited it. A recharge is reported Paid once, when it is credited: a
	// replayed credit is not reported again.
	Amount   money.Micros
	Credited bool
}

// Outcomes of a recharge that got no answer from its charger.
const (
	NoAnswer Result = "no_answer" // the recharge stays pending and is charged again with the same id
	GaveUp   Result = "gave_up"   // no answer for GiveUpAfter: recorded as failed
)

// Options configure a Worker. Store and Settings are required.
type Options struct {
	Store Store
	// Charger performs auto-recharge payments; nil turns auto-recharge off.
	Charger Charger
	// Notifier receives notices; nil turns notices off.
	Notifier Sender
	// Settings returns the current settings.
	Settings func() Settings
	Logger   *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Workers is how many recharges and notice batches run at once (default 4).
	Workers int
	// QueueSize bounds the work OnSettled queues; beyond it work is dropped and
	// the next sweep picks it up (default 1024).
	QueueSize int
	// SweepInterval is the time between sweeps of every account (default 1m).
	// One proxy sweeps per interval (a lock in the store).
	SweepInterval time.Duration
	// RechargeBackoff is the wait after a failed recharge before auto-recharge
	// tries again; it doubles with each consecutive failure up to
	// RechargeMaxBackoff (defaults 15m and 24h).
	RechargeBackoff    time.Duration
	RechargeMaxBackoff time.Duration
	// GiveUpAfter: a recharge the charger never answered (timeouts, refused
	// connections) stays pending and is tried again with the same id at each
	// sweep, until it is this old; then it is recorded as failed (default 24h).
	GiveUpAfter time.Duration
	// NoticeAttempts is how many deliveries (each with the Sender's own retries) a
	// notice gets before it is dropped with an error log (default 10).
	NoticeAttempts int
	// OnHoldsExpired, when set, is told after each account's sweep how many holds
	// expired unsettled there since a sweep last reported them
	// (billing.SweepResult.HoldsExpired; each is counted once over all proxies),
	// for creditgate_holds_expired_total (metrics.Metrics.HoldsExpired). It must
	// not block.
	OnHoldsExpired func(n int)
	// Observer is told every recharge's outcome (nil: nobody).
	Observer Observer
}

// Worker performs recharges and delivers notices. Create it with New, feed it
// OnSettled, run it with Run.
type Worker struct {
	o    Options
	log  *zap.Logger
	jobs chan job
	// dropped counts work OnSettled could not queue (the sweeper recovers it).
	dropped atomic.Int64
}

type job struct {
	account  string
	recharge string
	notices  []string
}

// New checks o and returns a Worker.
func New(o Options) (*Worker, error) {
	if o.Store == nil {
		return nil, errors.New("recharge: Store is required")
	}
	if o.Settings == nil {
		return nil, errors.New("recharge: Settings is required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.RechargeBackoff <= 0 {
		o.RechargeBackoff = DefaultRechargeBackoff
	}
	if o.RechargeMaxBackoff < o.RechargeBackoff {
		o.RechargeMaxBackoff = max(DefaultRechargeMaxBackoff, o.RechargeBackoff)
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = DefaultGiveUpAfter
	}
	if o.NoticeAttempts <= 0 {
		o.NoticeAttempts = DefaultNoticeAttempts
	}
	return &Worker{o: o, log: o.Logger, jobs: make(chan job, o.QueueSize)}, nil
}

// Triggers are what the proxy passes with each settle (billing.SettleRequest):
// recharges only when a charger is configured, notices only when a notice
// webhook is.
func (w *Worker) Triggers() billing.Triggers {
	return billing.Triggers{AutoRecharge: w.o.Charger != nil, Notices: w.o.Notifier != nil, LowBalance: w.o.Settings().LowBalance}
}

// Dropped is how much work OnSettled had to drop because the queue was full.
func (w *Worker) Dropped() int64 { return w.dropped.Load() }

// OnSettled queues what a settlement set off (proxy.Options.OnSettled). It never
// blocks: with the queue full the work is dropped, and the next sweep does it.
func (w *Worker) OnSettled(account string, s billing.Settlement) {
	if s.RechargeID == "" && len(s.Notices) == 0 {
		return
	}
	select {
	case w.jobs <- job{account: account, recharge: s.RechargeID, notices: s.Notices}:
	default:
		w.dropped.Add(1)
		w.log.Warn("recharge: queue full; the next sweep will do this work", zap.String("account", account),
			zap.String("recharge_id", s.RechargeID), zap.Int("notices", len(s.Notices)))
	}
}

// Run performs queued work and sweeps every SweepInterval (once at start, which
// picks up what a previous process left) until ctx ends. Work in flight when ctx
// ends is abandoned safely: its leases run out and a later sweep redoes it.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < w.o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-w.jobs:
					w.do(ctx, j)
				}
			}
		}()
	}
	t := time.NewTicker(w.o.SweepInterval)
	defer t.Stop()
	for {
		w.sweepRound(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

func (w *Worker) do(ctx context.Context, j job) {
	if j.recharge != "" {
		w.PerformRecharge(ctx, j.account, j.recharge)
	}
	if len(j.notices) > 0 {
		w.DeliverNotices(ctx, j.account, j.notices)
	}
}

// SweepStats summarise one sweep.
type SweepStats struct {
	Accounts     int
	Expired      money.Micros // credit forfeited
	HoldsExpired int          // holds that expired unsettled (hold_expired events) since the last report
	Recharges    int          // pending recharges found (new or left over)
	Notices      int          // notices waiting for delivery
	Errors       int
	Skipped      bool // another proxy holds this round's lock
}

func (w *Worker) sweepRound(ctx context.Context) {
	ok, err := w.lock(ctx)
	if err != nil {
		w.log.Warn("recharge: sweep lock unavailable; skipping this sweep", zap.Error(err))
		return
	}
	if !ok {
		return
	}
	st, err := w.SweepOnce(ctx, true)
	fields := []zap.Field{zap.Int("accounts", st.Accounts), zap.Stringer("expired", st.Expired),
		zap.Int("holds_expired", st.HoldsExpired), zap.Int("recharges", st.Recharges), zap.Int("notices", st.Notices),
		zap.Int("errors", st.Errors)}
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Error("recharge: sweep failed", append(fields, zap.Error(err))...)
	case st.Errors > 0:
		w.log.Warn("recharge: sweep done with errors", fields...)
	case st.HoldsExpired > 0:
		// Requests admitted and never settled: a proxy died with them in flight, or
		// lost Redis without a spool. Each has its hold_expired event.
		w.log.Warn("recharge: sweep done; holds expired unsettled", fields...)
	case st.Expired > 0 || st.Recharges > 0 || st.Notices > 0:
		w.log.Info("recharge: sweep done", fields...)
	default:
		w.log.Debug("recharge: sweep done", fields...)
	}
}

func (w *Worker) lock(ctx context.Context) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return w.o.Store.TryLock(sctx, "sweep", w.o.SweepInterval)
}

// SweepOnce visits every account once: ends expired holds, forfeits expired credit, queues due
// notices, starts due recharges, and performs the recharges and notice
// deliveries it finds pending — through the queue when queue is true (Run), or
// right away (tests, tools).
func (w *Worker) SweepOnce(ctx context.Context, queue bool) (SweepStats, error) {
	var st SweepStats
	ids, err := w.storeCall(ctx, func(ctx context.Context) ([]string, error) { return w.o.Store.AccountIDs(ctx) })
	if err != nil {
		return st, err
	}
	set := w.o.Settings()
	q := billing.SweepRequest{Triggers: w.Triggers(), ExpiringWithin: set.ExpiringWithin, Ladder: set.Ladder}
	if w.o.Notifier == nil {
		q.ExpiringWithin = 0
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		res, err := w.o.Store.Sweep(sctx, id, q)
		cancel()
		if errors.Is(err, billing.ErrAccountNotFound) {
			continue
		}
		st.Accounts++
		if err != nil {
			st.Errors++
			w.log.Warn("recharge: sweeping an account failed", zap.String("account", id), zap.Error(err))
			continue
		}
		st.Expired += res.Expired
		if res.HoldsExpired > 0 {
			st.HoldsExpired += res.HoldsExpired
			if w.o.OnHoldsExpired != nil {
				w.o.OnHoldsExpired(res.HoldsExpired)
			}
		}
		if res.RechargeID != "" {
			st.Recharges++
		}
		st.Notices += len(res.Notices)
		if res.RechargeID == "" && len(res.Notices) == 0 {
			continue
		}
		j := job{account: id, recharge: res.RechargeID, notices: res.Notices}
		if !queue {
			w.do(ctx, j)
			continue
		}
		select {
		case w.jobs <- j:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
	return st, nil
}

func (w *Worker) storeCall(ctx context.Context, f func(ctx context.Context) ([]string, error)) ([]string, error) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return f(sctx)
}

// noticeMessageID is the webhook-id of a notice, the same on every redelivery.
// The notice's time is part of it because notice ids are per-account sequence
// numbers, which a wiped store would hand out again.
func noticeMessageID(n billing.Notice) string {
	return notify.MessageID("notice", n.Account, n.ID, strconv.FormatInt(n.At.UnixMilli(), 10))
}

// PerformRecharge carries out account's pending recharge id, unless another worker
// holds it or it is no longer pending. A payment credits it; a definite refusal
// (a decline, no card, the webhook's non-2xx) records the failure (with its
// back-off and notice); a pending payment waits for the provider's event; no
// answer leaves it pending for the next sweep, until GiveUpAfter.
func (w *Worker) PerformRecharge(ctx context.Context, account, id string) {
	log := w.log.With(zap.String("account", account), zap.String("recharge_id", id))
	if w.o.Charger == nil {
		log.Warn("recharge: a recharge is pending but no charger is configured (billing.auto_recharge.charger)")
		return
	}
	charger := w.o.Charger.Name()
	log = log.With(zap.String("charger", charger))
	lease := w.o.Charger.MaxDuration() + leaseMargin
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	rc, err := w.o.Store.ClaimRecharge(cctx, account, id, lease)
	cancel()
	switch {
	case errors.Is(err, billing.ErrRechargeNotPending), errors.Is(err, billing.ErrRechargeBusy):
		return
	case err != nil:
		log.Warn("recharge: could not claim the recharge; the next sweep retries", zap.Error(err))
		return
	}
	// The charger must finish within the lease, or another worker may start the
	// same recharge (harmless for an idempotent charger, but wasteful).
	sctx, cancel := context.WithTimeout(ctx, lease-leaseMargin)
	pay, err := w.o.Charger.Charge(sctx, rc)
	cancel()
	if err == nil {
		switch pay.Result {
		case Paid:
			w.complete(ctx, log, rc, charger, pay.PaymentRef)
		case Pending:
			w.observe(charger, Pending, rc.Amount, false)
			log.Info("recharge: the payment is processing; the provider's event credits or fails it",
				zap.Stringer("amount", rc.Amount), zap.String("payment_ref", pay.PaymentRef), zap.Int("drives", rc.Drives))
		default:
			w.observe(charger, pay.Result, rc.Amount, false)
			w.fail(ctx, log, rc, pay.Reason, zap.String("result", string(pay.Result)), zap.String("payment_ref", pay.PaymentRef))
		}
		return
	}
	if ctx.Err() != nil {
		log.Info("recharge: stopped while the charger was called; the recharge stays pending and a later sweep retries it")
		return
	}
	if age := w.o.Now().Sub(rc.StartedAt); age >= w.o.GiveUpAfter {
		w.observe(charger, GaveUp, rc.Amount, false)
		w.fail(ctx, log, rc, fmt.Sprintf("the charger did not answer for %s (%v)", age.Round(time.Minute), err))
		return
	}
	w.observe(charger, NoAnswer, rc.Amount, false)
	log.Warn("recharge: the charger did not answer; the recharge stays pending and is retried with the same recharge id at the next sweep",
		zap.Int("drives", rc.Drives), zap.Error(err))
}

func (w *Worker) observe(charger string, result Result, amount money.Micros, credited bool) {
	if w.o.Observer != nil {
		w.o.Observer.RechargeDone(Report{Charger: charger, Result: result, Amount: amount, Credited: credited})
	}
}

func (w *Worker) complete(ctx context.Context, log *zap.Logger, rc billing.Recharge, charger, paymentRef string) {
	// Paid: credit even if ctx ended meanwhile (shutdown), within a bound.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	res, err := w.o.Store.CompleteRecharge(cctx, rc.Account, rc.ID, w.credit(paymentRef))
	if err != nil {
		log.Error("recharge: the charger was paid but the credit failed; the recharge stays pending and the next sweep credits it (the charger must answer the same recharge id again with a payment)",
			zap.Stringer("amount", rc.Amount), zap.String("payment_ref", paymentRef), zap.Error(err))
		return
	}
	if !res.Replayed { // a replay was counted when it was credited (by an earlier drive, or the provider's event)
		w.observe(charger, Paid, rc.Amount, true)
	}
	log.Info("recharge: credited", zap.Stringer("amount", rc.Amount), zap.String("month", rc.Month),
		zap.Stringer("month_total_before", rc.MonthTotal), zap.Stringer("balance_after", res.BalanceAfter),
		zap.String("payment_ref", paymentRef), zap.Bool("replayed", res.Replayed), zap.Int("drives", rc.Drives))
}

func (w *Worker) fail(ctx context.Context, log *zap.Logger, rc billing.Recharge, reason string, fields ...zap.Field) {
	nid, err := w.recordFailure(ctx, rc.Account, rc.ID, reason)
	switch {
	case errors.Is(err, billing.ErrRechargeNotPending):
		return
	case err != nil:
		log.Error("recharge: could not record the failure; the recharge stays pending", append(fields, zap.String("reason", reason), zap.Error(err))...)
		return
	}
	log.Warn("recharge: failed", append(fields, zap.String("reason", reason), zap.Stringer("amount", rc.Amount))...)
	if nid != "" {
		w.DeliverNotices(ctx, rc.Account, []string{nid})
	}
}

// recordFailure records that recharge id failed, with the back-off and, when
// notices are on, the auto_recharge.failed notice (its id is returned).
func (w *Worker) recordFailure(ctx context.Context, account, id, reason string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return w.o.Store.FailRecharge(cctx, account, id, billing.RechargeFailure{
		Reason: reason, Backoff: w.o.RechargeBackoff, MaxBackoff: w.o.RechargeMaxBackoff, Notice: w.o.Notifier != nil,
	})
}

// RechargePaid credits recharge id of account, which the payment provider
// reports paid by webhook (payments.RechargeSucceeded): the settlement of a
// pending payment, or a repeat of a synchronous answer (then nothing more is
// credited and the result has Replayed set). A recharge already recorded as
// failed is still credited: the money was taken. billing.ErrRechargeNotPending
// for a recharge the store does not know.
func (w *Worker) RechargePaid(ctx context.Context, account, id, paymentRef string) (billing.TopUpResult, error) {
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	res, err := w.o.Store.CompleteRecharge(cctx, account, id, w.credit(paymentRef))
	if err != nil {
		return res, err
	}
	charger := "provider"
	if w.o.Charger != nil {
		charger = w.o.Charger.Name()
	}
	if !res.Replayed {
		w.observe(charger, Paid, res.Grant.Amount, true)
	}
	return res, nil
}

// RechargeFailed records the failure of recharge id of account, which the
// payment provider reports by webhook (payments.RechargeFailed), with reason,
// back-off and notice. A recharge that is no longer pending (its synchronous
// decline was recorded already, or it was paid) is left as it is:
// billing.ErrRechargeNotPending.
func (w *Worker) RechargeFailed(ctx context.Context, account, id, reason string) error {
	nid, err := w.recordFailure(ctx, account, id, reason)
	if err != nil {
		return err
	}
	if nid != "" {
		w.DeliverNotices(ctx, account, []string{nid})
	}
	return nil
}

// noticeBody is the notice webhook's body. Money is in USD, six decimals.
type noticeBody struct {
	ID        string        `json:"id"` // unique: receivers drop duplicates by it
	Type      string        `json:"type"`
	Account   string        `json:"account"`
	Balance   money.Micros  `json:"balance"`
	At        time.Time     `json:"at"`
	Threshold *money.Micros `json:"threshold,omitempty"` // balance.low, spend_limit.alert
	// credits.expiring
	GrantID   string     `json:"grant_id,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// credits.expiring: the grant's remaining credit; auto_recharge.failed: the recharge.
	Amount *money.Micros `json:"amount,omitempty"`
	// auto_recharge.failed
	RechargeID string `json:"recharge_id,omitempty"`
	Reason     string `json:"reason,omitempty"`
	// tier.changed: the new tier and the one before; Amount is the paid total.
	Tier         string `json:"tier,omitempty"`
	PreviousTier string `json:"previous_tier,omitempty"`
}

func noticeJSON(n billing.Notice) ([]byte, error) {
	b := noticeBody{ID: n.ID, Type: n.Type, Account: n.Account, Balance: n.Balance, At: n.At.UTC()}
	switch n.Type {
	case billing.NoticeBalanceLow:
		b.Threshold = &n.Threshold
	case billing.NoticeCreditsExpiring:
		exp := n.ExpiresAt.UTC()
		b.GrantID, b.ExpiresAt, b.Amount = n.GrantID, &exp, &n.Amount
	case billing.NoticeAutoRechargeFailed:
		b.RechargeID, b.Amount, b.Reason = n.RechargeID, &n.Amount, n.Reason
	case billing.NoticeTierChanged:
		b.Tier, b.PreviousTier, b.Amount = n.Tier, n.FromTier, &n.Amount
	case billing.NoticeSpendAlert: // alert_at, and the month's usage
		b.Threshold, b.Amount = &n.Threshold, &n.Amount
	}
	return json.Marshal(b)
}

// DeliverNotices delivers account's queued notices ids (nil: all of them) that no
// other worker is delivering. A delivered notice leaves the outbox; a failed one
// stays, and the next sweep tries again, up to NoticeAttempts.
func (w *Worker) DeliverNotices(ctx context.Context, account string, ids []string) {
	lease := leaseMargin
	if w.o.Notifier != nil {
		lease += w.o.Notifier.MaxDuration()
	}
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	claimed, dropped, err := w.o.Store.ClaimNotices(cctx, account, ids, lease, w.o.NoticeAttempts)
	cancel()
	if err != nil {
		w.log.Warn("recharge: could not claim notices; the next sweep retries", zap.String("account", account), zap.Error(err))
		return
	}
	for _, n := range dropped {
		w.log.Error("recharge: notice dropped after too many failed deliveries", zap.String("account", account),
			zap.String("notice_id", n.ID), zap.String("type", n.Type), zap.Int("attempts", n.Attempts-1))
		if no, ok := w.o.Observer.(NoticeObserver); ok {
			no.NoticeDropped(n.Type)
		}
	}
	for _, n := range claimed {
		log := w.log.With(zap.String("account", account), zap.String("notice_id", n.ID), zap.String("type", n.Type))
		if w.o.Notifier == nil {
			// Queued while notices were configured; nobody to tell now.
			w.ack(ctx, log, n)
			log.Info("recharge: notice discarded: no notice webhook is configured (notify.webhook.url)")
			continue
		}
		body, err := noticeJSON(n)
		if err != nil {
			log.Error("recharge: encoding a notice", zap.Error(err))
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, lease-leaseMargin)
		err = w.o.Notifier.Send(sctx, notify.Message{ID: noticeMessageID(n), Event: n.Type, Body: body})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("recharge: notice not delivered; the next sweep retries", zap.Int("attempts", n.Attempts), zap.Error(err))
			}
			continue
		}
		w.ack(ctx, log, n)
		log.Info("recharge: notice delivered", zap.Int("attempts", n.Attempts))
	}
}

func (w *Worker) ack(ctx context.Context, log *zap.Logger, n billing.Notice) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := w.o.Store.AckNotice(cctx, n.Account, n.ID); err != nil {
		log.Warn("recharge: delivered notice could not be removed from the outbox; it may be delivered again", zap.Error(err))
	}
}
