package billing

import (
	"testing"
	"time"
)

// takeBackLedger is a purchase paid by pi_1 (10.00), 4.00 of it spent, then
// refunded: the 6.00 left is taken back from its grant.
func takeBackLedger() (Account, []Event) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := []Event{
		{ID: "1-0", Type: EventTopUp, Amount: usd("10"), BalanceAfter: usd("10"), CreditAfter: usd("10"), GrantID: "pur_1", Source: SourcePurchase, PaymentRef: "pi_1"},
		{ID: "2-0", Type: EventUsage, Amount: usd("4"), Cost: usd("4"), FromCredit: usd("4"), BalanceAfter: usd("6"), CreditAfter: usd("6"), HoldID: "h1"},
		{ID: "3-0", Type: EventAdjustment, Amount: -usd("6"), BalanceAfter: 0, CreditAfter: 0, GrantID: "pur_1", PaymentRef: "pi_1", Note: "refund (4.000000 of 10.000000 was already spent)"},
	}
	a := Account{
		ID: "a", LastEventID: "3-0", AsOf: at,
		Grants: []Grant{{ID: "pur_1", Amount: usd("10"), Remaining: 0, ExpiresAt: at.Add(time.Hour), Source: SourcePurchase}},
		Totals: Totals{Granted: usd("10"), Usage: usd("4"), Consumed: usd("4"), AdjustedOut: usd("6")},
	}
	return a, evs
}

func TestAuditTakeBacks(t *testing.T) {
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// secondGrant appends a 5.00 top-up (4-0) for take-backs to reach into.
	secondGrant := func(a *Account, evs *[]Event) {
		*evs = append(*evs, Event{ID: "4-0", Type: EventTopUp, Amount: usd("5"), BalanceAfter: usd("5"), CreditAfter: usd("5"), GrantID: "g2", Source: SourcePurchase})
		a.Grants = append(a.Grants, Grant{ID: "g2", Amount: usd("5"), Remaining: usd("5"), ExpiresAt: at.Add(time.Hour), Source: SourcePurchase})
		a.Credit, a.Totals.Granted, a.LastEventID = usd("5"), usd("15"), "4-0"
	}
	tests := []struct {
		name   string
		change func(a *Account, evs *[]Event)
		events int
		check  string // "" = passes
		event  string
		msg    string
	}{
		{name: "consistent", events: 3, change: func(*Account, *[]Event) {}},
		{name: "a later dispute finds nothing left: a take-back of zero", events: 4, change: func(a *Account, evs *[]Event) {
			*evs = append(*evs, Event{ID: "4-0", Type: EventAdjustment, GrantID: "pur_1", PaymentRef: "pi_1", Note: "dispute (10.000000 of 10.000000 was already spent)"})
			a.LastEventID = "4-0"
		}},
		{name: "take-back naming another payment", check: "takebacks", event: "3-0", msg: "pi_1", change: func(a *Account, evs *[]Event) {
			(*evs)[2].PaymentRef = "pi_other"
		}},
		{name: "take-back of a grant never credited", check: "takebacks", event: "3-0", msg: "no earlier event", change: func(a *Account, evs *[]Event) {
			(*evs)[2].GrantID = "pur_2"
		}},
		{name: "take-back before its grant", check: "takebacks", event: "0-1", msg: "no earlier event", change: func(a *Account, evs *[]Event) {
			*evs = append([]Event{{ID: "0-1", Type: EventAdjustment, Amount: 0, GrantID: "pur_1", PaymentRef: "pi_1", Note: "refund"}}, *evs...)
		}},
		{name: "take-backs beyond what the grant credited", check: "takebacks", event: "5-0", msg: "took 11.000000", change: func(a *Account, evs *[]Event) {
			secondGrant(a, evs)
			*evs = append(*evs, Event{ID: "5-0", Type: EventAdjustment, Amount: -usd("5"), GrantID: "pur_1", PaymentRef: "pi_1", Note: "dispute"})
			a.Credit, a.Grants[1].Remaining, a.Totals.AdjustedOut, a.LastEventID = 0, 0, usd("11"), "5-0"
		}},
		{name: "take-back that moves debt instead of credit", check: "debt", event: "3-0", change: func(a *Account, evs *[]Event) {
			(*evs)[2].CreditAfter, (*evs)[2].DebtAfter = usd("6"), usd("6")
			(*evs)[2].BalanceAfter = 0
		}},
		{name: "take-back left out of adjusted out", check: "state", msg: "adjusted out", change: func(a *Account, evs *[]Event) {
			a.Totals.AdjustedOut = 0
		}},
		{name: "claw-back naming a grant without a payment", check: "grants", event: "3-0", msg: "credits none", change: func(a *Account, evs *[]Event) {
			(*evs)[2].PaymentRef = ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, evs := takeBackLedger()
			tc.change(&a, &evs)
			n := tc.events
			if n == 0 {
				n = len(evs)
			}
			expectAudit(t, runAudit(a, evs), n, tc.check, tc.event, tc.msg)
		})
	}
}
