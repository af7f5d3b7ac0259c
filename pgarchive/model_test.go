package pgarchive

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
)

// The model: any interleaving of appends, shipping rounds (one shipper or
// two at once, any batch size), crashes (the shipping process dying
// mid-batch, or between its commit and its trim) and the clock moving past
// the retention leaves the read side — the archive up to its head, then the
// store's tail after it — returning every event ever booked exactly once, in
// order; the archive is always a prefix of the ledger; the store never keeps a
// shipped event past the retention once a round has run; the audit passes.
//
// Each check costs real Redis and PostgreSQL round trips: it runs 25 checks
// unless -rapid.checks says otherwise (CI: -rapid.checks=100, about a minute).
func TestModelShipTrimCrash(t *testing.T) {
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if !explicit {
		if err := flag.Set("rapid.checks", "25"); err != nil {
			t.Fatal(err)
		}
		defer flag.Set("rapid.checks", "100")
	}
	e := newShipEnv(t)
	const retention = 5 * time.Minute
	iteration := 0
	rapid.Check(t, func(rt *rapid.T) {
		iteration++
		id := fmt.Sprintf("m%d", iteration)
		var want []billing.Event // every event booked, as booked
		record := func() {
			for _, ev := range e.storeEvents(rt, id) {
				if len(want) == 0 || billing.CompareEventIDs(ev.ID, want[len(want)-1].ID) > 0 {
					want = append(want, ev)
				}
			}
		}
		e.book(rt, id, 1)
		record()
		batch := rapid.IntRange(1, 9).Draw(rt, "batch")
		opts := ShipperOptions{BatchSize: batch, MaxBatchesPerAccount: rapid.IntRange(1, 4).Draw(rt, "visit"), Retention: retention, Now: e.clock.Now}
		ship := NewShipper(e.arch, e.store, opts)
		crashing := &crashingSource{Store: e.store}
		crashShip := NewShipper(e.arch, crashing, opts)
		shipOnce := func() {
			if _, err := ship.ShipAccount(e.ctx, id); err != nil {
				rt.Fatalf("ship: %v", err)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				e.book(rt, id, rapid.IntRange(1, 12).Draw(rt, "n"))
				record()
			},
			"ship": func(rt *rapid.T) { shipOnce() },
			"two shippers at once": func(rt *rapid.T) {
				var wg sync.WaitGroup
				errs := make([]error, 2)
				for i := range errs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, errs[i] = ship.ShipAccount(e.ctx, id)
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						rt.Fatalf("concurrent ship: %v", err)
					}
				}
			},
			"crash mid-batch": func(rt *rapid.T) {
				ctx, cancel := context.WithCancel(e.ctx)
				crashing.cancel = cancel
				_, _ = crashShip.ShipAccount(ctx, id)
				crashing.cancel = nil
			},
			"crash before the trim": func(rt *rapid.T) {
				crashing.failTrim.Store(true)
				_, _ = crashShip.ShipAccount(e.ctx, id)
				crashing.failTrim.Store(false)
			},
			"time passes": func(rt *rapid.T) {
				e.clock.Advance(time.Duration(rapid.IntRange(1, 10).Draw(rt, "minutes")) * time.Minute)
			},
			"": func(rt *rapid.T) {
				checkExactlyOnce(rt, e, id, want)
			},
		})
		// Drain: ship until caught up; then everything is archived, and the
		// store keeps no shipped event past the retention but its newest. A
		// crashed shipper's lock lasts until PostgreSQL sees its connection
		// close (Busy meanwhile).
		for i := 0; i < 1000; i++ {
			r, err := ship.ShipAccount(e.ctx, id)
			if err != nil {
				rt.Fatal(err)
			}
			if r.Busy {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if !r.More {
				break
			}
		}
		checkExactlyOnce(rt, e, id, want)
		if got := allArchived(rt, e.arch, id); len(got) != len(want) {
			rt.Fatalf("after draining the archive holds %d of %d events", len(got), len(want))
		}
		tail := e.storeEvents(rt, id)
		cutoff := e.clock.Now().Add(-retention)
		for _, ev := range tail[:len(tail)-1] {
			if ev.At.Before(cutoff) {
				rt.Fatalf("the store keeps event %s of %s past the retention (cut-off %s)", ev.ID, ev.At, cutoff)
			}
		}
		if r, err := billing.AuditAccount(e.ctx, e.store, id); err != nil || !r.OK() {
			rt.Fatalf("audit: %+v, %v", r, err)
		}
	})
}
