package portal

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// The summary says what the next tier needs: paid so far against paid needed,
// days since the first payment against days needed; nothing when pinned or at
// the top of the ladder.
func TestSummaryNextTier(t *testing.T) {
	e := newEnv(t)
	p := testPolicy
	p.Tiers = map[string]billing.Tier{
		"tier-1": {MaxTopUp: money.MustParse("100.00"), MaxBalance: money.MustParse("1000.00"), Qualify: &billing.Qualify{Paid: money.MustParse("5")}},
		"tier-2": {Qualify: &billing.Qualify{Paid: money.MustParse("50"), Days: 7}},
	}
	e.h.Policy = func() billing.Policy { return p }
	e.account("acme") // a $50 top-up of source purchase, paid now
	ctx := context.Background()
	summary := func() tierJSON {
		t.Helper()
		var s summaryJSON
		rec := e.do(http.MethodGet, "/billing/api/summary", e.login("acme"), nil, nil)
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
			t.Fatal(err, rec.Body)
		}
		return s.Tier
	}
	tier := summary()
	n := tier.Next
	if tier.Name != "tier-1" || tier.PaidTotal != money.MustParse("50") || tier.FirstPaidAt == nil || n == nil {
		t.Fatalf("tier %+v", tier)
	}
	if n.Name != "tier-2" || n.Paid != money.MustParse("50") || n.PaidSoFar != money.MustParse("50") || n.PaidToGo != 0 ||
		n.Days != 7 || n.DaysSoFar != 0 || n.DaysToGo != 7 || n.Qualifies {
		t.Fatalf("next %+v; want tier-2 needing 7 more days", n)
	}
	if _, err := e.store.UpdateAccount(ctx, "acme", billing.AccountUpdate{TierPinned: ptrTo(true)}); err != nil {
		t.Fatal(err)
	}
	if tier := summary(); tier.Next != nil || !tier.Pinned {
		t.Fatalf("pinned: %+v; want no next tier", tier)
	}

	// nextTier on its own: days count from the first payment, to go never below 0.
	first := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rung := billing.Rung{Tier: "tier-2", Qualify: billing.Qualify{Paid: money.MustParse("50"), Days: 7}}
	for _, tc := range []struct {
		paid       string
		first      time.Time
		now        time.Time
		soFar, go_ int
		toGo       string
		qualifies  bool
	}{
		{"30", first, first.Add(3*24*time.Hour + time.Hour), 3, 4, "20", false},
		{"60", first, first.Add(7 * 24 * time.Hour), 7, 0, "0", true},
		{"0", time.Time{}, first, 0, 7, "50", false},
	} {
		got := nextTier(rung, billing.Account{PaidTotal: money.MustParse(tc.paid), FirstPaidAt: tc.first}, tc.now)
		if got.DaysSoFar != tc.soFar || got.DaysToGo != tc.go_ || got.PaidToGo != money.MustParse(tc.toGo) || got.Qualifies != tc.qualifies {
			t.Errorf("paid %s, %s after the first payment: %+v", tc.paid, tc.now.Sub(tc.first), got)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
