package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
)

// Trimming bounds an account's ledger stream: TrimLedger removes its oldest
// events and moves the account's checkpoint hash `{acct:<id>}:checkpoint` (the
// running state right after the last event removed) over them, batch by batch,
// each batch one run of lua/trim.lua. GetAccount returns the checkpoint with the
// snapshot, for the audit to start from.

var trimScript = newScript("trim.lua")

// trimBatch is the most events one run of trim.lua removes: a script's run time
// stays short (Redis serves nothing else meanwhile), and TrimLedger runs it
// again while there is more.
const trimBatch = 1000

var _ billing.LedgerTrimmer = (*Store)(nil)

// TrimLedger removes account's events with id ≤ upTo ("" or "+": any) that
// happened before before, and the checkpoint follows (billing.LedgerTrimmer).
// It runs batches until none is due or ctx ends; the result adds them up.
func (s *Store) TrimLedger(ctx context.Context, account, upTo string, before time.Time) (billing.TrimResult, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.TrimResult{}, notFound(account)
	}
	if upTo == "" {
		upTo = "+"
	}
	if upTo != "+" {
		if _, err := nextStreamID(upTo); err != nil {
			return billing.TrimResult{}, err
		}
	}
	var total billing.TrimResult
	for {
		r, err := s.run(ctx, trimScript, s.accountKeys(account, "checkpoint"), upTo, msArg(before), trimBatch)
		if err != nil {
			return total, err
		}
		res, more, err := decodeTrim(r, account)
		if err != nil {
			return total, err
		}
		total.Removed += res.Removed
		total.CheckpointID, total.TrimmedTotal = res.CheckpointID, res.TrimmedTotal
		if !more {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, wrap(err)
		}
	}
}

func decodeTrim(r reply, account string) (billing.TrimResult, bool, error) {
	switch r.status() {
	case "OK":
		res := billing.TrimResult{Removed: int64(r.count(1)), CheckpointID: r.str(2), TrimmedTotal: int64(r.count(3))}
		more := r.flag(4)
		if r.err == nil && (res.CheckpointID == "") != (res.TrimmedTotal == 0) {
			r.fail("checkpoint %s after %d events trimmed", show(res.CheckpointID), res.TrimmedTotal)
		}
		res, err := decoded(&r, 5, res)
		return res, more && err == nil, err
	case "NOACCOUNT":
		return billing.TrimResult{}, false, r.refusal(1, notFound(account))
	}
	return billing.TrimResult{}, false, r.unexpected()
}

// parseCheckpoint reads the checkpoint hash (see lua/trim.lua); nil when the
// ledger was never trimmed (no fields).
func parseCheckpoint(where string, f map[string]string) (*billing.Checkpoint, error) {
	if len(f) == 0 {
		return nil, nil
	}
	d := record{where: where + ", checkpoint"}
	for _, k := range []string{"event", "at", "events", "credit", "debt", "granted", "usage", "consumed", "repaid", "expired", "adjusted_out", "paid", "grants", "pending_repay"} {
		if _, ok := f[k]; !ok {
			d.fail("no %s", k)
		}
	}
	cp := &billing.Checkpoint{
		EventID:      f["event"],
		At:           d.msOf(f, "at"),
		Events:       int64(d.countOf(f, "events")),
		Credit:       d.microsOf(f, "credit"),
		Debt:         d.microsOf(f, "debt"),
		Totals:       d.totalsOf(f),
		Paid:         d.microsOf(f, "paid"),
		Tier:         f["tier"],
		Grants:       int64(d.countOf(f, "grants")),
		PendingRepay: d.microsOf(f, "pending_repay"),
		PendingGrant: f["pending_grant"],
	}
	if d.err == nil {
		if _, err := nextStreamID(cp.EventID); err != nil {
			d.fail("event is %s, want an event id", show(cp.EventID))
		}
	}
	for k, v := range f {
		gid, ok := strings.CutPrefix(k, "g:")
		if !ok || d.err != nil {
			continue
		}
		p := strings.SplitN(v, " ", 3)
		if len(p) != 3 || gid == "" || p[2] == "" {
			d.fail("grant entry %s is %s, want \"credit lost payment_ref\"", show(k), show(v))
			break
		}
		cp.Credited = append(cp.Credited, billing.CheckpointGrant{ID: gid, Credit: d.micros(k+" credit", p[0]), Lost: d.micros(k+" lost", p[1]), PaymentRef: p[2]})
	}
	if d.err != nil {
		return nil, d.err
	}
	sort.Slice(cp.Credited, func(i, j int) bool { return cp.Credited[i].ID < cp.Credited[j].ID })
	return cp, nil
}

// checkpointAt is the latest time of the events trimmed from account's ledger
// (zero: never trimmed).
func (s *Store) checkpointAt(ctx context.Context, account string) (time.Time, error) {
	at, err := s.c.HGet(ctx, s.checkpointKey(account), "at").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrap(err)
	}
	d := record{where: fmt.Sprintf("checkpoint of account %q", account)}
	t := d.ms("at", at)
	return t, d.err
}

func (s *Store) checkpointKey(id string) string { return s.prefix + "{acct:" + id + "}:checkpoint" }
