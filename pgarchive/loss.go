package pgarchive

import (
	"context"
	"fmt"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Redis loss detection. The store holds, for each account, every event after
// its checkpoint; the archive holds a prefix of the ledger. So every archived
// event after the store's checkpoint must also be in the store. One that is not
// was lost by the store after it was shipped: Redis restored from an older
// snapshot (or AOF), or a failover to a replica that had not received it. The
// balance Redis now shows lacks its effect. Compare walks both sequences after
// the checkpoint in id order, a page at a time, and names such events; it also
// names store events at or before the archive head that the archive lacks (the
// archive restored from an older backup while Redis was trimmed past it: those
// are safe in Redis until trimmed, and the shipper does not go back for them).

// LossSource is the store Compare reads.
type LossSource interface {
	GetAccount(ctx context.Context, id string) (billing.Account, error)
	Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
}

// maxListed bounds the ids a LossReport lists; the counts are exact.
const maxListed = 100

// comparePage is how many events Compare reads per call from each side.
const comparePage = 1000

// LossReport is what Compare found for one account.
type LossReport struct {
	Account     string
	ArchiveHead string // the archive's newest event
	StoreHead   string // the store's newest event (its LastEventID)
	Checkpoint  string // the store's checkpoint ("" when never trimmed)
	// Missing are archived events the store lost (at most maxListed, oldest
	// first); MissingCount counts them all.
	Missing      []billing.Event
	MissingCount int
	// MissingEffect is what the missing events did to the balance (credit −
	// debt), summed: credit they granted, less usage they charged and credit
	// they expired or took back. Repairing the store means booking it back
	// (README: the ledger of record, repair).
	MissingEffect money.Micros
	// Unarchived are store event ids at or before the archive head that the
	// archive lacks (at most maxListed); UnarchivedCount counts them all.
	Unarchived      []string
	UnarchivedCount int
}

// OK reports whether the store holds every archived event it should, and the
// archive every store event up to its head.
func (r LossReport) OK() bool { return r.MissingCount == 0 && r.UnarchivedCount == 0 }

// MissingIDs are the ids of r.Missing.
func (r LossReport) MissingIDs() []string {
	ids := make([]string, len(r.Missing))
	for i, ev := range r.Missing {
		ids[i] = ev.ID
	}
	return ids
}

// balanceEffect is what ev did to credit − debt.
func balanceEffect(ev billing.Event) money.Micros {
	switch ev.Type {
	case billing.EventTopUp, billing.EventAutoRecharge, billing.EventAdjustment:
		return ev.Amount // an adjustment's is signed
	case billing.EventUsage, billing.EventExpire:
		return -ev.Amount
	}
	return 0
}

// Compare checks account's store ledger against the archive (see the notes
// above). It reads both from the store's checkpoint on, up to the archive's
// head as it was at the start. A trim meanwhile (a shipper's) removes events
// the walk may then miss: those at or before the checkpoint as it is after the
// walk are not counted as lost (trimmedMeanwhile). Past maxTracked missing
// events that cannot be told apart, and when the checkpoint moved, Compare
// walks again from the new one.
func (a *Archive) Compare(ctx context.Context, store LossSource, account string) (LossReport, error) {
	for attempt := 0; ; attempt++ {
		rep, err := a.compareOnce(ctx, store, account)
		if err != nil || rep.OK() || attempt == 3 {
			return rep, err
		}
		acct, err := store.GetAccount(ctx, account)
		if err != nil {
			return LossReport{}, err
		}
		if acct.Checkpoint == nil || acct.Checkpoint.EventID == rep.Checkpoint {
			return rep, nil
		}
	}
}

func (a *Archive) compareOnce(ctx context.Context, store LossSource, account string) (LossReport, error) {
	// The head first: the store's events up to it are then all there (or
	// trimmed, which the checkpoint read after it says).
	head, err := a.ArchiveHead(ctx, account)
	if err != nil {
		return LossReport{}, err
	}
	acct, err := store.GetAccount(ctx, account)
	if err != nil {
		return LossReport{}, err
	}
	rep := LossReport{Account: account, ArchiveHead: head, StoreHead: acct.LastEventID}
	if acct.Checkpoint != nil {
		rep.Checkpoint = acct.Checkpoint.EventID
	}
	if head == "" || (rep.Checkpoint != "" && billing.CompareEventIDs(head, rep.Checkpoint) <= 0) {
		return rep, nil // nothing archived after the checkpoint
	}
	archived := &cursor{next: func(after string) (billing.EventPage, error) {
		return a.ArchivedEvents(ctx, account, after, comparePage)
	}, after: rep.Checkpoint}
	stored := &cursor{next: func(after string) (billing.EventPage, error) {
		return store.Events(ctx, account, after, comparePage)
	}, after: rep.Checkpoint}
	var missing []billing.Event // found missing, up to maxTracked: some may be trimmed meanwhile
	for {
		av, aok, err := archived.peek()
		if err != nil {
			return rep, err
		}
		sv, sok, err := stored.peek()
		if err != nil {
			return rep, err
		}
		// After the head (as read at the start): not shipped then, nothing to compare.
		if sok && billing.CompareEventIDs(sv.ID, head) > 0 {
			sok = false
		}
		if aok && billing.CompareEventIDs(av.ID, head) > 0 {
			aok = false
		}
		switch {
		case !aok && !sok:
			return rep, trimmedMeanwhile(ctx, store, &rep, missing)
		case aok && (!sok || billing.CompareEventIDs(av.ID, sv.ID) < 0):
			if len(missing) < maxTracked {
				missing = append(missing, av)
			} else { // counted as lost: Compare walks again if a trim explains more
				rep.MissingCount++
				rep.MissingEffect += balanceEffect(av)
			}
			archived.pop()
		case sok && (!aok || billing.CompareEventIDs(sv.ID, av.ID) < 0):
			rep.UnarchivedCount++
			if len(rep.Unarchived) < maxListed {
				rep.Unarchived = append(rep.Unarchived, sv.ID)
			}
			stored.pop()
		default: // the same id on both sides
			archived.pop()
			stored.pop()
		}
	}
}

// maxTracked bounds the events compareOnce keeps to tell trimmed from lost.
const maxTracked = 10_000

// trimmedMeanwhile adds to rep the events of missing (archived, not found in
// the store, in id order) that Redis lost. A trim during the walk removes the
// oldest events and moves the checkpoint over them: those at or before the
// checkpoint as it is after the walk were trimmed, not lost (the shipper had
// archived them), however many trims the walk ran into.
func trimmedMeanwhile(ctx context.Context, store LossSource, rep *LossReport, missing []billing.Event) error {
	if len(missing) == 0 {
		return nil
	}
	acct, err := store.GetAccount(ctx, rep.Account)
	if err != nil {
		return err
	}
	if acct.Checkpoint != nil {
		cp := acct.Checkpoint.EventID
		for len(missing) > 0 && billing.CompareEventIDs(missing[0].ID, cp) <= 0 {
			missing = missing[1:]
		}
	}
	rep.MissingCount += len(missing)
	for i, ev := range missing {
		rep.MissingEffect += balanceEffect(ev)
		if i < maxListed {
			rep.Missing = append(rep.Missing, ev)
		}
	}
	return nil
}

// cursor walks a paged, id-ordered event sequence.
type cursor struct {
	next  func(after string) (billing.EventPage, error)
	after string
	buf   []billing.Event
	done  bool
}

func (c *cursor) peek() (billing.Event, bool, error) {
	for len(c.buf) == 0 {
		if c.done {
			return billing.Event{}, false, nil
		}
		p, err := c.next(c.after)
		if err != nil {
			return billing.Event{}, false, err
		}
		c.buf = p.Events
		if p.Next == "" {
			c.done = true
		} else {
			c.after = p.Next
		}
	}
	return c.buf[0], true, nil
}

func (c *cursor) pop() { c.buf = c.buf[1:] }

// Problems are r's findings as audit problems (check "archive"), for the
// audit's report; none when r is OK.
func (r LossReport) Problems() []billing.AuditProblem {
	var ps []billing.AuditProblem
	if r.MissingCount > 0 {
		ps = append(ps, billing.AuditProblem{Check: "archive", EventID: r.Missing[0].ID, Message: fmt.Sprintf(
			"Redis lost %d event(s) the ledger archive holds (Redis restored from an older state, or a failover that dropped writes): %s; their balance effect %s is missing from the stored balance (repair: README, the ledger of record)",
			r.MissingCount, listIDs(r.MissingIDs(), r.MissingCount), r.MissingEffect)})
	}
	if r.UnarchivedCount > 0 {
		ps = append(ps, billing.AuditProblem{Check: "archive", EventID: r.Unarchived[0], Message: fmt.Sprintf(
			"the ledger archive lacks %d event(s) Redis holds at or before the archive head %s (the archive restored from an older backup?): %s",
			r.UnarchivedCount, r.ArchiveHead, listIDs(r.Unarchived, r.UnarchivedCount))})
	}
	return ps
}

func listIDs(ids []string, total int) string {
	s := strings.Join(ids, ", ")
	if total > len(ids) {
		s += fmt.Sprintf(" and %d more", total-len(ids))
	}
	return s
}
