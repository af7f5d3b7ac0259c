package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
)

// seekLedger is a fake ledger that reads like Redis streams: Events starts at
// the first event whose id is after `after`, whatever id that is (Redis's
// XRANGE with an exclusive start), so cursors the reader makes up work. It
// counts store calls and the events they returned.
type seekLedger struct {
	*fakeLedger
	calls, served int
}

func newSeekLedger(a billing.Account, events []billing.Event) *seekLedger {
	sl := &seekLedger{}
	sl.fakeLedger = &fakeLedger{
		GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
			if id != a.ID {
				return billing.Account{}, fmt.Errorf("%w: %q", billing.ErrAccountNotFound, id)
			}
			return a, nil
		},
		EventsFunc: func(_ context.Context, id, after string, limit int) (billing.EventPage, error) {
			sl.calls++
			start := 0
			if after != "" {
				if _, ok := parseEventID(after); !ok {
					return billing.EventPage{}, fmt.Errorf("%w: cursor %q", billing.ErrInvalid, after)
				}
				start, _ = slices.BinarySearchFunc(events, after, func(ev billing.Event, after string) int {
					if billing.CompareEventIDs(ev.ID, after) <= 0 {
						return -1
					}
					return 1
				})
			}
			end := min(start+limit, len(events))
			page := billing.EventPage{Events: events[start:end]}
			sl.served += end - start
			if end < len(events) {
				page.Next = events[end-1].ID
			}
			return page, nil
		},
		EventsBeforeFunc: func(_ context.Context, _, before string, limit int) (billing.EventPage, error) {
			sl.calls++
			page, err := billingtest.EventLog(events).EventsBefore(before, limit)
			sl.served += len(page.Events)
			return page, err
		},
	}
	return sl
}

// eventsAt makes one usage event per stream id millisecond in ms (repeated
// milliseconds get increasing sequence numbers).
func eventsAt(ms []uint64) []billing.Event {
	var evs []billing.Event
	var last eventID
	for i, m := range ms {
		id := eventID{m, 0}
		if i > 0 && m == last.ms {
			id = last.next()
		}
		last = id
		evs = append(evs, billing.Event{ID: id.String(), Type: billing.EventUsage, At: time.UnixMilli(int64(m)).UTC(),
			Amount: mu("0.001"), Cost: mu("0.001"), Model: "gpt-4o", HoldID: fmt.Sprintf("req_%d", i)})
	}
	return evs
}

// TestRecentEvents pages through ledgers of different shapes newest first and
// checks that the pages, joined, are the whole ledger in reverse, and that no
// page costs more than a few dozen store calls however long the ledger is.
func TestRecentEvents(t *testing.T) {
	const base = uint64(1_740_000_000_000) // 2025-02-19
	seq := func(n int, start, step uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = start + uint64(i)*step
		}
		return out
	}
	tests := []struct {
		name  string
		ms    []uint64
		limit int
	}{
		{"empty", nil, 100},
		{"fewer than a page", seq(7, base, 1000), 100},
		{"exactly a page", seq(100, base, 1000), 100},
		{"one more than a page", seq(101, base, 1000), 100},
		{"dense: 10 events per millisecond", func() []uint64 {
			var out []uint64
			for _, m := range seq(500, base, 1) {
				for range 10 {
					out = append(out, m)
				}
			}
			return out
		}(), 100},
		{"sparse: one a day for years", seq(1500, base-1500*86_400_000, 86_400_000), 100},
		{"a burst in one millisecond after a quiet year", append(seq(300, base-365*86_400_000, 86_400_000), slices.Repeat([]uint64{base}, 450)...), 100},
		{"steady, then a long pause, then a few", append(seq(3000, base-10*86_400_000, 200), seq(3, base, 5000)...), 250},
		{"starting at millisecond 1", seq(40, 1, 3), 7},
		{"limit 1", seq(30, base, 17), 1},
		{"limit 1000", seq(4500, base, 3), 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs := eventsAt(tc.ms)
			a := billing.Account{ID: "acme"}
			if len(evs) > 0 {
				a.LastEventID = evs[len(evs)-1].ID
			}
			sl := newSeekLedger(a, evs)
			h := newTestServer(sl.fakeLedger, nil).Handler()
			var got []string
			before := ""
			for page := 0; ; page++ {
				target := fmt.Sprintf("/admin/v1/accounts/acme/ledger/recent?limit=%d", tc.limit)
				if before != "" {
					target += "&before=" + before
				}
				sl.calls = 0
				rec := call(t, h, http.MethodGet, target, "")
				if rec.Code != http.StatusOK {
					t.Fatalf("page %d: status %d: %s", page, rec.Code, rec.Body)
				}
				var list EventList
				if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
					t.Fatal(err)
				}
				if sl.calls > 90 {
					t.Errorf("page %d took %d store calls", page, sl.calls)
				}
				if len(list.Data) > tc.limit || (list.HasMore && len(list.Data) != tc.limit) || list.HasMore != (list.Next != "") || list.Object != "list" {
					t.Fatalf("page %d: %d events, has_more %v, next %q", page, len(list.Data), list.HasMore, list.Next)
				}
				for _, ev := range list.Data {
					got = append(got, ev.ID)
				}
				if !list.HasMore {
					break
				}
				if list.Next != list.Data[len(list.Data)-1].ID {
					t.Fatalf("page %d: next %q is not the oldest event on the page", page, list.Next)
				}
				before = list.Next
			}
			var want []string
			for i := len(evs) - 1; i >= 0; i-- {
				want = append(want, evs[i].ID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("newest first read %d events %.200v…, want %d %.200v…", len(got), got, len(want), want)
			}
		})
	}
}

// TestRecentEventsSnapshot: events committed after the snapshot wait for the
// next request.
func TestRecentEventsSnapshot(t *testing.T) {
	evs := eventsAt([]uint64{1000, 2000, 3000, 4000, 5000})
	sl := newSeekLedger(billing.Account{ID: "acme", LastEventID: evs[2].ID}, evs)
	h := newTestServer(sl.fakeLedger, nil).Handler()
	checkJSONIDs(t, call(t, h, http.MethodGet, "/admin/v1/accounts/acme/ledger/recent?limit=2", ""), "3000-0 2000-0", "2000-0")
	checkJSONIDs(t, call(t, h, http.MethodGet, "/admin/v1/accounts/acme/ledger/recent?limit=2&before=2000-0", ""), "1000-0", "")
}

func checkJSONIDs(t *testing.T, rec interface{ Result() *http.Response }, wantIDs, wantNext string) {
	t.Helper()
	res := rec.Result()
	var list EventList
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %v", res.StatusCode, err)
	}
	var ids []string
	for _, ev := range list.Data {
		ids = append(ids, ev.ID)
	}
	if strings.Join(ids, " ") != wantIDs || list.Next != wantNext || list.HasMore != (wantNext != "") {
		t.Fatalf("events %v next %q has_more %v; want %s next %q", ids, list.Next, list.HasMore, wantIDs, wantNext)
	}
}

func TestRecentEventsQueryErrors(t *testing.T) {
	evs := eventsAt([]uint64{1000})
	h := newTestServer(newSeekLedger(billing.Account{ID: "acme", LastEventID: evs[0].ID}, evs).fakeLedger, nil).Handler()
	bad := func(param string) errorCase {
		return errorCase{http.StatusBadRequest, TypeInvalidRequest, CodeInvalidValue, param}
	}
	for _, tc := range []struct {
		target string
		want   errorCase
	}{
		{"/admin/v1/accounts/acme/ledger/recent?limit=0", bad("limit")},
		{"/admin/v1/accounts/acme/ledger/recent?limit=1001", bad("limit")},
		{"/admin/v1/accounts/acme/ledger/recent?before=yesterday", bad("before")},
		{"/admin/v1/accounts/acme/ledger/recent?before=1-2-3", bad("before")},
		{"/admin/v1/accounts/acme/ledger/recent?before=-1", bad("before")},
		{"/admin/v1/accounts/acme/ledger/recent?after=1-0", bad("after")},
		{"/admin/v1/accounts/acme/ledger/recent?limit=1&limit=2", bad("limit")},
		{"/admin/v1/accounts/nobody/ledger/recent", errorCase{http.StatusNotFound, TypeNotFound, CodeAccountNotFound, ""}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			checkError(t, call(t, h, http.MethodGet, tc.target, ""), tc.want)
		})
	}
}

// TestUsageReportStartsAtFrom: a report with a `from` starts reading the ledger
// near `from` instead of at its first event.
func TestUsageReportStartsAtFrom(t *testing.T) {
	start := testNow.Add(-5000 * time.Hour)
	evs := usageEvents(start, 5000) // one an hour, ids in the same milliseconds as `at`
	sl := newSeekLedger(snapshotOf("acme", evs), evs)
	h := newTestServer(sl.fakeLedger, nil).Handler()
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage?group_by=day&from="+testNow.Add(-48*time.Hour).Format(time.RFC3339), "")
	var rep UsageReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rep.Total.Requests != 48 {
		t.Fatalf("requests %d (%v): %s", rep.Total.Requests, err, rec.Body)
	}
	if sl.served > 60 {
		t.Errorf("the report read %d events for 48 in range", sl.served)
	}
}
