package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
	"pgregory.net/rapid"
)

// testPrice is gpt-4o-mini's: $0.15 in, $0.60 out per 1M tokens.
var testPrice = metering.Price{Input: 150_000, CachedInput: 75_000, AudioInput: 150_000, Output: 600_000, Reasoning: 600_000, AudioOutput: 600_000}

func inFlight(hold string, started time.Time) InFlight {
	return InFlight{Account: "acme", HoldID: hold, RequestID: hold, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
		Price: testPrice, Prompt: metering.Tokens{Input: 1000}, Held: money.MustParse("0.10"),
		Triggers: billing.Triggers{Notices: true, LowBalance: money.MustParse("1.00")}, Started: started}
}

// crash leaves s as kill -9 would: its files are closed with nothing more
// written or synced (Begin, Progress and End write straight to the file, so the
// kernel has what they wrote), its lock is released with the process, and s is
// abandoned, never Closed.
func crash(t *testing.T, s *Spool) {
	t.Helper()
	s.fmu.Lock()
	s.fclosed = true // the sync loop and any straggler write nothing more
	if s.fl != nil {
		s.fl.Close()
	}
	s.fmu.Unlock()
	if s.stopSync != nil {
		close(s.stopSync)
		<-s.syncDone
	}
	s.mu.Lock()
	s.closed = true
	if s.active != nil {
		s.active.Close()
	}
	s.mu.Unlock()
	s.unlock()
}

func mustBegin(t *testing.T, s *Spool, r InFlight) {
	t.Helper()
	if err := s.Begin(r); err != nil {
		t.Fatal(err)
	}
}

func mustProgress(t *testing.T, s *Spool, hold string, n int64) {
	t.Helper()
	if err := s.Progress(hold, n); err != nil {
		t.Fatal(err)
	}
}

// What a restart books for each request the dead process had in flight: the
// prompt and the output its last written Progress says was relayed, priced with
// the record's price and capped at the hold (token_source local, a note saying
// why); a release when no Progress was written; nothing for a request that
// ended, or that it had spooled already; and through the ledger, so a request
// it did settle before dying is not debited again.
func TestInFlightRecordsOfACrashedProcessAreSettled(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: clock, ProgressTokens: 10, ProgressInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, hold := range []string{"begun", "answered", "streaming", "long", "ended", "spooled", "settled"} {
		mustBegin(t, s, inFlight(hold, now))
	}
	mustProgress(t, s, "answered", 0) // the 2xx arrived; nothing relayed yet
	for _, n := range []int64{0, 5, 12, 25, 30} {
		mustProgress(t, s, "streaming", n) // written: 0, 25 (0 +25 ≥ 10); 5, 12 and 30 are not (< 10 more)
	}
	mustProgress(t, s, "long", 0)
	mustProgress(t, s, "long", 500_000) // costs more than the 0.10 held
	mustProgress(t, s, "ended", 40)
	if err := s.End("ended"); err != nil {
		t.Fatal(err)
	}
	mustProgress(t, s, "spooled", 7)
	spooled := pending("spooled", 4321, now) // the store was down at its settle: spooled, then the crash before End
	if err := s.Save(spooled); err != nil {
		t.Fatal(err)
	}
	mustProgress(t, s, "settled", 3)
	l := newFakeLedger(clock)
	if _, err := l.Settle(context.Background(), billing.SettleRequest{Account: "acme", HoldID: "settled", Cost: 99}); err != nil {
		t.Fatal(err) // settled by the dead process, which died before its End
	}
	if s.InFlight() != 6 {
		t.Fatalf("%d in flight, want 6", s.InFlight())
	}
	crash(t, s)

	s = open(t, dir, clock)
	if s.Recovered() != 5 || s.Depth() != 6 {
		t.Fatalf("recovered %d, depth %d; want 5 records recovered beside the spooled settlement", s.Recovered(), s.Depth())
	}
	if logs, _ := s.inflightLogs(); len(logs) != 0 {
		t.Fatalf("in-flight logs left after the recovery: %v", logs)
	}
	res, err := s.Replay(context.Background(), l)
	if err != nil || res.Applied != 5 || res.Replayed != 1 || s.Depth() != 0 {
		t.Fatalf("replay %+v %v", res, err)
	}
	cost := func(out int64) money.Micros { return testPrice.Cost(metering.Tokens{Input: 1000, Output: out}) }
	for _, c := range []struct {
		hold string
		cost money.Micros
		out  int64
		note string
	}{
		{"answered", cost(0), 0, NoteSettledAfterCrash},
		{"streaming", cost(25), 25, NoteSettledAfterCrash},
		{"long", money.MustParse("0.10"), 500_000, NoteSettledAfterCrash + "; capped at the hold"},
		{"spooled", 4321, 34, ""}, // the spooled settlement, not the record
		{"settled", 99, 0, ""},    // booked once, by the dead process
	} {
		got := l.settles[c.hold]
		if l.booked[c.hold] != 1 || got.Cost != c.cost || got.Usage.CompletionTokens != c.out || got.Usage.Note != c.note {
			t.Errorf("%s: booked %d times, %+v; want cost %s, %d output tokens, note %q", c.hold, l.booked[c.hold], got, c.cost, c.out, c.note)
		}
	}
	got := l.settles["streaming"]
	want := billing.Usage{RequestID: "streaming", KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
		PromptTokens: 1000, CompletionTokens: 25, LocalPromptTokens: 1000, LocalCompletionTokens: 25,
		TokenSource: billing.TokenSourceLocal, Note: NoteSettledAfterCrash}
	if got.Usage != want || got.Triggers != inFlight("x", now).Triggers || got.Account != "acme" {
		t.Errorf("recovered settle %+v, want usage %+v and the record's triggers", got, want)
	}
	if l.booked["begun"] != 1 || l.releases["begun"].Note != NoteReleasedAfterCrash || l.settles["begun"].HoldID != "" {
		t.Errorf("a record without progress: booked %d, released with %+v", l.booked["begun"], l.releases["begun"])
	}
	if l.booked["ended"] != 0 {
		t.Errorf("an ended record was booked")
	}
}

// A crash while Open recovers — the settlements spooled, the in-flight log not
// yet removed — recovers nothing twice: the next Open finds each hold spooled.
func TestInFlightRecoveryIsIdempotent(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := open(t, dir, clock)
	for i := range 3 {
		mustBegin(t, s, inFlight(fmt.Sprintf("h%d", i), now))
		mustProgress(t, s, fmt.Sprintf("h%d", i), int64(i))
	}
	crash(t, s)
	logs, _ := filepath.Glob(filepath.Join(dir, inflightPrefix+"*"))
	saved := map[string][]byte{}
	for _, p := range logs {
		saved[p], _ = os.ReadFile(p)
	}
	s = open(t, dir, clock)
	if s.Recovered() != 3 {
		t.Fatalf("recovered %d", s.Recovered())
	}
	crash(t, s)
	for p, b := range saved { // as if the removal never happened
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, dir, clock)
	if s.Recovered() != 0 || s.Depth() != 3 {
		t.Fatalf("second recovery: recovered %d, depth %d", s.Recovered(), s.Depth())
	}
	l := newFakeLedger(clock)
	if res, err := s.Replay(context.Background(), l); err != nil || res.Applied != 3 {
		t.Fatalf("replay %+v %v", res, err)
	}
	for hold, n := range l.booked {
		if n != 1 {
			t.Fatalf("%s booked %d times", hold, n)
		}
	}
}

// countLines counts the lines of kind ("B", "P", "E") in the in-flight logs.
func countLines(t *testing.T, dir, kind string) int {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, inflightPrefix+"*"))
	n := 0
	for _, p := range logs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) > 10 && line[9:10] == kind {
				n++
			}
		}
	}
	return n
}

// Progress writes the first call at once, then when ProgressTokens more tokens
// were relayed or ProgressInterval passed with some more; repeated or smaller
// totals write nothing.
func TestProgressIsWrittenAtABoundedRate(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: clock, ProgressTokens: 10, ProgressInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustBegin(t, s, inFlight("h", now))
	for n := int64(0); n <= 100; n++ {
		mustProgress(t, s, "h", n)
	}
	if got := countLines(t, dir, "P"); got != 11 { // 0, 10, 20, … 100
		t.Fatalf("%d progress lines for 101 calls of 1 token each, want 11", got)
	}
	mustProgress(t, s, "h", 100) // no change
	mustProgress(t, s, "h", 42)  // smaller: a running total never goes back
	advance(999 * time.Millisecond)
	mustProgress(t, s, "h", 101)
	if got := countLines(t, dir, "P"); got != 11 {
		t.Fatalf("%d progress lines, want still 11", got)
	}
	advance(time.Millisecond) // a second since the last write, and one token more
	mustProgress(t, s, "h", 101)
	if got := countLines(t, dir, "P"); got != 12 {
		t.Fatalf("%d progress lines after the interval, want 12", got)
	}
	advance(time.Hour)
	mustProgress(t, s, "h", 101) // nothing new to say, however late
	if got := countLines(t, dir, "P"); got != 12 {
		t.Fatalf("%d progress lines after an idle hour, want 12", got)
	}
}

// The in-flight log is compacted as it grows: it stays one bounded file, and
// the records open across compactions are recovered with their progress.
func TestInFlightLogIsCompacted(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: clock, CompactAfter: 4096, ProgressTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustBegin(t, s, inFlight(fmt.Sprintf("live%d", i), now))
		mustProgress(t, s, fmt.Sprintf("live%d", i), int64(10+i))
	}
	for i := range 500 {
		hold := fmt.Sprintf("done%d", i)
		mustBegin(t, s, inFlight(hold, now))
		mustProgress(t, s, hold, 1)
		if err := s.End(hold); err != nil {
			t.Fatal(err)
		}
	}
	mustProgress(t, s, "live0", 99)
	// The bound: what the last compaction rewrote (the live records) plus
	// CompactAfter, plus the one line that finds the log full and compacts it.
	live := int64(0)
	for _, f := range s.flights {
		live += int64(len(f.begin)) + 64 // its B line and a P line
	}
	logs, _ := s.inflightLogs()
	fi, err := os.Stat(s.inflightPath(s.flSeq))
	if err != nil || len(logs) != 1 || fi.Size() > live+4096+512 {
		t.Fatalf("after 500 requests: logs %v, size %v (bound %d) %v", logs, fi.Size(), live+4096+512, err)
	}
	crash(t, s)
	s = open(t, dir, clock)
	l := newFakeLedger(clock)
	if _, err := s.Replay(context.Background(), l); err != nil || s.Recovered() != 3 || len(l.booked) != 3 {
		t.Fatalf("recovered %d, booked %v, %v", s.Recovered(), l.booked, err)
	}
	for hold, out := range map[string]int64{"live0": 99, "live1": 11, "live2": 12} {
		if got := l.settles[hold].Usage.CompletionTokens; got != out {
			t.Errorf("%s settled with %d output tokens, want %d", hold, got, out)
		}
	}
}

// The line whose write finds the log due for compaction survives it, even as
// the last line before a crash: written before the compaction, it went into the
// log the compaction removes, and the compaction, which rewrites memory, did not
// have it yet (CI saw a recovered request settle with its older progress; a
// Begin lost so lost its whole record). With CompactAfter 1 every write comes
// after a full log.
func TestLineThatTriggersCompactionSurvivesIt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		last     func(t *testing.T, s *Spool, now time.Time)
		settled  map[string]int64 // hold → output tokens it is settled with
		released []string
	}{
		{"progress", func(t *testing.T, s *Spool, _ time.Time) { mustProgress(t, s, "second", 40) },
			map[string]int64{"first": 7, "second": 40}, nil},
		{"begin", func(t *testing.T, s *Spool, now time.Time) { mustBegin(t, s, inFlight("third", now)) },
			map[string]int64{"first": 7, "second": 3}, []string{"third"}},
		{"end", func(t *testing.T, s *Spool, _ time.Time) {
			if err := s.End("second"); err != nil {
				t.Fatal(err)
			}
		}, map[string]int64{"first": 7}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			clock := func() time.Time { return now }
			dir := t.TempDir()
			s, err := Open(dir, Options{Now: clock, CompactAfter: 1, ProgressTokens: 1})
			if err != nil {
				t.Fatal(err)
			}
			mustBegin(t, s, inFlight("first", now))
			mustBegin(t, s, inFlight("second", now))
			mustProgress(t, s, "first", 7)
			mustProgress(t, s, "second", 3)
			tc.last(t, s, now)
			if logs, _ := s.inflightLogs(); len(logs) != 1 {
				t.Fatalf("in-flight logs %v, want one (each write compacts)", logs)
			}
			crash(t, s)
			s = open(t, dir, clock)
			l := newFakeLedger(clock)
			want := len(tc.settled) + len(tc.released)
			if _, err := s.Replay(context.Background(), l); err != nil || s.Recovered() != want || len(l.booked) != want {
				t.Fatalf("recovered %d, booked %v, %v; want %d", s.Recovered(), l.booked, err, want)
			}
			for hold, out := range tc.settled {
				if got, ok := l.settles[hold]; !ok || got.Usage.CompletionTokens != out {
					t.Errorf("%s settled %v with %d output tokens, want %d", hold, ok, got.Usage.CompletionTokens, out)
				}
			}
			for _, hold := range tc.released {
				if _, ok := l.releases[hold]; !ok {
					t.Errorf("%s not released; booked %v", hold, l.booked)
				}
			}
		})
	}
}

// A record with a Cost (a price not per token: whisper-1's seconds of audio) is
// booked at that cost once its answer was relayed, capped at the hold, and
// released when it was not.
func TestInFlightFixedCostIsBooked(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := open(t, dir, clock)
	for _, c := range []struct {
		hold string
		cost money.Micros
	}{{"answered", 3_000}, {"dear", money.MustParse("0.25")}, {"unanswered", 3_000}} {
		r := inFlight(c.hold, now)
		r.Price, r.Prompt, r.Cost = metering.Price{AudioMinute: 6_000}, metering.Tokens{}, c.cost
		mustBegin(t, s, r)
	}
	mustProgress(t, s, "answered", 0)
	mustProgress(t, s, "dear", 0)
	crash(t, s)
	s = open(t, dir, clock)
	l := newFakeLedger(clock)
	if _, err := s.Replay(context.Background(), l); err != nil || s.Recovered() != 3 {
		t.Fatalf("recovered %d: %v", s.Recovered(), err)
	}
	if got := l.settles["answered"]; got.Cost != 3_000 || got.Usage.Note != NoteSettledAfterCrash {
		t.Errorf("answered: %+v, want 0.003000 booked", got)
	}
	if got := l.settles["dear"]; got.Cost != money.MustParse("0.10") || got.Usage.Note != NoteSettledAfterCrash+"; capped at the hold" {
		t.Errorf("dear: %+v, want the 0.10 held", got)
	}
	if _, ok := l.releases["unanswered"]; !ok || l.booked["unanswered"] != 1 {
		t.Errorf("unanswered: booked %d, released %v; want one release", l.booked["unanswered"], ok)
	}
}

// A line torn by the crash, or damaged, is skipped; the rest is recovered.
func TestTornInFlightLinesAreSkipped(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s := open(t, dir, clock)
	mustBegin(t, s, inFlight("a", now))
	mustProgress(t, s, "a", 5)
	mustBegin(t, s, inFlight("b", now))
	path := s.inflightPath(s.flSeq)
	crash(t, s)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	good := sealLine([]byte("00000000 P a 9"))
	bad := append([]byte(nil), good...)
	bad[len(bad)-2] = '8' // the checksum no longer matches
	f.Write(bad)
	f.Write(sealLine([]byte("00000000 E b"))[:8]) // torn: b's End never made it
	f.Close()
	s = open(t, dir, clock)
	l := newFakeLedger(clock)
	if _, err := s.Replay(context.Background(), l); err != nil || s.Recovered() != 2 {
		t.Fatalf("recovered %d: %v", s.Recovered(), err)
	}
	if l.settles["a"].Usage.CompletionTokens != 5 || l.releases["b"].Note != NoteReleasedAfterCrash {
		t.Fatalf("settles %+v, releases %+v", l.settles, l.releases)
	}
}

func TestInFlightMisuse(t *testing.T) {
	now := time.Now()
	s := open(t, t.TempDir(), func() time.Time { return now })
	mustBegin(t, s, inFlight("h", now))
	for name, err := range map[string]error{
		"Progress of an unknown hold": s.Progress("nope", 1),
		"End of an unknown hold":      s.End("nope"),
	} {
		if !errors.Is(err, ErrNotInFlight) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, r := range map[string]InFlight{
		"a second Begin":       inFlight("h", now),
		"a hold id with space": inFlight("a b", now),
		"no hold id":           inFlight("", now),
		"no account":           {HoldID: "x"},
	} {
		if err := s.Begin(r); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := s.End("h"); err != nil {
		t.Fatal(err)
	}
	if err := s.End("h"); !errors.Is(err, ErrNotInFlight) {
		t.Errorf("End twice: %v", err)
	}
	s.Close()
	for name, err := range map[string]error{
		"Begin": s.Begin(inFlight("late", now)), "Progress": s.Progress("h", 1), "End": s.End("h"),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

// Begin, Progress and End from many goroutines at once (a proxy's streams):
// a crash leaves exactly the open ones, each with its last written progress.
func TestConcurrentInFlight(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: clock, ProgressTokens: 1, CompactAfter: 16 << 10, SyncInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				hold := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Begin(inFlight(hold, now)); err != nil {
					t.Error(err)
					return
				}
				for n := range int64(5) {
					if err := s.Progress(hold, n); err != nil {
						t.Error(err)
					}
				}
				if i%10 != 0 { // every tenth stays open
					if err := s.End(hold); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	crash(t, s)
	s = open(t, dir, clock)
	l := newFakeLedger(clock)
	if _, err := s.Replay(context.Background(), l); err != nil || s.Recovered() != workers*each/10 {
		t.Fatalf("recovered %d, want %d: %v", s.Recovered(), workers*each/10, err)
	}
	for hold, st := range l.settles {
		if !strings.HasSuffix(hold, "0") || st.Usage.CompletionTokens != 4 || l.booked[hold] != 1 {
			t.Fatalf("%s settled %+v, booked %d", hold, st, l.booked[hold])
		}
	}
}

// The in-flight log against a model, under compactions at any size and crashes
// at any point: after a crash, every request begun and not ended is recovered
// exactly once, with the output of its last Progress (ProgressTokens 1 writes
// each increase), and nothing ended is booked. CompactAfter is drawn small, so
// compactions fall on every kind of line.
func TestInFlightLogAgainstAModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		now := time.Now()
		clock := func() time.Time { return now }
		dir := t.TempDir()
		opts := Options{Now: clock, ProgressTokens: 1, CompactAfter: int64(rapid.IntRange(1, 3000).Draw(rt, "compactAfter"))}
		s, err := Open(dir, opts)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { s.Close() }()
		open := map[string]int64{} // hold → output of its last Progress (-1: none)
		var order []string
		next := 0
		rt.Repeat(map[string]func(*rapid.T){
			"begin": func(rt *rapid.T) {
				hold := fmt.Sprintf("h%d", next)
				next++
				if err := s.Begin(inFlight(hold, now)); err != nil {
					rt.Fatal(err)
				}
				open[hold] = -1
				order = append(order, hold)
			},
			"progress": func(rt *rapid.T) {
				if len(open) == 0 {
					rt.Skip("nothing in flight")
				}
				hold := rapid.SampledFrom(order).Draw(rt, "hold")
				out := max(open[hold], 0) + int64(rapid.IntRange(0, 50).Draw(rt, "tokens"))
				if err := s.Progress(hold, out); err != nil {
					rt.Fatal(err)
				}
				open[hold] = out
			},
			"end": func(rt *rapid.T) {
				if len(open) == 0 {
					rt.Skip("nothing in flight")
				}
				i := rapid.IntRange(0, len(order)-1).Draw(rt, "which")
				if err := s.End(order[i]); err != nil {
					rt.Fatal(err)
				}
				delete(open, order[i])
				order = append(order[:i], order[i+1:]...)
			},
			"crash and recover": func(rt *rapid.T) {
				crash(t, s)
				if s, err = Open(dir, opts); err != nil {
					rt.Fatal(err)
				}
				l := newFakeLedger(clock)
				if _, err := s.Replay(context.Background(), l); err != nil {
					rt.Fatal(err)
				}
				if s.Recovered() != len(open) || len(l.booked) != len(open) {
					rt.Fatalf("recovered %d, booked %v; in flight %v", s.Recovered(), l.booked, open)
				}
				for hold, out := range open {
					if l.booked[hold] != 1 {
						rt.Fatalf("%s booked %d times, want once", hold, l.booked[hold])
					}
					settle, settled := l.settles[hold]
					switch {
					case out < 0 && settled:
						rt.Fatalf("%s settled with %d output tokens; no Progress was written, want a release", hold, settle.Usage.CompletionTokens)
					case out >= 0 && (!settled || settle.Usage.CompletionTokens != out):
						rt.Fatalf("%s settled (%v) with %d output tokens, want %d", hold, settled, settle.Usage.CompletionTokens, out)
					}
				}
				open, order = map[string]int64{}, nil
			},
		})
	})
}
