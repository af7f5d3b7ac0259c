package redisstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

func (e *env) adjustOK(t testing.TB, id string, amount money.Micros, reason string) billing.AdjustResult {
	t.Helper()
	r, err := e.Adjust(e.ctx, testPolicy, id, billing.AdjustRequest{Amount: amount, Reason: reason})
	if err != nil {
		t.Fatalf("adjust %s: %v", amount, err)
	}
	return r
}

func eventTypes(evs []billing.Event) string {
	var b []string
	for _, ev := range evs {
		b = append(b, string(ev.Type))
	}
	return strings.Join(b, " ")
}

// TestAdjust covers both signs of an adjustment, the refusals, and what each
// leaves in the account, the grants and the ledger; every case ends with the
// conservation check and a clean audit.
func TestAdjust(t *testing.T) {
	type setup func(t *testing.T, e *env, id string)
	promoAndPlain := func(t *testing.T, e *env, id string) {
		// 5.00 expiring in a day (consumed first), then 10.00 for a year
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: "promo", Amount: usd("5.00"), ExpiresAt: e.clock.Now().Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: "plain", Amount: usd("10.00")}); err != nil {
			t.Fatal(err)
		}
	}
	inDebt := func(t *testing.T, e *env, id string) { // 5.00 of credit, then 0.30 of debt
		e.topUp(t, id, "5.00")
		e.reserve(t, id, "h1", usd("5.40"), 0)
		e.settle(t, id, "h1", usd("5.30"))
	}
	tests := []struct {
		name    string
		setup   setup
		amount  string // signed
		reason  string // default "test correction"
		expires time.Duration
		wantErr error
		// after a success
		credit, debt, adjustedOut, repaid string
		events                            string // the ledger's types after setup
		grants                            map[string]string
	}{
		{name: "positive, no debt", setup: func(t *testing.T, e *env, id string) { e.topUp(t, id, "10.00") },
			amount: "2.50", credit: "12.50", events: "topup adjustment"},
		{name: "positive below the minimum purchase", amount: "0.01", credit: "0.01", events: "adjustment"},
		{name: "positive above the tier's max top-up and balance", amount: "1500.00", credit: "1500.00", events: "adjustment"},
		{name: "positive repays debt first", setup: inDebt, amount: "1.00", credit: "0.70", repaid: "0.30",
			events: "topup usage adjustment debt_repaid"},
		{name: "positive smaller than the debt", setup: inDebt, amount: "0.10", credit: "0.00", debt: "0.20", repaid: "0.10",
			events: "topup usage adjustment debt_repaid"},
		{name: "positive with expires_at", amount: "3.00", expires: 48 * time.Hour, credit: "3.00", events: "adjustment"},
		{name: "positive with expires_at in the past", amount: "3.00", expires: -time.Second, wantErr: billing.ErrInvalid},
		{name: "negative, earliest expiry first", setup: promoAndPlain, amount: "-7.00", credit: "8.00", adjustedOut: "7.00",
			events: "topup topup adjustment", grants: map[string]string{"promo": "0.000000", "plain": "8.000000"}},
		{name: "negative takes all the credit", setup: promoAndPlain, amount: "-15.00", credit: "0.00", adjustedOut: "15.00",
			events: "topup topup adjustment", grants: map[string]string{"promo": "0.000000", "plain": "0.000000"}},
		{name: "negative above the credit", setup: promoAndPlain, amount: "-15.000001", wantErr: billing.ErrInsufficientCredit},
		{name: "negative above credit − reserved", setup: func(t *testing.T, e *env, id string) {
			e.topUp(t, id, "10.00")
			e.reserve(t, id, "h1", usd("4.00"), 0)
		}, amount: "-6.000001", wantErr: billing.ErrInsufficientCredit},
		{name: "negative up to credit − reserved", setup: func(t *testing.T, e *env, id string) {
			e.topUp(t, id, "10.00")
			e.reserve(t, id, "h1", usd("4.00"), 0)
		}, amount: "-6.00", credit: "4.00", adjustedOut: "6.00", events: "topup adjustment"},
		{name: "negative after the credit expired", setup: func(t *testing.T, e *env, id string) {
			promoAndPlain(t, e, id)
			e.clock.Advance(25 * time.Hour)
		}, amount: "-10.000001", wantErr: billing.ErrInsufficientCredit},
		{name: "negative on an account in debt", setup: inDebt, amount: "-0.01", wantErr: billing.ErrInsufficientCredit},
		{name: "negative with expires_at", setup: promoAndPlain, amount: "-1.00", expires: time.Hour, wantErr: billing.ErrInvalid},
		{name: "zero", amount: "0", wantErr: billing.ErrInvalid},
		{name: "above the maximum", amount: "1000000000.000001", wantErr: billing.ErrInvalid},
		{name: "no reason", amount: "1.00", reason: " ", wantErr: billing.ErrInvalid},
		{name: "reason with a newline", amount: "1.00", reason: "a\nb", wantErr: billing.ErrInvalid},
		{name: "reason too long", amount: "1.00", reason: strings.Repeat("x", billing.MaxAdjustReasonLen+1), wantErr: billing.ErrInvalid},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("adj%d", i)
				e.account(t, id)
				if tc.setup != nil {
					tc.setup(t, e, id)
				}
				amount, neg := strings.CutPrefix(tc.amount, "-")
				q := billing.AdjustRequest{Amount: money.Micros(parseLoose(t, amount)), Reason: "test correction"}
				if neg {
					q.Amount = -q.Amount
				}
				if tc.reason != "" {
					q.Reason = tc.reason
				}
				if tc.expires != 0 {
					q.ExpiresAt = e.clock.Now().Add(tc.expires)
				}
				before := e.get(t, id)
				beforeEvents := len(e.events(t, id))
				r, err := e.Adjust(e.ctx, testPolicy, id, q)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				after := checkConservation(t, e, id)
				if rep := audit(t, e, id); !rep.OK() {
					t.Fatalf("audit: %+v", rep.Problems)
				}
				if err != nil {
					if after.Credit != before.Credit || after.Debt != before.Debt || len(e.events(t, id)) != beforeEvents {
						t.Fatalf("a refused adjustment changed the account: %+v → %+v", before, after)
					}
					var ie *billing.InsufficientCreditError
					if errors.As(err, &ie) && (ie.Available != max(0, after.Credit-after.Reserved) || !strings.Contains(err.Error(), ie.Available.String())) {
						t.Fatalf("refusal %+v (%v) should name the available %s", ie, err, after.Credit-after.Reserved)
					}
					return
				}
				want := func(s string) money.Micros {
					if s == "" {
						return 0
					}
					return usd(s)
				}
				if after.Credit != want(tc.credit) || after.Debt != want(tc.debt) || after.Totals.AdjustedOut != want(tc.adjustedOut) || r.DebtRepaid != want(tc.repaid) {
					t.Fatalf("credit %s debt %s adjusted out %s repaid %s; want %s %s %s %s", after.Credit, after.Debt, after.Totals.AdjustedOut, r.DebtRepaid,
						tc.credit, tc.debt, tc.adjustedOut, tc.repaid)
				}
				evs := e.events(t, id)
				if got := eventTypes(evs); got != tc.events {
					t.Fatalf("ledger %q, want %q", got, tc.events)
				}
				var ev billing.Event
				for _, x := range evs {
					if x.ID == r.EventID {
						ev = x
					}
				}
				if ev.Type != billing.EventAdjustment || ev.Amount != q.Amount || ev.Note != q.Reason || ev.BalanceAfter != r.BalanceAfter ||
					ev.CreditAfter != r.CreditAfter || ev.DebtAfter != r.DebtAfter || !ev.At.Equal(r.At) || r.Amount != q.Amount || r.Replayed {
					t.Fatalf("event %+v, result %+v", ev, r)
				}
				if q.Amount > 0 {
					g := r.Grant
					wantExp := e.clock.Now().Add(testPolicy.CreditTTL)
					if !q.ExpiresAt.IsZero() {
						wantExp = q.ExpiresAt
					}
					if g == nil || g.ID != r.ID || ev.GrantID != r.ID || g.Source != billing.SourceAdjustment || ev.Source != billing.SourceAdjustment ||
						g.Amount != q.Amount || g.Remaining != q.Amount-r.DebtRepaid || !g.ExpiresAt.Equal(wantExp.Truncate(time.Millisecond)) {
						t.Fatalf("grant %+v, event %+v", g, ev)
					}
				} else if r.Grant != nil || ev.GrantID != "" {
					t.Fatalf("a negative adjustment credited a grant: %+v %+v", r.Grant, ev)
				}
				for gid, rem := range tc.grants {
					for _, g := range after.Grants {
						if g.ID == gid && g.Remaining.String() != rem {
							t.Fatalf("grant %s has %s left, want %s", gid, g.Remaining, rem)
						}
					}
				}
			})
		}
	})
}

// parseLoose parses a non-negative amount, allowing one beyond money.MaxAmount.
func parseLoose(t *testing.T, s string) int64 {
	t.Helper()
	if m, err := money.Parse(s); err == nil {
		return int64(m)
	}
	whole, frac, _ := strings.Cut(s, ".")
	var w, f int64
	fmt.Sscan(whole, &w)
	fmt.Sscan((frac + "000000")[:6], &f)
	return w*int64(money.Dollar) + f
}

// A claw-back that empties the account leaves new requests denied as "empty".
func TestAdjustToZeroDeniesRequests(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.adjustOK(t, "a", -usd("10.00"), "credited to the wrong account")
		if r := e.reserve(t, "a", "h1", usd("0.10"), 0); r.Admitted || r.Reason != billing.ReasonEmpty {
			t.Fatalf("reservation after the claw-back: %+v", r)
		}
		if a := e.get(t, "a"); a.Depleted != "adjustment" {
			t.Fatalf("depleted %q", a.Depleted)
		}
	})
}

// TestAdjustIdempotency: an Idempotency-Key names the adjustment. The same key
// and body replay the original answer and change nothing, also after the key's
// record expired; another body is a conflict; a key used for a top-up cannot
// be reused for an adjustment, nor the other way. Without a key, the script run
// twice with one id (go-redis resending after a lost reply) books it once.
func TestAdjustIdempotency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "20.00")
		for _, amount := range []money.Micros{usd("2.00"), -usd("3.00")} {
			key := fmt.Sprintf("k%d", amount)
			req := billing.AdjustRequest{Amount: amount, Reason: "refund of req_123", IdempotencyKey: key}
			first, err := e.Adjust(e.ctx, testPolicy, "a", req)
			if err != nil || first.Replayed {
				t.Fatalf("first: %+v %v", first, err)
			}
			if first.ID != AdjustmentID("a", key) {
				t.Fatalf("id %s, want the one derived from the key", first.ID)
			}
			e.reserve(t, "a", "h"+key, usd("1.00"), 0)
			e.settle(t, "a", "h"+key, usd("1.00"))
			before := e.get(t, "a")
			nEvents := len(e.events(t, "a"))
			for round := 0; round < 2; round++ {
				again, err := e.Adjust(e.ctx, testPolicy, "a", req)
				if err != nil || !again.Replayed {
					t.Fatalf("replay: %+v %v", again, err)
				}
				again.Replayed = false
				if (first.Grant == nil) != (again.Grant == nil) || first.Grant != nil && *again.Grant != *first.Grant {
					t.Fatalf("replayed grant %+v, original %+v", again.Grant, first.Grant)
				}
				g1, g2 := first, again
				g1.Grant, g2.Grant = nil, nil
				if g1 != g2 {
					t.Fatalf("replay %+v differs from the original %+v", again, first)
				}
				// the key's own record runs out after a day; the adjustment's record stays
				e.redis.Client.Del(e.ctx, e.accountKeys("a", "idem:"+key)[6])
			}
			for _, changed := range []billing.AdjustRequest{
				{Amount: amount * 2, Reason: req.Reason, IdempotencyKey: key},
				{Amount: amount, Reason: "another reason", IdempotencyKey: key},
			} {
				if _, err := e.Adjust(e.ctx, testPolicy, "a", changed); !errors.Is(err, billing.ErrIdempotencyConflict) {
					t.Fatalf("changed body %+v: %v, want conflict", changed, err)
				}
			}
			after := e.get(t, "a")
			if after.Credit != before.Credit || after.Totals != before.Totals || len(e.events(t, "a")) != nEvents {
				t.Fatalf("a replay or conflict changed the account: %+v → %+v", before, after)
			}
		}
		// one key, two kinds of request
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "g-shared", Amount: usd("5.00"), IdempotencyKey: "shared", Fingerprint: "fp"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Adjust(e.ctx, testPolicy, "a", billing.AdjustRequest{Amount: usd("5.00"), Reason: "x", IdempotencyKey: "shared"}); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("adjustment with a top-up's key: %v, want conflict", err)
		}
		if _, err := e.Adjust(e.ctx, testPolicy, "a", billing.AdjustRequest{Amount: usd("5.00"), Reason: "x", IdempotencyKey: "shared2"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "g-shared2", Amount: usd("5.00"), IdempotencyKey: "shared2", Fingerprint: "fp"}); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("top-up with an adjustment's key: %v, want conflict", err)
		}
		// the same script twice with one id: once for each sign
		for _, amount := range []money.Micros{usd("1.50"), -usd("1.50")} {
			id := billing.NewID("adj_")
			q := billing.AdjustRequest{Amount: amount, Reason: "resent"}
			first, err := e.Store.adjust(e.ctx, testPolicy, "a", id, q)
			if err != nil {
				t.Fatal(err)
			}
			before := e.get(t, "a")
			again, err := e.Store.adjust(e.ctx, testPolicy, "a", id, q)
			if err != nil || !again.Replayed || again.EventID != first.EventID || again.BalanceAfter != first.BalanceAfter {
				t.Fatalf("resent script: %+v %v; first %+v", again, err, first)
			}
			if after := e.get(t, "a"); after.Credit != before.Credit || after.Totals != before.Totals {
				t.Fatalf("a resent script changed the account: %+v → %+v", before, after)
			}
		}
		checkConservation(t, e, "a")
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
		if _, err := e.Adjust(e.ctx, testPolicy, "nobody", billing.AdjustRequest{Amount: usd("1.00"), Reason: "x"}); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
	})
}
