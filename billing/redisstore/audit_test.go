package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// randomHistory drives account id through n random operations: top-ups (some
// promotional, some expiring soon), reserves, settles above and below the hold
// (debt), releases, retried settles and top-ups, clock jumps (expiry, hold
// expiry), auto-recharges completed twice or failed, sweeps, adjustments of
// both signs (some refused, some replayed), purchases paid (some twice) and
// refunds or disputes of them (cumulative, some replayed).
func randomHistory(t testing.TB, e *env, id string, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e.account(t, id, "20.00")
	e.setAR(t, id, "8.00", "10.00", "20.00")
	amount := func(lo, hi string) money.Micros {
		return usd(lo) + money.Micros(rng.Int64N(int64(usd(hi)-usd(lo))+1))
	}
	var holds []string
	var lastSettle billing.SettleRequest
	type paidPurchase struct {
		ref    string
		amount money.Micros
	}
	var paid []paidPurchase
	for i := 0; i < n; i++ {
		switch op := rng.IntN(15); op {
		case 0: // top-up, maybe promotional
			q := billing.TopUpRequest{Account: id, GrantID: fmt.Sprintf("g%d", i), Amount: amount("5.00", "10.00")}
			if rng.IntN(3) == 0 {
				q.ExpiresAt = e.clock.Now().Add(time.Duration(1+rng.IntN(72)) * time.Hour)
			}
			if _, err := e.TopUp(e.ctx, testPolicy, q); err != nil && !errors.Is(err, billing.ErrAboveMaxBalance) {
				t.Fatal(err)
			}
			if rng.IntN(4) == 0 { // retried
				if r, err := e.TopUp(e.ctx, testPolicy, q); err == nil && !r.Replayed {
					t.Fatalf("retried top-up credited again: %+v", r)
				}
			}
		case 1, 2, 10: // reserve
			hid := fmt.Sprintf("h%d", i)
			r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hid, Estimate: amount("0.50", "6.00"), Minimum: usd("0.01"), Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL})
			if err != nil {
				t.Fatal(err)
			}
			if r.Admitted {
				holds = append(holds, hid)
			}
		case 3, 4, 11: // settle a hold, sometimes for more than it held
			if len(holds) == 0 {
				continue
			}
			k := rng.IntN(len(holds))
			hid := holds[k]
			holds = append(holds[:k], holds[k+1:]...)
			lastSettle = billing.SettleRequest{Account: id, HoldID: hid, Cost: amount("0.00", "7.00"), Triggers: allOn}
			s, err := e.Settle(e.ctx, lastSettle)
			if err != nil {
				t.Fatal(err)
			}
			if s.RechargeID != "" {
				e.driveRecharge(t, id, s.RechargeID, rng)
			}
		case 5: // release
			if len(holds) == 0 {
				continue
			}
			hid := holds[0]
			holds = holds[1:]
			if _, err := e.Release(e.ctx, id, hid, billing.Usage{Note: "upstream error"}); err != nil {
				t.Fatal(err)
			}
		case 6: // a retried settle
			if lastSettle.HoldID != "" {
				if s, err := e.Settle(e.ctx, lastSettle); err != nil || !s.Replayed {
					t.Fatalf("retried settle %+v %v", s, err)
				}
			}
		case 7: // time passes
			e.clock.Advance([]time.Duration{time.Second, time.Minute, 16 * time.Minute, 6 * time.Hour, 30 * time.Hour}[rng.IntN(5)])
		case 8: // the sweeper
			r, err := e.Sweep(e.ctx, id, billing.SweepRequest{Triggers: allOn, ExpiringWithin: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if r.RechargeID != "" {
				e.driveRecharge(t, id, r.RechargeID, rng)
			}
			for _, nid := range r.Notices {
				e.AckNotice(e.ctx, id, nid)
			}
		case 9: // an account read (lazy expiry)
			e.get(t, id)
		case 12: // an adjustment: credit (maybe repaying debt) or a claw-back
			q := billing.AdjustRequest{Amount: amount("0.01", "6.00"), Reason: fmt.Sprintf("correction %d", i)}
			if rng.IntN(2) == 0 {
				q.Amount = -q.Amount
			} else if rng.IntN(3) == 0 {
				q.ExpiresAt = e.clock.Now().Add(time.Duration(1+rng.IntN(72)) * time.Hour)
			}
			if rng.IntN(3) == 0 {
				q.IdempotencyKey = fmt.Sprintf("adj%d", i)
			}
			r, err := e.Adjust(e.ctx, testPolicy, id, q)
			if err != nil && !errors.Is(err, billing.ErrInsufficientCredit) {
				t.Fatal(err)
			}
			if err == nil && q.IdempotencyKey != "" {
				if again, err := e.Adjust(e.ctx, testPolicy, id, q); err != nil || !again.Replayed || again.EventID != r.EventID {
					t.Fatalf("replayed adjustment: %+v %v", again, err)
				}
			}
		case 13: // a purchase, paid (sometimes reported twice); rarer than spending
			if rng.IntN(3) != 0 {
				continue
			}
			pid := fmt.Sprintf("pur_%s_%d", id, i)
			amount := amount("5.00", "10.00")
			if _, err := e.CreatePurchase(e.ctx, testPolicy, billing.NewPurchaseRequest{Account: id, ID: pid, Amount: amount, Provider: "stripe"}); err != nil {
				if errors.Is(err, billing.ErrAboveMaxBalance) {
					continue
				}
				t.Fatal(err)
			}
			ref := "pi_" + pid
			for range 1 + rng.IntN(2) {
				if _, err := e.CompletePurchase(e.ctx, testPolicy, id, pid, billing.PaymentReport{Amount: amount, PaymentRef: ref}); err != nil {
					t.Fatal(err)
				}
			}
			paid = append(paid, paidPurchase{ref, amount})
		case 14: // a refund or a dispute of a paid purchase, up to some amount
			if len(paid) == 0 {
				continue
			}
			p := paid[rng.IntN(len(paid))]
			reason := []string{"refund", "dispute: fraudulent"}[rng.IntN(2)]
			if _, err := e.TakeBack(e.ctx, billing.TakeBackRequest{PaymentRef: p.ref, Upto: amount("0.01", (p.amount + usd("1.00")).String()), Reason: reason}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// driveRecharge completes (once or twice) or fails a recharge, or leaves it
// pending as a crashed worker would.
func (e *env) driveRecharge(t testing.TB, id, rc string, rng *rand.Rand) {
	t.Helper()
	switch rng.IntN(4) {
	case 0:
		e.complete(t, id, rc)
	case 1:
		e.complete(t, id, rc)
		e.complete(t, id, rc)
	case 2:
		if _, err := e.FailRecharge(e.ctx, id, rc, billing.RechargeFailure{Reason: "declined", Backoff: time.Minute, MaxBackoff: time.Hour}); err != nil && !errors.Is(err, billing.ErrRechargeNotPending) {
			t.Fatal(err)
		}
	}
}

func audit(t testing.TB, e *env, id string) billing.AuditReport {
	t.Helper()
	r, err := billing.AuditAccount(e.ctx, e.Store, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuditPassesOnLongRandomHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		seen := map[billing.EventType]int{}
		for seed := uint64(1); seed <= 2; seed++ {
			id := fmt.Sprintf("hist%d", seed)
			randomHistory(t, e, id, 2500, seed)
			checkConservation(t, e, id)
			r := audit(t, e, id)
			if !r.OK() || r.Events < 500 {
				t.Fatalf("seed %d: audit of %d events: %+v", seed, r.Events, r.Problems)
			}
			for _, ev := range e.events(t, id) {
				seen[ev.Type]++
			}
			t.Logf("seed %d: %d events audited", seed, r.Events)
			var pos, neg int
			for _, ev := range e.events(t, id) {
				if ev.Type == billing.EventAdjustment && ev.Amount > 0 {
					pos++
				} else if ev.Type == billing.EventAdjustment {
					neg++
				}
			}
			if pos == 0 || neg == 0 {
				t.Errorf("seed %d: %d positive and %d negative adjustments; want both", seed, pos, neg)
			}
			var refs, takeBacks int
			for _, ev := range e.events(t, id) {
				if ev.Type == billing.EventTopUp && ev.PaymentRef != "" {
					refs++
				}
				if ev.Type == billing.EventAdjustment && ev.PaymentRef != "" {
					takeBacks++
				}
			}
			if refs == 0 || takeBacks == 0 {
				t.Errorf("seed %d: %d paid purchases and %d take-backs; want both", seed, refs, takeBacks)
			}
		}
		for _, typ := range []billing.EventType{billing.EventTopUp, billing.EventUsage, billing.EventExpire, billing.EventDebtRepaid, billing.EventAutoRecharge,
			billing.EventAutoRechargeFailed, billing.EventAutoRechargeSkipped, billing.EventRelease, billing.EventAdjustment} {
			if seen[typ] == 0 {
				t.Errorf("the histories have no %s event; they should exercise every kind", typ)
			}
		}
		t.Logf("events by type: %v", seen)
	})
}

// TestAuditFailsOnTamperedState changes the stored state or the ledger behind the
// scripts' back, one way per case, and expects the audit to name the check and,
// for ledger tampering, the first mismatching event.
func TestAuditFailsOnTamperedState(t *testing.T) {
	type tamper func(t *testing.T, e *env, id string) (wantEvent string)
	cases := []struct {
		name      string
		check     string
		tamper    tamper
		wantEvent bool
	}{
		{"credit raised in the account hash", "state", func(t *testing.T, e *env, id string) string {
			e.redis.Client.HIncrBy(e.ctx, e.acctKey(id), "credit", 1)
			return ""
		}, false},
		{"a grant's remaining changed", "state", func(t *testing.T, e *env, id string) string {
			a := e.get(t, id)
			g := a.Grants[0]
			raw := e.redis.Client.HGet(e.ctx, e.accountKeys(id)[1], g.ID).Val()
			p := strings.Split(raw, " ")
			p[1] = fmt.Sprint(int64(g.Remaining) - 1)
			e.redis.Client.HSet(e.ctx, e.accountKeys(id)[1], g.ID, strings.Join(p, " "))
			return ""
		}, false},
		{"a usage event deleted from the ledger", "balance", func(t *testing.T, e *env, id string) string {
			evs := e.events(t, id)
			for i, ev := range evs {
				if ev.Type == billing.EventUsage && ev.Amount > 0 && i+1 < len(evs) {
					e.redis.Client.XDel(e.ctx, e.ledgerKey(id), ev.ID)
					return evs[i+1].ID
				}
			}
			t.Fatal("no usage event to delete")
			return ""
		}, true},
		{"a usage event appended twice", "usage", func(t *testing.T, e *env, id string) string {
			for _, ev := range e.events(t, id) {
				if ev.Type == billing.EventUsage && ev.Amount > 0 {
					a := e.get(t, id)
					bal := a.Balance() - ev.Amount
					dup := e.redis.Client.XAdd(e.ctx, &redis.XAddArgs{Stream: e.ledgerKey(id), Values: []any{
						"type", "usage", "at", "1", "amount", fmt.Sprint(int64(ev.Amount)), "hold_id", ev.HoldID, "cost", fmt.Sprint(int64(ev.Amount)),
						"from_credit", fmt.Sprint(int64(ev.Amount)), "to_debt", "0", "balance_after", fmt.Sprint(int64(bal)),
						"credit_after", fmt.Sprint(int64(a.Credit - ev.Amount)), "debt_after", fmt.Sprint(int64(a.Debt)),
					}}).Val()
					return dup
				}
			}
			return ""
		}, true},
		{"adjusted_out lowered in the account hash", "state", func(t *testing.T, e *env, id string) string {
			e.redis.Client.HIncrBy(e.ctx, e.acctKey(id), "adjusted_out", -1)
			return ""
		}, false},
		{"a claw-back appended that moves debt instead of credit", "debt", func(t *testing.T, e *env, id string) string {
			// The balance adds up (−1.00), but a negative adjustment takes credit and
			// never adds debt: the audit checks the split, not just the balance.
			a := e.get(t, id)
			return e.redis.Client.XAdd(e.ctx, &redis.XAddArgs{Stream: e.ledgerKey(id), Values: []any{
				"type", "adjustment", "at", "1", "amount", "-1000000", "note", "forged",
				"balance_after", fmt.Sprint(int64(a.Balance() - usd("1.00"))),
				"credit_after", fmt.Sprint(int64(a.Credit)), "debt_after", fmt.Sprint(int64(a.Debt + usd("1.00"))),
			}}).Val()
		}, true},
		{"a positive adjustment's grant turned into a purchase", "grants", func(t *testing.T, e *env, id string) string {
			r, err := e.Adjust(e.ctx, testPolicy, id, billing.AdjustRequest{Amount: usd("1.00"), Reason: "goodwill"})
			if err != nil {
				t.Fatal(err)
			}
			raw := e.redis.Client.HGet(e.ctx, e.accountKeys(id)[1], r.ID).Val()
			p := strings.Split(raw, " ")
			p[4] = billing.SourcePurchase
			e.redis.Client.HSet(e.ctx, e.accountKeys(id)[1], r.ID, strings.Join(p, " "))
			return r.EventID
		}, true},
	}
	// takeBackOf finds a take-back event of the history and what its payment credited.
	takeBackOf := func(t *testing.T, e *env, id string) billing.Event {
		for _, ev := range e.events(t, id) {
			if ev.Type == billing.EventAdjustment && ev.PaymentRef != "" {
				return ev
			}
		}
		t.Fatal("no take-back in the history")
		return billing.Event{}
	}
	forgeTakeBack := func(t *testing.T, e *env, id string, tb billing.Event, amount money.Micros, ref string) string {
		a := e.get(t, id)
		return e.redis.Client.XAdd(e.ctx, &redis.XAddArgs{Stream: e.ledgerKey(id), Values: []any{
			"type", "adjustment", "at", "1", "amount", fmt.Sprint(-int64(amount)), "grant_id", tb.GrantID, "payment_ref", ref, "note", "forged",
			"balance_after", fmt.Sprint(int64(a.Balance() - amount)), "credit_after", fmt.Sprint(int64(a.Credit - amount)), "debt_after", fmt.Sprint(int64(a.Debt)),
		}}).Val()
	}
	cases = append(cases,
		struct {
			name      string
			check     string
			tamper    tamper
			wantEvent bool
		}{"a take-back appended beyond what its grant credited", "takebacks", func(t *testing.T, e *env, id string) string {
			tb := takeBackOf(t, e, id)
			return forgeTakeBack(t, e, id, tb, usd("10.01"), tb.PaymentRef)
		}, true},
		struct {
			name      string
			check     string
			tamper    tamper
			wantEvent bool
		}{"a take-back appended naming another payment's grant", "takebacks", func(t *testing.T, e *env, id string) string {
			tb := takeBackOf(t, e, id)
			return forgeTakeBack(t, e, id, tb, 0, "pi_someone_else")
		}, true},
	)
	eachStore(t, func(t *testing.T, e *env) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("tamper%d", i)
				randomHistory(t, e, id, 300, uint64(100+i))
				if r := audit(t, e, id); !r.OK() {
					t.Fatalf("audit fails before tampering: %+v", r.Problems)
				}
				wantEvent := tc.tamper(t, e, id)
				r := audit(t, e, id)
				if r.OK() {
					t.Fatal("the audit passed a tampered account")
				}
				first := r.Problems[0]
				if first.Check != tc.check || (tc.wantEvent && first.EventID != wantEvent) {
					t.Fatalf("first problem %+v; want check %q at event %q", first, tc.check, wantEvent)
				}
				t.Logf("%s: %s", first.Check, first.Message)
			})
		}
	})
}

// trimmingLedger trims the oldest events (by step) before every page the audit
// reads: a shipper trimming while an operator audits.
type trimmingLedger struct {
	*Store
	ids         []string
	step, upTo  int
	trims, left int // left: how many more pages are read with a trim first
}

func (l *trimmingLedger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if l.left > 0 && l.upTo+l.step < len(l.ids)-1 {
		l.left--
		l.upTo += l.step
		if _, err := l.TrimLedger(ctx, account, l.ids[l.upTo], time.Now().Add(24*time.Hour)); err != nil {
			return billing.EventPage{}, err
		}
		l.trims++
	}
	return l.Store.Events(ctx, account, after, limit)
}

// A trim during the audit's read takes events from under its replay: the audit
// reads again from the new checkpoint instead of reporting the gap, and still
// reports a ledger that is wrong.
func TestAuditUnderConcurrentTrims(t *testing.T) {
	e := newEnv(t, testredis.New(t))
	e.account(t, "busy", "100.00")
	for i := range 1200 {
		hold := fmt.Sprintf("h%d", i)
		if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "busy", HoldID: hold, Estimate: 100, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "busy", HoldID: hold, Cost: 12}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for after := ""; ; {
		p, err := e.Events(e.ctx, "busy", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			ids = append(ids, ev.ID)
		}
		if after = p.Next; after == "" {
			break
		}
	}
	l := &trimmingLedger{Store: e.Store, ids: ids, step: 100, left: 3}
	r, err := billing.AuditAccount(e.ctx, l, "busy")
	if err != nil || !r.OK() || l.trims == 0 {
		t.Fatalf("after %d trims during the audit: %+v, %v", l.trims, r, err)
	}
	// A real discrepancy is still reported, trims or not.
	if err := e.redis.Client.HSet(e.ctx, e.acctKey("busy"), "credit", "1").Err(); err != nil {
		t.Fatal(err)
	}
	l.left = 3
	if r, err := billing.AuditAccount(e.ctx, l, "busy"); err != nil || r.OK() {
		t.Fatalf("a corrupted balance audited %+v, %v", r, err)
	}
}
