package redisstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// ids lists the events' ids.
func ids(evs []billing.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// walkBefore pages the ledger newest first from before, limit events a page,
// and returns every event seen, checking each page's Next against its events.
func walkBefore(t testing.TB, e *env, id, before string, limit int) []billing.Event {
	t.Helper()
	var all []billing.Event
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("EventsBefore does not end")
		}
		p, err := e.EventsBefore(e.ctx, id, before, limit)
		if err != nil {
			t.Fatalf("EventsBefore(%q, %d): %v", before, limit, err)
		}
		if len(p.Events) > limit {
			t.Fatalf("page of %d events, limit %d", len(p.Events), limit)
		}
		all = append(all, p.Events...)
		if p.Next == "" {
			return all
		}
		if len(p.Events) == 0 || p.Next != p.Events[len(p.Events)-1].ID {
			t.Fatalf("Next %q is not the page's oldest event (%v)", p.Next, ids(p.Events))
		}
		before = p.Next
	}
}

// EventsBefore pages newest first: exclusive cursors, exact Next at the
// ledger's first event, every page size walking the whole ledger, and a trimmed
// ledger ending at its oldest kept event.
func TestEventsBefore(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		evs := trimHistory(t, e, "eb", 5) // 6 events
		rev := slices.Clone(evs)
		slices.Reverse(rev)
		cases := []struct {
			name     string
			before   string
			limit    int
			want     []billing.Event
			wantNext string
		}{
			{"newest page", "", 2, rev[:2], rev[1].ID},
			{"everything in one page", "", 10, rev, ""},
			{"exactly everything", "", 6, rev, ""},
			{"one short of everything", "", 5, rev[:5], rev[4].ID},
			{"below an event, exclusive", evs[3].ID, 10, rev[3:], ""},
			{"below the newest", evs[5].ID, 1, rev[1:2], rev[1].ID},
			{"below the first event", evs[0].ID, 10, nil, ""},
			{"below 0-0", "0-0", 10, nil, ""},
			{"a cursor past the newest", "99999999999999-0", 3, rev[:3], rev[2].ID},
			{"a cursor between events", nextID(t, evs[2].ID), 10, rev[3:], ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p, err := e.EventsBefore(e.ctx, "eb", c.before, c.limit)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(p.Events), ids(c.want)) || p.Next != c.wantNext {
					t.Errorf("got %v next %q; want %v next %q", ids(p.Events), p.Next, ids(c.want), c.wantNext)
				}
			})
		}
		for limit := 1; limit <= 7; limit++ {
			if got := walkBefore(t, e, "eb", "", limit); !slices.Equal(ids(got), ids(rev)) {
				t.Errorf("limit %d walks %v, want %v", limit, ids(got), ids(rev))
			}
		}
		for _, bad := range []string{"x", "1-", "-1", "1-2-3"} {
			if _, err := e.EventsBefore(e.ctx, "eb", bad, 5); !errors.Is(err, billing.ErrInvalid) {
				t.Errorf("cursor %q: %v, want ErrInvalid", bad, err)
			}
		}
		if p, err := e.EventsBefore(e.ctx, "nobody", "", 5); err != nil || len(p.Events) != 0 || p.Next != "" {
			t.Errorf("an account without events: %+v, %v; want an empty page", p, err)
		}

		t.Run("trimmed", func(t *testing.T) {
			evs := trimHistory(t, e, "ebt", 5)
			e.trim(t, "ebt", evs[2].ID, e.clock.Now().Add(time.Hour))
			kept := slices.Clone(evs[3:])
			slices.Reverse(kept)
			for limit := 1; limit <= 4; limit++ {
				if got := walkBefore(t, e, "ebt", "", limit); !slices.Equal(ids(got), ids(kept)) {
					t.Errorf("limit %d walks %v, want the kept %v", limit, ids(got), ids(kept))
				}
			}
			if p, err := e.EventsBefore(e.ctx, "ebt", evs[3].ID, 5); err != nil || len(p.Events) != 0 || p.Next != "" {
				t.Errorf("below the oldest kept event: %+v, %v; want an empty page", p, err)
			}
		})
	})
}

func nextID(t testing.TB, id string) string {
	t.Helper()
	n, err := nextStreamID(id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// prevStreamID is nextStreamID's inverse, and 0-0 has nothing before it.
func TestPrevStreamID(t *testing.T) {
	for _, c := range []struct{ id, want string }{
		{"5-3", "5-2"},
		{"5-0", fmt.Sprintf("4-%d", ^uint64(0))},
		{"0-1", "0-0"},
		{"0-0", ""},
	} {
		got, ok, err := prevStreamID(c.id)
		if err != nil || got != c.want || ok != (c.want != "") {
			t.Errorf("prevStreamID(%q) = %q, %v, %v; want %q", c.id, got, ok, err, c.want)
		}
		if ok {
			if back := nextID(t, got); back != c.id {
				t.Errorf("nextStreamID(prevStreamID(%q)) = %q", c.id, back)
			}
		}
	}
}
