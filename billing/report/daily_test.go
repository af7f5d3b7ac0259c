package report

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/money"
)

// plainLedger is an account's ledger in memory, without a rollup.
type plainLedger struct{ log billingtest.EventLog }

func (l *plainLedger) Events(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
	return l.log.Events(after, limit)
}

func (l *plainLedger) EventsBefore(_ context.Context, _, before string, limit int) (billing.EventPage, error) {
	return l.log.EventsBefore(before, limit)
}

// rollupLedger is the same ledger with an in-memory DailyUsageSource that has
// rolled up the events up to head, counting the events its scans read.
type rollupLedger struct {
	plainLedger
	head     string // "" when nothing is rolled up
	scanned  int    // events served by Events
	rollRead int    // DailyUsage calls
}

var _ DailyUsageSource = (*rollupLedger)(nil)

func (l *rollupLedger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	// Short pages, so that scanned counts the events a scan needs, give or take 10.
	p, err := l.plainLedger.Events(ctx, account, after, min(limit, 10))
	l.scanned += len(p.Events)
	return p, err
}

func (l *rollupLedger) DailyUsage(_ context.Context, _ string, from, to time.Time) ([]billing.DayUsage, string, error) {
	l.rollRead++
	type group struct {
		day        time.Time
		key, model string
	}
	sums := map[group]*billing.DayUsage{}
	for _, ev := range l.log {
		if l.head == "" || billing.CompareEventIDs(ev.ID, l.head) > 0 {
			break
		}
		day := ev.At.UTC().Truncate(24 * time.Hour)
		if ev.Type != billing.EventUsage || day.Before(from) || !day.Before(to) {
			continue
		}
		g := group{day, ev.KeyID, ev.Model}
		r := sums[g]
		if r == nil {
			r = &billing.DayUsage{Day: day, KeyID: ev.KeyID, Model: ev.Model}
			sums[g] = r
		}
		r.Requests++
		r.PromptTokens += ev.PromptTokens
		r.CachedTokens += ev.CachedTokens
		r.CompletionTokens += ev.CompletionTokens
		r.ReasoningTokens += ev.ReasoningTokens
		r.Cost += ev.Cost
	}
	rows := make([]billing.DayUsage, 0, len(sums))
	for _, r := range sums {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b billing.DayUsage) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return slices.Compare([]string{a.KeyID, a.Model}, []string{b.KeyID, b.Model})
	})
	return rows, l.head, nil
}

// skewedEvents are n events committed every step from start (ids from the
// commit times), each with an `at` up to maxSkew either side of its commit
// (proxies' clocks that disagree, within what the scan allows): mostly usage
// of three models and three keys (one of them none), some top-ups.
func skewedEvents(r *rand.Rand, start time.Time, n int, step, maxSkew time.Duration) []billing.Event {
	models, keys := []string{"gpt-4o", "gpt-4o-mini", "o3"}, []string{"key_a", "key_b", ""}
	evs := make([]billing.Event, n)
	for i := range evs {
		commit := start.Add(time.Duration(i) * step)
		at := commit.Add(time.Duration(r.Int64N(int64(2*maxSkew+1))) - maxSkew)
		ev := billing.Event{ID: fmt.Sprintf("%d-%d", commit.UnixMilli(), i%3), At: at}
		if i%10 == 9 {
			ev.Type, ev.Amount = billing.EventTopUp, 5_000_000
		} else {
			cost := money.Micros(1 + r.Int64N(100_000))
			ev.Type, ev.Model, ev.KeyID, ev.Cost, ev.Amount = billing.EventUsage, models[r.IntN(3)], keys[r.IntN(3)], cost, cost
			ev.PromptTokens, ev.CompletionTokens = 1+r.Int64N(5000), r.Int64N(2000)
			ev.CachedTokens, ev.ReasoningTokens = r.Int64N(ev.PromptTokens+1), r.Int64N(ev.CompletionTokens+1)
		}
		evs[i] = ev
	}
	return evs
}

// groupings are every way a report groups: none, each field, and combinations
// in several orders.
var groupings = [][]string{nil, {ByDay}, {ByModel}, {ByKey}, {ByDay, ByModel}, {ByModel, ByKey}, {ByKey, ByDay}, {ByDay, ByModel, ByKey}, {ByKey, ByModel, ByDay}}

func TestUsageFromRollupEqualsScan(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// Six days, an event every 7 minutes, clocks up to 20 minutes apart.
	evs := skewedEvents(rand.New(rand.NewPCG(1, 2)), start, 6*24*60/7, 7*time.Minute, 20*time.Minute)
	idAt := func(at time.Time) int { // the index of the last event committed before at
		i, _ := slices.BinarySearchFunc(evs, at, func(ev billing.Event, at time.Time) int {
			ms, _ := ParseEventID(ev.ID)
			return time.UnixMilli(int64(ms.MS)).Compare(at)
		})
		return i - 1
	}
	day := func(d int, h time.Duration) time.Time { return start.Add(time.Duration(d)*24*time.Hour + h) }
	last := len(evs) - 1
	tests := []struct {
		name       string
		from, to   time.Time
		head       int // index of the rolled-up head; -1 none
		snap       int // index of the snapshot's LastEventID; -1 an empty ledger
		usesRollup bool
	}{
		{"mid-day to mid-day", day(0, 7*time.Hour), day(5, 13*time.Hour), last, last, true},
		{"day boundaries", day(1, 0), day(4, 0), last, last, true},
		{"unbounded from", time.Time{}, day(4, 0), last, last, true},
		{"to past the ledger", day(0, 30*time.Minute), day(30, 0), last, last, true},
		{"empty range", day(2, 0), day(2, 0), last, last, false},
		{"to before from", day(3, 0), day(2, 0), last, last, false},
		{"within one day", day(2, time.Hour), day(2, 23*time.Hour), last, last, false},
		{"head inside the range", day(0, 5*time.Hour), day(6, 0), idAt(day(3, 10*time.Hour)), last, true},
		{"head just past a day's end + skew", day(0, 0), day(6, 0), idAt(day(3, time.Hour+time.Minute)), last, true},
		{"head just before a day's end + skew", day(0, 0), day(6, 0), idAt(day(3, time.Hour-time.Minute)), last, true},
		{"head before the range", day(3, 0), day(6, 0), idAt(day(2, 12*time.Hour)), last, false},
		{"nothing rolled up", day(0, 0), day(6, 0), -1, last, false},
		{"snapshot before the head", day(0, 3*time.Hour), day(6, 0), last, idAt(day(4, 2*time.Hour)), true},
		{"snapshot and head inside one day", day(0, 0), day(6, 0), idAt(day(4, 20*time.Hour)), idAt(day(4, 2*time.Hour)), true},
		{"empty ledger", day(0, 0), day(6, 0), -1, -1, false},
	}
	for _, tc := range tests {
		for _, groupBy := range groupings {
			t.Run(fmt.Sprintf("%s/%v", tc.name, groupBy), func(t *testing.T) {
				l := &rollupLedger{plainLedger: plainLedger{evs}}
				if tc.head >= 0 {
					l.head = evs[tc.head].ID
				}
				s := Snapshot{Account: "acme"}
				if tc.snap >= 0 {
					s.LastEventID = evs[tc.snap].ID
				}
				q := Range{From: tc.from, To: tc.to}
				want, err := Usage(ctx, &plainLedger{evs}, s, q, groupBy...)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Usage(ctx, l, s, q, groupBy...)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("from the rollup:\n%+v\nscanned:\n%+v", got, want)
				}
				plain := &rollupLedger{plainLedger: plainLedger{evs}} // counts a whole scan's reads
				if err := Scan(ctx, plain, s, q, func(billing.Event) error { return nil }); err != nil {
					t.Fatal(err)
				}
				if tc.usesRollup != (l.scanned < plain.scanned) {
					t.Fatalf("read %d events of a plain scan's %d (uses the rollup: want %v)", l.scanned, plain.scanned, tc.usesRollup)
				}
				if tc.usesRollup && want.Total.Requests == 0 {
					t.Fatal("a case that uses the rollup counts nothing: it proves nothing")
				}
			})
		}
	}
}

// TestUsageFromRollupModel: for any ledger whose clocks disagree within what
// the scan allows, any range, rolled-up head and snapshot, the report from the
// rollup is the scan's.
func TestUsageFromRollupModel(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(t *rapid.T) {
		// Steps from a few a day to hundreds: rapid draws small numbers most,
		// which would rarely span a whole day.
		step := rapid.SampledFrom([]time.Duration{time.Minute, 7 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour}).Draw(t, "step")
		n := rapid.IntRange(0, 300).Draw(t, "events")
		seed := rapid.Uint64().Draw(t, "seed")
		evs := skewedEvents(rand.New(rand.NewPCG(seed, 7)), start, n, step, 20*time.Minute)
		// Points and indices uniformly from the seed: rapid's own draws favour
		// the small end, which would rarely put the head or a bound mid-ledger.
		pick := rand.New(rand.NewPCG(seed, 11))
		span := time.Duration(n+1) * step
		point := func(label string) time.Time {
			at := start.Add(time.Duration(pick.Int64N(int64(span+96*time.Hour))) - 48*time.Hour)
			if rapid.Bool().Draw(t, label+" on a day boundary") {
				at = at.Truncate(24 * time.Hour)
			}
			return at
		}
		q := Range{From: point("from"), To: point("to")}
		if rapid.Bool().Draw(t, "unbounded from") {
			q.From = time.Time{}
		}
		l := &rollupLedger{plainLedger: plainLedger{evs}}
		s := Snapshot{Account: "acme"}
		if n > 0 {
			if h := pick.IntN(n+1) - 1; h >= 0 {
				l.head = evs[h].ID
			}
			s.LastEventID = evs[pick.IntN(n)].ID
		}
		groupBy := rapid.SampledFrom(groupings).Draw(t, "groupBy")
		want, err := Usage(ctx, &plainLedger{evs}, s, q, groupBy...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Usage(ctx, l, s, q, groupBy...)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("from the rollup:\n%+v\nscanned:\n%+v", got, want)
		}
	})
}
