package billing

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

var ladderPolicy = Policy{Tiers: map[string]Tier{
	"tier-1":     {Qualify: &Qualify{Paid: usd("5")}},
	"tier-2":     {Qualify: &Qualify{Paid: usd("50"), Days: 7}},
	"tier-3":     {Qualify: &Qualify{Paid: usd("100"), Days: 7}},
	"tier-4":     {Qualify: &Qualify{Paid: usd("250"), Days: 14}},
	"enterprise": {},
}}

func TestLadderOrderAndPromotion(t *testing.T) {
	l := ladderPolicy.Ladder()
	var names []string
	for _, r := range l {
		names = append(names, r.Tier)
	}
	if got := strings.Join(names, " "); got != "tier-1 tier-2 tier-3 tier-4" {
		t.Fatalf("ladder %s; want the tiers with qualify, by paid then days", got)
	}
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	day := func(n float64) time.Time { return day0.Add(time.Duration(n * 24 * float64(time.Hour))) }
	tests := []struct {
		tier  string
		paid  string
		first time.Time
		now   time.Time
		want  string // "" = stays
	}{
		{"tier-1", "49.99", day0, day(30), ""},
		{"tier-1", "50", day0, day(6.99), ""},
		{"tier-1", "50", day0, day(7), "tier-2"},
		{"tier-1", "100", day0, day(7), "tier-3"},
		{"tier-1", "1000", day0, day(13), "tier-3"},
		{"tier-1", "1000", day0, day(14), "tier-4"},
		{"tier-3", "60", day0, day(30), ""}, // never demotes
		{"tier-4", "1000", day0, day(30), ""},
		{"enterprise", "1000", day0, day(30), ""},   // off the ladder
		{"tier-1", "100", time.Time{}, day(30), ""}, // never paid: no days
	}
	for _, tc := range tests {
		got, ok := l.Promotion(tc.tier, usd(tc.paid), tc.first, tc.now)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s, paid %s, now %s: %q %v; want %q", tc.tier, tc.paid, tc.now.Sub(tc.first), got, ok, tc.want)
		}
	}
	if next, ok := l.Next("tier-1"); !ok || next.Tier != "tier-2" || next.Paid != usd("50") || next.Days != 7 {
		t.Errorf("next of tier-1: %+v %v", next, ok)
	}
	if _, ok := l.Next("tier-4"); ok {
		t.Error("tier-4 has a next tier")
	}
}

// Validate names every bad field at once.
func TestAccountUpdateValidate(t *testing.T) {
	p := Policy{Tiers: map[string]Tier{"tier-1": {}}}
	u := AccountUpdate{
		Tier: ptr("gold"), Status: ptr("paused"), Name: ptr("a\nb"), Email: ptr("nobody"),
		ExternalID: ptr(strings.Repeat("x", MaxExternalIDLen+1)),
		SpendLimit: &SpendLimit{Monthly: usd("10"), AlertAt: usd("20")},
	}
	var fields []string
	for _, pr := range u.Validate(p) {
		fields = append(fields, pr.Field)
	}
	if got := strings.Join(fields, " "); got != "tier status name email external_id spend_limit.alert_at" {
		t.Fatalf("problems for %s; want every field", got)
	}
	ok := AccountUpdate{Tier: ptr("tier-1"), Status: ptr(StatusSuspended), Name: ptr(""), Email: ptr("billing@acme.example"),
		SpendLimit: &SpendLimit{Monthly: usd("100"), AlertAt: usd("80")}}
	if ps := ok.Validate(p); len(ps) != 0 {
		t.Fatalf("valid update: %+v", ps)
	}
	for _, l := range []SpendLimit{{Monthly: -1}, {AlertAt: usd("1")}} {
		if ps := (AccountUpdate{SpendLimit: &l}).Validate(p); len(ps) != 1 {
			t.Errorf("spend limit %+v: %+v; want one problem", l, ps)
		}
	}
}

// The audit's tier checks: tier changes chain, the stored tier is the last
// one's, the paid total is not above the ledger's payments.
func TestAuditTiers(t *testing.T) {
	change := func(id, from, to string) Event {
		return Event{ID: id, Type: EventTierChange, TierFrom: from, TierTo: to, BalanceAfter: usd("3"), CreditAfter: usd("3")}
	}
	tests := []struct {
		name   string
		change func(a *Account, evs *[]Event)
		check  string
		msg    string
	}{
		{name: "chained", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, change("6-0", "tier-1", "tier-2"), change("7-0", "tier-2", "tier-3"))
			a.LastEventID, a.Tier, a.PaidTotal = "7-0", "tier-3", usd("15")
		}},
		{name: "broken chain", check: "tiers", msg: "moved to", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, change("6-0", "tier-1", "tier-2"), change("7-0", "tier-1", "tier-3"))
			a.LastEventID, a.Tier = "7-0", "tier-3"
		}},
		{name: "stored tier differs", check: "tiers", msg: "stored tier", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, change("6-0", "tier-1", "tier-2"))
			a.LastEventID, a.Tier = "6-0", "tier-1"
		}},
		{name: "no-op change", check: "tiers", msg: "changes nothing", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, change("6-0", "tier-1", "tier-1"))
			a.LastEventID, a.Tier = "6-0", "tier-1"
		}},
		{name: "paid above payments", check: "tiers", msg: "paid total", change: func(a *Account, evs *[]Event) { a.PaidTotal = usd("16") }},
		{name: "update moving money", check: "balance", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "6-0", Type: EventAccountUpdate, Changes: []FieldChange{{Field: "name", To: "x"}}, BalanceAfter: usd("4"), CreditAfter: usd("4")})
			a.LastEventID = "6-0"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, evs := sampleLedger()
			tc.change(&a, &evs)
			r := runAudit(a, evs)
			if tc.check == "" {
				if !r.OK() {
					t.Fatalf("problems: %+v", r.Problems)
				}
				return
			}
			found := false
			for _, p := range r.Problems {
				found = found || p.Check == tc.check && strings.Contains(p.Message, tc.msg)
			}
			if !found {
				t.Fatalf("problems %+v; want a %s problem saying %q", r.Problems, tc.check, tc.msg)
			}
		})
	}
}
