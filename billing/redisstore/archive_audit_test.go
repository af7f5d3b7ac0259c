package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// The audit over archive and tail: it replays from the first event when the
// archive holds every event trimmed, from the checkpoint when it does not,
// and an archive that is not the ledger's whole prefix (events trimmed before
// it was shipped, or an event missing) fails it.
func TestAuditOverArchiveAndTail(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		cases := []struct {
			name string
			// archive picks the events the archive holds, of the 7 booked;
			// trimUpTo is the index the store is trimmed up to.
			archive        func(evs []billing.Event) []billing.Event
			trimUpTo       int
			ok             bool
			fromCheckpoint bool
		}{
			{"archive has all trimmed", func(evs []billing.Event) []billing.Event { return evs[:5] }, 4, true, false},
			{"archive has everything", func(evs []billing.Event) []billing.Event { return evs }, 5, true, false},
			{"archive behind the trim", func(evs []billing.Event) []billing.Event { return evs[:2] }, 4, true, true},
			{"archive shipped after a trim", func(evs []billing.Event) []billing.Event { return evs[3:6] }, 2, false, false},
			{"archive misses an event", func(evs []billing.Event) []billing.Event {
				return append(append([]billing.Event(nil), evs[:2]...), evs[3:6]...)
			}, 4, false, false},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := "aa" + string(rune('a'+i))
				evs := trimHistory(t, e, id, 6)
				arch := billingtest.NewArchive()
				arch.Append(id, c.archive(evs)...)
				e.trim(t, id, evs[c.trimUpTo].ID, e.clock.Now().Add(time.Hour))
				r, err := billing.AuditAccount(e.ctx, billing.NewArchivedLedger(e.Store, arch), id)
				if err != nil {
					t.Fatal(err)
				}
				if r.OK() != c.ok {
					t.Fatalf("audit ok %v, want %v: %+v", r.OK(), c.ok, r.Problems)
				}
				if (r.Checkpoint != "") != c.fromCheckpoint {
					t.Errorf("audit from checkpoint %q; want from a checkpoint: %v", r.Checkpoint, c.fromCheckpoint)
				}
				if c.ok && !c.fromCheckpoint && r.Events != len(evs) {
					t.Errorf("audit replayed %d events, want all %d", r.Events, len(evs))
				}
			})
		}
	})
}

// Past a trim, the store cannot tell whether a hold whose record ran out was
// booked (HoldTrimmed); the archive behind it can, and a hold it has no event
// of was never booked.
func TestHoldOutcomeFromTheArchive(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		evs := trimHistory(t, e, "ho", 3)
		arch := billingtest.NewArchive()
		arch.Append("ho", evs...)
		e.trim(t, "ho", evs[len(evs)-1].ID, e.clock.Now().Add(time.Hour))
		if err := e.redis.Client.Del(e.ctx, e.holdKey("ho", "h0"), e.holdKey("ho", "lost")).Err(); err != nil {
			t.Fatal(err) // the records ran out (HoldRecordRetention)
		}
		since := evs[1].At.Add(-time.Minute)
		if o, err := e.HoldOutcome(e.ctx, "ho", "h0", since); err != nil || o.State != billing.HoldTrimmed {
			t.Fatalf("the store alone: %+v %v, want trimmed", o, err)
		}
		reads := billing.NewArchivedLedger(e.Store, arch)
		if o, err := reads.HoldOutcome(e.ctx, "ho", "h0", since); err != nil || o.State != billing.HoldSettled || o.EventID != evs[1].ID {
			t.Errorf("with the archive: %+v %v, want settled by %s", o, err, evs[1].ID)
		}
		if o, err := reads.HoldOutcome(e.ctx, "ho", "lost", since); err != nil || o.State != billing.HoldUnknown {
			t.Errorf("a hold never booked: %+v %v, want unknown", o, err)
		}
	})
}

// An account id the store cannot hold gets the store's own answer through the
// composite, before the archive is asked anything.
func TestArchivedLedgerBadAccountID(t *testing.T) {
	e := newEnv(t, testredis.Memory(t))
	arch := billingtest.NewArchive()
	arch.Err = errors.New("the archive must not be asked")
	reads := billing.NewArchivedLedger(e.Store, arch)
	for _, id := range []string{"", "a{b}", "has space"} {
		_, err1 := reads.Events(e.ctx, id, "", 10)
		_, err2 := reads.EventsBefore(e.ctx, id, "", 10)
		if !errors.Is(err1, billing.ErrAccountNotFound) || !errors.Is(err2, billing.ErrAccountNotFound) {
			t.Errorf("account %q: %v, %v; want the store's ErrAccountNotFound", id, err1, err2)
		}
	}
}
