package redisstore

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
)

// Readers paging while a shipper ships and trims under them, for real: every
// walk, either way, is a prefix of the ledger that holds at least every event
// booked before the walk began, each event once, in order.
func TestArchivedLedgerConcurrentShipAndTrim(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const id, requests = "ac", 300
		e.account(t, id, "50.00")
		arch := billingtest.NewArchive()
		reads := billing.NewArchivedLedger(e.Store, arch)

		var mu sync.Mutex
		booked := []string{}
		bookedNow := func() []string {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(booked)
		}
		done := make(chan struct{})
		writerErr := make(chan error, 1)
		go func() {
			defer close(done)
			marked := ""
			last := ""
			for i := range requests {
				hold := fmt.Sprintf("h%d", i)
				if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: usd("0.10"), Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL}); err != nil {
					writerErr <- err
					return
				}
				if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: usd("0.01")}); err != nil {
					writerErr <- err
					return
				}
				p, err := e.Events(e.ctx, id, last, 100)
				if err != nil {
					writerErr <- err
					return
				}
				mu.Lock()
				for _, ev := range p.Events {
					booked = append(booked, ev.ID)
					last = ev.ID
				}
				mu.Unlock()
				if i%3 == 0 { // ship what is new, then trim up to the archive's head
					p, err := e.Events(e.ctx, id, marked, 100)
					if err != nil {
						writerErr <- err
						return
					}
					arch.Append(id, p.Events...)
					if n := len(p.Events); n > 0 {
						marked = p.Events[n-1].ID
						if _, err := e.TrimLedger(e.ctx, id, marked, e.clock.Now().Add(time.Hour)); err != nil {
							writerErr <- err
							return
						}
					}
				}
			}
		}()

		walks := 0
		for running := true; running; walks++ {
			select {
			case <-done:
				running = false // one more walk of each kind over the final ledger
			default:
			}
			before := bookedNow()
			limit := 1 + walks%7
			var forward []string
			for after := ""; ; {
				p, err := reads.Events(e.ctx, id, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				forward = append(forward, ids(p.Events)...)
				if p.Next == "" {
					break
				}
				after = p.Next
			}
			var backward []string
			for cursor := ""; ; {
				p, err := reads.EventsBefore(e.ctx, id, cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				backward = append(backward, ids(p.Events)...)
				if p.Next == "" {
					break
				}
				cursor = p.Next
			}
			slices.Reverse(backward)
			after := bookedNow()
			for name, walk := range map[string][]string{"forward": forward, "newest first": backward} {
				// The writer records events after booking them: a walk may
				// see a few it has not recorded yet, never fewer than before.
				if len(walk) < len(before) || !slices.Equal(walk[:len(before)], before) {
					t.Fatalf("%s walk of %d: %d events, not a prefix holding the %d booked before it", name, limit, len(walk), len(before))
				}
				if n := min(len(walk), len(after)); !slices.Equal(walk[:n], after[:n]) {
					t.Fatalf("%s walk of %d strays from the ledger", name, limit)
				}
			}
		}
		select {
		case err := <-writerErr:
			t.Fatal(err)
		default:
		}
		final := bookedNow()
		if len(final) != requests+1 || len(arch.Log(id)) == 0 {
			t.Fatalf("booked %d events, archived %d", len(final), len(arch.Log(id)))
		}
		t.Logf("%d walks each way while %d requests were booked, shipped and trimmed", walks, requests)
	})
}
