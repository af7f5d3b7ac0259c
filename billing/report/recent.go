package report

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/creditgate/creditgate/billing"
)

// EventID is a parsed ledger event id, "<ms>-<seq>" (a Redis stream id).
type EventID struct{ MS, Seq uint64 }

func (id EventID) String() string {
	return strconv.FormatUint(id.MS, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Compare orders two ids: −1, 0 or +1.
func (id EventID) Compare(o EventID) int {
	if c := cmp.Compare(id.MS, o.MS); c != 0 {
		return c
	}
	return cmp.Compare(id.Seq, o.Seq)
}

// Next is the smallest id after id.
func (id EventID) Next() EventID {
	if id.Seq == ^uint64(0) {
		return EventID{id.MS + 1, 0}
	}
	return EventID{id.MS, id.Seq + 1}
}

// ParseEventID parses "<ms>-<seq>" strictly (decimal digits only).
func ParseEventID(s string) (EventID, bool) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok || msPart == "" || seqPart == "" || strings.Trim(msPart+seqPart, "0123456789") != "" {
		return EventID{}, false
	}
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if err1 != nil || err2 != nil {
		return EventID{}, false
	}
	return EventID{ms, seq}, true
}

// startAfter is the `after` cursor whose page starts at the first event of
// millisecond ms ("" for ms 0: the ledger's start).
func startAfter(ms uint64) string {
	if ms == 0 {
		return ""
	}
	return EventID{ms - 1, ^uint64(0)}.String()
}

// RecentPage is a page of a ledger read newest first.
type RecentPage struct {
	// Events are newest first.
	Events []billing.Event
	// Next is the oldest event's id, to pass as before for the following, older
	// page; "" once the ledger's first event is on the page (HasMore false).
	Next    string
	HasMore bool
}

// Recent returns the snapshot's newest limit events with ids below before (all
// events when before is ""), newest first. before must be an event id (a
// previous page's Next); another string is billing.ErrInvalid.
//
// The store reads forward only (Ledger.Events), so the newest page is found by
// probing back from the end in windows of stream-id milliseconds that double
// while they hold too few events and are halved while they hold too many; each
// probe is one store call of at most limit+1 events. A page costs
// O(log(span of the ledger in ms)) such calls, independently of the ledger's
// length.
func Recent(ctx context.Context, ledger Ledger, s Snapshot, before string, limit int) (RecentPage, error) {
	if limit < 1 {
		return RecentPage{}, fmt.Errorf("%w: limit %d", billing.ErrInvalid, limit)
	}
	var bid EventID
	hasBefore := before != ""
	if hasBefore {
		var ok bool
		if bid, ok = ParseEventID(before); !ok {
			return RecentPage{}, fmt.Errorf("%w: before %q is not an event id", billing.ErrInvalid, before)
		}
	}
	var events []billing.Event
	var err error
	last, ok := ParseEventID(s.LastEventID)
	switch {
	case s.LastEventID == "":
		// An empty ledger.
	case !ok:
		// Ids this reader cannot seek by: read forward, keeping the newest.
		events, err = newestByScan(ctx, ledger, s.Account, bid, hasBefore, limit+1)
	default:
		hi := last.Next() // the snapshot's events, and none committed since
		if hasBefore && bid.Compare(hi) < 0 {
			hi = bid
		}
		rd := &reverseReader{ctx: ctx, ledger: ledger, account: s.Account}
		events, err = rd.newest(hi, limit+1)
	}
	if err != nil {
		return RecentPage{}, err
	}
	var page RecentPage
	if len(events) > limit { // one more than asked: older events remain
		events = events[1:]
		page.Next, page.HasMore = events[0].ID, true
	}
	page.Events = make([]billing.Event, 0, len(events))
	for i := len(events) - 1; i >= 0; i-- {
		page.Events = append(page.Events, events[i])
	}
	return page, nil
}

// newestByScan returns the newest n events (below before, if given) by reading
// the whole ledger forward: the fallback for event ids that do not parse.
func newestByScan(ctx context.Context, ledger Ledger, account string, before EventID, hasBefore bool, n int) ([]billing.Event, error) {
	ring := newEventRing(n)
	after := ""
	for {
		page, err := ledger.Events(ctx, account, after, PageSize)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if hasBefore {
				if id, ok := ParseEventID(ev.ID); ok && id.Compare(before) >= 0 {
					return ring.events(), nil
				}
			}
			ring.push(ev)
		}
		if page.Next == "" {
			return ring.events(), nil
		}
		after = page.Next
	}
}

// reverseReader finds the newest events of a ledger that reads forward only.
type reverseReader struct {
	ctx     context.Context
	ledger  Ledger
	account string
}

// firstRecentWindow is the first window newest probes, in milliseconds.
const firstRecentWindow = 1024

// newest returns the newest n events with ids below hi, oldest first.
func (rd *reverseReader) newest(hi EventID, n int) ([]billing.Event, error) {
	// Grow a window [ms, top) back from hi. got holds every event in [top, hi).
	var got []billing.Event
	top, w := hi, uint64(firstRecentWindow)
	for n > 0 {
		ms := top.MS - min(w, top.MS)
		evs, more, err := rd.first(ms, top, n)
		if err != nil {
			return nil, err
		}
		if more {
			// [ms, top) holds at least n events: narrow down to the newest n.
			rest, err := rd.newestIn(ms, top, n)
			if err != nil {
				return nil, err
			}
			return append(rest, got...), nil
		}
		got = append(evs, got...)
		n -= len(evs)
		if ms == 0 {
			break // the ledger's start
		}
		top = EventID{ms, 0}
		w = min(w*2, 1<<62)
	}
	return got, nil
}

// newestIn returns the newest n events of [ms, top), which holds at least n,
// oldest first, by halving the window.
func (rd *reverseReader) newestIn(ms uint64, top EventID, n int) ([]billing.Event, error) {
	var got []billing.Event // every event in [top, the original top)
	for {
		if top.MS <= ms+1 {
			// At most two milliseconds' worth: read it all, keeping the newest n.
			evs, err := rd.all(ms, top, n)
			if err != nil {
				return nil, err
			}
			return append(evs, got...), nil
		}
		mid := ms + (top.MS-ms)/2 // ms < mid < top.MS
		evs, more, err := rd.first(mid, top, n)
		if err != nil {
			return nil, err
		}
		if more {
			ms = mid // the upper half has enough
			continue
		}
		got = append(evs, got...)
		n -= len(evs)
		if n == 0 {
			return got, nil
		}
		top = EventID{mid, 0} // the lower half has at least n more
	}
}

// first reads the oldest n events of [ms, top) in one store call. more reports
// whether there are n of them (and perhaps more); otherwise evs is all of them.
func (rd *reverseReader) first(ms uint64, top EventID, n int) (evs []billing.Event, more bool, err error) {
	page, err := rd.ledger.Events(rd.ctx, rd.account, startAfter(ms), n)
	if err != nil {
		return nil, false, err
	}
	for _, ev := range page.Events {
		id, ok := ParseEventID(ev.ID)
		if ok && id.Compare(top) >= 0 {
			break
		}
		evs = append(evs, ev)
	}
	return evs, len(evs) >= n, nil
}

// all reads every event of [ms, top) and returns the newest n, oldest first.
func (rd *reverseReader) all(ms uint64, top EventID, n int) ([]billing.Event, error) {
	ring := newEventRing(n)
	after := startAfter(ms)
	for {
		page, err := rd.ledger.Events(rd.ctx, rd.account, after, PageSize)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if id, ok := ParseEventID(ev.ID); ok && id.Compare(top) >= 0 {
				return ring.events(), nil
			}
			ring.push(ev)
		}
		if page.Next == "" {
			return ring.events(), nil
		}
		after = page.Next
	}
}

// eventRing keeps the newest n events pushed.
type eventRing struct {
	buf   []billing.Event
	n     int
	start int // index of the oldest once full
}

func newEventRing(n int) *eventRing { return &eventRing{n: n} }

func (r *eventRing) push(ev billing.Event) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, ev)
		return
	}
	r.buf[r.start] = ev
	r.start = (r.start + 1) % r.n
}

// events returns the kept events, oldest first.
func (r *eventRing) events() []billing.Event {
	return append(append([]billing.Event(nil), r.buf[r.start:]...), r.buf[:r.start]...)
}
