package redisstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// The auto-recharge, notice and sweep operations. Their state lives under the
// account's hash tag next to the ledger: the recharge records (hash "recharges":
// recharge id → "state amount month month_total started_ms"), the notice outbox
// (hash "outbox": notice id → notice record) and the grants already announced as
// expiring (set "expwarn"); the pending recharge, the month's total and the
// back-off are fields of the account hash.

// AccountIDs lists every account id, sorted.
func (s *Store) AccountIDs(ctx context.Context) ([]string, error) {
	ids, err := s.c.SMembers(ctx, s.accountsKey()).Result()
	if err != nil {
		return nil, wrap(err)
	}
	sort.Strings(ids)
	return ids, nil
}

var sweepScript = newScript("sweep.lua")

// Sweep brings one account up to date (see billing.SweepRequest): expired credit is
// forfeited with expire events, due notices are queued, a due auto-recharge is
// started. Safe to run from every proxy at once.
func (s *Store) Sweep(ctx context.Context, account string, q billing.SweepRequest) (billing.SweepResult, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.SweepResult{}, notFound(account)
	}
	now := s.now()
	t := q.Triggers
	var low interface{} = ""
	if t.Notices {
		low = amountArg(t.LowBalance)
	}
	within := int64(0)
	if q.ExpiringWithin > 0 {
		within = q.ExpiringWithin.Milliseconds()
	}
	r, err := s.run(ctx, sweepScript, s.accountKeys(account, "outbox", "recharges", "expwarn"),
		ms(now), billing.MonthOf(now), flag(t.AutoRecharge), low, flag(t.Notices), within, billing.NewID("rc_"),
		ladderArg(q.Ladder))
	if err != nil {
		return billing.SweepResult{}, err
	}
	return decodeSweep(r, account)
}

func decodeSweep(r reply, account string) (billing.SweepResult, error) {
	switch r.status() {
	case "OK":
		res := billing.SweepResult{Expired: r.micros(1), HoldsExpired: r.count(2), RechargeID: r.str(3), Notices: r.strings(4)}
		return decoded(&r, max(4, len(r.v)), res)
	case "NOACCOUNT":
		return billing.SweepResult{}, r.refusal(1, notFound(account))
	}
	return billing.SweepResult{}, r.unexpected()
}

var claimRechargeScript = newScript("claim_recharge.lua")

// ClaimRecharge takes a lease on account's pending recharge id for lease, so that
// one worker among all proxies performs it. It fails with
// billing.ErrRechargeNotPending when the recharge is done, failed or unknown, and
// with billing.ErrRechargeBusy while another worker's lease runs.
func (s *Store) ClaimRecharge(ctx context.Context, account, id string, lease time.Duration) (billing.Recharge, error) {
	if err := checkRecharge(account, id); err != nil {
		return billing.Recharge{}, err
	}
	if lease <= 0 {
		return billing.Recharge{}, fmt.Errorf("%w: recharge lease %s", billing.ErrInvalid, lease)
	}
	base := s.prefix + "{acct:" + account + "}:"
	r, err := s.run(ctx, claimRechargeScript, []string{base + "acct", base + "recharges"}, id, ms(s.now()), lease.Milliseconds())
	if err != nil {
		return billing.Recharge{}, err
	}
	return decodeClaimRecharge(r, account, id)
}

func decodeClaimRecharge(r reply, account, id string) (billing.Recharge, error) {
	switch r.status() {
	case "OK":
		raw, drives := r.str(1), r.count(2)
		if err := r.done(3); err != nil {
			return billing.Recharge{}, err
		}
		rc, err := parseRecharge(r.script+" reply", account, id, raw)
		rc.Drives = drives
		return rc, err
	case "GONE", "BUSY":
		kind := billing.ErrRechargeNotPending
		if r.is(0, "BUSY") {
			kind = billing.ErrRechargeBusy
		}
		return billing.Recharge{}, r.refusal(1, fmt.Errorf("%w: %s of account %q", kind, id, account))
	}
	return billing.Recharge{}, r.unexpected()
}

// parseRecharge reads a recharge record "state amount month month_total
// started_ms" (where: whose reply it came in).
func parseRecharge(where, account, id, raw string) (billing.Recharge, error) {
	d := record{where: fmt.Sprintf("%s, recharge record %q of account %q", where, id, account)}
	p := strings.Split(raw, " ")
	if len(p) != 5 {
		d.fail("%d fields, want 5", len(p))
		return billing.Recharge{}, d.err
	}
	rc := billing.Recharge{ID: id, Account: account, Amount: d.micros("amount", p[1]), Month: p[2],
		MonthTotal: d.micros("month_total", p[3]), StartedAt: d.ms("started", p[4])}
	if d.err != nil {
		return billing.Recharge{}, d.err
	}
	return rc, nil
}

var completeRechargeScript = newScript("complete_recharge.lua")

// CompleteRecharge credits a paid recharge: a grant of source auto_recharge whose
// id is the recharge id, expiring after creditTTL, counted in the recharge's month.
// Calling it again for the same recharge credits nothing and returns the grant with
// Replayed set. paymentRef, optional, is the payment provider's id of the charge
// (Stripe: the PaymentIntent; "" from the webhook charger): it goes on the
// auto_recharge event and is indexed, so that a refund or a dispute of that
// payment takes the grant's credit back (TakeBack).
func (s *Store) CompleteRecharge(ctx context.Context, account, id string, c billing.RechargeCredit) (billing.TopUpResult, error) {
	creditTTL, paymentRef := c.CreditTTL, c.PaymentRef
	if err := checkRecharge(account, id); err != nil {
		return billing.TopUpResult{}, err
	}
	if creditTTL <= 0 {
		return billing.TopUpResult{}, fmt.Errorf("%w: credit lifetime %s", billing.ErrInvalid, creditTTL)
	}
	if paymentRef != "" {
		if err := s.indexPayment(ctx, paymentRef, account, id); err != nil {
			return billing.TopUpResult{}, err
		}
	}
	now := s.now()
	r, err := s.moneyIn(ctx, completeRechargeScript, s.accountKeys(account, "recharges", paymentsKey, "outbox"),
		ms(now), id, ms(now.Add(creditTTL)), paymentRef, ladderArg(c.Ladder))
	if err != nil {
		return billing.TopUpResult{}, err
	}
	res, err := decodeCompleteRecharge(r, account, id)
	if err != nil {
		return billing.TopUpResult{}, err
	}
	if err := s.durable(ctx, account, res.EventID); err != nil {
		return billing.TopUpResult{}, err
	}
	return res, nil
}

func decodeCompleteRecharge(r reply, account, id string) (billing.TopUpResult, error) {
	switch status := r.status(); status {
	case "OK", "REPLAY":
		res := grantReply(&r)
		res.Replayed = status == "REPLAY"
		return decoded(&r, 10, res)
	case "UNKNOWN":
		return billing.TopUpResult{}, r.refusal(1, fmt.Errorf("%w: no recharge %s on account %q", billing.ErrRechargeNotPending, id, account))
	case "REF_TAKEN":
		return billing.TopUpResult{}, r.refusal(2, refTaken(account, r.str(1)))
	case "NOACCOUNT":
		return billing.TopUpResult{}, r.refusal(1, notFound(account))
	}
	return billing.TopUpResult{}, r.unexpected()
}

var failRechargeScript = newScript("fail_recharge.lua")

// FailRecharge records that the pending recharge id failed: an
// auto_recharge_failed event, the pending recharge cleared, a back-off before the
// next one and, when f.Notice, an auto_recharge.failed notice (its id is returned).
// billing.ErrRechargeNotPending when id is not the pending recharge.
func (s *Store) FailRecharge(ctx context.Context, account, id string, f billing.RechargeFailure) (string, error) {
	if err := checkRecharge(account, id); err != nil {
		return "", err
	}
	if f.Backoff < 0 || f.MaxBackoff < f.Backoff {
		return "", fmt.Errorf("%w: recharge back-off %s, max %s", billing.ErrInvalid, f.Backoff, f.MaxBackoff)
	}
	reason := strings.Join(strings.Fields(f.Reason), " ") // one line: it ends a space-separated record
	if reason == "" {
		reason = "failed"
	}
	r, err := s.run(ctx, failRechargeScript, s.accountKeys(account, "outbox", "recharges"),
		ms(s.now()), id, reason, f.Backoff.Milliseconds(), f.MaxBackoff.Milliseconds(), flag(f.Notice))
	if err != nil {
		return "", err
	}
	return decodeFailRecharge(r, account, id)
}

func decodeFailRecharge(r reply, account, id string) (string, error) {
	switch r.status() {
	case "OK":
		nid := r.str(1)
		r.ms(2) // the back-off's end, checked though FailRecharge does not return it
		return decoded(&r, 3, nid)
	case "GONE":
		return "", r.refusal(1, fmt.Errorf("%w: %s of account %q", billing.ErrRechargeNotPending, id, account))
	case "NOACCOUNT":
		return "", r.refusal(1, notFound(account))
	}
	return "", r.unexpected()
}

func checkRecharge(account, id string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return err
	}
	if id == "" || len(id) > 160 || strings.ContainsAny(id, "{} ") {
		return fmt.Errorf("%w: recharge id %q", billing.ErrInvalid, id)
	}
	return nil
}

var claimNoticesScript = newScript("claim_notices.lua")

// ClaimNotices leases account's notices ids (none: every queued notice) that no
// other worker holds, for lease, counting one delivery attempt each. Notices that
// have had maxAttempts are removed and returned in dropped instead.
func (s *Store) ClaimNotices(ctx context.Context, account string, ids []string, lease time.Duration, maxAttempts int) (claimed, dropped []billing.Notice, err error) {
	if err := billing.ValidAccountID(account); err != nil {
		return nil, nil, notFound(account)
	}
	if lease <= 0 || maxAttempts <= 0 {
		return nil, nil, fmt.Errorf("%w: notice lease %s, max attempts %d", billing.ErrInvalid, lease, maxAttempts)
	}
	args := []interface{}{ms(s.now()), lease.Milliseconds(), maxAttempts}
	for _, id := range ids {
		args = append(args, id)
	}
	r, err := s.run(ctx, claimNoticesScript, []string{s.prefix + "{acct:" + account + "}:outbox"}, args...)
	if err != nil {
		return nil, nil, err
	}
	return decodeClaimNotices(r, account)
}

func decodeClaimNotices(r reply, account string) (claimed, dropped []billing.Notice, err error) {
	if len(r.v)%3 != 0 {
		r.fail("%d elements, want triples", len(r.v))
	}
	for i := 0; i+2 < len(r.v) && r.err == nil; i += 3 {
		status, id, raw := r.str(i), r.str(i+1), r.str(i+2)
		if r.err != nil {
			break
		}
		n, err := parseNotice(r.script+" reply", account, id, raw)
		if err != nil {
			return nil, nil, err
		}
		switch status {
		case "OK":
			claimed = append(claimed, n)
		case "DROP":
			dropped = append(dropped, n)
		default:
			r.fail("element %d is %s, want \"OK\" or \"DROP\"", i, show(status))
		}
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return claimed, dropped, nil
}

// parseNotice reads a notice record "type at balance attempts lease threshold ref
// amount expires reason" (where: whose reply it came in).
func parseNotice(where, account, id, raw string) (billing.Notice, error) {
	d := record{where: fmt.Sprintf("%s, notice record %q of account %q", where, id, account)}
	p := strings.SplitN(raw, " ", 10)
	if len(p) != 10 {
		d.fail("%d fields, want 10", len(p))
		return billing.Notice{}, d.err
	}
	n := billing.Notice{ID: id, Type: p[0], Account: account, At: d.ms("at", p[1]), Balance: d.micros("balance", p[2]),
		Attempts: d.count("attempts", p[3]), Threshold: d.micros("threshold", p[5]), Amount: d.micros("amount", p[7]), Reason: p[9]}
	d.ms("lease", p[4])
	expires := d.ms("expires", p[8])
	if d.err != nil {
		return billing.Notice{}, d.err
	}
	ref := p[6]
	if ref == "-" {
		ref = ""
	}
	switch n.Type {
	case billing.NoticeAutoRechargeFailed:
		n.RechargeID = ref
	case billing.NoticeTierChanged:
		// ref is the new tier, reason the old one, amount the paid total
		n.Tier, n.FromTier, n.Reason = ref, n.Reason, ""
	default:
		n.GrantID = ref
	}
	if expires.UnixMilli() > 0 {
		n.ExpiresAt = expires
	}
	return n, nil
}

// AckNotice removes a delivered notice from account's outbox.
func (s *Store) AckNotice(ctx context.Context, account, id string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return notFound(account)
	}
	return wrap(s.c.HDel(ctx, s.prefix+"{acct:"+account+"}:outbox", id).Err())
}

// TryLock takes the named lock for ttl if nobody holds it, and reports whether it
// did. The sweeper uses it so that one proxy sweeps per round. The lock is never
// released early: it simply runs out.
func (s *Store) TryLock(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if name == "" || strings.ContainsAny(name, "{} ") || ttl <= 0 {
		return false, fmt.Errorf("%w: lock %q for %s", billing.ErrInvalid, name, ttl)
	}
	ok, err := s.c.SetNX(ctx, s.prefix+"lock:"+name, ms(s.now()), ttl).Result()
	if err != nil {
		return false, wrap(err)
	}
	return ok, nil
}
