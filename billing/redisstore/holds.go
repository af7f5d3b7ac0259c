package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// holdScanPage is how many ledger events HoldOutcome reads per round trip when
// it has to search the ledger.
const holdScanPage = 500

// HoldOutcome tells how a hold ended (billing.Ledger.HoldOutcome). The hold's
// record answers while Redis keeps it (HoldRecordRetention after the hold's TTL
// or its settlement). Without it — forgotten, evicted, or lost with a restore or
// a failover — the ledger is searched from since for the hold's usage, release
// or hold_expired event: a usage or release says it was booked; a hold_expired
// alone says it died unsettled (a settle still charges it); nothing says
// HoldUnknown — or HoldTrimmed when the ledger was trimmed past since (an event
// of since or later was removed, by the checkpoint read after the search), so
// the hold's events may have been among those removed. Stream ids carry Redis's clock and since the caller's, so since
// must leave a margin for the clocks' difference (the spool gives 10 minutes).
//
// It reads the record, then the ledger, in separate round trips: meant for a
// hold nobody else is settling at the same time (a spooled or crashed
// request's).
func (s *Store) HoldOutcome(ctx context.Context, account, holdID string, since time.Time) (billing.HoldOutcome, error) {
	if err := checkHold(account, holdID); err != nil {
		return billing.HoldOutcome{}, err
	}
	rec, err := s.c.HGetAll(ctx, s.holdKey(account, holdID)).Result()
	if err != nil {
		return billing.HoldOutcome{}, wrap(err)
	}
	if state, ok := rec["state"]; ok {
		switch st := billing.HoldState(state); st {
		case billing.HoldLive, billing.HoldExpired, billing.HoldSettled, billing.HoldReleased:
			return billing.HoldOutcome{State: st, EventID: rec["event"]}, nil
		}
		return billing.HoldOutcome{}, &malformedError{where: fmt.Sprintf("hold record %q of account %q", holdID, account),
			detail: fmt.Sprintf("state is %s", show(state))}
	}
	return s.holdOutcomeInLedger(ctx, account, holdID, since)
}

// holdOutcomeInLedger searches the account's ledger from since for the events
// that end hold holdID.
func (s *Store) holdOutcomeInLedger(ctx context.Context, account, holdID string, since time.Time) (billing.HoldOutcome, error) {
	start := "-"
	if ms := since.UnixMilli(); !since.IsZero() && ms > 0 {
		start = strconv.FormatInt(ms, 10) + "-0" // the first stream id of that millisecond
	}
	var out billing.HoldOutcome
	for {
		msgs, err := s.c.XRangeN(ctx, s.ledgerKey(account), start, "+", holdScanPage).Result()
		if err != nil {
			return billing.HoldOutcome{}, wrap(err)
		}
		for _, m := range msgs {
			if m.Values["hold_id"] != holdID {
				continue
			}
			switch billing.EventType(fmt.Sprint(m.Values["type"])) {
			case billing.EventUsage:
				return billing.HoldOutcome{State: billing.HoldSettled, EventID: m.ID}, nil
			case billing.EventRelease:
				return billing.HoldOutcome{State: billing.HoldReleased, EventID: m.ID}, nil
			case billing.EventHoldExpired:
				out = billing.HoldOutcome{State: billing.HoldExpired, EventID: m.ID} // a late usage may follow
			}
		}
		if len(msgs) < holdScanPage {
			if out.State != billing.HoldUnknown {
				return out, nil
			}
			return s.unlessTrimmed(ctx, account, since)
		}
		if start, err = nextStreamID(msgs[len(msgs)-1].ID); err != nil {
			return billing.HoldOutcome{}, err
		}
	}
}

// unlessTrimmed answers for a hold the ledger has no event of since since:
// HoldUnknown, or HoldTrimmed when the account's checkpoint stands at or after
// since (then the events that would tell may have been trimmed). Both times are
// the callers' clocks (events' at), so a trim by one proxy and the question of
// another agree as well as their clocks do.
func (s *Store) unlessTrimmed(ctx context.Context, account string, since time.Time) (billing.HoldOutcome, error) {
	at, err := s.checkpointAt(ctx, account)
	if err != nil || at.IsZero() {
		return billing.HoldOutcome{}, err
	}
	if since.IsZero() || !at.Before(since) {
		return billing.HoldOutcome{State: billing.HoldTrimmed}, nil
	}
	return billing.HoldOutcome{}, nil
}

// holdKey is the record of hold holdID (the KEYS[7] of holdKeys).
func (s *Store) holdKey(id, holdID string) string {
	return s.prefix + "{acct:" + id + "}:hold:" + holdID
}
