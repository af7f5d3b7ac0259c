package billingtest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/creditgate/creditgate/billing"
)

// EventLog is one account's ledger held in memory, events sorted by id, read
// the way the Redis store reads its stream: any event id is a cursor, whether
// or not an event has it, and a cursor that is not an event id is
// billing.ErrInvalid.
type EventLog []billing.Event

// Events returns up to limit events after after ("" from the first), oldest
// first (billing.Ledger.Events).
func (l EventLog) Events(after string, limit int) (billing.EventPage, error) {
	if after != "" && !billing.ValidEventID(after) {
		return billing.EventPage{}, fmt.Errorf("%w: cursor %q", billing.ErrInvalid, after)
	}
	if limit <= 0 {
		limit = 100
	}
	start := 0
	if after != "" {
		start = sort.Search(len(l), func(i int) bool { return billing.CompareEventIDs(l[i].ID, after) > 0 })
	}
	end := min(start+limit, len(l))
	page := billing.EventPage{Events: append([]billing.Event(nil), l[start:end]...)}
	if end < len(l) {
		page.Next = l[end-1].ID
	}
	return page, nil
}

// EventsBefore returns up to limit events before before ("" from the newest),
// newest first (billing.Ledger.EventsBefore).
func (l EventLog) EventsBefore(before string, limit int) (billing.EventPage, error) {
	if before != "" && !billing.ValidEventID(before) {
		return billing.EventPage{}, fmt.Errorf("%w: cursor %q", billing.ErrInvalid, before)
	}
	if limit <= 0 {
		limit = 100
	}
	end := len(l) // events [0, end) are below before
	if before != "" {
		end = sort.Search(len(l), func(i int) bool { return billing.CompareEventIDs(l[i].ID, before) >= 0 })
	}
	start := max(end-limit, 0)
	page := billing.EventPage{Events: make([]billing.Event, 0, end-start)}
	for i := end - 1; i >= start; i-- {
		page.Events = append(page.Events, l[i])
	}
	if start > 0 {
		page.Next = l[start].ID
	}
	return page, nil
}

var _ billing.EventArchive = (*Archive)(nil)

// Archive is an in-memory billing.EventArchive: what a shipper appended, per
// account. It keeps the contract's promise itself: Append refuses an event
// that does not follow the account's archived head, so what it holds of an
// account is always a prefix of the ledger it was shipped from (when the
// shipper ships in order). Safe for concurrent use.
type Archive struct {
	mu       sync.Mutex
	accounts map[string]EventLog
	// Err, when set, fails every read (an archive that is down).
	Err error
}

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{accounts: map[string]EventLog{}} }

// Append archives events of account in order; events at or before the head
// are skipped (a re-shipped batch: each id is kept once), and it reports how
// many were new.
func (a *Archive) Append(account string, events ...billing.Event) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	log := a.accounts[account]
	n := 0
	for _, ev := range events {
		if len(log) > 0 && billing.CompareEventIDs(ev.ID, log[len(log)-1].ID) <= 0 {
			continue
		}
		log = append(log, ev)
		n++
	}
	a.accounts[account] = log
	return n
}

// Log returns a copy of what is archived of account.
func (a *Archive) Log(account string) EventLog {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(EventLog(nil), a.accounts[account]...)
}

func (a *Archive) log(account string) (EventLog, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.accounts[account], a.Err
}

// ArchivedEvents implements billing.EventArchive.
func (a *Archive) ArchivedEvents(_ context.Context, account, after string, limit int) (billing.EventPage, error) {
	log, err := a.log(account)
	if err != nil {
		return billing.EventPage{}, err
	}
	return log.Events(after, limit)
}

// ArchivedEventsBefore implements billing.EventArchive.
func (a *Archive) ArchivedEventsBefore(_ context.Context, account, before string, limit int) (billing.EventPage, error) {
	log, err := a.log(account)
	if err != nil {
		return billing.EventPage{}, err
	}
	return log.EventsBefore(before, limit)
}

// ArchiveHead implements billing.EventArchive.
func (a *Archive) ArchiveHead(_ context.Context, account string) (string, error) {
	log, err := a.log(account)
	if err != nil || len(log) == 0 {
		return "", err
	}
	return log[len(log)-1].ID, nil
}
