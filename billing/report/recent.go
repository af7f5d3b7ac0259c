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
// previous page's Next); another string is billing.ErrInvalid. It reads the
// ledger newest first (Ledger.EventsBefore), skipping events committed after the
// snapshot, so a page costs one store call (more only while events committed
// since the snapshot fill the pages read).
func Recent(ctx context.Context, ledger Ledger, s Snapshot, before string, limit int) (RecentPage, error) {
	if limit < 1 {
		return RecentPage{}, fmt.Errorf("%w: limit %d", billing.ErrInvalid, limit)
	}
	if before != "" {
		if _, ok := ParseEventID(before); !ok {
			return RecentPage{}, fmt.Errorf("%w: before %q is not an event id", billing.ErrInvalid, before)
		}
	}
	var page RecentPage
	if s.LastEventID == "" {
		return page, nil // an empty ledger
	}
	events := make([]billing.Event, 0, limit+1) // one more than asked: whether older events remain
	for cursor := before; len(events) <= limit; {
		p, err := ledger.EventsBefore(ctx, s.Account, cursor, limit+1-len(events))
		if err != nil {
			return RecentPage{}, err
		}
		for _, ev := range p.Events {
			if billing.CompareEventIDs(ev.ID, s.LastEventID) <= 0 {
				events = append(events, ev)
			}
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(events) > limit {
		events = events[:limit]
		page.Next, page.HasMore = events[limit-1].ID, true
	}
	page.Events = events
	return page, nil
}
