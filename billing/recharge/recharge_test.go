package recharge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/notify/notifytest"
)

var usd = money.MustParse

var _ Store = (*redisstore.Store)(nil)

var policy = billing.Policy{MinPurchase: usd("5.00"), CreditTTL: 365 * 24 * time.Hour, Tiers: map[string]billing.Tier{"tier-1": {}}}

const (
	// The charger has a Standard Webhooks secret; the notices keep a legacy one,
	// which must go on working for a release.
	chargerSecret = "whsec_Y3JlZGl0Z2F0ZSBjaGFyZ2VyIHRlc3Qga2V5IDAwMDE="
	noticeSecret  = "notice-secret-for-tests"
)

// clock is a settable test clock shared by the store and the worker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// receiver is a webhook endpoint that checks every delivery per the Standard
// Webhooks specification with notifytest (written independently of notify), and
// the deprecated body-only signature too, and records the deliveries.
type receiver struct {
	secret string
	spec   *notifytest.Receiver
	srv    *httptest.Server
	mu     sync.Mutex
	// answer decides the status of each accepted delivery (nil: 200).
	answer func(n int, body map[string]any) int
}

func newReceiver(t testing.TB, secret string, answer func(n int, body map[string]any) int) *receiver {
	rc := &receiver{secret: secret, answer: answer}
	rc.spec = &notifytest.Receiver{
		Secrets: []string{secret},
		Answer: func(d notifytest.Delivery, n int) int {
			var body map[string]any
			if err := json.Unmarshal(d.Body, &body); err != nil {
				t.Errorf("delivery body is not JSON: %v", err)
			}
			if d.Event != body["type"] {
				t.Errorf("event header %q, body type %v", d.Event, body["type"])
			}
			if !notify.VerifyLegacy(secret, d.Body, d.Header.Get(notify.LegacySignatureHeader)) {
				t.Errorf("delivery with a bad legacy signature %q", d.Header.Get(notify.LegacySignatureHeader))
			}
			rc.mu.Lock()
			answer := rc.answer
			rc.mu.Unlock()
			if answer != nil {
				return answer(n, body)
			}
			return http.StatusOK
		},
		OnRefuse: func(d notifytest.Delivery) {
			t.Errorf("delivery refused by the Standard Webhooks receiver: %v (headers %v)", d.Err, d.Header)
		},
	}
	rc.srv = httptest.NewServer(rc.spec)
	t.Cleanup(rc.srv.Close)
	return rc
}

// setAnswer replaces the answer function.
func (rc *receiver) setAnswer(f func(n int, body map[string]any) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

// deliveries returns the bodies of the accepted deliveries, in order.
func (rc *receiver) deliveries() []map[string]any {
	var out []map[string]any
	for _, d := range rc.spec.Accepted() {
		var body map[string]any
		_ = json.Unmarshal(d.Body, &body)
		out = append(out, body)
	}
	return out
}

// messages returns the accepted deliveries with their headers, in order.
func (rc *receiver) messages() []notifytest.Delivery { return rc.spec.Accepted() }

func (rc *receiver) webhook(t testing.TB, timeout time.Duration) *notify.Webhook {
	t.Helper()
	w, err := notify.New(notify.Options{URL: rc.srv.URL, Secret: rc.secret, Timeout: timeout, Attempts: 2, Backoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type env struct {
	ctx     context.Context
	clock   *clock
	store   *redisstore.Store
	charger *receiver
	notices *receiver
	worker  *Worker
	logs    *observer.ObservedLogs
}

type envOption func(*Options)

func newEnv(t testing.TB, chargerAnswer func(int, map[string]any) int, opts ...envOption) *env {
	t.Helper()
	r := testredis.New(t)
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: context.Background(), clock: c, store: store}
	e.charger = newReceiver(t, chargerSecret, chargerAnswer)
	e.notices = newReceiver(t, noticeSecret, nil)
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	o := Options{
		Store:    store,
		Charger:  WebhookCharger{Sender: e.charger.webhook(t, 2*time.Second)},
		Notifier: e.notices.webhook(t, 2*time.Second),
		Settings: func() Settings {
			return Settings{CreditTTL: policy.CreditTTL, LowBalance: usd("1.00"), ExpiringWithin: 7 * 24 * time.Hour}
		},
		Logger:          zap.New(core),
		Now:             c.Now,
		RechargeBackoff: time.Hour,
		GiveUpAfter:     6 * time.Hour,
	}
	for _, f := range opts {
		f(&o)
	}
	if e.worker, err = New(o); err != nil {
		t.Fatal(err)
	}
	return e
}

// account creates id with credit and auto-recharge (below 5.00 buy 10.00, 30.00 a month).
func (e *env) account(t testing.TB, id, credit string) {
	t.Helper()
	if _, err := e.store.CreateAccount(e.ctx, id, "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.TopUp(e.ctx, policy, billing.TopUpRequest{Account: id, GrantID: "g-" + id, Amount: usd(credit)}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetAutoRecharge(e.ctx, id, billing.AutoRecharge{Enabled: true, Threshold: usd("5.00"), Amount: usd("10.00"), MonthlyLimit: usd("30.00")}); err != nil {
		t.Fatal(err)
	}
}

// spend settles cost on id as the proxy does, with the worker's triggers.
func (e *env) spend(t testing.TB, id, hold string, cost money.Micros) billing.Settlement {
	t.Helper()
	if _, err := e.store.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: cost, Grace: usd("0.50"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := e.store.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: cost, Triggers: e.worker.Triggers()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) account_(t testing.TB, id string) billing.Account {
	t.Helper()
	a, err := e.store.GetAccount(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) audit(t testing.TB, id string) {
	t.Helper()
	r, err := billing.AuditAccount(e.ctx, e.store, id)
	if err != nil || !r.OK() {
		t.Fatalf("audit of %s: %+v %v", id, r.Problems, err)
	}
}

func grantsFrom(a billing.Account, source string) (n int, total money.Micros) {
	for _, g := range a.Grants {
		if g.Source == source {
			n++
			total += g.Amount
		}
	}
	return n, total
}

func TestRechargeSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	e.account(t, "a", "6.00")
	s := e.spend(t, "a", "h1", usd("2.00"))
	if s.RechargeID == "" {
		t.Fatal("no recharge started")
	}
	e.worker.PerformRecharge(e.ctx, "a", s.RechargeID)
	got := e.charger.deliveries()
	if len(got) != 1 {
		t.Fatalf("charger got %d requests", len(got))
	}
	want := map[string]any{"type": "auto_recharge", "recharge_id": s.RechargeID, "account": "a", "amount": "10.000000", "month_total": "0.000000", "month": "2026-03"}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("charger body %v, want %v", got[0], want)
	}
	a := e.account_(t, "a")
	if n, total := grantsFrom(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || a.Balance() != usd("14.00") || a.Recharge.Pending != "" {
		t.Fatalf("after the recharge: %d grants of %s, balance %s, %+v", n, total, a.Balance(), a.Recharge)
	}
	// Performing it again (a duplicate queue entry, a sweep) does not call the charger.
	e.worker.PerformRecharge(e.ctx, "a", s.RechargeID)
	if n := len(e.charger.deliveries()); n != 1 {
		t.Fatalf("charger called %d times for one recharge", n)
	}
	e.audit(t, "a")
}

// TestRechargeChargerRefuses: an answered refusal records the failure, backs off,
// and sends auto_recharge.failed (signed) to the notice webhook.
func TestRechargeChargerRefuses(t *testing.T) {
	e := newEnv(t, func(int, map[string]any) int { return http.StatusPaymentRequired })
	e.account(t, "r", "6.00")
	s := e.spend(t, "r", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "r", s.RechargeID)
	if n := len(e.charger.deliveries()); n != 1 {
		t.Fatalf("a 402 was retried: %d requests (only no answer, 408, 425, 429 and 5xx are)", n)
	}
	a := e.account_(t, "r")
	if a.Recharge.Pending != "" || a.Recharge.Failures != 1 || a.Balance() != usd("4.00") {
		t.Fatalf("after a refusal: balance %s, %+v", a.Balance(), a.Recharge)
	}
	notes := e.notices.deliveries()
	if len(notes) != 1 || notes[0]["type"] != billing.NoticeAutoRechargeFailed || notes[0]["recharge_id"] != s.RechargeID ||
		notes[0]["amount"] != "10.000000" || notes[0]["balance"] != "4.000000" || notes[0]["reason"] != "the charger refused the payment (HTTP 402)" {
		t.Fatalf("failure notice %v", notes)
	}
	if s := e.spend(t, "r", "h2", usd("0.10")); s.RechargeID != "" {
		t.Fatal("a recharge started during the back-off")
	}
	e.audit(t, "r")
}

// TestRechargeChargerTimesOut: a charger that never answers in time leaves the
// recharge pending; sweeps retry it with the same id until GiveUpAfter, then it
// is recorded as failed.
func TestRechargeChargerTimesOut(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	var idsMu sync.Mutex
	var ids []string // webhook-id of every charger request
	e := newEnv(t, nil, func(o *Options) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			idsMu.Lock()
			ids = append(ids, r.Header.Get(notify.IDHeader))
			idsMu.Unlock()
			io.Copy(io.Discard, r.Body) // lets the server notice the client giving up
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(release) }) // runs first: lets the handlers return
		wh, err := notify.New(notify.Options{URL: slow.URL, Secret: chargerSecret, Timeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		o.Charger = WebhookCharger{Sender: wh}
	})
	e.account(t, "slow", "6.00")
	s := e.spend(t, "slow", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "slow", s.RechargeID)
	if a := e.account_(t, "slow"); a.Recharge.Pending != s.RechargeID || calls.Load() != 2 {
		t.Fatalf("after timeouts: pending %q, %d calls; want still pending after 2 attempts", a.Recharge.Pending, calls.Load())
	}
	// The lease blocks a second worker until it runs out; then a sweep retries.
	e.clock.Advance(2 * time.Minute)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	if a := e.account_(t, "slow"); a.Recharge.Pending != s.RechargeID || calls.Load() != 4 {
		t.Fatalf("after a sweep: pending %q, %d calls", a.Recharge.Pending, calls.Load())
	}
	e.clock.Advance(6 * time.Hour)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	a := e.account_(t, "slow")
	if a.Recharge.Pending != "" || a.Recharge.Failures != 1 {
		t.Fatalf("after GiveUpAfter: %+v", a.Recharge)
	}
	notes := e.notices.deliveries()
	if len(notes) == 0 || notes[len(notes)-1]["type"] != billing.NoticeAutoRechargeFailed {
		t.Fatalf("notices %v", notes)
	}
	// Every attempt of every drive (three sweeps' worth) carried one webhook-id;
	// the notice has its own.
	idsMu.Lock()
	defer idsMu.Unlock()
	if len(ids) != 6 || ids[0] == "" {
		t.Fatalf("charger webhook-ids %q: want 6 requests", ids)
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("charger webhook-ids %q: want one id on every attempt and every drive", ids)
		}
	}
	if msgs := e.notices.messages(); msgs[len(msgs)-1].ID == ids[0] {
		t.Fatal("the failure notice reuses the charger request's webhook-id")
	}
	e.audit(t, "slow")
}

// crashingStore fails CompleteRecharge a given number of times, as a worker that
// dies between the charger's 2xx and the credit would.
type crashingStore struct {
	Store
	crashes atomic.Int32
}

func (c *crashingStore) CompleteRecharge(ctx context.Context, account, id string, rc billing.RechargeCredit) (billing.TopUpResult, error) {
	if c.crashes.Add(-1) >= 0 {
		return billing.TopUpResult{}, errors.New("crash")
	}
	return c.Store.CompleteRecharge(ctx, account, id, rc)
}

// TestRechargeCrashBetweenPaymentAndCredit: the charger is paid, the credit is
// lost with the worker; the sweep after the lease performs the recharge again with
// the same recharge_id, the (idempotent) charger answers 2xx a second time, and
// the credit happens exactly once.
func TestRechargeCrashBetweenPaymentAndCredit(t *testing.T) {
	paid := map[string]int{}
	var mu sync.Mutex
	var cs *crashingStore
	e := newEnv(t, func(_ int, body map[string]any) int {
		mu.Lock()
		defer mu.Unlock()
		paid[body["recharge_id"].(string)]++ // an idempotent charger charges once per id
		return http.StatusOK
	}, func(o *Options) {
		cs = &crashingStore{Store: o.Store}
		cs.crashes.Store(1)
		o.Store = cs
	})
	e.account(t, "c", "6.00")
	s := e.spend(t, "c", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "c", s.RechargeID)
	if a := e.account_(t, "c"); a.Recharge.Pending != s.RechargeID || a.Balance() != usd("4.00") {
		t.Fatalf("after the crash: %+v balance %s", a.Recharge, a.Balance())
	}
	e.worker.PerformRecharge(e.ctx, "c", s.RechargeID) // another worker, while the lease runs: nothing
	e.clock.Advance(2 * time.Minute)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	a := e.account_(t, "c")
	if n, total := grantsFrom(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || a.Recharge.Pending != "" {
		t.Fatalf("after recovery: %d grants of %s, %+v", n, total, a.Recharge)
	}
	if len(paid) != 1 || paid[s.RechargeID] != 2 {
		t.Fatalf("charger requests by recharge id %v: want the same id twice", paid)
	}
	// The second drive is the same message: a charger deduplicating on webhook-id
	// (as the spec receiver does) sees it as a duplicate.
	if msgs := e.charger.messages(); len(msgs) != 2 || msgs[0].ID != msgs[1].ID || msgs[0].Duplicate || !msgs[1].Duplicate ||
		string(msgs[0].Body) != string(msgs[1].Body) {
		t.Fatalf("charger deliveries %+v: want one webhook-id and body, the second flagged duplicate", msgs)
	}
	e.audit(t, "c")
}

// TestRunRechargesFromOnSettled runs the worker as the app does: OnSettled queues,
// Run performs. Many settles cross once; the charger is called once.
func TestRunRechargesFromOnSettled(t *testing.T) {
	e := newEnv(t, nil)
	e.account(t, "live", "10.00")
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error)
	go func() { done <- e.worker.Run(ctx) }()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s := e.spend(t, "live", fmt.Sprintf("h%d", i), usd("0.11"))
			e.worker.OnSettled("live", s)
		}(i)
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for e.account_(t, "live").Recharge.Pending != "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a := e.account_(t, "live")
	if n, _ := grantsFrom(a, billing.SourceAutoRecharge); n != 1 || len(e.charger.deliveries()) != 1 || a.Balance() != usd("14.50") {
		t.Fatalf("%d recharges, %d charger calls, balance %s; want 1, 1, 14.50", n, len(e.charger.deliveries()), a.Balance())
	}
	// balance.low (below 1.00) never crossed; nothing else was due.
	if notes := e.notices.deliveries(); len(notes) != 0 {
		t.Fatalf("unexpected notices %v", notes)
	}
	e.audit(t, "live")
}

func TestOnSettledNeverBlocks(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.QueueSize = 1 })
	for i := 0; i < 5; i++ { // nobody runs the worker: the queue fills
		e.worker.OnSettled("x", billing.Settlement{RechargeID: fmt.Sprintf("rc_%d", i)})
	}
	e.worker.OnSettled("x", billing.Settlement{}) // nothing to do: not queued
	if d := e.worker.Dropped(); d != 4 {
		t.Fatalf("dropped %d, want 4", d)
	}
}

// TestSweepExpiresAndAnnounces: on idle accounts the sweep forfeits expired credit
// with expire events, announces expiring grants once, and notices go out signed.
func TestSweepExpiresAndAnnounces(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Charger = nil })
	for _, id := range []string{"i1", "i2"} {
		if _, err := e.store.CreateAccount(e.ctx, id, "tier-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.TopUp(e.ctx, policy, billing.TopUpRequest{Account: id, GrantID: "promo", Amount: usd("3.00"), ExpiresAt: e.clock.Now().Add(72 * time.Hour), SkipLimits: true}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.worker.SweepOnce(e.ctx, false)
	if err != nil || st.Accounts != 2 || st.Notices != 2 {
		t.Fatalf("first sweep %+v %v", st, err)
	}
	notes := e.notices.deliveries()
	if len(notes) != 2 || notes[0]["type"] != billing.NoticeCreditsExpiring || notes[0]["grant_id"] != "promo" || notes[0]["amount"] != "3.000000" ||
		notes[0]["expires_at"] != "2026-03-13T12:00:00Z" {
		t.Fatalf("expiring notices %v", notes)
	}
	if st, _ := e.worker.SweepOnce(e.ctx, false); st.Notices != 0 || len(e.notices.deliveries()) != 2 {
		t.Fatalf("second sweep announced again: %+v", st)
	}
	e.clock.Advance(73 * time.Hour)
	st, err = e.worker.SweepOnce(e.ctx, false)
	if err != nil || st.Expired != usd("6.00") {
		t.Fatalf("sweep after expiry %+v %v", st, err)
	}
	for _, id := range []string{"i1", "i2"} {
		page, _ := e.store.Events(e.ctx, id, "", 10)
		last := page.Events[len(page.Events)-1]
		if last.Type != billing.EventExpire || last.Amount != usd("3.00") || last.GrantID != "promo" {
			t.Fatalf("%s: last event %+v, want the expiry", id, last)
		}
		e.audit(t, id)
	}
	// 3.00 → 0: balance.low (1.00) and balance.exhausted, per account.
	var types []string
	for _, n := range e.notices.deliveries()[2:] {
		types = append(types, n["account"].(string)+":"+n["type"].(string))
	}
	if len(types) != 4 {
		t.Fatalf("notices after expiry %v", types)
	}
	ids := map[string]bool{}
	for _, m := range e.notices.messages() {
		ids[m.ID] = true
	}
	if len(ids) != 6 {
		t.Fatalf("%d distinct webhook-ids for 6 notices", len(ids))
	}
}

// TestNoticeRedeliveryKeepsWebhookID: a notice the receiver fails to take is
// delivered again by the next sweep with the same webhook-id and body (and a
// fresh timestamp), so the receiver can drop a duplicate.
func TestNoticeRedeliveryKeepsWebhookID(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.Charger = nil })
	e.notices.setAnswer(func(n int, _ map[string]any) int {
		if n <= 2 { // both attempts of the first delivery
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	if _, err := e.store.CreateAccount(e.ctx, "n.1", "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.TopUp(e.ctx, policy, billing.TopUpRequest{Account: "n.1", GrantID: "promo", Amount: usd("3.00"), ExpiresAt: e.clock.Now().Add(72 * time.Hour), SkipLimits: true}); err != nil {
		t.Fatal(err)
	}
	if st, err := e.worker.SweepOnce(e.ctx, false); err != nil || st.Notices != 1 {
		t.Fatalf("first sweep %+v %v", st, err)
	}
	e.clock.Advance(2 * time.Minute) // past the delivery's lease
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
		t.Fatal(err)
	}
	msgs := e.notices.messages()
	if len(msgs) != 3 {
		t.Fatalf("%d notice deliveries, want 3 (two refused attempts, then the sweep's)", len(msgs))
	}
	for i, m := range msgs {
		if m.ID != msgs[0].ID || string(m.Body) != string(msgs[0].Body) || m.Duplicate != (i > 0) || strings.Contains(m.ID, ".") {
			t.Fatalf("delivery %d: %s %s duplicate %v; want webhook-id %s and the same body", i+1, m.ID, m.Body, m.Duplicate, msgs[0].ID)
		}
	}
	if st, _ := e.worker.SweepOnce(e.ctx, false); st.Notices != 0 || len(e.notices.messages()) != 3 {
		t.Fatalf("a delivered notice was sent again: %+v", st)
	}
}

// TestChargerReplayRefused: a charger request captured on the wire and replayed
// more than 5 minutes later is refused by a Standard Webhooks receiver and by
// notify.Verify; replayed within the window it is authentic but carries a
// webhook-id the receiver has already seen.
func TestChargerReplayRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.account(t, "rp", "6.00")
	s := e.spend(t, "rp", "h1", usd("2.00"))
	e.worker.PerformRecharge(e.ctx, "rp", s.RechargeID)
	msgs := e.charger.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d charger deliveries", len(msgs))
	}
	captured := msgs[0]

	if st, err := notifytest.Replay(http.DefaultClient, e.charger.srv.URL, captured); err != nil || st != http.StatusOK {
		t.Fatalf("replay within the window answered %d %v", st, err)
	}
	if got := e.charger.messages(); len(got) != 2 || !got[1].Duplicate || got[1].ID != captured.ID {
		t.Fatalf("replay within the window: %+v; want a duplicate webhook-id", got)
	}

	later := &notifytest.Receiver{Secrets: []string{chargerSecret}, Now: func() time.Time { return time.Now().Add(notifytest.Tolerance + time.Second) }}
	srv := httptest.NewServer(later)
	t.Cleanup(srv.Close)
	if st, err := notifytest.Replay(srv.Client(), srv.URL, captured); err != nil || st != http.StatusUnauthorized {
		t.Fatalf("replay 5m1s later answered %d %v; want 401", st, err)
	}
	if r := later.Refused(); len(r) != 1 || !strings.Contains(r[0].Err.Error(), "timestamp") {
		t.Fatalf("replay 5m1s later: %+v", r)
	}
	if err := notify.Verify([]string{chargerSecret}, captured.Header, captured.Body, time.Now().Add(notify.Tolerance+time.Second)); !errors.Is(err, notify.ErrTimestampTooOld) {
		t.Fatalf("notify.Verify of the replay: %v", err)
	}
	if n, _ := grantsFrom(e.account_(t, "rp"), billing.SourceAutoRecharge); n != 1 {
		t.Fatalf("%d recharge grants, want 1", n)
	}
}

func TestSweepLockOneProxyPerRound(t *testing.T) {
	e := newEnv(t, nil)
	ok1, _ := e.worker.lock(e.ctx)
	ok2, _ := e.worker.lock(e.ctx)
	if !ok1 || ok2 {
		t.Fatalf("locks %v %v: one sweeper per round", ok1, ok2)
	}
}

func TestNewRequiresStoreAndSettings(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	if _, err := New(Options{Store: &crashingStore{}}); err == nil {
		t.Fatal("New without settings succeeded")
	}
}

// TestSweepReportsExpiredHoldsOnce: holds that expire unsettled (their proxy
// died) are counted once each, through OnHoldsExpired and SweepStats, whether
// the sweep itself ended them or a reserve did before it; the round logs a
// warning naming how many.
func TestSweepReportsExpiredHoldsOnce(t *testing.T) {
	var hook atomic.Int64
	e := newEnv(t, nil, func(o *Options) { o.OnHoldsExpired = func(n int) { hook.Add(int64(n)) } })
	for _, id := range []string{"c1", "c2"} {
		e.account(t, id, "20.00")
	}
	reserve := func(id, hold string) {
		t.Helper()
		if _, err := e.store.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: usd("1.00"), TTL: time.Minute,
			RequestID: hold, Model: "gpt-4o-mini"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		reserve("c1", fmt.Sprintf("c1-%d", i))
	}
	reserve("c2", "c2-0")
	if st, err := e.worker.SweepOnce(e.ctx, false); err != nil || st.HoldsExpired != 0 || hook.Load() != 0 {
		t.Fatalf("sweep while the holds are live: %+v %v, hook %d", st, err, hook.Load())
	}
	e.clock.Advance(2 * time.Minute)
	reserve("c2", "c2-late") // this reserve's sweep ends c2-0 before the periodic sweep comes
	st, err := e.worker.SweepOnce(e.ctx, false)
	if err != nil || st.HoldsExpired != 4 || hook.Load() != 4 {
		t.Fatalf("sweep after the expiry: %+v %v, hook %d; want 4", st, err, hook.Load())
	}
	if st, _ := e.worker.SweepOnce(e.ctx, false); st.HoldsExpired != 0 || hook.Load() != 4 {
		t.Fatalf("a second sweep counted again: %+v, hook %d", st, hook.Load())
	}
	e.clock.Advance(2 * time.Minute)
	e.worker.sweepRound(e.ctx) // c2-late expired: a round logs it (one round per lock period)
	warned := e.logs.FilterMessage("recharge: sweep done; holds expired unsettled").All()
	if len(warned) != 1 || warned[0].ContextMap()["holds_expired"] != int64(1) || hook.Load() != 5 {
		t.Fatalf("warnings %+v, hook %d", warned, hook.Load())
	}
	for _, id := range []string{"c1", "c2"} {
		e.audit(t, id)
	}
}

// droppedNotices is an Observer that is also a NoticeObserver, counting drops.
type droppedNotices struct {
	mu    sync.Mutex
	types []string
}

func (d *droppedNotices) RechargeDone(Report) {}
func (d *droppedNotices) NoticeDropped(noticeType string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.types = append(d.types, noticeType)
}

// TestNoticeDroppedIsObserved: a notice refused NoticeAttempts times is
// dropped, and an Observer that is a NoticeObserver is told, once.
func TestNoticeDroppedIsObserved(t *testing.T) {
	obs := &droppedNotices{}
	e := newEnv(t, nil, func(o *Options) { o.Charger, o.NoticeAttempts, o.Observer = nil, 2, obs })
	e.notices.setAnswer(func(int, map[string]any) int { return http.StatusServiceUnavailable })
	if _, err := e.store.CreateAccount(e.ctx, "n.2", "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.TopUp(e.ctx, policy, billing.TopUpRequest{Account: "n.2", GrantID: "promo", Amount: usd("3.00"), ExpiresAt: e.clock.Now().Add(72 * time.Hour), SkipLimits: true}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Minute) // past each delivery's lease
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.types) != 1 || obs.types[0] != billing.NoticeCreditsExpiring {
		t.Errorf("NoticeDropped calls %q, want one %q", obs.types, billing.NoticeCreditsExpiring)
	}
}
