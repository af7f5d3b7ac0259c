package redisstore

import (
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// Reserve skips its sweeps while the account's bounds (h_next, g_next) say nothing
// can have expired, and settle sweeps grants only when the first one in line has
// expired. These cases make the reserve or the settle the first script to run after
// something expired (the model test reads the account, which sweeps, after every
// step), including when the bounds are missing (an account last written by an
// earlier version) or older than a grant credited since.
func TestSweepsRunWhenSomethingExpired(t *testing.T) {
	promo := func(e *env, id string, amount string, in time.Duration) {
		t.Helper()
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(amount),
			ExpiresAt: e.clock.Now().Add(in)}); err != nil {
			t.Fatal(err)
		}
	}
	dropBounds := func(e *env, id string) {
		if err := e.redis.Client.HDel(e.ctx, e.acctKey(id), "h_next", "g_next").Err(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(e *env, id string) // before the clock passes the promo's expiry and the hold's TTL
	}{
		{"bounds set by an earlier reserve", func(e *env, id string) {
			promo(e, id, "5.00", time.Hour)
			e.reserve(t, id, "old", usd("1.00"), 0)
		}},
		{"no bounds yet (an earlier version's account)", func(e *env, id string) {
			promo(e, id, "5.00", time.Hour)
			e.reserve(t, id, "old", usd("1.00"), 0)
			dropBounds(e, id)
		}},
		{"a grant expiring sooner credited after the bounds were set", func(e *env, id string) {
			e.reserve(t, id, "old", usd("1.00"), 0)
			promo(e, id, "5.00", time.Hour)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				e.account(t, "a", "10.00")
				c.setup(e, "a")
				e.clock.Advance(2 * time.Hour) // past the promo's expiry and the hold's TTL
				// Available is 10.00 (the promo expired, the hold "old" too): 10.40
				// fits with the 0.50 grace, 10.60 does not.
				if r := e.reserve(t, "a", "big", usd("10.60"), 0); r.Admitted || r.Available != usd("10.00") {
					t.Fatalf("reserve of 10.60 after the expiries: %+v, want denied with 10.00 available", r)
				}
				if r := e.reserve(t, "a", "fits", usd("10.40"), 0); !r.Admitted || r.Available != -usd("0.40") {
					t.Fatalf("reserve of 10.40 after the expiries: %+v, want admitted with -0.40 left", r)
				}
				a := checkConservation(t, e, "a")
				if a.Credit != usd("10.00") || a.Totals.Expired != usd("5.00") || a.Reserved != usd("10.40") {
					t.Fatalf("account %+v", a)
				}
			})
		})
	}
	t.Run("settle forfeits an expired first grant before consuming", func(t *testing.T) {
		eachStore(t, func(t *testing.T, e *env) {
			e.account(t, "a", "10.00")
			promo(e, "a", "5.00", time.Hour) // first in line: it expires first
			e.reserve(t, "a", "h", usd("1.00"), 0)
			e.clock.Advance(2 * time.Hour)
			s := e.settle(t, "a", "h", usd("1.00"))
			if s.FromCredit != usd("1.00") || s.ToDebt != 0 || s.BalanceAfter != usd("9.00") {
				t.Fatalf("settlement %+v, want 1.00 from the unexpired grant, balance 9.00", s)
			}
			a := checkConservation(t, e, "a")
			if a.Credit != usd("9.00") || a.Totals.Expired != usd("5.00") || a.Reserved != 0 {
				t.Fatalf("account %+v", a)
			}
		})
	})
}

// Settle extends a hold record's life only when it has to: the record must outlive
// the settle by HoldRecordRetention (so a resent settle is recognised), and the TTL
// reserve gave it (hold TTL + retention) does so unless the hold expired first.
func TestSettledRecordOutlivesTheSettleByTheRetention(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		for _, late := range []time.Duration{0, testPolicy.HoldTTL / 2, testPolicy.HoldTTL, testPolicy.HoldTTL + time.Minute, 3 * time.Hour} {
			hold := "h" + late.String()
			e.reserve(t, "a", hold, usd("0.10"), 0)
			e.clock.Advance(late)
			e.settle(t, "a", hold, usd("0.05"))
			ttl, err := e.redis.Client.PTTL(e.ctx, e.holdKeys("a", hold)[6]).Result()
			if err != nil {
				t.Fatal(err)
			}
			// Redis's own clock does not move with the test clock: a record whose TTL
			// was left alone still has nearly hold TTL + retention; one settled after
			// its hold expired must have been given the retention afresh.
			lo, hi := e.retention-time.Second, testPolicy.HoldTTL+e.retention
			if late > testPolicy.HoldTTL {
				hi = e.retention
			}
			if ttl < lo || ttl > hi {
				t.Fatalf("settled %s after the reserve: record TTL %s, want between %s and %s", late, ttl, lo, hi)
			}
		}
	})
}
