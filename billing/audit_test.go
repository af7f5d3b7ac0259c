package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/money"
)

var usd = money.MustParse

func TestCompareEventIDs(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"1-0", "1-1", -1},
		{"2-0", "1-9", 1},
		{"10-0", "9-0", 1}, // numeric, not lexical
		{"1-10", "1-9", 1},
		{"", "1-0", -1},
	}
	for _, tc := range tests {
		if got := CompareEventIDs(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareEventIDs(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// sampleLedger is a consistent history: a 10.00 top-up, usage of 12.00 (2.00
// to debt), a release, a 5.00 top-up repaying the debt, and a skipped recharge.
// The second grant keeps 3.00.
func sampleLedger() (Account, []Event) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := []Event{
		{ID: "1-0", Type: EventTopUp, Amount: usd("10"), BalanceAfter: usd("10"), CreditAfter: usd("10"), GrantID: "g1", Source: SourcePurchase},
		{ID: "2-0", Type: EventUsage, Amount: usd("12"), Cost: usd("12"), FromCredit: usd("10"), ToDebt: usd("2"), BalanceAfter: -usd("2"), DebtAfter: usd("2"), HoldID: "h1"},
		{ID: "3-0", Type: EventRelease, Amount: usd("1"), BalanceAfter: -usd("2"), DebtAfter: usd("2"), HoldID: "h2"},
		{ID: "4-0", Type: EventTopUp, Amount: usd("5"), BalanceAfter: usd("3"), CreditAfter: usd("3"), GrantID: "g2", Source: SourcePurchase},
		{ID: "4-1", Type: EventDebtRepaid, Amount: usd("2"), BalanceAfter: usd("3"), CreditAfter: usd("3"), GrantID: "g2"},
		{ID: "5-0", Type: EventAutoRechargeSkipped, Amount: usd("5"), BalanceAfter: usd("3"), CreditAfter: usd("3")},
	}
	a := Account{
		ID: "a", Credit: usd("3"), LastEventID: "5-0", AsOf: at,
		Grants: []Grant{
			{ID: "g1", Amount: usd("10"), Remaining: 0, ExpiresAt: at.Add(time.Hour), Source: SourcePurchase},
			{ID: "g2", Amount: usd("5"), Remaining: usd("3"), ExpiresAt: at.Add(time.Hour), Source: SourcePurchase},
		},
		Totals: Totals{Granted: usd("15"), Usage: usd("12"), Consumed: usd("10"), DebtRepaid: usd("2")},
	}
	return a, evs
}

func runAudit(a Account, evs []Event) AuditReport {
	au := NewAudit(a)
	for _, ev := range evs {
		au.Event(ev)
	}
	return au.Finish()
}

func TestAudit(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Account, evs *[]Event)
		check  string // "" = passes
		event  string
		msg    string
	}{
		{name: "consistent", change: func(*Account, *[]Event) {}},
		{name: "later events ignored", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "6-0", Type: EventUsage, Amount: usd("1"), Cost: usd("1"), FromCredit: usd("1"), BalanceAfter: usd("2"), CreditAfter: usd("2")})
		}},
		{name: "grant credited twice", check: "grants", event: "6-0", msg: "second time", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "6-0", Type: EventTopUp, Amount: usd("5"), BalanceAfter: usd("8"), CreditAfter: usd("8"), GrantID: "g2"})
			a.LastEventID = "6-0"
		}},
		{name: "hold settled twice", check: "usage", event: "6-0", msg: "hold h1", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "6-0", Type: EventUsage, Amount: usd("1"), Cost: usd("1"), FromCredit: usd("1"), BalanceAfter: usd("2"), CreditAfter: usd("2"), HoldID: "h1"})
			a.LastEventID = "6-0"
		}},
		{name: "usage split wrong", check: "amounts", event: "2-0", change: func(a *Account, evs *[]Event) { (*evs)[1].ToDebt = usd("1") }},
		{name: "balance_after wrong", check: "balance", event: "3-0", change: func(a *Account, evs *[]Event) { (*evs)[2].BalanceAfter = -usd("1") }},
		{name: "debt_repaid missing", check: "debt", event: "5-0", msg: "no debt_repaid", change: func(a *Account, evs *[]Event) {
			*evs = append((*evs)[:4], (*evs)[5:]...)
		}},
		{name: "stored credit differs", check: "state", msg: "stored balance", change: func(a *Account, evs *[]Event) { a.Credit += 1 }},
		{name: "expired grant with credit", check: "state", msg: "expired at", change: func(a *Account, evs *[]Event) { a.Grants[1].ExpiresAt = a.AsOf }},
		{name: "grant without event", check: "grants", msg: "no grant event", change: func(a *Account, evs *[]Event) {
			a.Grants = append(a.Grants, Grant{ID: "g3", Amount: 0})
		}},
		{name: "ledger ends early", check: "state", msg: "ends before", change: func(a *Account, evs *[]Event) { a.LastEventID = "9-0" }},
		{name: "unknown event type", check: "amounts", event: "5-0", change: func(a *Account, evs *[]Event) { (*evs)[5].Type = "bonus" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, evs := sampleLedger()
			tc.change(&a, &evs)
			expectAudit(t, runAudit(a, evs), 6, tc.check, tc.event, tc.msg)
		})
	}
}

// adjustmentLedger: a 10.00 top-up, usage of 12.00 (2.00 to debt), a +5.00
// adjustment repaying the debt (grant a1 keeps 3.00), a −1.00 claw-back.
func adjustmentLedger() (Account, []Event) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := []Event{
		{ID: "1-0", Type: EventTopUp, Amount: usd("10"), BalanceAfter: usd("10"), CreditAfter: usd("10"), GrantID: "g1", Source: SourcePurchase},
		{ID: "2-0", Type: EventUsage, Amount: usd("12"), Cost: usd("12"), FromCredit: usd("10"), ToDebt: usd("2"), BalanceAfter: -usd("2"), DebtAfter: usd("2"), HoldID: "h1"},
		{ID: "3-0", Type: EventAdjustment, Amount: usd("5"), BalanceAfter: usd("3"), CreditAfter: usd("3"), GrantID: "a1", Source: SourceAdjustment, Note: "refund"},
		{ID: "3-1", Type: EventDebtRepaid, Amount: usd("2"), BalanceAfter: usd("3"), CreditAfter: usd("3"), GrantID: "a1"},
		{ID: "4-0", Type: EventAdjustment, Amount: -usd("1"), BalanceAfter: usd("2"), CreditAfter: usd("2"), Note: "clawback"},
	}
	a := Account{
		ID: "a", Credit: usd("2"), LastEventID: "4-0", AsOf: at,
		Grants: []Grant{
			{ID: "g1", Amount: usd("10"), Remaining: 0, ExpiresAt: at.Add(time.Hour), Source: SourcePurchase},
			{ID: "a1", Amount: usd("5"), Remaining: usd("2"), ExpiresAt: at.Add(time.Hour), Source: SourceAdjustment},
		},
		Totals: Totals{Granted: usd("15"), Usage: usd("12"), Consumed: usd("10"), DebtRepaid: usd("2"), AdjustedOut: usd("1")},
	}
	return a, evs
}

func TestAuditAdjustments(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *Account, evs *[]Event)
		check  string // "" = passes
		event  string
		msg    string
	}{
		{name: "consistent", change: func(*Account, *[]Event) {}},
		{name: "claw-back moves debt instead of credit", check: "debt", event: "4-0", change: func(a *Account, evs *[]Event) {
			(*evs)[4].CreditAfter, (*evs)[4].DebtAfter = usd("3"), usd("1")
		}},
		{name: "claw-back of the wrong amount", check: "balance", event: "4-0", change: func(a *Account, evs *[]Event) { (*evs)[4].Amount = -usd("2") }},
		{name: "adjusted out total wrong", check: "state", msg: "adjusted out", change: func(a *Account, evs *[]Event) { a.Totals.AdjustedOut = 0 }},
		{name: "positive adjustment without its grant", check: "grants", event: "3-0", msg: "not stored", change: func(a *Account, evs *[]Event) {
			a.Grants = a.Grants[:1]
		}},
		{name: "positive adjustment of a purchase grant", check: "grants", event: "3-0", msg: "source", change: func(a *Account, evs *[]Event) {
			a.Grants[1].Source = SourcePurchase
		}},
		{name: "positive adjustment without debt_repaid", check: "debt", event: "4-0", msg: "no debt_repaid", change: func(a *Account, evs *[]Event) {
			*evs = append((*evs)[:3], (*evs)[4:]...)
		}},
		{name: "zero adjustment", check: "amounts", event: "5-0", change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "5-0", Type: EventAdjustment, BalanceAfter: usd("2"), CreditAfter: usd("2")})
			a.LastEventID = "5-0"
		}},
		{name: "claw-back naming a grant", check: "grants", event: "4-0", change: func(a *Account, evs *[]Event) { (*evs)[4].GrantID = "g1" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, evs := adjustmentLedger()
			tc.change(&a, &evs)
			expectAudit(t, runAudit(a, evs), 5, tc.check, tc.event, tc.msg)
		})
	}
}

// expectAudit checks an audit's report: with check "" a pass over events events,
// else a failure whose first problem is check at event with msg in its message.
func expectAudit(t *testing.T, r AuditReport, events int, check, event, msg string) {
	t.Helper()
	if check == "" {
		if !r.OK() || r.Events != events {
			t.Fatalf("%d events, problems %+v", r.Events, r.Problems)
		}
		return
	}
	if r.OK() {
		t.Fatal("passed")
	}
	p := r.Problems[0]
	if p.Check != check || p.EventID != event || !strings.Contains(p.Message, msg) {
		t.Fatalf("first problem %+v; want %s at %q containing %q", p, check, event, msg)
	}
}

// Every hold ends in exactly one of usage, release or hold_expired, or in
// hold_expired then a late usage. The cases append hold events to sampleLedger
// (which settled h1 and released h2; balance 3.00) and audit the result.
func TestAuditHoldEnds(t *testing.T) {
	// ev is an event of type typ for hold at id that leaves the balance at 3.00
	// (usage of cost 0: a late settle of nothing keeps the arithmetic out of it).
	ev := func(id string, typ EventType, hold string) Event {
		return Event{ID: id, Type: typ, HoldID: hold, Amount: 0, BalanceAfter: usd("3"), CreditAfter: usd("3"),
			RequestID: hold, Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions"}
	}
	expired := func(id, hold string) Event {
		e := ev(id, EventHoldExpired, hold)
		e.Amount = usd("0.40") // the hold; the balance does not move
		return e
	}
	tests := []struct {
		name   string
		events []Event
		check  string // "" = passes
		event  string
		msg    string
	}{
		{name: "hold_expired alone", events: []Event{expired("6-0", "h3")}},
		{name: "hold_expired, then a late usage", events: []Event{expired("6-0", "h3"), ev("7-0", EventUsage, "h3")}},
		{name: "two holds expire in one sweep", events: []Event{expired("6-0", "h3"), expired("6-1", "h4"), ev("7-0", EventUsage, "h4")}},
		{name: "hold_expired after the usage", check: "holds", event: "6-0", msg: "h1 expires after its usage",
			events: []Event{expired("6-0", "h1")}},
		{name: "hold_expired after the release", check: "holds", event: "6-0", msg: "h2 expires after its release",
			events: []Event{expired("6-0", "h2")}},
		{name: "hold_expired twice", check: "holds", event: "7-0", msg: "h3 expires after its hold_expired",
			events: []Event{expired("6-0", "h3"), expired("7-0", "h3")}},
		{name: "release after hold_expired", check: "holds", event: "7-0", msg: "h3 is released after its hold_expired",
			events: []Event{expired("6-0", "h3"), ev("7-0", EventRelease, "h3")}},
		{name: "release after the usage", check: "holds", event: "6-0", msg: "h1 is released after its usage",
			events: []Event{ev("6-0", EventRelease, "h1")}},
		{name: "release twice", check: "holds", event: "6-0", msg: "h2 is released after its release",
			events: []Event{ev("6-0", EventRelease, "h2")}},
		{name: "usage after the release", check: "holds", event: "6-0", msg: "h2 is settled after its release",
			events: []Event{ev("6-0", EventUsage, "h2")}},
		{name: "two late usages after hold_expired", check: "usage", event: "8-0", msg: "h3 is settled a second time",
			events: []Event{expired("6-0", "h3"), ev("7-0", EventUsage, "h3"), ev("8-0", EventUsage, "h3")}},
		{name: "hold_expired naming no hold", check: "holds", event: "6-0", msg: "names no hold",
			events: []Event{expired("6-0", "")}},
		{name: "hold_expired that moves the balance", check: "balance", event: "6-0", msg: "hold_expired event says balance 2.6",
			events: []Event{func() Event {
				e := expired("6-0", "h3")
				e.BalanceAfter, e.CreditAfter = usd("2.60"), usd("2.60")
				return e
			}()}},
		{name: "hold_expired of a negative amount", check: "amounts", event: "6-0", msg: "negative",
			events: []Event{func() Event { e := expired("6-0", "h3"); e.Amount = -1; return e }()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, evs := sampleLedger()
			evs = append(evs, tc.events...)
			a.LastEventID = evs[len(evs)-1].ID
			expectAudit(t, runAudit(a, evs), len(evs), tc.check, tc.event, tc.msg)
		})
	}
}
