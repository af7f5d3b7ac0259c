package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// fakeLedger is a billing ledger reduced to what a replay touches, modelling the
// Redis store: settle and release are idempotent by hold id for `retention` after
// they apply, then forgotten (as redisstore's hold records expire), and every
// booking appends an event whose id is "<ms>-<seq>" like a Redis stream id.
// Outages are injected through its function fields.
type fakeLedger struct {
	mu        sync.Mutex
	now       func() time.Time
	retention time.Duration
	records   map[string]time.Time // hold id → when it was booked
	booked    map[string]int       // hold id → times it was booked (must stay ≤ 1)
	cost      map[string]money.Micros
	settles   map[string]billing.SettleRequest // hold id → the settle that booked it
	releases  map[string]billing.Usage         // hold id → the usage of the release that booked it
	events    []billing.Event
	// down, when it returns true, makes the next call fail as an outage before
	// anything is applied.
	down func() bool
	// loseReply, when it returns true, applies the call but answers an outage, as
	// when Redis applied a script and the reply was lost.
	loseReply func() bool
	// refuse answers this error for an account (a permanent refusal).
	refuse map[string]error
	calls  int // settles and releases
	// outcomes counts HoldOutcome calls.
	outcomes int
}

func newFakeLedger(now func() time.Time) *fakeLedger {
	return &fakeLedger{now: now, retention: time.Hour, records: map[string]time.Time{}, booked: map[string]int{},
		cost: map[string]money.Micros{}, settles: map[string]billing.SettleRequest{}, releases: map[string]billing.Usage{},
		refuse: map[string]error{}}
}

func (f *fakeLedger) book(account, hold string, cost money.Micros, typ billing.EventType) (billing.Settlement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down != nil && f.down() {
		return billing.Settlement{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
	}
	if err := f.refuse[account]; err != nil {
		return billing.Settlement{}, err
	}
	if at, ok := f.records[hold]; ok && f.now().Sub(at) < f.retention {
		return billing.Settlement{Replayed: true, Cost: f.cost[hold]}, nil
	}
	f.records[hold] = f.now()
	f.booked[hold]++
	f.cost[hold] += cost
	f.events = append(f.events, billing.Event{
		ID: strconv.FormatInt(f.now().UnixMilli(), 10) + "-" + strconv.Itoa(len(f.events)), Type: typ, HoldID: hold, Amount: cost,
	})
	if f.loseReply != nil && f.loseReply() {
		return billing.Settlement{}, fmt.Errorf("%w: i/o timeout", billing.ErrUnavailable)
	}
	return billing.Settlement{Cost: cost}, nil
}

func (f *fakeLedger) Settle(_ context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	st, err := f.book(s.Account, s.HoldID, s.Cost, billing.EventUsage)
	if err == nil && !st.Replayed {
		f.mu.Lock()
		f.settles[s.HoldID] = s
		f.mu.Unlock()
	}
	return st, err
}

func (f *fakeLedger) Release(_ context.Context, account, hold string, u billing.Usage) (billing.Settlement, error) {
	st, err := f.book(account, hold, 0, billing.EventRelease)
	if err == nil && !st.Replayed {
		f.mu.Lock()
		f.releases[hold] = u
		f.mu.Unlock()
	}
	return st, err
}

// HoldOutcome answers like redisstore: from the hold's record while the fake
// remembers it, else from the events booked since since.
func (f *fakeLedger) HoldOutcome(_ context.Context, _, hold string, since time.Time) (billing.HoldOutcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes++
	if f.down != nil && f.down() {
		return billing.HoldOutcome{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
	}
	remembered := false
	if at, ok := f.records[hold]; ok && f.now().Sub(at) < f.retention {
		remembered = true
	}
	for _, ev := range f.events {
		ms, _, _ := strings.Cut(ev.ID, "-")
		at, _ := strconv.ParseInt(ms, 10, 64)
		if ev.HoldID != hold || (!remembered && at < since.UnixMilli()) {
			continue
		}
		state := billing.HoldSettled
		if ev.Type == billing.EventRelease {
			state = billing.HoldReleased
		}
		return billing.HoldOutcome{State: state, EventID: ev.ID}, nil
	}
	return billing.HoldOutcome{}, nil
}

func pending(hold string, cost money.Micros, at time.Time) billing.PendingSettlement {
	return billing.PendingSettlement{At: at, Settle: billing.SettleRequest{
		Account: "acme", HoldID: hold, Cost: cost,
		Usage: billing.Usage{RequestID: hold, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
			PromptTokens: 12, CompletionTokens: 34, TokenSource: billing.TokenSourceUpstream},
	}}
}

func open(t *testing.T, dir string, now func() time.Time) *Spool {
	t.Helper()
	s, err := Open(dir, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSaveSurvivesReopenAndReplaysOnce(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	s := open(t, dir, clock)
	for i := range 5 {
		if err := s.Save(pending(fmt.Sprintf("req_%d", i), money.Micros(100+i), now)); err != nil {
			t.Fatal(err)
		}
	}
	if rel := pending("req_rel", 0, now); true {
		rel.Release = true
		if err := s.Save(rel); err != nil {
			t.Fatal(err)
		}
	}
	if s.Depth() != 6 {
		t.Fatalf("depth %d, want 6", s.Depth())
	}
	// A crash: the process dies without Close. The lock dies with it; model that by
	// closing, which keeps everything on disk.
	s.Close()
	s = open(t, dir, clock)
	if s.Depth() != 6 {
		t.Fatalf("depth after reopen %d, want 6", s.Depth())
	}
	l := newFakeLedger(clock)
	res, err := s.Replay(context.Background(), l)
	if err != nil || res.Applied != 6 || res.Left != 0 || s.Depth() != 0 {
		t.Fatalf("replay %+v, %v; depth %d", res, err, s.Depth())
	}
	for i := range 5 {
		hold := fmt.Sprintf("req_%d", i)
		if l.booked[hold] != 1 || l.cost[hold] != money.Micros(100+i) {
			t.Fatalf("%s booked %d times for %s", hold, l.booked[hold], l.cost[hold])
		}
	}
	if l.booked["req_rel"] != 1 || l.events[len(l.events)-1].Type != billing.EventRelease {
		t.Fatalf("release not applied: %+v", l.events)
	}
	// Nothing is left on disk but the lock.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != lockName {
		t.Fatalf("left on disk: %v", entries)
	}
	// A second replay has nothing to do.
	if res, err := s.Replay(context.Background(), l); err != nil || res != (Result{}) || l.calls != 6 {
		t.Fatalf("second replay %+v %v, %d calls", res, err, l.calls)
	}
}

func TestReplayStopsWhileTheStoreIsDownAndResumes(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := open(t, t.TempDir(), clock)
	for i := range 4 {
		if err := s.Save(pending(fmt.Sprintf("req_%d", i), 10, now)); err != nil {
			t.Fatal(err)
		}
	}
	l := newFakeLedger(clock)
	calls := 0
	l.down = func() bool { calls++; return calls > 4 } // two apply (each a HoldOutcome and a Settle), then the store goes down
	res, err := s.Replay(context.Background(), l)
	if !errors.Is(err, billing.ErrUnavailable) || res.Applied != 2 || res.Left != 2 {
		t.Fatalf("replay %+v, %v", res, err)
	}
	// Settlements keep arriving while it is down.
	if err := s.Save(pending("req_late", 10, now)); err != nil {
		t.Fatal(err)
	}
	if s.Depth() != 3 {
		t.Fatalf("depth %d, want 3", s.Depth())
	}
	l.down = nil
	res, err = s.Replay(context.Background(), l)
	if err != nil || res.Applied != 3 || res.Left != 0 {
		t.Fatalf("replay after recovery %+v, %v", res, err)
	}
	for hold, n := range l.booked {
		if n != 1 {
			t.Fatalf("%s booked %d times", hold, n)
		}
	}
	if len(l.booked) != 5 {
		t.Fatalf("%d holds booked, want 5", len(l.booked))
	}
}

// A settlement the store applied but whose reply was lost stays spooled; the
// replay after that books nothing more, whether the store still has the hold's
// record (it answers a replay), has forgotten it with time, or lost it young (a
// Redis restore, a failover): the ledger is asked whatever the age.
func TestLostReplyIsNotBookedTwice(t *testing.T) {
	cases := []struct {
		name       string
		wait       time.Duration
		loseRecord bool
	}{
		{"a minute later", time.Minute, false},
		{"past the record retention", 3 * time.Hour, false},
		{"a minute later, the record lost", time.Minute, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := time.Now()
			clock := func() time.Time { return now }
			s := open(t, t.TempDir(), clock)
			if err := s.Save(pending("req_1", 500, now)); err != nil {
				t.Fatal(err)
			}
			l := newFakeLedger(clock)
			l.loseReply = func() bool { return true }
			if _, err := s.Replay(context.Background(), l); !errors.Is(err, billing.ErrUnavailable) {
				t.Fatalf("lost reply: %v", err)
			}
			l.loseReply = nil
			if c.loseRecord {
				delete(l.records, "req_1")
			}
			now = now.Add(c.wait)
			res, err := s.Replay(context.Background(), l)
			if err != nil || res.Replayed != 1 || res.Applied != 0 || l.booked["req_1"] != 1 {
				t.Fatalf("replay %+v %v; booked %d times", res, err, l.booked["req_1"])
			}
		})
	}
}

func TestPermanentRefusalIsSetAside(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := open(t, dir, clock)
	gone := pending("req_gone", 700, now)
	gone.Settle.Account = "deleted"
	for _, p := range []billing.PendingSettlement{pending("req_1", 1, now), gone, pending("req_2", 2, now)} {
		if err := s.Save(p); err != nil {
			t.Fatal(err)
		}
	}
	l := newFakeLedger(clock)
	l.refuse["deleted"] = fmt.Errorf("%w: %q", billing.ErrAccountNotFound, "deleted")
	res, err := s.Replay(context.Background(), l)
	if err != nil || res.Applied != 2 || res.Rejected != 1 || s.Depth() != 0 {
		t.Fatalf("replay %+v %v depth %d", res, err, s.Depth())
	}
	data, err := os.ReadFile(filepath.Join(dir, rejectedName))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := decode([]byte(strings.TrimSuffix(string(data), "\n")))
	if !ok || r.P.Settle.HoldID != "req_gone" || r.P.Settle.Cost != 700 || r.P.Settle.Usage.PromptTokens != 12 {
		t.Fatalf("rejected.log holds %q", data)
	}
}

// A write torn by a crash (no newline, or a bad checksum) was never acknowledged:
// it is skipped, and the records around it replay.
func TestTornLinesAreSkipped(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := open(t, dir, clock)
	if err := s.Save(pending("req_1", 1, now)); err != nil {
		t.Fatal(err)
	}
	seg := s.segPath(s.activeSeq)
	s.Close()
	good, _ := encode(pending("req_2", 2, now))
	bad := []byte(strings.Replace(string(good), "req_2", "req_X", 1)) // checksum no longer matches
	torn, _ := encode(pending("req_3", 3, now))
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bad)
	f.Write(good)
	f.Write(torn[:len(torn)/2])
	f.Close()

	s = open(t, dir, clock)
	if s.Depth() != 2 {
		t.Fatalf("depth %d, want 2", s.Depth())
	}
	l := newFakeLedger(clock)
	res, err := s.Replay(context.Background(), l)
	if err != nil || res.Applied != 2 || l.booked["req_1"] != 1 || l.booked["req_2"] != 1 || len(l.booked) != 2 {
		t.Fatalf("replay %+v %v booked %v", res, err, l.booked)
	}
}

func TestOneProcessPerDirectory(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, time.Now)
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "another creditgate process") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestClosedSpoolRefuses(t *testing.T) {
	s := open(t, t.TempDir(), time.Now)
	s.Close()
	if err := s.Save(pending("req_1", 1, time.Now())); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: %v", err)
	}
	if _, err := s.Replay(context.Background(), newFakeLedger(time.Now)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v", err)
	}
}

// Saves racing a replay that keeps failing halfway: every settlement is booked
// exactly once in the end.
func TestConcurrentSavesAndReplays(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	s := open(t, t.TempDir(), clock)
	l := newFakeLedger(clock)
	var n int
	l.down = func() bool { n++; return n%7 == 0 }
	const writers, each = 8, 50
	ctx, cancel := context.WithCancel(context.Background())
	replayed := make(chan struct{})
	go func() {
		defer close(replayed)
		for ctx.Err() == nil {
			_, _ = s.Replay(ctx, l)
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.Save(pending(fmt.Sprintf("req_%d_%d", w, i), 1, now)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-replayed
	l.down = nil
	if _, err := s.Replay(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	if len(l.booked) != writers*each || s.Depth() != 0 {
		t.Fatalf("%d booked, depth %d", len(l.booked), s.Depth())
	}
	for hold, n := range l.booked {
		if n != 1 {
			t.Fatalf("%s booked %d times", hold, n)
		}
	}
}

// The spool's promise as a state machine: whatever the interleaving of saves,
// replays against a store that fails, loses replies and forgets old holds,
// crashes (reopen) and time passing, no settlement is ever booked twice, and
// once the store is healthy one replay books every saved settlement.
func TestSpoolModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "spool-model-")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		now := time.Unix(1_800_000_000, 0)
		clock := func() time.Time { return now }
		s, err := Open(dir, Options{Now: clock})
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { s.Close() }()
		l := newFakeLedger(clock)
		saved := map[string]bool{}
		next := 0
		check := func() {
			for hold, n := range l.booked {
				if n > 1 {
					rt.Fatalf("%s booked %d times", hold, n)
				}
				if !saved[hold] {
					rt.Fatalf("%s booked but never saved", hold)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"save": func(rt *rapid.T) {
				hold := fmt.Sprintf("req_%d", next)
				next++
				if err := s.Save(pending(hold, money.Micros(rapid.Int64Range(0, 1e9).Draw(rt, "cost")), now)); err != nil {
					rt.Fatal(err)
				}
				saved[hold] = true
			},
			"replay": func(rt *rapid.T) {
				failAt := rapid.IntRange(0, 6).Draw(rt, "failAt") // 0: healthy
				lose := rapid.Bool().Draw(rt, "loseReply")
				calls := 0
				l.down = func() bool { calls++; return failAt > 0 && calls == failAt && !lose }
				l.loseReply = func() bool { return failAt > 0 && calls == failAt && lose }
				_, _ = s.Replay(context.Background(), l)
				l.down, l.loseReply = nil, nil
				check()
			},
			"crash": func(rt *rapid.T) {
				s.Close()
				if s, err = Open(dir, Options{Now: clock}); err != nil {
					rt.Fatal(err)
				}
			},
			"time passes": func(rt *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(1, 180).Draw(rt, "minutes")) * time.Minute)
			},
			"": func(rt *rapid.T) { check() },
		})
		if _, err := s.Replay(context.Background(), l); err != nil {
			rt.Fatal(err)
		}
		check()
		if s.Depth() != 0 || len(l.booked) != len(saved) {
			rt.Fatalf("depth %d; %d of %d saved settlements booked", s.Depth(), len(l.booked), len(saved))
		}
	})
}
