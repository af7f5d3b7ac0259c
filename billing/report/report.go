// Package report computes what people read from an account's ledger: usage
// grouped by day, model and key over a time range, and the newest events, newest
// first. It has no HTTP: the admin API (its usage report, recent-events listing
// and export) and the customer's Billing page (package portal) both call it, and
// it reads through the narrow Ledger interface below, so a later source (a
// PostgreSQL ledger of record) can stand behind the same functions.
//
// Ranges are over each event's `at` (the time the proxy recorded it), half-open:
// from ≤ at < to. Events are stored in commit order, which is `at` order as long as
// the proxies' clocks agree, so a scan stops once events are ClockSkewAllowance
// past `to` instead of reading the ledger to its end. Event ids are Redis stream
// ids ("<ms>-<seq>", see billing.CompareEventIDs) whose milliseconds are the
// store's commit time, so a scan with a `from` also starts at the first event
// committed ClockSkewAllowance before `from` instead of at the ledger's start.
package report

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// Ledger is the read side of billing.Ledger that reports use: one account's
// events a page at a time, oldest first after a cursor (Events) or newest first
// before one (EventsBefore).
type Ledger interface {
	Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
	EventsBefore(ctx context.Context, account, before string, limit int) (billing.EventPage, error)
}

// Snapshot names what a report reads: an account's ledger up to and including
// LastEventID (billing.Account.LastEventID of the state the caller shows beside
// the report), so the report and the balances agree exactly.
type Snapshot struct {
	Account     string
	LastEventID string // "" for an empty ledger
}

// SnapshotOf is the snapshot of an account's state.
func SnapshotOf(a billing.Account) Snapshot {
	return Snapshot{Account: a.ID, LastEventID: a.LastEventID}
}

// PageSize is how many events a report reads per store call.
const PageSize = 1000

// ClockSkewAllowance is how far proxies' clocks may disagree: a scan for events
// before `to` stops at the first event this much later than `to`.
const ClockSkewAllowance = time.Hour

// Range is a half-open time range [From, To); a zero From is unbounded.
type Range struct {
	From, To time.Time
}

// contains reports whether ev is in the range, and whether a scan can stop
// (ev is far enough past To that no later event can be in range).
func (q Range) contains(ev billing.Event) (in, stop bool) {
	if !ev.At.Before(q.To) {
		return false, !ev.At.Before(q.To.Add(ClockSkewAllowance))
	}
	return q.From.IsZero() || !ev.At.Before(q.From), false
}

// Scan calls f for each event of the snapshot in range, oldest first, reading
// the ledger one page at a time (so a ledger of any length takes bounded memory).
// An error from f stops the scan and is returned.
func Scan(ctx context.Context, ledger Ledger, s Snapshot, q Range, f func(billing.Event) error) error {
	if s.LastEventID == "" {
		return nil
	}
	after := ""
	if _, ok := ParseEventID(s.LastEventID); ok && !q.From.IsZero() {
		// Skip what was committed well before From: see the package comment.
		if ms := q.From.Add(-ClockSkewAllowance).UnixMilli(); ms > 0 {
			after = startAfter(uint64(ms))
		}
	}
	for {
		page, err := ledger.Events(ctx, s.Account, after, PageSize)
		if err != nil {
			return err
		}
		for _, ev := range page.Events {
			if billing.CompareEventIDs(ev.ID, s.LastEventID) > 0 {
				return nil // after the snapshot
			}
			in, stop := q.contains(ev)
			if stop {
				return nil
			}
			if in {
				if err := f(ev); err != nil {
					return err
				}
			}
			if ev.ID == s.LastEventID {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}

// startAfter is the `after` cursor whose page starts at the first event of
// millisecond ms ("" for ms 0: the ledger's start).
func startAfter(ms uint64) string {
	if ms == 0 {
		return ""
	}
	return EventID{ms - 1, ^uint64(0)}.String()
}
