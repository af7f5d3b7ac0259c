package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// limitedKey is a key limit as the proxy passes it to Reserve.
type limitedKey struct {
	id    string
	limit money.Micros
	reset string
}

func (e *env) reserveKey(t testing.TB, acct, hold string, k limitedKey, estimate, minimum money.Micros) billing.Reservation {
	t.Helper()
	r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: acct, HoldID: hold, Estimate: estimate, Minimum: minimum,
		Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL, KeyID: k.id, KeyLimit: k.limit, KeyLimitReset: k.reset,
		TierUsageLimits: testPolicy.TierUsageLimits()})
	if err != nil {
		t.Fatalf("reserve %s: %v", hold, err)
	}
	return r
}

func (e *env) settleKey(t testing.TB, acct, hold, keyID string, cost money.Micros, tr billing.Triggers) billing.Settlement {
	t.Helper()
	s, err := e.Settle(e.ctx, billing.SettleRequest{Account: acct, HoldID: hold, Cost: cost, Triggers: tr,
		Usage: billing.Usage{RequestID: hold, KeyID: keyID, Model: "gpt-4o-mini"}})
	if err != nil {
		t.Fatalf("settle %s: %v", hold, err)
	}
	return s
}

func (e *env) keyUsage(t testing.TB, acct, keyID string) billing.KeyUsage {
	t.Helper()
	u, err := e.KeyUsage(e.ctx, acct, keyID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) keyHeld(t testing.TB, acct, keyID string) money.Micros {
	t.Helper()
	r, err := e.keyReserved(e.ctx, acct, keyID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantReserve checks a reservation: admitted with held, or denied for reason.
func wantReserve(t testing.TB, what string, r billing.Reservation, held money.Micros, reason string) {
	t.Helper()
	if reason != "" {
		if r.Admitted || r.Reason != reason {
			t.Fatalf("%s: %+v, want denied %q", what, r, reason)
		}
		return
	}
	if !r.Admitted || r.Held != held {
		t.Fatalf("%s: %+v, want %s held", what, r, held)
	}
}

// The key's limit bounds each hold by what the key may still spend: its limit,
// less what it spent in its period and what its live holds count; exactly at
// the limit nothing more is admitted; a partial hold takes what is left.
func TestKeyLimitHoldsWhatTheKeyMaySpend(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "50.00")
		k := limitedKey{"key_a", usd("1.00"), billing.LimitNever}
		wantReserve(t, "0.60 of a 1.00 limit", e.reserveKey(t, "a", "h1", k, usd("0.60"), 0), usd("0.60"), "")
		if got := e.keyHeld(t, "a", k.id); got != usd("0.60") {
			t.Fatalf("key reserved %s, want 0.60", got)
		}
		wantReserve(t, "0.60 more, no partial", e.reserveKey(t, "a", "h2", k, usd("0.60"), 0), 0, billing.ReasonKeyLimit)
		wantReserve(t, "0.60 more, minimum 0.10", e.reserveKey(t, "a", "h2", k, usd("0.60"), usd("0.10")), usd("0.40"), "")
		wantReserve(t, "a free request at the limit", e.reserveKey(t, "a", "h3", k, 0, 0), 0, billing.ReasonKeyLimit)
		// Settled below its hold, h1 frees what it did not spend.
		e.settleKey(t, "a", "h1", k.id, usd("0.50"), billing.Triggers{})
		if u, held := e.keyUsage(t, "a", k.id), e.keyHeld(t, "a", k.id); u.Total != usd("0.50") || held != usd("0.40") {
			t.Fatalf("after settling h1 at 0.50: usage %+v reserved %s, want total 0.50 and 0.40 reserved", u, held)
		}
		wantReserve(t, "exactly what is left", e.reserveKey(t, "a", "h4", k, usd("0.10"), 0), usd("0.10"), "")
		wantReserve(t, "one micro past it", e.reserveKey(t, "a", "h5", k, 1, 0), 0, billing.ReasonKeyLimit)
		// A release gives its hold back to the key.
		if _, err := e.Release(e.ctx, "a", "h4", billing.Usage{KeyID: k.id}); err != nil {
			t.Fatal(err)
		}
		if held := e.keyHeld(t, "a", k.id); held != usd("0.40") {
			t.Fatalf("after releasing h4: key reserved %s, want 0.40", held)
		}
		// Settled above its hold (the clamp's slack), h2 takes the key past its limit;
		// then nothing is admitted, not even a free request.
		e.settleKey(t, "a", "h2", k.id, usd("0.55"), billing.Triggers{})
		if u, held := e.keyUsage(t, "a", k.id), e.keyHeld(t, "a", k.id); u.Total != usd("1.05") || held != 0 {
			t.Fatalf("after settling h2 at 0.55: usage %+v reserved %s, want total 1.05 and nothing reserved", u, held)
		}
		wantReserve(t, "past the limit", e.reserveKey(t, "a", "h6", k, 0, 0), 0, billing.ReasonKeyLimit)
		// Another key of the account is not limited by this one.
		wantReserve(t, "another key", e.reserveKey(t, "a", "h7", limitedKey{"key_b", usd("5.00"), billing.LimitDaily}, usd("2.00"), 0), usd("2.00"), "")
		// The balance's own refusal comes first.
		wantReserve(t, "more than the balance", e.reserveKey(t, "a", "h8", limitedKey{"key_c", usd("500.00"), ""}, usd("100.00"), 0), 0, billing.ReasonInsufficient)
		checkConservation(t, e, "a")
	})
}

// A hold that expires unsettled leaves the key's reserved with it, and a late
// settle still charges the key.
func TestKeyLimitExpiredHoldLeavesTheKey(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "50.00")
		k := limitedKey{"key_a", usd("1.00"), billing.LimitMonthly}
		wantReserve(t, "hold", e.reserveKey(t, "a", "h1", k, usd("0.80"), 0), usd("0.80"), "")
		e.clock.Advance(testPolicy.HoldTTL + time.Second)
		wantReserve(t, "after the hold expired", e.reserveKey(t, "a", "h2", k, usd("0.90"), 0), usd("0.90"), "")
		if held := e.keyHeld(t, "a", k.id); held != usd("0.90") {
			t.Fatalf("key reserved %s, want only h2's 0.90", held)
		}
		e.settleKey(t, "a", "h1", k.id, usd("0.30"), billing.Triggers{})
		if u, held := e.keyUsage(t, "a", k.id), e.keyHeld(t, "a", k.id); u.Monthly != usd("0.30") || held != usd("0.90") {
			t.Fatalf("late settle of h1: usage %+v reserved %s, want 0.30 this month, h2's 0.90 reserved", u, held)
		}
	})
}

// Each period kind resets on its calendar boundary in UTC (weeks from Monday),
// and never never does; KeyUsage reports every period at once.
func TestKeyLimitPeriodsRollOver(t *testing.T) {
	// The test clock starts on Tuesday 2026-03-10 12:00 UTC.
	cases := []struct {
		reset       string
		stillDenied time.Duration // from the start: still in the same period
		admitted    time.Duration // from the start: the next period
	}{
		{billing.LimitDaily, 11*time.Hour + 59*time.Minute, 12 * time.Hour},                                  // midnight
		{billing.LimitWeekly, 5*24*time.Hour + 11*time.Hour + 59*time.Minute, 5*24*time.Hour + 12*time.Hour}, // Sunday 23:59, Monday 00:00
		{billing.LimitMonthly, 21*24*time.Hour + 11*time.Hour + 59*time.Minute, 21*24*time.Hour + 12*time.Hour},
		{billing.LimitNever, 300 * 24 * time.Hour, -1},
	}
	for _, c := range cases {
		t.Run(c.reset, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				e.account(t, "a", "50.00")
				start := e.clock.Now()
				k := limitedKey{"key_" + c.reset, usd("2.00"), c.reset}
				wantReserve(t, "spend the limit", e.reserveKey(t, "a", "h1", k, usd("2.00"), 0), usd("2.00"), "")
				e.settleKey(t, "a", "h1", k.id, usd("2.00"), billing.Triggers{})
				e.clock.Advance(c.stillDenied)
				wantReserve(t, "same period at "+e.clock.Now().Format(time.RFC3339), e.reserveKey(t, "a", "h2", k, usd("0.01"), 0), 0, billing.ReasonKeyLimit)
				if c.admitted < 0 {
					if u := e.keyUsage(t, "a", k.id); u.Total != usd("2.00") {
						t.Fatalf("usage %+v, want 2.00 in all", u)
					}
					return
				}
				e.clock.Advance(start.Add(c.admitted).Sub(e.clock.Now()))
				wantReserve(t, "next period at "+e.clock.Now().Format(time.RFC3339), e.reserveKey(t, "a", "h3", k, usd("2.00"), 0), usd("2.00"), "")
				e.settleKey(t, "a", "h3", k.id, usd("0.25"), billing.Triggers{})
				u := e.keyUsage(t, "a", k.id)
				if u.Spent(c.reset) != usd("0.25") || u.Total != usd("2.25") {
					t.Fatalf("usage after the rollover %+v, want 0.25 in the %s period and 2.25 in all", u, c.reset)
				}
				// The day always rolled over; the month only for the monthly case.
				if u.Daily != usd("0.25") {
					t.Fatalf("daily usage %s, want 0.25", u.Daily)
				}
				wantMonth := usd("2.25")
				if c.reset == billing.LimitMonthly {
					wantMonth = usd("0.25")
				}
				if u.Monthly != wantMonth {
					t.Fatalf("monthly usage %s, want %s", u.Monthly, wantMonth)
				}
			})
		})
	}
}

// KeyUsage of a period that has ended reads 0, without a write.
func TestKeyUsageOfAnEndedPeriodIsZero(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "50.00")
		k := limitedKey{"key_a", 0, ""}
		e.reserveKey(t, "a", "h1", k, usd("1.00"), 0)
		e.settleKey(t, "a", "h1", k.id, usd("0.70"), billing.Triggers{})
		if u := e.keyUsage(t, "a", k.id); u != (billing.KeyUsage{Daily: usd("0.70"), Weekly: usd("0.70"), Monthly: usd("0.70"), Total: usd("0.70")}) {
			t.Fatalf("usage of an unlimited key %+v, want 0.70 everywhere", u)
		}
		e.clock.Advance(7 * 24 * time.Hour)
		if u := e.keyUsage(t, "a", k.id); u != (billing.KeyUsage{Monthly: usd("0.70"), Total: usd("0.70")}) {
			t.Fatalf("usage a week on %+v, want 0.70 this month and in all only", u)
		}
		if u := e.keyUsage(t, "a", "key_none"); u != (billing.KeyUsage{}) {
			t.Fatalf("usage of a key that spent nothing: %+v", u)
		}
		if _, err := e.KeyUsage(e.ctx, "a", "h:h1", e.clock.Now()); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("usage of a hold's field: %v, want ErrInvalid", err)
		}
	})
}

// The account's monthly cap is the lower non-zero of its spend limit and its
// tier's usage limit; it counts every key's holds and usage, resets with the
// calendar month, and alert_at queues one notice per month.
func TestMonthlySpendLimit(t *testing.T) {
	limited := testPolicy
	limited.Tiers = map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00"), MonthlyUsageLimit: usd("3.00")}}
	reserve := func(t *testing.T, e *env, hold string, est money.Micros) billing.Reservation {
		t.Helper()
		r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "a", HoldID: hold, Estimate: est, Minimum: usd("0.01"),
			Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL, KeyID: "key_" + hold, TierUsageLimits: limited.TierUsageLimits()})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	setLimit := func(t *testing.T, e *env, l billing.SpendLimit) {
		t.Helper()
		if _, err := e.UpdateAccount(e.ctx, "a", billing.AccountUpdate{SpendLimit: &l}); err != nil {
			t.Fatal(err)
		}
	}
	notices := billing.Triggers{Notices: true}
	t.Run("tier limit alone", func(t *testing.T) {
		eachStore(t, func(t *testing.T, e *env) {
			e.account(t, "a", "50.00")
			wantReserve(t, "2.00", reserve(t, e, "h1", usd("2.00")), usd("2.00"), "")
			wantReserve(t, "2.00 more: what the tier leaves", reserve(t, e, "h2", usd("2.00")), usd("1.00"), "")
			wantReserve(t, "at the tier's limit", reserve(t, e, "h3", usd("0.01")), 0, billing.ReasonSpendLimit)
			e.settleKey(t, "a", "h1", "key_h1", usd("1.50"), billing.Triggers{})
			wantReserve(t, "after h1 settled below its hold", reserve(t, e, "h4", usd("2.00")), usd("0.50"), "")
		})
	})
	t.Run("spend limit below the tier's, alert once a month", func(t *testing.T) {
		eachStore(t, func(t *testing.T, e *env) {
			e.account(t, "a", "50.00")
			setLimit(t, e, billing.SpendLimit{Monthly: usd("2.00"), AlertAt: usd("1.00")})
			wantReserve(t, "3.00 under a 2.00 limit", reserve(t, e, "h1", usd("3.00")), usd("2.00"), "")
			s := e.settleKey(t, "a", "h1", "key_h1", usd("0.90"), notices)
			if len(s.Notices) != 0 {
				t.Fatalf("settle below alert_at queued %v", s.Notices)
			}
			wantReserve(t, "0.50", reserve(t, e, "h2", usd("0.50")), usd("0.50"), "")
			s = e.settleKey(t, "a", "h2", "key_h2", usd("0.20"), notices)
			if len(s.Notices) != 1 {
				t.Fatalf("settle crossing alert_at queued %v, want one notice", s.Notices)
			}
			claimed, _, err := e.ClaimNotices(e.ctx, "a", s.Notices, time.Minute, 5)
			if err != nil || len(claimed) != 1 || claimed[0].Type != billing.NoticeSpendAlert || claimed[0].Threshold != usd("1.00") || claimed[0].Amount != usd("1.10") {
				t.Fatalf("claimed %+v %v, want one %s at 1.00 with the month's 1.10", claimed, err, billing.NoticeSpendAlert)
			}
			wantReserve(t, "0.50 again", reserve(t, e, "h3", usd("0.50")), usd("0.50"), "")
			if s = e.settleKey(t, "a", "h3", "key_h3", usd("0.50"), notices); len(s.Notices) != 0 {
				t.Fatalf("a second settle past alert_at queued %v", s.Notices)
			}
			wantReserve(t, "0.50 with 0.40 left", reserve(t, e, "h4", usd("0.50")), usd("0.40"), "")
			e.settleKey(t, "a", "h4", "key_h4", usd("0.40"), notices)
			wantReserve(t, "at the spend limit", reserve(t, e, "h5", usd("0.01")), 0, billing.ReasonSpendLimit)
			// 2026-04-01: a new month.
			e.clock.Advance(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Sub(e.clock.Now()))
			wantReserve(t, "in April", reserve(t, e, "h6", usd("1.50")), usd("1.50"), "")
			if s = e.settleKey(t, "a", "h6", "key_h6", usd("1.50"), notices); len(s.Notices) != 1 {
				t.Fatalf("April's crossing of alert_at queued %v, want one notice", s.Notices)
			}
		})
	})
	t.Run("spend limit above the tier's", func(t *testing.T) {
		eachStore(t, func(t *testing.T, e *env) {
			e.account(t, "a", "50.00")
			setLimit(t, e, billing.SpendLimit{Monthly: usd("10.00")})
			wantReserve(t, "5.00 under the tier's 3.00", reserve(t, e, "h1", usd("5.00")), usd("3.00"), "")
		})
	})
}

// The tiers' limits argument is rebuilt whenever the limits change, and reused
// (the same string) while they do not, whatever map carries them.
func TestTierLimitsArgFollowsThePolicy(t *testing.T) {
	s := &Store{}
	steps := []struct {
		limits map[string]money.Micros
		want   string
	}{
		{nil, ""},
		{map[string]money.Micros{"tier-2": 500, "tier-1": 100}, "tier-1 100 tier-2 500"},
		{map[string]money.Micros{"tier-1": 100, "tier-2": 500}, "tier-1 100 tier-2 500"},
		{map[string]money.Micros{"tier-1": 100, "tier-2": 600}, "tier-1 100 tier-2 600"},
		{map[string]money.Micros{"tier-1": 100}, "tier-1 100"},
		{map[string]money.Micros{"tier-1": 100, "tier-3": 0}, "tier-1 100 tier-3 0"},
		{map[string]money.Micros{}, ""},
		{map[string]money.Micros{"tier-1": 100}, "tier-1 100"},
	}
	for i, st := range steps {
		if got := s.tierLimitsArg(st.limits); got != st.want {
			t.Errorf("step %d: %v gives %q, want %q", i, st.limits, got, st.want)
		}
	}
	m := map[string]money.Micros{"a": 1}
	first := s.tierLimitsArg(m)
	m["a"] = 2 // the caller's map changing later must not change what was cached
	if got := s.tierLimitsArg(m); got != "a 2" || first != "a 1" {
		t.Errorf("after the caller's map changed: %q (first %q), want \"a 2\" (first \"a 1\")", got, first)
	}
}

// A partial hold says which room bounded it (Reservation.LimitedBy), so a hold
// too small to serve is answered as that limit's denial: the balance plus grace,
// the key's limit or the monthly cap, whichever is smallest (the balance on a
// tie); a whole hold, and a live hold returned to a retry, say nothing.
func TestPartialHoldSaysWhatLimitedIt(t *testing.T) {
	capped := testPolicy
	capped.Tiers = map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00"), MonthlyUsageLimit: usd("30.00")}}
	for _, tc := range []struct {
		name     string
		balance  string
		keyLimit money.Micros // 0: none
		tierCap  bool
		estimate money.Micros
		held     money.Micros
		want     string
	}{
		{"whole hold", "50.00", usd("10.00"), true, usd("1.00"), usd("1.00"), ""},
		{"the balance", "5.00", 0, false, usd("20.00"), usd("5.00") + testPolicy.Grace, billing.ReasonInsufficient},
		{"the key's limit", "50.00", usd("0.50"), false, usd("2.00"), usd("0.50"), billing.ReasonKeyLimit},
		{"the monthly cap", "50.00", 0, true, usd("40.00"), usd("30.00"), billing.ReasonSpendLimit},
		{"the key's limit below the cap", "50.00", usd("2.00"), true, usd("40.00"), usd("2.00"), billing.ReasonKeyLimit},
		{"the cap below the key's limit", "50.00", usd("40.00"), true, usd("45.00"), usd("30.00"), billing.ReasonSpendLimit},
		{"the balance below both", "5.00", usd("40.00"), true, usd("45.00"), usd("5.00") + testPolicy.Grace, billing.ReasonInsufficient},
		{"a tie: the balance", "5.00", usd("5.00") + testPolicy.Grace, false, usd("20.00"), usd("5.00") + testPolicy.Grace, billing.ReasonInsufficient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				e.account(t, "a", tc.balance)
				q := billing.ReserveRequest{Account: "a", HoldID: "h1", Estimate: tc.estimate, Minimum: usd("0.01"),
					Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL, KeyID: "key_a"}
				if tc.keyLimit > 0 {
					q.KeyLimit, q.KeyLimitReset = tc.keyLimit, billing.LimitNever
				}
				if tc.tierCap {
					q.TierUsageLimits = capped.TierUsageLimits()
				}
				r, err := e.Reserve(e.ctx, q)
				if err != nil || !r.Admitted || r.Held != tc.held || r.LimitedBy != tc.want {
					t.Fatalf("reserve: %+v %v; want %s held, limited by %q", r, err, tc.held, tc.want)
				}
				again, err := e.Reserve(e.ctx, q)
				if err != nil || !again.Admitted || again.Held != tc.held || again.LimitedBy != "" {
					t.Fatalf("the retried reserve: %+v %v; want the same hold, limited by nothing said", again, err)
				}
			})
		})
	}
}
