package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/money"
)

// fakeLedger reads like Redis streams: Events starts after the first event whose
// id is above `after`, whatever id that is, so cursors the reader makes up work.
type fakeLedger struct {
	EventsFunc       func(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
	EventsBeforeFunc func(ctx context.Context, account, before string, limit int) (billing.EventPage, error)
}

func (f *fakeLedger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	return f.EventsFunc(ctx, account, after, limit)
}

func (f *fakeLedger) EventsBefore(ctx context.Context, account, before string, limit int) (billing.EventPage, error) {
	if f.EventsBeforeFunc == nil {
		return billing.EventPage{}, errors.New("fake: EventsBefore not set by this test")
	}
	return f.EventsBeforeFunc(ctx, account, before, limit)
}

// streamLedger serves events (sorted by id) of account "acme" and counts calls.
func streamLedger(events []billing.Event, calls *int) *fakeLedger {
	return &fakeLedger{EventsFunc: func(_ context.Context, account, after string, limit int) (billing.EventPage, error) {
		*calls++
		if account != "acme" {
			return billing.EventPage{}, billing.ErrAccountNotFound
		}
		start := 0
		if after != "" {
			if _, ok := ParseEventID(after); !ok {
				return billing.EventPage{}, fmt.Errorf("%w: cursor %q", billing.ErrInvalid, after)
			}
			start = len(events)
			for i, ev := range events {
				if billing.CompareEventIDs(ev.ID, after) > 0 {
					start = i
					break
				}
			}
		}
		end := min(start+limit, len(events))
		page := billing.EventPage{Events: events[start:end]}
		if end < len(events) {
			page.Next = events[end-1].ID
		}
		return page, nil
	}, EventsBeforeFunc: func(_ context.Context, account, before string, limit int) (billing.EventPage, error) {
		*calls++
		if account != "acme" {
			return billing.EventPage{}, billing.ErrAccountNotFound
		}
		return billingtest.EventLog(events).EventsBefore(before, limit)
	}}
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func usage(at time.Time, model, key string, cost money.Micros) billing.Event {
	return billing.Event{ID: fmt.Sprintf("%d-0", at.UnixMilli()), Type: billing.EventUsage, At: at, Model: model, KeyID: key,
		Amount: cost, Cost: cost, PromptTokens: 10, CompletionTokens: 5, CachedTokens: 2, ReasoningTokens: 1}
}

func TestUsage(t *testing.T) {
	top := billing.Event{ID: fmt.Sprintf("%d-0", t0.Add(-time.Hour).UnixMilli()), Type: billing.EventTopUp, At: t0.Add(-time.Hour), Amount: 50_000_000}
	events := []billing.Event{
		top,
		usage(t0.Add(1*time.Hour), "gpt-4o", "key_a", 100),
		usage(t0.Add(2*time.Hour), "gpt-4o-mini", "key_b", 20),
		usage(t0.Add(25*time.Hour), "gpt-4o", "key_b", 300),
		usage(t0.Add(26*time.Hour), "gpt-4o", "", 7),
		usage(t0.Add(49*time.Hour), "gpt-4o-mini", "key_a", 1),
	}
	all := Snapshot{Account: "acme", LastEventID: events[len(events)-1].ID}
	cases := []struct {
		name    string
		snap    Snapshot
		rng     Range
		groupBy []string
		want    []string // "group=cost/requests"
		total   money.Micros
	}{
		{"by model", all, Range{To: t0.Add(72 * time.Hour)}, []string{ByModel}, []string{"gpt-4o=407/3", "gpt-4o-mini=21/2"}, 428},
		{"by day", all, Range{To: t0.Add(72 * time.Hour)}, []string{ByDay}, []string{"2026-03-01=120/2", "2026-03-02=307/2", "2026-03-03=1/1"}, 428},
		{"by key, unkeyed first", all, Range{To: t0.Add(72 * time.Hour)}, []string{ByKey}, []string{"=7/1", "key_a=101/2", "key_b=320/2"}, 428},
		{"day and model", all, Range{From: t0.Add(24 * time.Hour), To: t0.Add(72 * time.Hour)}, []string{ByDay, ByModel},
			[]string{"2026-03-02/gpt-4o=307/2", "2026-03-03/gpt-4o-mini=1/1"}, 308},
		{"half-open range", all, Range{From: t0.Add(1 * time.Hour), To: t0.Add(25 * time.Hour)}, []string{ByModel}, []string{"gpt-4o=100/1", "gpt-4o-mini=20/1"}, 120},
		{"snapshot bound", Snapshot{Account: "acme", LastEventID: events[2].ID}, Range{To: t0.Add(72 * time.Hour)}, []string{ByModel},
			[]string{"gpt-4o=100/1", "gpt-4o-mini=20/1"}, 120},
		{"no grouping", all, Range{To: t0.Add(72 * time.Hour)}, nil, []string{"=428/5"}, 428},
		{"empty ledger", Snapshot{Account: "acme"}, Range{To: t0.Add(72 * time.Hour)}, []string{ByModel}, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			rep, err := Usage(context.Background(), streamLedger(events, &calls), tc.snap, tc.rng, tc.groupBy...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rep.Rows {
				got = append(got, fmt.Sprintf("%s=%d/%d", r.Group, r.Cost, r.Requests))
				if len(tc.groupBy) > 1 && len(r.By) != len(tc.groupBy) {
					t.Errorf("row %s: By %v", r.Group, r.By)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rows %v, want %v", got, tc.want)
			}
			if rep.Total.Cost != tc.total || rep.Total.Group != "" {
				t.Errorf("total %+v, want cost %d", rep.Total, tc.total)
			}
			if rep.Total.Requests > 0 && rep.Total.PromptTokens != 10*rep.Total.Requests {
				t.Errorf("tokens not summed: %+v", rep.Total)
			}
		})
	}
}

func TestUsageStoreError(t *testing.T) {
	boom := &fakeLedger{EventsFunc: func(context.Context, string, string, int) (billing.EventPage, error) {
		return billing.EventPage{}, billing.ErrUnavailable
	}}
	_, err := Usage(context.Background(), boom, Snapshot{Account: "acme", LastEventID: "1-0"}, Range{To: t0}, ByModel)
	if !errors.Is(err, billing.ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
}

// TestScanStartsNearFrom: a scan with a From starts reading near it, not at the
// ledger's first event, and stops soon after To.
func TestScanStartsNearFrom(t *testing.T) {
	var events []billing.Event
	for h := range 5000 {
		events = append(events, usage(t0.Add(time.Duration(h)*time.Hour), "gpt-4o", "", 1))
	}
	calls, n := 0, 0
	ledger := streamLedger(events, &calls)
	served := 0
	counting := &fakeLedger{EventsFunc: func(ctx context.Context, a, after string, limit int) (billing.EventPage, error) {
		p, err := ledger.Events(ctx, a, after, limit)
		served += len(p.Events)
		return p, err
	}}
	from := t0.Add(4000 * time.Hour)
	err := Scan(context.Background(), counting, Snapshot{Account: "acme", LastEventID: events[len(events)-1].ID},
		Range{From: from, To: from.Add(48 * time.Hour)}, func(billing.Event) error { n++; return nil })
	if err != nil || n != 48 {
		t.Fatalf("scanned %d events in range (%v), want 48", n, err)
	}
	if served > PageSize {
		t.Errorf("the scan read %d events for 48 in range", served)
	}
}

// TestRecentModel checks Recent against the obvious answer (sort, filter, take)
// on drawn ledgers: ids in clustered and sparse milliseconds, any before, any limit.
func TestRecentModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 300).Draw(t, "events")
		ms := uint64(rapid.Uint64Range(0, 1<<40).Draw(t, "start"))
		var events []billing.Event
		var last EventID
		for i := range n {
			gap := rapid.SampledFrom([]uint64{0, 1, 3, 1000, 1 << 20, 1 << 33}).Draw(t, fmt.Sprint("gap", i))
			id := EventID{ms + gap, 0}
			if i > 0 && id.MS == last.MS {
				id = last.Next()
			}
			ms, last = id.MS, id
			events = append(events, billing.Event{ID: id.String(), Type: billing.EventUsage})
		}
		snapN := rapid.IntRange(0, n).Draw(t, "snapshot") // events committed after the snapshot exist too
		snap := Snapshot{Account: "acme"}
		if snapN > 0 {
			snap.LastEventID = events[snapN-1].ID
		}
		before := ""
		if n > 0 && rapid.Bool().Draw(t, "hasBefore") {
			before = events[rapid.IntRange(0, n-1).Draw(t, "before")].ID
		}
		limit := rapid.IntRange(1, 40).Draw(t, "limit")

		var want []string
		for i := snapN - 1; i >= 0; i-- {
			if before != "" && billing.CompareEventIDs(events[i].ID, before) >= 0 {
				continue
			}
			want = append(want, events[i].ID)
		}
		wantMore := len(want) > limit
		if wantMore {
			want = want[:limit]
		}
		calls := 0
		page, err := Recent(context.Background(), streamLedger(events, &calls), snap, before, limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range page.Events {
			got = append(got, ev.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if page.HasMore != wantMore || (wantMore && page.Next != want[len(want)-1]) || (!wantMore && page.Next != "") {
			t.Fatalf("next %q more %v, want more %v", page.Next, page.HasMore, wantMore)
		}
		if calls > 1+(n-snapN) {
			t.Fatalf("%d store calls for one page (%d events after the snapshot)", calls, n-snapN)
		}
	})
}

func TestRecentRefusesBadCursor(t *testing.T) {
	calls := 0
	for _, tc := range []struct {
		before string
		limit  int
	}{{"not-an-id", 10}, {"1-0", 0}} {
		_, err := Recent(context.Background(), streamLedger(nil, &calls), Snapshot{Account: "acme", LastEventID: "5-0"}, tc.before, tc.limit)
		if !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("before %q limit %d: error %v, want ErrInvalid", tc.before, tc.limit, err)
		}
	}
}

func TestParseEventID(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"0-0", true}, {"1712345678901-3", true}, {"18446744073709551615-18446744073709551615", true},
		{"", false}, {"1", false}, {"-1", false}, {"1-", false}, {"a-1", false}, {"1-+1", false}, {"18446744073709551616-0", false}} {
		id, ok := ParseEventID(tc.in)
		if ok != tc.ok || (ok && id.String() != tc.in) {
			t.Errorf("ParseEventID(%q) = %v %v", tc.in, id, ok)
		}
	}
	if got := (EventID{5, ^uint64(0)}).Next(); got != (EventID{6, 0}) {
		t.Errorf("Next at the sequence's end: %v", got)
	}
}
