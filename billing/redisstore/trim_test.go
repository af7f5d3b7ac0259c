package redisstore

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// trimHistory books a top-up at the clock's time, then n requests a minute
// apart (reserve and settle: one usage event each), and returns the events.
func trimHistory(t testing.TB, e *env, id string, n int) []billing.Event {
	t.Helper()
	e.account(t, id, "50.00")
	for i := 0; i < n; i++ {
		e.clock.Advance(time.Minute)
		hid := fmt.Sprintf("h%d", i)
		e.reserve(t, id, hid, usd("0.10"), 0)
		e.settle(t, id, hid, usd("0.07"))
	}
	return e.events(t, id)
}

func (e *env) trim(t testing.TB, id, upTo string, before time.Time) billing.TrimResult {
	t.Helper()
	r, err := e.TrimLedger(e.ctx, id, upTo, before)
	if err != nil {
		t.Fatalf("trim %s up to %q before %s: %v", id, upTo, before, err)
	}
	return r
}

func (e *env) streamLen(t testing.TB, id string) int64 {
	t.Helper()
	n, err := e.redis.Client.XLen(e.ctx, e.ledgerKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// mustAudit audits id and fails t on any problem.
func mustAudit(t testing.TB, e *env, id string) billing.AuditReport {
	t.Helper()
	r := audit(t, e, id)
	if !r.OK() {
		t.Fatalf("audit of %s from checkpoint %q: %+v", id, r.Checkpoint, r.Problems)
	}
	return r
}

// The trim's boundaries: up_to and before each bound it, the newest event is
// always kept, a trim repeated removes nothing, and after each the audit passes
// from the checkpoint, which stands at the last event removed.
func TestTrimLedgerBoundaries(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const n = 5 // events: topup, then n usages
		cases := []struct {
			name string
			// upTo and before pick from the history: an event's index (-1: "+"),
			// and the index of the first event not old enough (len: none).
			upTo, before int
			removed      int64
		}{
			{"up_to before before", 2, n + 1, 3},
			{"before before up_to", 5, 3, 3},
			{"no bound but before", -1, 4, 4},
			{"everything old: the newest stays", -1, n + 1, n},
			{"before the first event", -1, 0, 0},
			{"up_to the first event", 0, n + 1, 1},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := fmt.Sprintf("tb%d", i)
				evs := trimHistory(t, e, id, n)
				upTo := "+"
				if c.upTo >= 0 {
					upTo = evs[c.upTo].ID
				}
				before := e.clock.Now().Add(time.Hour)
				if c.before < len(evs) {
					before = evs[c.before].At
				}
				r := e.trim(t, id, upTo, before)
				if r.Removed != c.removed || r.TrimmedTotal != c.removed {
					t.Fatalf("removed %d (%d in all), want %d", r.Removed, r.TrimmedTotal, c.removed)
				}
				want := ""
				if c.removed > 0 {
					want = evs[c.removed-1].ID
				}
				if r.CheckpointID != want {
					t.Errorf("checkpoint at %q, want %q", r.CheckpointID, want)
				}
				if got := e.streamLen(t, id); got != int64(len(evs))-c.removed {
					t.Errorf("XLEN %d, want %d", got, int64(len(evs))-c.removed)
				}
				left := e.events(t, id)
				if len(left) == 0 || left[len(left)-1].ID != evs[len(evs)-1].ID {
					t.Fatalf("the newest event is gone: %v", left)
				}
				rep := mustAudit(t, e, id)
				if rep.Checkpoint != want || rep.Trimmed != c.removed || rep.Events != len(left) {
					t.Errorf("audit report %+v; want checkpoint %q, %d trimmed, %d replayed", rep, want, c.removed, len(left))
				}
				again := e.trim(t, id, upTo, before)
				if again.Removed != 0 || again.CheckpointID != want || again.TrimmedTotal != c.removed {
					t.Errorf("second trim: %+v, want nothing more removed", again)
				}
				a := e.get(t, id)
				if c.removed == 0 {
					if a.Checkpoint != nil {
						t.Errorf("no event removed, but a checkpoint: %+v", a.Checkpoint)
					}
					return
				}
				cp := a.Checkpoint
				last := evs[c.removed-1]
				if cp == nil || cp.EventID != last.ID || cp.Credit != last.CreditAfter || cp.Debt != last.DebtAfter || cp.Events != c.removed {
					t.Fatalf("checkpoint %+v; want the state after %+v", cp, last)
				}
				var usage money.Micros
				for _, ev := range evs[:c.removed] {
					if ev.Type == billing.EventUsage {
						usage += ev.Amount
					}
				}
				if cp.Totals.Granted != usd("50.00") || cp.Totals.Usage != usage || cp.Grants != 1 {
					t.Errorf("checkpoint totals %+v (%d grants); want granted 50.00, usage %s, 1 grant", cp.Totals, cp.Grants, usage)
				}
			})
		}
	})
}

// A checkpoint, then more events, then another trim: the checkpoint moves on,
// and the audit passes from each; a cursor older than the head continues at it.
func TestTrimLedgerAgainAfterMoreEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		evs := trimHistory(t, e, "ta", 4)
		first := e.trim(t, "ta", "+", e.clock.Now())
		if first.Removed != 4 {
			t.Fatalf("first trim removed %d, want 4", first.Removed)
		}
		mustAudit(t, e, "ta")
		e.clock.Advance(time.Minute)
		e.topUp(t, "ta", "10.00")
		for i := 0; i < 3; i++ {
			e.clock.Advance(time.Minute)
			hid := fmt.Sprintf("late%d", i)
			e.reserve(t, "ta", hid, usd("0.10"), 0)
			e.settle(t, "ta", hid, usd("0.05"))
		}
		mustAudit(t, e, "ta")
		page, err := e.Events(e.ctx, "ta", evs[0].ID, 2)
		if err != nil || len(page.Events) == 0 || page.Events[0].ID != evs[4].ID {
			t.Fatalf("page after a trimmed cursor: %+v %v; want it to start at the head %s", page, err, evs[4].ID)
		}
		second := e.trim(t, "ta", "+", e.clock.Now().Add(-90*time.Second))
		if second.Removed != 3 || second.TrimmedTotal != 7 {
			t.Fatalf("second trim: %+v, want 3 removed (the old head, the top-up, a usage), 7 in all", second)
		}
		r := mustAudit(t, e, "ta")
		a := e.get(t, "ta")
		if a.Checkpoint.Grants != 2 || a.Checkpoint.Totals.Granted != usd("60.00") || r.Events != 2 {
			t.Errorf("checkpoint %+v, audit %+v", a.Checkpoint, r)
		}
	})
}

// The audit from a checkpoint still catches what it did from the first event:
// a checkpoint that does not conserve, a stored total that the tail does not
// replay to, and a grant whose event is neither in the tail nor counted.
func TestAuditFromCheckpointFailsOnTampering(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		for i, c := range []struct {
			name, key, field, value, check string
		}{
			{"checkpoint credit", "checkpoint", "credit", "1", "state"},
			{"checkpoint grants", "checkpoint", "grants", "2", "grants"},
			{"checkpoint usage", "checkpoint", "usage", "0", "state"},
			{"stored usage", "acct", "usage", "1", "state"},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := fmt.Sprintf("tt%d", i)
				trimHistory(t, e, id, 3)
				e.trim(t, id, "+", e.clock.Now())
				mustAudit(t, e, id)
				key := e.checkpointKey(id)
				if c.key == "acct" {
					key = e.acctKey(id)
				}
				if err := e.redis.Client.HSet(e.ctx, key, c.field, c.value).Err(); err != nil {
					t.Fatal(err)
				}
				r := audit(t, e, id)
				found := false
				for _, p := range r.Problems {
					found = found || p.Check == c.check
				}
				if !found {
					t.Errorf("after setting %s %s to %s, problems %+v; want one of check %q", c.key, c.field, c.value, r.Problems, c.check)
				}
			})
		}
	})
}

// A hold whose record is gone and whose events were trimmed is HoldTrimmed, not
// HoldUnknown: nothing can tell whether it was booked.
func TestHoldOutcomeAfterTrim(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		evs := trimHistory(t, e, "th", 3)
		reservedAt := evs[1].At // h0's usage
		if o, err := e.HoldOutcome(e.ctx, "th", "h0", reservedAt.Add(-time.Minute)); err != nil || o.State != billing.HoldSettled {
			t.Fatalf("before the trim: %+v %v", o, err)
		}
		e.trim(t, "th", "+", e.clock.Now())
		if err := e.redis.Client.Del(e.ctx, e.holdKey("th", "h0"), e.holdKey("th", "h2")).Err(); err != nil {
			t.Fatal(err) // the records ran out (HoldRecordRetention)
		}
		for _, c := range []struct {
			hold  string
			since time.Time
			want  billing.HoldState
		}{
			{"h0", reservedAt.Add(-time.Minute), billing.HoldTrimmed},
			{"h0", time.Time{}, billing.HoldTrimmed},
			{"h1", reservedAt, billing.HoldSettled},                  // its record answers
			{"h2", evs[3].At.Add(-time.Minute), billing.HoldSettled}, // the newest event is kept
			{"never", e.clock.Now().Add(time.Hour), billing.HoldUnknown},
		} {
			o, err := e.HoldOutcome(e.ctx, "th", c.hold, c.since)
			if err != nil || o.State != c.want {
				t.Errorf("%s since %s: %+v %v, want %q", c.hold, c.since, o, err, c.want)
			}
		}
	})
}

func TestTrimLedgerRefusals(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		if _, err := e.TrimLedger(e.ctx, "nobody", "+", e.clock.Now()); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("trim of a missing account: %v", err)
		}
		e.account(t, "tr")
		if _, err := e.TrimLedger(e.ctx, "tr", "yesterday", e.clock.Now()); err == nil {
			t.Error("trim up to a malformed id: no error")
		}
		if r := e.trim(t, "tr", "", e.clock.Now().Add(time.Hour)); r.Removed != 0 || r.CheckpointID != "" {
			t.Errorf("trim of an empty ledger: %+v", r)
		}
	})
}

// A long random history (every kind of event: take-backs of payments credited
// long before, debt repaid, expiries, recharges) trimmed in steps at random
// event ids: after each the audit passes from the checkpoint, and the stored
// state still replays from it.
func TestAuditFromCheckpointsOnLongRandomHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		for seed := uint64(1); seed <= 2; seed++ {
			id := fmt.Sprintf("thist%d", seed)
			randomHistory(t, e, id, 1500, seed)
			evs := e.events(t, id)
			rng := rand.New(rand.NewPCG(seed, 7))
			var trimmed int64
			for k := 0; k < len(evs)-1; k += 1 + rng.IntN(len(evs)/8) {
				r := e.trim(t, id, evs[k].ID, e.clock.Now().Add(time.Hour))
				trimmed += r.Removed
				if r.TrimmedTotal != trimmed || r.TrimmedTotal != int64(k+1) || r.CheckpointID != evs[k].ID {
					t.Fatalf("seed %d: trim up to event %d: %+v", seed, k, r)
				}
				checkConservation(t, e, id)
				if rep := mustAudit(t, e, id); rep.Events+int(rep.Trimmed) != len(evs) {
					t.Fatalf("seed %d: the audit replayed %d events after %d trimmed, of %d", seed, rep.Events, rep.Trimmed, len(evs))
				}
			}
			if cp := e.get(t, id).Checkpoint; cp == nil || len(cp.Credited) > 20 {
				t.Errorf("seed %d: checkpoint %+v; want one with at most the live paid grants", seed, cp)
			}
			t.Logf("seed %d: %d of %d events trimmed in steps, the audit passing after each", seed, trimmed, len(evs))
		}
	})
}
