package redisstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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
		ms(now), billing.MonthOf(now), flag(t.AutoRecharge), low, flag(t.Notices), within, billing.NewID("rc_"))
	if err != nil {
		return billing.SweepResult{}, err
	}
	switch r.str(0) {
	case "OK":
		res := billing.SweepResult{Expired: r.micros(1), RechargeID: r.str(2)}
		for i := 3; i < len(r); i++ {
			res.Notices = append(res.Notices, r.str(i))
		}
		return res, nil
	case "NOACCOUNT":
		return billing.SweepResult{}, notFound(account)
	}
	return billing.SweepResult{}, fmt.Errorf("redisstore: unexpected sweep reply %v", r)
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
	switch r.str(0) {
	case "OK":
		rc, err := parseRecharge(account, id, r.str(1))
		if err != nil {
			return billing.Recharge{}, err
		}
		rc.Drives, _ = strconv.Atoi(r.str(2))
		return rc, nil
	case "GONE":
		return billing.Recharge{}, fmt.Errorf("%w: %s of account %q", billing.ErrRechargeNotPending, id, account)
	case "BUSY":
		return billing.Recharge{}, fmt.Errorf("%w: %s of account %q", billing.ErrRechargeBusy, id, account)
	}
	return billing.Recharge{}, fmt.Errorf("redisstore: unexpected claim reply %v", r)
}

// parseRecharge reads a recharge record "state amount month month_total started_ms".
func parseRecharge(account, id, raw string) (billing.Recharge, error) {
	p := strings.Split(raw, " ")
	if len(p) != 5 {
		return billing.Recharge{}, fmt.Errorf("redisstore: malformed recharge record %q of account %q", id, account)
	}
	return billing.Recharge{ID: id, Account: account, Amount: micros(p[1]), Month: p[2], MonthTotal: micros(p[3]), StartedAt: fromMS(p[4])}, nil
}

var completeRechargeScript = newScript("complete_recharge.lua")

// CompleteRecharge credits a paid recharge: a grant of source auto_recharge whose
// id is the recharge id, expiring after creditTTL, counted in the recharge's month.
// Calling it again for the same recharge credits nothing and returns the grant with
// Replayed set.
func (s *Store) CompleteRecharge(ctx context.Context, account, id string, creditTTL time.Duration) (billing.TopUpResult, error) {
	if err := checkRecharge(account, id); err != nil {
		return billing.TopUpResult{}, err
	}
	if creditTTL <= 0 {
		return billing.TopUpResult{}, fmt.Errorf("%w: credit lifetime %s", billing.ErrInvalid, creditTTL)
	}
	now := s.now()
	r, err := s.run(ctx, completeRechargeScript, s.accountKeys(account, "recharges"), ms(now), id, ms(now.Add(creditTTL)))
	if err != nil {
		return billing.TopUpResult{}, err
	}
	switch r.str(0) {
	case "OK", "REPLAY":
		return grantReply(r, r.str(0) == "REPLAY"), nil
	case "UNKNOWN":
		return billing.TopUpResult{}, fmt.Errorf("%w: no recharge %s on account %q", billing.ErrRechargeNotPending, id, account)
	case "NOACCOUNT":
		return billing.TopUpResult{}, notFound(account)
	}
	return billing.TopUpResult{}, fmt.Errorf("redisstore: unexpected complete-recharge reply %v", r)
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
	switch r.str(0) {
	case "OK":
		return r.str(1), nil
	case "GONE":
		return "", fmt.Errorf("%w: %s of account %q", billing.ErrRechargeNotPending, id, account)
	case "NOACCOUNT":
		return "", notFound(account)
	}
	return "", fmt.Errorf("redisstore: unexpected fail-recharge reply %v", r)
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
	v, err := claimNoticesScript.Run(ctx, s.c, []string{s.prefix + "{acct:" + account + "}:outbox"}, args...).Slice()
	if err != nil {
		return nil, nil, claimNoticesScript.failed(wrap(err))
	}
	r := reply(v)
	for i := 0; i+2 < len(r); i += 3 {
		n, err := parseNotice(account, r.str(i+1), r.str(i+2))
		if err != nil {
			return nil, nil, err
		}
		if r.str(i) == "DROP" {
			dropped = append(dropped, n)
		} else {
			claimed = append(claimed, n)
		}
	}
	return claimed, dropped, nil
}

// parseNotice reads a notice record "type at balance attempts lease threshold ref
// amount expires reason".
func parseNotice(account, id, raw string) (billing.Notice, error) {
	p := strings.SplitN(raw, " ", 10)
	if len(p) != 10 {
		return billing.Notice{}, fmt.Errorf("redisstore: malformed notice record %q of account %q", id, account)
	}
	n := billing.Notice{ID: id, Type: p[0], Account: account, At: fromMS(p[1]), Balance: micros(p[2]), Threshold: micros(p[5]), Amount: micros(p[7]), Reason: p[9]}
	n.Attempts, _ = strconv.Atoi(p[3])
	ref := p[6]
	if ref == "-" {
		ref = ""
	}
	if n.Type == billing.NoticeAutoRechargeFailed {
		n.RechargeID = ref
	} else {
		n.GrantID = ref
	}
	if exp := fromMS(p[8]); exp.UnixMilli() > 0 {
		n.ExpiresAt = exp
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
