package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// faultyLedger is a Ledger that fails on cue: down makes a call fail as an
// outage before it reaches the store; lose makes a settle or release reach the
// store and then answer an outage, as when Redis applied a script and the reply
// was lost.
type faultyLedger struct {
	Ledger
	down, lose func() bool
}

func (f *faultyLedger) isDown() bool { return f.down != nil && f.down() }

func (f *faultyLedger) outage(err error) error {
	if err == nil && f.lose != nil && f.lose() {
		return fmt.Errorf("%w: i/o timeout (the reply was lost)", billing.ErrUnavailable)
	}
	return err
}

func (f *faultyLedger) Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	if f.isDown() {
		return billing.Settlement{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
	}
	st, err := f.Ledger.Settle(ctx, s)
	return st, f.outage(err)
}

func (f *faultyLedger) Release(ctx context.Context, account, hold string, u billing.Usage) (billing.Settlement, error) {
	if f.isDown() {
		return billing.Settlement{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
	}
	st, err := f.Ledger.Release(ctx, account, hold, u)
	return st, f.outage(err)
}

func (f *faultyLedger) HoldOutcome(ctx context.Context, account, hold string, since time.Time) (billing.HoldOutcome, error) {
	if f.isDown() {
		return billing.HoldOutcome{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
	}
	return f.Ledger.HoldOutcome(ctx, account, hold, since)
}

// fataler is what these helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// pendingHolds are the holds with a spooled settlement not yet applied.
func pendingHolds(t fataler, s *Spool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	segs, err := s.segments()
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range segs {
		recs, _, err := s.readSegment(seq)
		if err != nil {
			t.Fatal(err)
		}
		done, err := s.readDone(seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if !done[r.key()] {
				out[r.P.Settle.HoldID] = true
			}
		}
	}
	return out
}

// redisSnapshot is the dump of an account's keys at one moment, to put back
// later: a Redis restored from an older state.
type redisSnapshot map[string]struct {
	value string
	ttl   time.Duration
}

func takeSnapshot(t fataler, c redis.UniversalClient, keys []string) redisSnapshot {
	t.Helper()
	ctx := context.Background()
	snap := redisSnapshot{}
	for _, k := range keys {
		v, err := c.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 0 {
			ttl = 0 // no expiry
		}
		snap[k] = struct {
			value string
			ttl   time.Duration
		}{v, ttl}
	}
	return snap
}

func (snap redisSnapshot) restore(t fataler, c redis.UniversalClient, keys []string) {
	t.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if err := c.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
		if d, ok := snap[k]; ok {
			if err := c.RestoreReplace(ctx, k, d.ttl, d.value).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReplayAgainstTheStoreModel checks issue 18's spool-replay window on the
// real store: whatever the interleaving of requests settled directly, spooled
// (the store refused) or spooled after the store applied them (the reply was
// lost); hold records lost (deleted, as eviction or a restore lose them);
// Redis restored to an older snapshot; time passing (so holds expire and
// spooled settlements age past any window); replays that fail or lose replies;
// and crashes of the spool — no hold is ever debited twice (the audit, after
// every step), and once the store is healthy every spooled settlement is booked
// exactly once. The one exception is a settlement the spool had already
// applied and dropped when a restore took the store back to before it: the
// store lost it, not the spool (issue 14's archive audit names such accounts).
func TestReplayAgainstTheStoreModel(t *testing.T) {
	r := testredis.New(t)
	ctx := context.Background()
	policy := billing.Policy{MinPurchase: 1, CreditTTL: 365 * 24 * time.Hour, Tiers: map[string]billing.Tier{"t": {}}}
	const holdTTL = 15 * time.Minute
	var seq, checks atomic.Int64
	defer func() { t.Logf("%d random histories: never a double debit, never a lost settlement", checks.Load()) }()
	rapid.Check(t, func(rt *rapid.T) {
		acct := fmt.Sprintf("m%d", seq.Add(1))
		clock := &testClock{t: time.Now()}
		store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: clock.Now})
		if err != nil {
			rt.Fatal(err)
		}
		if _, err := store.CreateAccount(ctx, acct, "t"); err != nil {
			rt.Fatal(err)
		}
		if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: acct, GrantID: "g", Amount: money.MustParse("1000.00")}); err != nil {
			rt.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "spool-replay-model-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		sp, err := Open(dir, Options{Now: clock.Now})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { sp.Close() }()

		base := r.Prefix + "{acct:" + acct + "}:"
		keys := []string{base + "acct", base + "grants", base + "live", base + "holds", base + "holdamt", base + "ledger"}
		type hold struct {
			cost    money.Micros
			release bool
			erased  bool // a restore took back how it ended after the spool had dropped it
		}
		holds := map[string]*hold{}
		var order []string
		var snap redisSnapshot
		ledger := &faultyLedger{Ledger: store}

		// ends counts, per hold, the events that ended it in the ledger as it is now.
		ends := func() map[string]map[billing.EventType]int {
			out := map[string]map[billing.EventType]int{}
			for after := ""; ; {
				page, err := store.Events(ctx, acct, after, 1000)
				if err != nil {
					rt.Fatal(err)
				}
				for _, ev := range page.Events {
					if ev.HoldID == "" {
						continue
					}
					if out[ev.HoldID] == nil {
						out[ev.HoldID] = map[billing.EventType]int{}
					}
					out[ev.HoldID][ev.Type]++
					if ev.Type == billing.EventUsage && ev.Cost != holds[ev.HoldID].cost {
						rt.Fatalf("hold %s charged %s, its settlement says %s", ev.HoldID, ev.Cost, holds[ev.HoldID].cost)
					}
				}
				if after = page.Next; after == "" {
					return out
				}
			}
		}
		booked := func(e map[billing.EventType]int) bool { return e[billing.EventUsage]+e[billing.EventRelease] > 0 }
		// ended: booked, or ended uncharged by a sweep (a released hold's spooled
		// release then books nothing).
		ended := func(e map[billing.EventType]int) bool { return booked(e) || e[billing.EventHoldExpired] > 0 }
		check := func() {
			rep, err := billing.AuditAccount(ctx, store, acct)
			if err != nil {
				rt.Fatal(err)
			}
			if !rep.OK() {
				rt.Fatalf("audit: %+v", rep.Problems) // a hold settled twice, or ended two ways
			}
			for hid, e := range ends() {
				if e[billing.EventUsage] > 1 || e[billing.EventRelease] > 1 || e[billing.EventUsage]+e[billing.EventRelease] > 1 {
					rt.Fatalf("hold %s ended with %v", hid, e)
				}
				if holds[hid].release && e[billing.EventUsage] > 0 {
					rt.Fatalf("hold %s was released but is charged", hid)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"serve": func(rt *rapid.T) {
				hid := fmt.Sprintf("h%d", len(order))
				res, err := store.Reserve(ctx, billing.ReserveRequest{Account: acct, HoldID: hid, Estimate: money.MustParse("1.00"), TTL: holdTTL,
					RequestID: hid, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions"})
				if err != nil || !res.Admitted {
					rt.Fatalf("reserve %s: %+v %v", hid, res, err)
				}
				h := &hold{cost: money.Micros(rapid.Int64Range(0, 1_000_000).Draw(rt, "cost")), release: rapid.Bool().Draw(rt, "release")}
				if h.release {
					h.cost = 0
				}
				holds[hid] = h
				order = append(order, hid)
				p := billing.PendingSettlement{Release: h.release, At: time.Now(), Settle: billing.SettleRequest{
					Account: acct, HoldID: hid, Cost: h.cost,
					Usage: billing.Usage{RequestID: hid, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions", TokenSource: billing.TokenSourceUpstream},
				}}
				// 0: the store takes it; 1: the store refuses it (spooled); 2: the
				// store applies it and the reply is lost (spooled too).
				how := rapid.IntRange(0, 2).Draw(rt, "outcome")
				if how != 1 {
					var err error
					if h.release {
						_, err = store.Release(ctx, acct, hid, p.Settle.Usage)
					} else {
						_, err = store.Settle(ctx, p.Settle)
					}
					if err != nil {
						rt.Fatal(err)
					}
				}
				if how != 0 {
					if err := sp.Save(p); err != nil {
						rt.Fatal(err)
					}
				}
			},
			"lose a hold record": func(rt *rapid.T) {
				if len(order) == 0 {
					rt.Skip("no hold yet")
				}
				hid := rapid.SampledFrom(order).Draw(rt, "hold")
				if err := r.Client.Del(ctx, base+"hold:"+hid).Err(); err != nil {
					rt.Fatal(err)
				}
			},
			"snapshot": func(rt *rapid.T) {
				snap = takeSnapshot(rt, r.Client, append(keys, holdKeys(base, order)...))
			},
			"restore the snapshot": func(rt *rapid.T) {
				if snap == nil {
					rt.Skip("no snapshot yet")
				}
				before, pending := ends(), pendingHolds(rt, sp)
				snap.restore(rt, r.Client, append(keys, holdKeys(base, order)...))
				after := ends()
				for hid := range before {
					lost := booked(before[hid]) && !booked(after[hid]) || ended(before[hid]) && !ended(after[hid])
					if lost && !pending[hid] {
						holds[hid].erased = true
					}
				}
			},
			"time passes": func(rt *rapid.T) {
				clock.Advance(time.Duration(rapid.IntRange(1, 180).Draw(rt, "minutes")) * time.Minute)
			},
			"replay": func(rt *rapid.T) {
				failAt := rapid.IntRange(0, 8).Draw(rt, "failAt") // 0: healthy
				lose := rapid.Bool().Draw(rt, "lose the reply")
				calls := 0
				ledger.down = func() bool { calls++; return failAt > 0 && calls == failAt && !lose }
				ledger.lose = func() bool { return failAt > 0 && calls == failAt && lose }
				_, _ = sp.Replay(ctx, ledger)
				ledger.down, ledger.lose = nil, nil
			},
			"crash and restart": func(rt *rapid.T) {
				sp.Close()
				if sp, err = Open(dir, Options{Now: clock.Now}); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) { check() },
		})
		if _, err := sp.Replay(ctx, ledger); err != nil || sp.Depth() != 0 {
			rt.Fatalf("final replay: %v, depth %d", err, sp.Depth())
		}
		check()
		final := ends()
		for _, hid := range order {
			h, e := holds[hid], final[hid]
			switch {
			case h.erased:
				if booked(e) {
					rt.Fatalf("hold %s erased by a restore is booked again: %v", hid, e)
				}
			case h.release:
				if e[billing.EventRelease] != 1 && e[billing.EventHoldExpired] != 1 {
					rt.Fatalf("released hold %s ended with %v", hid, e)
				}
			case e[billing.EventUsage] != 1:
				rt.Fatalf("settled hold %s ended with %v", hid, e)
			}
		}
		checks.Add(1)
	})
}

func holdKeys(base string, holds []string) []string {
	out := make([]string, len(holds))
	for i, h := range holds {
		out[i] = base + "hold:" + h
	}
	return out
}
