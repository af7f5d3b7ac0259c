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

// reserveFor reserves like the proxy does, naming the request, so that a
// hold_expired event can say which one it was.
func (e *env) reserveFor(t testing.TB, id, hold string, estimate money.Micros, ttl time.Duration) billing.Reservation {
	t.Helper()
	r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: estimate, Grace: testPolicy.Grace, TTL: ttl,
		RequestID: "req_" + hold, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions"})
	if err != nil || !r.Admitted {
		t.Fatalf("reserve %s: %+v %v", hold, r, err)
	}
	return r
}

// holdEvents are the ledger events naming hold.
func (e *env) holdEvents(t testing.TB, id, hold string) []billing.Event {
	t.Helper()
	var out []billing.Event
	for _, ev := range e.events(t, id) {
		if ev.HoldID == hold {
			out = append(out, ev)
		}
	}
	return out
}

// sweepHoldsExpired runs the periodic sweep on id and returns how many expired
// holds it reported.
func (e *env) sweepHoldsExpired(t testing.TB, id string) int {
	t.Helper()
	res, err := e.Sweep(e.ctx, id, billing.SweepRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return res.HoldsExpired
}

// A hold that reaches its TTL unsettled (its proxy crashed) gets one
// hold_expired event — the held amount, the request it was for, the balance
// unchanged — from whichever script sweeps first, and never a second one; the
// periodic sweep reports it once for the metric, whoever ended it.
func TestExpiredHoldIsBookedOnceByWhicheverScriptSweeps(t *testing.T) {
	sweepers := []struct {
		name  string
		sweep func(t *testing.T, e *env) (reported int)
	}{
		{"a reserve", func(t *testing.T, e *env) int {
			e.reserveFor(t, "a", "next", usd("0.10"), testPolicy.HoldTTL)
			return 0
		}},
		{"reading the account", func(t *testing.T, e *env) int { e.get(t, "a"); return 0 }},
		{"the periodic sweep", func(t *testing.T, e *env) int { return e.sweepHoldsExpired(t, "a") }},
		{"the release of another hold", func(t *testing.T, e *env) int {
			if _, err := e.Release(e.ctx, "a", "long", billing.Usage{}); err != nil {
				t.Fatal(err)
			}
			return 0
		}},
		{"a top-up", func(t *testing.T, e *env) int { e.topUp(t, "a", "5.00"); return 0 }},
		{"an adjustment", func(t *testing.T, e *env) int {
			if _, err := e.Adjust(e.ctx, testPolicy, "a", billing.AdjustRequest{Amount: -usd("1.00"), Reason: "test"}); err != nil {
				t.Fatal(err)
			}
			return 0
		}},
	}
	for _, sw := range sweepers {
		t.Run(sw.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				e.account(t, "a", "10.00")
				e.reserveFor(t, "a", "crashed", usd("2.00"), testPolicy.HoldTTL)
				e.reserveFor(t, "a", "long", usd("0.30"), 3*testPolicy.HoldTTL) // still live after the advance
				reported := e.sweepHoldsExpired(t, "a")
				e.clock.Advance(testPolicy.HoldTTL)
				reported += sw.sweep(t, e)
				evs := e.holdEvents(t, "a", "crashed")
				if len(evs) != 1 || evs[0].Type != billing.EventHoldExpired {
					t.Fatalf("events of the crashed hold after %s: %+v", sw.name, evs)
				}
				ev := evs[0]
				if ev.Amount != usd("2.00") || ev.RequestID != "req_crashed" || ev.KeyID != "key_1" || ev.Model != "gpt-4o-mini" ||
					ev.Endpoint != "/v1/chat/completions" || ev.Cost != 0 || ev.At != e.clock.Now().Truncate(time.Millisecond) {
					t.Fatalf("hold_expired event %+v", ev)
				}
				// Every other script sweeps again: nothing more is booked.
				e.get(t, "a")
				e.reserveFor(t, "a", "later", usd("0.10"), testPolicy.HoldTTL)
				reported += e.sweepHoldsExpired(t, "a")
				reported += e.sweepHoldsExpired(t, "a")
				if evs := e.holdEvents(t, "a", "crashed"); len(evs) != 1 {
					t.Fatalf("events of the crashed hold after more sweeps: %s", eventTypes(evs))
				}
				if reported != 1 {
					t.Fatalf("the periodic sweeps reported %d expired holds, want 1", reported)
				}
				// Reserved is what is live: "long" and "later", plus "next" or minus
				// "long" for the sweepers that reserve or release them.
				want := usd("0.30") + usd("0.10")
				switch sw.name {
				case "a reserve":
					want += usd("0.10")
				case "the release of another hold":
					want -= usd("0.30")
				}
				if a := checkConservation(t, e, "a"); a.Reserved != want {
					t.Fatalf("reserved %s after the expiry, want %s", a.Reserved, want)
				}
				if r := audit(t, e, "a"); !r.OK() {
					t.Fatalf("audit: %+v", r.Problems)
				}
			})
		})
	}
}

// The balance event of hold_expired shows the balance as it was: the hold never
// moved money. Reserved drops by the hold.
func TestHoldExpiredLeavesTheBalanceAndFreesTheReservation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "crashed", usd("2.00"), testPolicy.HoldTTL)
		if a := e.get(t, "a"); a.Reserved != usd("2.00") {
			t.Fatalf("reserved %s while live", a.Reserved)
		}
		e.clock.Advance(testPolicy.HoldTTL)
		a := checkConservation(t, e, "a")
		ev := e.holdEvents(t, "a", "crashed")[0]
		if a.Reserved != 0 || a.Balance() != usd("10.00") || ev.BalanceAfter != usd("10.00") || ev.CreditAfter != usd("10.00") || ev.DebtAfter != 0 {
			t.Fatalf("account %+v, event %+v", a, ev)
		}
	})
}

// A settle that comes after the hold expired (a stream longer than hold_ttl, a
// spool replay, a crash recovery) is still charged: the ledger says
// hold_expired, then usage. Retried, it books nothing more.
func TestLateSettleAfterHoldExpiredIsCharged(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "slow", usd("2.00"), testPolicy.HoldTTL)
		e.clock.Advance(testPolicy.HoldTTL + time.Minute)
		e.get(t, "a") // the sweep ends the hold
		s := e.settle(t, "a", "slow", usd("0.40"))
		if s.Replayed || s.FromCredit != usd("0.40") || s.BalanceAfter != usd("9.60") {
			t.Fatalf("late settle %+v", s)
		}
		again := e.settle(t, "a", "slow", usd("0.40"))
		if !again.Replayed || again.EventID != s.EventID {
			t.Fatalf("retried late settle %+v", again)
		}
		if rel, err := e.Release(e.ctx, "a", "slow", billing.Usage{}); err != nil || !rel.Replayed || rel.EventID != s.EventID {
			t.Fatalf("release after the late settle: %+v %v", rel, err)
		}
		if got := eventTypes(e.holdEvents(t, "a", "slow")); got != "hold_expired usage" {
			t.Fatalf("the hold ended with %s", got)
		}
		a := checkConservation(t, e, "a")
		if a.Reserved != 0 || a.Totals.Usage != usd("0.40") {
			t.Fatalf("account %+v", a)
		}
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// A release after hold_expired books nothing (the hold already ended uncharged)
// and answers with the hold_expired event; a settle after that release is a
// replay of it, as after any release.
func TestReleaseAfterHoldExpiredBooksNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "gone", usd("2.00"), testPolicy.HoldTTL)
		e.clock.Advance(testPolicy.HoldTTL)
		e.get(t, "a")
		expired := e.holdEvents(t, "a", "gone")[0]
		n := len(e.events(t, "a"))
		rel, err := e.Release(e.ctx, "a", "gone", billing.Usage{RequestID: "req_gone"})
		if err != nil || !rel.Replayed || rel.EventID != expired.ID || rel.Cost != 0 || rel.BalanceAfter != usd("10.00") {
			t.Fatalf("release after hold_expired: %+v %v (hold_expired %s)", rel, err, expired.ID)
		}
		if s := e.settle(t, "a", "gone", usd("1.00")); !s.Replayed || s.Cost != 0 {
			t.Fatalf("settle after the release: %+v", s)
		}
		if len(e.events(t, "a")) != n {
			t.Fatalf("events after the release and settle: %s", eventTypes(e.events(t, "a")[n:]))
		}
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// A hold whose time ran out but that no sweep ended yet is released (or
// settled) as usual, and never expires afterwards.
func TestHoldEndedBeforeAnySweepDoesNotExpire(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "rel", usd("2.00"), testPolicy.HoldTTL)
		e.reserveFor(t, "a", "set", usd("1.00"), testPolicy.HoldTTL)
		e.reserveFor(t, "a", "zero", 0, testPolicy.HoldTTL) // a hold of nothing leaves holds too
		if _, err := e.Release(e.ctx, "a", "zero", billing.Usage{}); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(testPolicy.HoldTTL)
		e.settle(t, "a", "set", usd("0.25")) // settle sweeps no holds
		rel, err := e.Release(e.ctx, "a", "rel", billing.Usage{RequestID: "req_rel"})
		if err != nil || rel.Replayed {
			t.Fatalf("release of an expired, unswept hold: %+v %v", rel, err)
		}
		e.get(t, "a")
		e.sweepHoldsExpired(t, "a")
		for hold, want := range map[string]string{"rel": "release", "set": "usage", "zero": "release"} {
			if got := eventTypes(e.holdEvents(t, "a", hold)); got != want {
				t.Errorf("hold %s ended with %s, want %s", hold, got, want)
			}
		}
		if ev := e.holdEvents(t, "a", "rel")[0]; ev.Amount != usd("2.00") {
			t.Errorf("release event %+v", ev)
		}
		if a := checkConservation(t, e, "a"); a.Reserved != 0 {
			t.Errorf("reserved %s", a.Reserved)
		}
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// A reserve retried after its hold expired is refused, as for a settled one.
func TestRetriedReserveOfAnExpiredHoldIsRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "h", usd("2.00"), testPolicy.HoldTTL)
		e.clock.Advance(testPolicy.HoldTTL)
		_, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "a", HoldID: "h", Estimate: usd("2.00"), TTL: testPolicy.HoldTTL})
		if !errors.Is(err, billing.ErrInvalid) || !strings.Contains(err.Error(), "already expired") {
			t.Fatalf("retried reserve after the expiry: %v", err)
		}
		if got := eventTypes(e.holdEvents(t, "a", "h")); got != "hold_expired" {
			t.Fatalf("the hold ended with %s", got)
		}
	})
}

// A hold whose record is gone (lost with a Redis restore, deleted) still gets
// its hold_expired event, with what holds and holdamt know: its id and amount.
func TestHoldExpiredWithoutItsRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.reserveFor(t, "a", "h", usd("2.00"), testPolicy.HoldTTL)
		if err := e.redis.Client.Del(e.ctx, e.holdKeys("a", "h")[6]).Err(); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(testPolicy.HoldTTL)
		e.get(t, "a")
		evs := e.holdEvents(t, "a", "h")
		if len(evs) != 1 || evs[0].Type != billing.EventHoldExpired || evs[0].Amount != usd("2.00") || evs[0].RequestID != "" {
			t.Fatalf("events %+v", evs)
		}
		if n, err := e.redis.Client.Exists(e.ctx, e.holdKeys("a", "h")[6]).Result(); err != nil || n != 0 {
			t.Fatalf("the sweep made up a record: %d %v", n, err)
		}
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

// Many holds expiring at once are ended 1000 per script run, every one exactly
// once, and the periodic sweeps report each once.
func TestManyExpiredHoldsEachBookedOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "100.00")
		const n = 1203
		for i := range n {
			e.reserveFor(t, "a", fmt.Sprintf("h%04d", i), 1, testPolicy.HoldTTL)
		}
		e.clock.Advance(testPolicy.HoldTTL)
		reported := 0
		for range 3 {
			reported += e.sweepHoldsExpired(t, "a")
		}
		seen := map[string]int{}
		for _, ev := range e.events(t, "a") {
			if ev.Type == billing.EventHoldExpired {
				seen[ev.HoldID]++
			}
		}
		if len(seen) != n || reported != n {
			t.Fatalf("%d holds expired, %d reported; want %d", len(seen), reported, n)
		}
		for hold, k := range seen {
			if k != 1 {
				t.Fatalf("hold %s has %d hold_expired events", hold, k)
			}
		}
		if a := checkConservation(t, e, "a"); a.Reserved != 0 {
			t.Fatalf("reserved %s", a.Reserved)
		}
	})
}

// HoldOutcome answers from the hold's record, and from the ledger when the
// record is gone, for every way a hold can end; the event it names is the one
// that ended the hold.
func TestHoldOutcome(t *testing.T) {
	cases := []struct {
		name string
		// end brings hold "h" (reserved for 2.00, TTL testPolicy.HoldTTL) to its end.
		end func(t *testing.T, e *env)
		// want is the state from the record; wantLedger from the ledger alone.
		want, wantLedger billing.HoldState
		// event is the type of the event the outcome names ("" for none).
		event, eventLedger billing.EventType
	}{
		{"live", func(*testing.T, *env) {}, billing.HoldLive, billing.HoldUnknown, "", ""},
		{"settled", func(t *testing.T, e *env) { e.settle(t, "a", "h", usd("1.00")) },
			billing.HoldSettled, billing.HoldSettled, billing.EventUsage, billing.EventUsage},
		{"released", func(t *testing.T, e *env) {
			if _, err := e.Release(e.ctx, "a", "h", billing.Usage{}); err != nil {
				t.Fatal(err)
			}
		}, billing.HoldReleased, billing.HoldReleased, billing.EventRelease, billing.EventRelease},
		{"expired", func(t *testing.T, e *env) { e.clock.Advance(testPolicy.HoldTTL); e.get(t, "a") },
			billing.HoldExpired, billing.HoldExpired, billing.EventHoldExpired, billing.EventHoldExpired},
		{"expired, then settled late", func(t *testing.T, e *env) {
			e.clock.Advance(testPolicy.HoldTTL)
			e.get(t, "a")
			e.settle(t, "a", "h", usd("1.00"))
		}, billing.HoldSettled, billing.HoldSettled, billing.EventUsage, billing.EventUsage},
		{"expired, then released", func(t *testing.T, e *env) {
			e.clock.Advance(testPolicy.HoldTTL)
			e.get(t, "a")
			if _, err := e.Release(e.ctx, "a", "h", billing.Usage{}); err != nil {
				t.Fatal(err)
			}
		}, billing.HoldReleased, billing.HoldExpired, billing.EventHoldExpired, billing.EventHoldExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				e.account(t, "a", "10.00")
				since := time.Now().Add(-time.Minute) // stream ids carry Redis's clock
				// For one case, more than a page of other events before the hold,
				// so that the search pages.
				for i := range (holdScanPage + 20) * btoi(c.name == "settled") {
					e.reserveFor(t, "a", fmt.Sprintf("x%d", i), 1, 100*testPolicy.HoldTTL)
					e.settle(t, "a", fmt.Sprintf("x%d", i), 0)
				}
				e.reserveFor(t, "a", "h", usd("2.00"), testPolicy.HoldTTL)
				c.end(t, e)
				eventOf := func(id string) billing.EventType {
					for _, ev := range e.holdEvents(t, "a", "h") {
						if ev.ID == id {
							return ev.Type
						}
					}
					return ""
				}
				o, err := e.HoldOutcome(e.ctx, "a", "h", since)
				if err != nil || o.State != c.want || eventOf(o.EventID) != c.event {
					t.Fatalf("from the record: %+v %v; want %q with its %q event", o, err, c.want, c.event)
				}
				if o.Booked() != (c.want == billing.HoldSettled || c.want == billing.HoldReleased) {
					t.Fatalf("Booked() = %v for %q", o.Booked(), c.want)
				}
				if err := e.redis.Client.Del(e.ctx, e.holdKey("a", "h")).Err(); err != nil {
					t.Fatal(err)
				}
				for _, from := range []time.Time{since, {}} {
					o, err = e.HoldOutcome(e.ctx, "a", "h", from)
					if err != nil || o.State != c.wantLedger || eventOf(o.EventID) != c.eventLedger {
						t.Fatalf("from the ledger since %v: %+v %v; want %q with its %q event", from, o, err, c.wantLedger, c.eventLedger)
					}
				}
				// Searched from after the events, the ledger knows nothing.
				if o, err := e.HoldOutcome(e.ctx, "a", "h", time.Now().Add(time.Hour)); err != nil || o != (billing.HoldOutcome{}) {
					t.Fatalf("since after the events: %+v %v", o, err)
				}
			})
		})
	}
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		if o, err := e.HoldOutcome(e.ctx, "a", "never", time.Time{}); err != nil || o.State != billing.HoldUnknown || o.Booked() {
			t.Fatalf("a hold never reserved: %+v %v", o, err)
		}
		if o, err := e.HoldOutcome(e.ctx, "nobody", "h", time.Time{}); err != nil || o.State != billing.HoldUnknown {
			t.Fatalf("an account that does not exist: %+v %v", o, err)
		}
		if _, err := e.HoldOutcome(e.ctx, "a", "bad id", time.Time{}); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("a malformed hold id: %v", err)
		}
		if err := e.redis.Client.HSet(e.ctx, e.holdKey("a", "odd"), "state", "lost").Err(); err != nil {
			t.Fatal(err)
		}
		var m *malformedError
		if _, err := e.HoldOutcome(e.ctx, "a", "odd", time.Time{}); !errors.As(err, &m) {
			t.Fatalf("a record in an unknown state: %v", err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
