package spool

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkInFlight measures what a proxy pays per request for its in-flight
// record: Begin, the Progress calls of a 500-token stream relayed in chunks
// of 5 tokens (101 calls; with the defaults 8 of them are written: the first and
// one each time 64 more tokens were relayed), and End. The sync loop runs as in production (every 1 s).
// One op is one request; run with -benchmem (and -cpu 1,2) for allocations and
// contention.
func BenchmarkInFlight(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var seq atomic.Int64
	rec := inFlight("", time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := rec
		for pb.Next() {
			r.HoldID = "req_" + strconv.FormatInt(seq.Add(1), 10)
			if err := s.Begin(r); err != nil {
				b.Fatal(err)
			}
			for n := int64(0); n <= 500; n += 5 {
				if err := s.Progress(r.HoldID, n); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.End(r.HoldID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInFlightCalls measures each call alone: Begin+End (two writes), a
// Progress that is written, and one that only updates memory.
func BenchmarkInFlightCalls(b *testing.B) {
	open := func(b *testing.B) *Spool {
		s, err := Open(b.TempDir(), Options{ProgressInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	b.Run("Begin+End", func(b *testing.B) {
		s := open(b)
		r := inFlight("", time.Now())
		b.ReportAllocs()
		for i := range b.N {
			r.HoldID = "req_" + strconv.Itoa(i)
			if err := s.Begin(r); err != nil {
				b.Fatal(err)
			}
			if err := s.End(r.HoldID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Progress written", func(b *testing.B) {
		s := open(b)
		if err := s.Begin(inFlight("h", time.Now())); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := range b.N {
			if err := s.Progress("h", int64(i)*DefaultProgressTokens); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Progress in memory", func(b *testing.B) {
		s := open(b)
		if err := s.Begin(inFlight("h", time.Now())); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := range b.N {
			if err := s.Progress("h", int64(i%DefaultProgressTokens)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzReplayInFlight feeds arbitrary in-flight logs to the recovery's parser:
// it never panics, and what it recovers is well formed (an account, a hold id
// that fits a line, non-negative progress). Valid logs seed the corpus.
func FuzzReplayInFlight(f *testing.F) {
	begin := func(hold string) []byte {
		r := inFlight(hold, time.Unix(1_800_000_000, 0))
		js, _ := json.Marshal(r)
		return sealLine(append([]byte("00000000 B "), js...))
	}
	var log []byte
	log = append(log, begin("a")...)
	log = append(log, sealLine([]byte("00000000 P a 12"))...)
	log = append(log, begin("b")...)
	log = append(log, sealLine([]byte("00000000 E b"))...)
	f.Add(log)
	f.Add(log[:len(log)-5])
	f.Add([]byte("00000000 B {}\n"))
	f.Add(sealLine([]byte("00000000 P a -1")))
	f.Fuzz(func(t *testing.T, data []byte) {
		open := map[string]*orphan{}
		torn := replayInFlight(data, open)
		if torn < 0 {
			t.Fatalf("torn %d", torn)
		}
		for hold, o := range open {
			if hold != o.rec.HoldID || !validHoldID(hold) || o.rec.Account == "" || o.output < 0 || (!o.relayed && o.output != 0) {
				t.Fatalf("recovered %q: %+v", hold, o)
			}
			p := o.settlement()
			if p.Settle.HoldID != hold || p.Settle.Cost < 0 || (o.rec.Held > 0 && p.Settle.Cost > o.rec.Held) || p.Release == o.relayed {
				t.Fatalf("settlement of %+v: %+v", o, p)
			}
		}
	})
}
