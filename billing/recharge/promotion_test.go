package recharge

import (
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// The sweeper promotes by the days condition (a fake clock moves past it): an
// account that paid $50 stays on tier-1 until 7 days after its first payment,
// then one sweep moves it to tier-2, once, and the tier.changed notice reaches
// the notice webhook. A recharge's credit is a payment: it promotes too.
func TestSweepPromotesByDays(t *testing.T) {
	ladder := billing.Policy{Tiers: map[string]billing.Tier{
		"tier-1": {Qualify: &billing.Qualify{Paid: usd("5.00")}},
		"tier-2": {Qualify: &billing.Qualify{Paid: usd("50.00"), Days: 7}},
		"tier-3": {Qualify: &billing.Qualify{Paid: usd("60.00"), Days: 7}},
	}}.Ladder()
	e := newEnv(t, nil, func(o *Options) {
		o.Settings = func() Settings { return Settings{CreditTTL: policy.CreditTTL, Ladder: ladder} }
	})
	e.account(t, "acme", "50.00") // a $50 top-up of source purchase: the first payment
	tierOf := func() string { t.Helper(); return e.account_(t, "acme").Tier }
	e.clock.Advance(7*24*time.Hour - time.Minute)
	if _, err := e.worker.SweepOnce(e.ctx, false); err != nil || tierOf() != "tier-1" {
		t.Fatalf("a minute short of 7 days: tier %s, %v", tierOf(), err)
	}
	e.clock.Advance(time.Minute)
	for range 2 {
		if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	if tierOf() != "tier-2" {
		t.Fatalf("after 7 days: tier %s, want tier-2", tierOf())
	}
	var promoted []map[string]any
	for _, n := range e.notices.deliveries() {
		if n["type"] == billing.NoticeTierChanged {
			promoted = append(promoted, n)
		}
	}
	if len(promoted) != 1 || promoted[0]["tier"] != "tier-2" || promoted[0]["previous_tier"] != "tier-1" || promoted[0]["amount"] != "50.000000" {
		t.Fatalf("tier.changed notices %v; want one, tier-1 → tier-2, paid 50.00", promoted)
	}

	// Spend below the threshold: the recharge of $10 is a payment ($60 paid): tier-3.
	s := e.spend(t, "acme", "h1", usd("46.00"))
	if s.RechargeID == "" {
		t.Fatalf("no recharge started: %+v", s)
	}
	e.worker.PerformRecharge(e.ctx, "acme", s.RechargeID)
	if a := e.account_(t, "acme"); a.Tier != "tier-3" || a.PaidTotal != usd("60.00") {
		t.Fatalf("after the recharge: tier %s paid %s; want tier-3, 60.00", a.Tier, a.PaidTotal)
	}
	page, err := e.store.Events(e.ctx, "acme", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, ev := range page.Events {
		if ev.Type == billing.EventTierChange {
			changes = append(changes, ev.TierFrom+"→"+ev.TierTo+":"+ev.Note)
		}
	}
	if len(changes) != 2 || changes[0] != "tier-1→tier-2:promotion" || changes[1] != "tier-2→tier-3:promotion" {
		t.Fatalf("tier changes %v", changes)
	}
	e.audit(t, "acme")
}
