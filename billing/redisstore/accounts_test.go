package redisstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

func ptr[T any](v T) *T { return &v }

// Each field of an update lands in the account hash under the name the reserve
// script reads, shows in GetAccount, and is booked once with its actor; the
// same update again books nothing.
func TestUpdateAccountFields(t *testing.T) {
	cases := []struct {
		name   string
		update billing.AccountUpdate
		hash   map[string]string // account hash fields after the update ("" = absent)
		check  func(a billing.Account) bool
		change billing.FieldChange // the account_update's change (Field "" = a tier_change)
	}{
		{"suspend", billing.AccountUpdate{Status: ptr(billing.StatusSuspended)},
			map[string]string{"status": "suspended"},
			func(a billing.Account) bool { return a.Status == billing.StatusSuspended },
			billing.FieldChange{Field: "status", From: "", To: "suspended"}},
		{"pin", billing.AccountUpdate{TierPinned: ptr(true)},
			map[string]string{"tier_pinned": "1"},
			func(a billing.Account) bool { return a.TierPinned },
			billing.FieldChange{Field: "tier_pinned", From: "", To: "1"}},
		{"name", billing.AccountUpdate{Name: ptr("Acme Corp")},
			map[string]string{"name": "Acme Corp"},
			func(a billing.Account) bool { return a.Name == "Acme Corp" },
			billing.FieldChange{Field: "name", From: "", To: "Acme Corp"}},
		{"email", billing.AccountUpdate{Email: ptr("billing@acme.example")},
			map[string]string{"email": "billing@acme.example"},
			func(a billing.Account) bool { return a.Email == "billing@acme.example" },
			billing.FieldChange{Field: "email", From: "", To: "billing@acme.example"}},
		{"external id", billing.AccountUpdate{ExternalID: ptr("cus_42")},
			map[string]string{"external_id": "cus_42"},
			func(a billing.Account) bool { return a.ExternalID == "cus_42" },
			billing.FieldChange{Field: "external_id", From: "", To: "cus_42"}},
		{"spend limit", billing.AccountUpdate{SpendLimit: &billing.SpendLimit{Monthly: usd("100.00"), AlertAt: usd("80.00")}},
			map[string]string{"spend_limit": "100000000", "spend_alert": "80000000"},
			func(a billing.Account) bool {
				return a.SpendLimit == billing.SpendLimit{Monthly: usd("100.00"), AlertAt: usd("80.00")}
			},
			billing.FieldChange{Field: "spend_limit", From: "", To: "100000000"}},
		{"tier", billing.AccountUpdate{Tier: ptr("small")},
			map[string]string{"tier": "small"},
			func(a billing.Account) bool { return a.Tier == "small" },
			billing.FieldChange{}},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("acct%d", i)
				e.account(t, id, "10.00")
				before := e.get(t, id)
				u := tc.update
				u.Actor = "ops-bot"
				res, err := e.UpdateAccount(e.ctx, id, u)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.EventIDs) != 1 || !tc.check(res.Account) || !tc.check(e.get(t, id)) {
					t.Fatalf("update: %+v; want one event and the field changed", res)
				}
				for f, want := range tc.hash {
					got, err := e.redis.Client.HGet(e.ctx, e.acctKey(id), f).Result()
					if err != nil || got != want {
						t.Errorf("account hash %s = %q (%v), want %q", f, got, err, want)
					}
				}
				evs := e.events(t, id)
				last := evs[len(evs)-1]
				if last.Actor != "ops-bot" || last.BalanceAfter != before.Balance() || last.ID != res.EventIDs[0] {
					t.Fatalf("event %+v: want actor ops-bot, the balance unchanged (%s), id %s", last, before.Balance(), res.EventIDs[0])
				}
				if tc.change.Field == "" {
					if last.Type != billing.EventTierChange || last.TierFrom != "tier-1" || last.TierTo != "small" || last.Note != billing.TierChangeManual {
						t.Fatalf("tier event %+v; want tier_change tier-1 → small, manual", last)
					}
				} else if last.Type != billing.EventAccountUpdate || len(last.Changes) == 0 || last.Changes[0] != tc.change {
					t.Fatalf("event %+v; want account_update with %+v first", last, tc.change)
				}
				again, err := e.UpdateAccount(e.ctx, id, u)
				if err != nil || len(again.EventIDs) != 0 || len(e.events(t, id)) != len(evs) {
					t.Fatalf("the same update again: %+v, %v; want nothing booked", again, err)
				}
				if r := audit(t, e, id); !r.OK() {
					t.Fatalf("audit: %+v", r.Problems)
				}
			})
		}
	})
}

// Clearing fields removes them from the hash (absent is the default the reserve
// script reads), and several fields at once are one account_update.
func TestUpdateAccountClearsAndBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		res, err := e.UpdateAccount(e.ctx, "acme", billing.AccountUpdate{
			Tier: ptr("small"), Status: ptr(billing.StatusSuspended), Name: ptr("Acme"),
			SpendLimit: &billing.SpendLimit{Monthly: usd("20.00")}, Actor: "a"})
		if err != nil || len(res.EventIDs) != 2 {
			t.Fatalf("%+v, %v; want a tier_change and an account_update", res, err)
		}
		if len(res.Changes) != 3 { // status, name, spend_limit (spend_alert stays absent)
			t.Fatalf("changes %+v; want status, name and spend_limit", res.Changes)
		}
		res, err = e.UpdateAccount(e.ctx, "acme", billing.AccountUpdate{
			Status: ptr(billing.StatusActive), Name: ptr(""), SpendLimit: &billing.SpendLimit{}})
		if err != nil || len(res.EventIDs) != 1 || len(res.Changes) != 3 {
			t.Fatalf("%+v, %v; want one account_update of 3 changes", res, err)
		}
		n, err := e.redis.Client.HExists(e.ctx, e.acctKey("acme"), "status").Result()
		if err != nil || n {
			t.Fatalf("status still in the hash (%v, %v) after activating", n, err)
		}
		a := e.get(t, "acme")
		if a.Status != billing.StatusActive || a.Name != "" || a.SpendLimit != (billing.SpendLimit{}) || a.Tier != "small" {
			t.Fatalf("account %+v", a)
		}
		if _, err := e.UpdateAccount(e.ctx, "nobody", billing.AccountUpdate{Name: ptr("x")}); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("unknown account: %v", err)
		}
		if _, err := e.UpdateAccount(e.ctx, "acme", billing.AccountUpdate{Email: ptr("not an email")}); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("bad email: %v", err)
		}
		if r := audit(t, e, "acme"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// ladderPolicy is testPolicy with OpenAI's first three qualification rules.
var ladderPolicy = func() billing.Policy {
	p := testPolicy
	p.Tiers = map[string]billing.Tier{
		"tier-1":     {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00"), Qualify: &billing.Qualify{Paid: usd("5.00")}},
		"tier-2":     {MaxTopUp: usd("500.00"), MaxBalance: usd("5000.00"), Qualify: &billing.Qualify{Paid: usd("50.00"), Days: 7}},
		"tier-3":     {MaxTopUp: usd("1000.00"), MaxBalance: usd("10000.00"), Qualify: &billing.Qualify{Paid: usd("100.00"), Days: 7}},
		"enterprise": {},
	}
	return p
}()

func (e *env) payTier(t testing.TB, id, amount, source string) {
	t.Helper()
	q := billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(amount), Source: source}
	if source == billing.SourcePromo {
		q.ExpiresAt = e.clock.Now().Add(24 * time.Hour)
	}
	if _, err := e.TopUp(e.ctx, ladderPolicy, q); err != nil {
		t.Fatalf("top-up %s %s: %v", source, amount, err)
	}
}

func (e *env) sweepLadder(t testing.TB, id string) {
	t.Helper()
	if _, err := e.Sweep(e.ctx, id, billing.SweepRequest{Ladder: ladderPolicy.Ladder()}); err != nil {
		t.Fatal(err)
	}
}

func tierChanges(evs []billing.Event) []billing.Event {
	var out []billing.Event
	for _, ev := range evs {
		if ev.Type == billing.EventTierChange {
			out = append(out, ev)
		}
	}
	return out
}

// Payments and elapsed days promote exactly when the rule says, once, with a
// tier.changed notice; promotions and adjustments are not payments.
func TestPromotionByPaymentAndDays(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.payTier(t, "acme", "30.00", billing.SourcePurchase) // day 0: the first payment
		e.payTier(t, "acme", "40.00", billing.SourcePromo)    // not a payment
		if _, err := e.Adjust(e.ctx, ladderPolicy, "acme", billing.AdjustRequest{Amount: usd("40.00"), Reason: "goodwill"}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(24 * time.Hour)
		e.payTier(t, "acme", "25.00", billing.SourcePurchase) // $55 paid, 1 day
		a := e.get(t, "acme")
		if a.Tier != "tier-1" || a.PaidTotal != usd("55.00") || !a.FirstPaidAt.Equal(newClock().Now()) {
			t.Fatalf("after $55 in a day: tier %s, paid %s since %s; want tier-1, 55.00 since day 0", a.Tier, a.PaidTotal, a.FirstPaidAt)
		}
		e.clock.Advance(6*24*time.Hour - time.Millisecond) // a millisecond short of 7 days
		e.sweepLadder(t, "acme")
		if a := e.get(t, "acme"); a.Tier != "tier-1" {
			t.Fatalf("promoted to %s before 7 days", a.Tier)
		}
		e.clock.Advance(time.Millisecond)
		e.sweepLadder(t, "acme")
		e.sweepLadder(t, "acme")
		a = e.get(t, "acme")
		changes := tierChanges(e.events(t, "acme"))
		if a.Tier != "tier-2" || len(changes) != 1 || changes[0].TierFrom != "tier-1" || changes[0].TierTo != "tier-2" || changes[0].Note != billing.TierChangePromotion {
			t.Fatalf("at 7 days: tier %s, changes %+v; want one promotion tier-1 → tier-2", a.Tier, changes)
		}
		claimed, _, err := e.ClaimNotices(e.ctx, "acme", nil, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		var notices []billing.Notice
		for _, n := range claimed {
			if n.Type == billing.NoticeTierChanged {
				notices = append(notices, n)
			}
		}
		if len(notices) != 1 || notices[0].Tier != "tier-2" || notices[0].FromTier != "tier-1" || notices[0].Amount != usd("55.00") {
			t.Fatalf("notices %+v; want one tier.changed tier-1 → tier-2 with paid 55.00", notices)
		}
		// $45 more: $100 paid, past 7 days: tier-3 at the payment itself.
		e.payTier(t, "acme", "45.00", billing.SourcePurchase)
		if a := e.get(t, "acme"); a.Tier != "tier-3" || len(tierChanges(e.events(t, "acme"))) != 2 {
			t.Fatalf("after $100: tier %s; want tier-3 at the payment", a.Tier)
		}
		if r := audit(t, e, "acme"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// A pinned tier stays; a tier set by hand above what was paid is never demoted;
// a tier off the ladder is never left; purchases and recharges count.
func TestPromotionPinnedNeverDemotesOffLadder(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "pinned")
		if _, err := e.UpdateAccount(e.ctx, "pinned", billing.AccountUpdate{TierPinned: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		e.payTier(t, "pinned", "100.00", billing.SourcePurchase)
		e.clock.Advance(8 * 24 * time.Hour)
		e.sweepLadder(t, "pinned")
		if a := e.get(t, "pinned"); a.Tier != "tier-1" || len(tierChanges(e.events(t, "pinned"))) != 0 {
			t.Fatalf("pinned account moved to %s", a.Tier)
		}
		if _, err := e.UpdateAccount(e.ctx, "pinned", billing.AccountUpdate{TierPinned: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		e.sweepLadder(t, "pinned")
		if a := e.get(t, "pinned"); a.Tier != "tier-3" {
			t.Fatalf("unpinned: tier %s, want tier-3", a.Tier)
		}

		e.account(t, "high")
		if _, err := e.UpdateAccount(e.ctx, "high", billing.AccountUpdate{Tier: ptr("tier-3")}); err != nil {
			t.Fatal(err)
		}
		e.payTier(t, "high", "60.00", billing.SourcePurchase) // qualifies for tier-2 only
		e.clock.Advance(8 * 24 * time.Hour)
		e.sweepLadder(t, "high")
		if a := e.get(t, "high"); a.Tier != "tier-3" {
			t.Fatalf("demoted to %s", a.Tier)
		}

		e.account(t, "big")
		if _, err := e.UpdateAccount(e.ctx, "big", billing.AccountUpdate{Tier: ptr("enterprise")}); err != nil {
			t.Fatal(err)
		}
		e.payTier(t, "big", "100.00", billing.SourcePurchase)
		e.clock.Advance(8 * 24 * time.Hour)
		e.sweepLadder(t, "big")
		if a := e.get(t, "big"); a.Tier != "enterprise" {
			t.Fatalf("off-ladder tier left for %s", a.Tier)
		}

		// A provider purchase and an auto-recharge are payments too.
		e.account(t, "buyer")
		e.purchase(t, "buyer", "pur_1", "30.00")
		if _, err := e.CompletePurchase(e.ctx, ladderPolicy, "buyer", "pur_1", billing.PaymentReport{EventID: "evt_1", Amount: usd("30.00"), PaymentRef: "pi_1"}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(8 * 24 * time.Hour)
		rid := e.startRecharge(t, "buyer", "25.00")
		if _, err := e.CompleteRecharge(e.ctx, "buyer", rid, billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, Ladder: ladderPolicy.Ladder()}); err != nil {
			t.Fatal(err)
		}
		if a := e.get(t, "buyer"); a.Tier != "tier-2" || a.PaidTotal != usd("55.00") {
			t.Fatalf("buyer after $30 purchase and $25 recharge, 8 days: tier %s, paid %s; want tier-2, 55.00", a.Tier, a.PaidTotal)
		}
		for _, id := range []string{"pinned", "high", "big", "buyer"} {
			if r := audit(t, e, id); !r.OK() {
				t.Fatalf("audit %s: %+v", id, r.Problems)
			}
		}
	})
}

// startRecharge sets auto-recharge on id and settles it below the threshold, so
// that a recharge of amount starts; returns its id.
func (e *env) startRecharge(t testing.TB, id, amount string) string {
	t.Helper()
	if err := e.SetAutoRecharge(e.ctx, id, billing.AutoRecharge{Enabled: true, Threshold: usd("1000.00"), Amount: usd(amount), MonthlyLimit: usd("1000.00")}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Sweep(e.ctx, id, billing.SweepRequest{Triggers: billing.Triggers{AutoRecharge: true}})
	if err != nil || res.RechargeID == "" {
		t.Fatalf("sweep started no recharge: %+v, %v", res, err)
	}
	return res.RechargeID
}

// Concurrent payments that cross a threshold together promote once per tier.
func TestConcurrentPaymentsPromoteOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		e.payTier(t, "acme", "5.00", billing.SourcePurchase)
		e.clock.Advance(8 * 24 * time.Hour)
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.TopUp(e.ctx, ladderPolicy, billing.TopUpRequest{Account: "acme", GrantID: billing.NewID("grant_"), Amount: usd("5.00")})
				if err != nil && !errors.Is(err, billing.ErrAboveMaxBalance) {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a := e.get(t, "acme")
		changes := tierChanges(e.events(t, "acme"))
		if a.PaidTotal != usd("105.00") || a.Tier != "tier-3" {
			t.Fatalf("paid %s tier %s; want 105.00 and tier-3", a.PaidTotal, a.Tier)
		}
		// The payments cross $50 and $100 in some order of commits: tier-1 → tier-2
		// → tier-3, each once (or tier-1 → tier-3 at once; never twice).
		seen := map[string]int{}
		for _, c := range changes {
			seen[c.TierTo]++
		}
		if seen["tier-3"] != 1 || seen["tier-2"] > 1 || len(changes) > 2 {
			t.Fatalf("tier changes %+v; want each tier reached once", changes)
		}
		if r := audit(t, e, "acme"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// A model of promotion: after any sequence of payments (of every source),
// elapsed days, sweeps, pins and manual tiers, the store's tier is the model's,
// computed with billing.Ladder.Promotion, the rule's statement in Go.
func TestPromotionModel(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ladder := ladderPolicy.Ladder()
		n := 0
		rapid.Check(t, func(rt *rapid.T) {
			n++
			id := fmt.Sprintf("m%d", n)
			e.account(t, id)
			tier, pinned := "tier-1", false
			var paid money.Micros
			var first time.Time
			promote := func() {
				if pinned {
					return
				}
				if to, ok := ladder.Promotion(tier, paid, first, e.clock.Now()); ok {
					tier = to
				}
			}
			for range rapid.IntRange(1, 15).Draw(rt, "steps") {
				switch rapid.IntRange(0, 5).Draw(rt, "op") {
				case 0, 1: // a payment, or a promotion (not a payment)
					dollars := rapid.IntRange(5, 60).Draw(rt, "dollars")
					source := rapid.SampledFrom([]string{billing.SourcePurchase, billing.SourcePromo}).Draw(rt, "source")
					e.payTier(t, id, fmt.Sprintf("%d.00", dollars), source)
					if source == billing.SourcePurchase {
						if first.IsZero() {
							first = e.clock.Now()
						}
						paid += money.Micros(dollars) * money.Dollar
						promote()
					}
				case 2:
					e.clock.Advance(time.Duration(rapid.IntRange(1, 5*24).Draw(rt, "hours")) * time.Hour)
				case 3:
					e.sweepLadder(t, id)
					promote()
				case 4:
					pinned = rapid.Bool().Draw(rt, "pinned")
					if _, err := e.UpdateAccount(e.ctx, id, billing.AccountUpdate{TierPinned: &pinned}); err != nil {
						rt.Fatal(err)
					}
				case 5:
					tier = rapid.SampledFrom([]string{"tier-1", "tier-2", "tier-3", "enterprise"}).Draw(rt, "tier")
					if _, err := e.UpdateAccount(e.ctx, id, billing.AccountUpdate{Tier: &tier}); err != nil {
						rt.Fatal(err)
					}
				}
				a := e.get(t, id)
				if a.Tier != tier || a.PaidTotal != paid {
					rt.Fatalf("store: tier %s paid %s; model: tier %s paid %s", a.Tier, a.PaidTotal, tier, paid)
				}
			}
			if r := audit(t, e, id); !r.OK() {
				rt.Fatalf("audit: %+v", r.Problems)
			}
		})
	})
}
