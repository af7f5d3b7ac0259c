package billing

import (
	"context"
	"fmt"
	"time"
)

// ArchivedLedger is the store's Ledger with its history read from an
// EventArchive: Events and EventsBefore serve each account's archived events up
// to the archive's head and the store's events after it, each event once, with
// the store's cursor semantics, so a page may straddle the seam. That holds
// while the store still keeps events the archive has (they are read from the
// archive only) and after the store was trimmed up to the archive's head (the
// tail starts after it). HoldOutcome asks the archive when the store was
// trimmed past a hold, and WholeHistory lets the audit replay from the first
// event again. Every other method is the store's.
//
// The seam is read consistently against a shipper and a trimmer running at the
// same time: a read takes the archive's head, reads both sides, and starts
// again when the head moved meanwhile (a trim up to the new head may have
// removed events the store side was to serve). The archive's head only grows,
// and the store is trimmed only up to it.
type ArchivedLedger struct {
	Ledger  // the store: hot state, every write, the unshipped tail
	Archive EventArchive
}

// NewArchivedLedger returns store with its reads served from archive and the
// store's tail, or store itself when archive is nil; a *RollupArchivedLedger
// when archive is also a DailyUsageArchive.
func NewArchivedLedger(store Ledger, archive EventArchive) Ledger {
	if archive == nil {
		return store
	}
	l := &ArchivedLedger{Ledger: store, Archive: archive}
	if daily, ok := archive.(DailyUsageArchive); ok {
		return &RollupArchivedLedger{ArchivedLedger: l, Daily: daily}
	}
	return l
}

// seamAttempts bounds how often a read starts again because the archive's head
// moved while it read; a shipper moves it at most once a batch, so a read that
// keeps losing the race is a sign of trouble, answered as ErrUnavailable.
const seamAttempts = 8

// defaultPageSize is the limit a page gets when it asks for none (as the
// store's).
const defaultPageSize = 100

func errSeamMoving(account string) error {
	return fmt.Errorf("%w: the ledger archive's head of account %q kept moving while its ledger was read", ErrUnavailable, account)
}

func checkCursor(name, id string) error {
	if id != "" && !ValidEventID(id) {
		return fmt.Errorf("%w: ledger cursor %s %q is not an event id", ErrInvalid, name, id)
	}
	return nil
}

// Events returns up to limit events after after, oldest first: archived ones
// up to the archive's head, then the store's (Ledger.Events).
func (l *ArchivedLedger) Events(ctx context.Context, account, after string, limit int) (EventPage, error) {
	if ValidAccountID(account) != nil {
		return l.Ledger.Events(ctx, account, after, limit) // the store's answer to an id it cannot hold
	}
	if err := checkCursor("after", after); err != nil {
		return EventPage{}, err
	}
	if limit <= 0 {
		limit = defaultPageSize
	}
	for range seamAttempts {
		head, err := l.Archive.ArchiveHead(ctx, account)
		if err != nil {
			return EventPage{}, err
		}
		evs := make([]Event, 0, limit+1) // one more than asked: whether more follow
		if head != "" && (after == "" || CompareEventIDs(after, head) < 0) {
			if evs, err = l.archivedAfter(ctx, account, after, head, limit+1); err != nil {
				return EventPage{}, err
			}
		}
		if len(evs) <= limit {
			from := after
			if head != "" && (from == "" || CompareEventIDs(from, head) < 0) {
				from = head // the store's copies of archived events are not read
			}
			tail, err := l.Ledger.Events(ctx, account, from, limit+1-len(evs))
			if err != nil {
				return EventPage{}, err
			}
			evs = append(evs, tail.Events...)
			if moved, err := l.headMoved(ctx, account, head); err != nil || moved {
				if err != nil {
					return EventPage{}, err
				}
				continue
			}
		}
		return pageOf(evs, limit), nil
	}
	return EventPage{}, errSeamMoving(account)
}

// archivedAfter reads up to n archived events after after and at most head.
func (l *ArchivedLedger) archivedAfter(ctx context.Context, account, after, head string, n int) ([]Event, error) {
	var evs []Event
	for len(evs) < n {
		p, err := l.Archive.ArchivedEvents(ctx, account, after, n-len(evs))
		if err != nil {
			return nil, err
		}
		for _, ev := range p.Events {
			if CompareEventIDs(ev.ID, head) > 0 {
				return evs, nil // shipped since the head was read: the store serves it
			}
			evs = append(evs, ev)
		}
		if p.Next == "" || len(p.Events) == 0 {
			break
		}
		after = p.Next
	}
	return evs, nil
}

// EventsBefore returns up to limit events before before, newest first: the
// store's after the archive's head, then archived ones (Ledger.EventsBefore).
func (l *ArchivedLedger) EventsBefore(ctx context.Context, account, before string, limit int) (EventPage, error) {
	if ValidAccountID(account) != nil {
		return l.Ledger.EventsBefore(ctx, account, before, limit)
	}
	if err := checkCursor("before", before); err != nil {
		return EventPage{}, err
	}
	if limit <= 0 {
		limit = defaultPageSize
	}
attempts:
	for range seamAttempts {
		head, err := l.Archive.ArchiveHead(ctx, account)
		if err != nil {
			return EventPage{}, err
		}
		evs := make([]Event, 0, limit+1)
		if head == "" || before == "" || CompareEventIDs(before, head) > 0 {
			tail, err := l.Ledger.EventsBefore(ctx, account, before, limit+1)
			if err != nil {
				return EventPage{}, err
			}
			for _, ev := range tail.Events {
				if head != "" && CompareEventIDs(ev.ID, head) <= 0 {
					break // archived: read from the archive below
				}
				evs = append(evs, ev)
			}
			if len(evs) > limit {
				// The newest limit+1 events after the head, read in one
				// atomic call: a trim cannot have cut into them.
				return pageOf(evs, limit), nil
			}
			if moved, err := l.headMoved(ctx, account, head); err != nil || moved {
				if err != nil {
					return EventPage{}, err
				}
				continue
			}
		}
		if head == "" {
			return pageOf(evs, limit), nil
		}
		cursor := before
		if cursor != "" && CompareEventIDs(cursor, head) > 0 {
			cursor = "" // from the archive's newest, which is the head unless it moved
		}
		for len(evs) <= limit {
			p, err := l.Archive.ArchivedEventsBefore(ctx, account, cursor, limit+1-len(evs))
			if err != nil {
				return EventPage{}, err
			}
			for _, ev := range p.Events {
				if CompareEventIDs(ev.ID, head) > 0 {
					continue attempts // shipped since the head was read: read the seam again
				}
				evs = append(evs, ev)
			}
			if p.Next == "" || len(p.Events) == 0 {
				break
			}
			cursor = p.Next
		}
		return pageOf(evs, limit), nil
	}
	return EventPage{}, errSeamMoving(account)
}

// headMoved reports whether account's archive head is no longer head.
func (l *ArchivedLedger) headMoved(ctx context.Context, account, head string) (bool, error) {
	now, err := l.Archive.ArchiveHead(ctx, account)
	return now != head, err
}

// pageOf is the page of the first limit of evs (which holds one more when more
// follow), with the store's Next: the last event's id when more follow.
func pageOf(evs []Event, limit int) EventPage {
	if len(evs) > limit {
		evs = evs[:limit]
		return EventPage{Events: evs, Next: evs[limit-1].ID}
	}
	return EventPage{Events: evs}
}

// An ArchivedHoldFinder is an EventArchive that finds the events of one hold
// (its usage, release and hold_expired events) without a scan; HoldOutcome uses
// it when the archive has it.
type ArchivedHoldFinder interface {
	// ArchivedHoldEvents returns the archived events of account whose hold id
	// is holdID, oldest first.
	ArchivedHoldEvents(ctx context.Context, account, holdID string) ([]Event, error)
}

// holdSearchSkew is how far before since HoldOutcome's scan of the archive
// reads: events are archived in commit order, and their times are the proxies'
// clocks, which may disagree.
const holdSearchSkew = time.Hour

// holdScanPage is how many archived events one step of HoldOutcome's scan reads.
const holdScanPage = 1000

// HoldOutcome is the store's answer, unless the store was trimmed past the hold
// (HoldTrimmed) and the archive holds every event trimmed: then the archive
// tells (Ledger.HoldOutcome), and a hold of which neither has an event is
// HoldUnknown.
func (l *ArchivedLedger) HoldOutcome(ctx context.Context, account, holdID string, since time.Time) (HoldOutcome, error) {
	o, err := l.Ledger.HoldOutcome(ctx, account, holdID, since)
	if err != nil || o.State != HoldTrimmed {
		return o, err
	}
	a, err := l.Ledger.GetAccount(ctx, account)
	if err != nil {
		return HoldOutcome{}, err
	}
	if a.Checkpoint == nil {
		return o, nil
	}
	if whole, err := l.WholeHistory(ctx, account, *a.Checkpoint); err != nil || !whole {
		return o, err
	}
	var evs []Event
	if f, ok := l.Archive.(ArchivedHoldFinder); ok {
		if evs, err = f.ArchivedHoldEvents(ctx, account, holdID); err != nil {
			return HoldOutcome{}, err
		}
	} else if evs, err = l.scanHold(ctx, account, holdID, since); err != nil {
		return HoldOutcome{}, err
	}
	// The newest of the hold's events tells how it ended (see the ledger's
	// hold outcomes: a usage may follow a hold_expired, nothing else follows).
	for i := len(evs) - 1; i >= 0; i-- {
		switch evs[i].Type {
		case EventUsage:
			return HoldOutcome{State: HoldSettled, EventID: evs[i].ID}, nil
		case EventRelease:
			return HoldOutcome{State: HoldReleased, EventID: evs[i].ID}, nil
		case EventHoldExpired:
			return HoldOutcome{State: HoldExpired, EventID: evs[i].ID}, nil
		}
	}
	return HoldOutcome{}, nil
}

// scanHold reads the archive newest first, back to holdSearchSkew before
// since (zero: all of it), and returns hold holdID's events, oldest first.
func (l *ArchivedLedger) scanHold(ctx context.Context, account, holdID string, since time.Time) ([]Event, error) {
	var found []Event
	cursor := ""
	for {
		p, err := l.Archive.ArchivedEventsBefore(ctx, account, cursor, holdScanPage)
		if err != nil {
			return nil, err
		}
		for _, ev := range p.Events {
			if !since.IsZero() && ev.At.Before(since.Add(-holdSearchSkew)) {
				return found, nil
			}
			if ev.HoldID == holdID {
				found = append([]Event{ev}, found...)
			}
		}
		if p.Next == "" || len(p.Events) == 0 {
			return found, nil
		}
		cursor = p.Next
	}
}

// A HistoryLedger serves events its store trimmed (from an archive).
type HistoryLedger interface {
	Ledger
	// WholeHistory reports whether account's reads serve its ledger from the
	// first event although the store was trimmed up to cp: the archive holds
	// every event up to cp's.
	WholeHistory(ctx context.Context, account string, cp Checkpoint) (bool, error)
}

var _ HistoryLedger = (*ArchivedLedger)(nil)

// WholeHistory implements HistoryLedger: the archive's head is at or after
// the checkpoint (the archive holds a prefix of the ledger).
func (l *ArchivedLedger) WholeHistory(ctx context.Context, account string, cp Checkpoint) (bool, error) {
	head, err := l.Archive.ArchiveHead(ctx, account)
	if err != nil {
		return false, err
	}
	return head != "" && CompareEventIDs(head, cp.EventID) >= 0, nil
}
