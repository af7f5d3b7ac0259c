package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// Shipping. A Shipper's round visits every account of the store's directory
// (ListAccounts: O(accounts) reads of Redis per round, which also give each
// account's newest event id) and, for an account whose newest event is not the
// archive's head, ships the events after the head in batches. Each batch is one
// PostgreSQL transaction that
//
//  1. takes pg_try_advisory_xact_lock on the account (another instance
//     shipping it right now makes this one skip it: no doubled work, no single
//     shipper: any instance takes any account, and the lock dies with the
//     transaction or its connection),
//  2. reads the head under that lock,
//  3. reads the events after the head from the store (Ledger.Events),
//  4. inserts them (ON CONFLICT DO NOTHING), adds the usage it inserted to the
//     rollup and moves the head to the last of them, and commits.
//
// The cursor is the archive's head itself: nothing is kept in Redis. So a
// crash anywhere (mid-batch: the transaction rolls back; after the commit and
// before the trim: the next round trims) loses nothing and duplicates nothing,
// and a PostgreSQL restored from a backup older than Redis's trims resumes from
// what it really holds (the store still has, or lost to trimming, the rest: the
// trim below is bounded by a head PostgreSQL committed). After shipping, the
// account's store ledger is trimmed (billing.LedgerTrimmer) up to the head and
// to the events older than the retention.

// Source is the store the shipper reads and trims (redisstore.Store).
type Source interface {
	ListAccounts(ctx context.Context) ([]billing.Account, error)
	Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
	billing.LedgerTrimmer
}

// Observer hears what shipping did (the metrics). Its methods must not block.
type Observer interface {
	// Shipped counts events newly archived.
	Shipped(events int)
	// ShipFailed counts a failed batch, trim or round.
	ShipFailed()
	// Lag is, after each round, how far behind the archive was: the age of the
	// oldest event the round found unshipped (0: every account was caught up).
	Lag(d time.Duration)
}

// ShipperOptions configure a Shipper.
type ShipperOptions struct {
	// BatchSize is the most events one transaction archives (default 500).
	BatchSize int
	// Retention is how long shipped events stay in the store; 0 never trims.
	Retention time.Duration
	// MaxBatchesPerAccount bounds one visit, so a busy account does not hold
	// up the round (default 20); the next round goes on.
	MaxBatchesPerAccount int
	Now                  func() time.Time
	Observer             Observer
	Log                  *zap.Logger
}

// Shipper ships store events to the archive and trims the store.
type Shipper struct {
	a   *Archive
	src Source
	o   ShipperOptions
}

// NewShipper ships src's events to a.
func NewShipper(a *Archive, src Source, o ShipperOptions) *Shipper {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MaxBatchesPerAccount <= 0 {
		o.MaxBatchesPerAccount = 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Shipper{a: a, src: src, o: o}
}

// ShipResult is what shipping one account did.
type ShipResult struct {
	Shipped int64  // events newly archived
	Head    string // the archive's head after it
	// Busy: another shipper held the account's lock; this one left it.
	Busy bool
	// Behind is the age of the oldest event found unshipped (0: none was).
	Behind time.Duration
	// More: the visit stopped at MaxBatchesPerAccount with events left.
	More    bool
	Trimmed int64 // events trimmed from the store
}

// ShipAccount ships account's unshipped events (at most MaxBatchesPerAccount
// batches), then trims its store ledger.
func (s *Shipper) ShipAccount(ctx context.Context, account string) (ShipResult, error) {
	var res ShipResult
	for batch := 0; ; batch++ {
		if batch == s.o.MaxBatchesPerAccount {
			res.More = true
			break
		}
		r, full, err := s.shipBatch(ctx, account)
		if err != nil {
			return res, err
		}
		if r.Busy {
			res.Busy = true
			return res, nil
		}
		res.Shipped += r.Shipped
		res.Head = r.Head
		if batch == 0 {
			res.Behind = r.Behind
		}
		if !full {
			break
		}
	}
	if s.o.Retention > 0 && res.Head != "" {
		tr, err := s.src.TrimLedger(ctx, account, res.Head, s.o.Now().Add(-s.o.Retention))
		if err != nil {
			return res, fmt.Errorf("pgarchive: trimming %q up to %s: %w", account, res.Head, err)
		}
		res.Trimmed = tr.Removed
	}
	return res, nil
}

// shipBatch archives one batch of account's events in one transaction; full
// says another batch may follow.
func (s *Shipper) shipBatch(ctx context.Context, account string) (res ShipResult, full bool, err error) {
	err = pgx.BeginFunc(ctx, s.a.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock(hashtext('creditgate_ship:' || $1), hashtext($2))", s.a.schema, account).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			res.Busy = true
			return nil
		}
		var head string
		err := tx.QueryRow(ctx, "SELECT event_id FROM ledger_heads WHERE account_id = $1", account).Scan(&head)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		res.Head = head
		page, err := s.src.Events(ctx, account, head, s.o.BatchSize)
		if err != nil {
			return fmt.Errorf("reading the store's events of %q after %q: %w", account, head, err)
		}
		if len(page.Events) == 0 {
			return nil
		}
		res.Behind = max(s.o.Now().Sub(page.Events[0].At), time.Nanosecond)
		r, err := appendTx(ctx, tx, account, page.Events)
		if err != nil {
			return err
		}
		res.Shipped, res.Head = r.Inserted, r.Head
		full = page.Next != ""
		return nil
	})
	if err != nil {
		return ShipResult{}, false, wrapPG(fmt.Errorf("pgarchive: shipping %q: %w", account, err))
	}
	if res.Busy {
		return res, false, nil
	}
	return res, full, nil
}

// RoundResult adds up one round.
type RoundResult struct {
	Accounts int   // accounts in the directory
	Visited  int   // accounts with events to ship (or still to trim)
	Shipped  int64 // events newly archived
	Trimmed  int64
	Busy     int // accounts another shipper held
	Failed   int // accounts whose shipping failed (logged; the next round retries)
	More     int // accounts left with events to ship after a full visit
	Lag      time.Duration
	// RedisBehind are accounts whose newest store event is older than the
	// archive's head: the store lost events it had shipped (restored from an
	// older snapshot). Logged at error; the audit names the events. Seen only
	// until new traffic moves the store past the head again.
	RedisBehind []string
}

// Round ships every account once (see the package's shipping notes). An
// account that fails is logged and counted, and the round goes on; the error
// returned is the directory's (no round at all) or the first account's.
func (s *Shipper) Round(ctx context.Context) (RoundResult, error) {
	var rr RoundResult
	accounts, err := s.src.ListAccounts(ctx)
	if err != nil {
		s.failed()
		return rr, fmt.Errorf("pgarchive: listing the accounts to ship: %w", err)
	}
	heads, err := s.a.Heads(ctx)
	if err != nil {
		s.failed()
		return rr, fmt.Errorf("pgarchive: reading the archive heads: %w", err)
	}
	rr.Accounts = len(accounts)
	var first error
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return rr, err
		}
		head, shipped := heads[acct.ID]
		if shipped && billing.CompareEventIDs(acct.LastEventID, head) < 0 {
			rr.RedisBehind = append(rr.RedisBehind, acct.ID)
			s.failed()
			s.o.Log.Error("ledger archive: Redis is behind the archive: it lost events it had (restored from an older snapshot?); run creditgate audit on the account and repair (README)",
				zap.String("account", acct.ID), zap.String("redis_newest", acct.LastEventID), zap.String("archive_head", head))
			continue
		}
		caughtUp := acct.LastEventID == "" || (shipped && head == acct.LastEventID)
		// Trimming is due while events the archive holds are still in the store.
		trimDue := s.o.Retention > 0 && shipped && (acct.Checkpoint == nil || billing.CompareEventIDs(acct.Checkpoint.EventID, head) < 0) && acct.LastEventID != ""
		if caughtUp && !trimDue {
			continue
		}
		rr.Visited++
		r, err := s.ShipAccount(ctx, acct.ID)
		rr.Shipped += r.Shipped // a failed visit may have committed batches first
		if r.Shipped > 0 && s.o.Observer != nil {
			s.o.Observer.Shipped(int(r.Shipped))
		}
		if err != nil {
			rr.Failed++
			s.failed()
			s.o.Log.Warn("ledger archive: shipping an account failed; the next round retries", zap.String("account", acct.ID), zap.Error(err))
			if first == nil {
				first = err
			}
			continue
		}
		if r.Busy {
			rr.Busy++
		}
		if r.More {
			rr.More++
		}
		rr.Trimmed += r.Trimmed
		rr.Lag = max(rr.Lag, r.Behind)
	}
	if s.o.Observer != nil {
		s.o.Observer.Lag(rr.Lag)
	}
	return rr, first
}

func (s *Shipper) failed() {
	if s.o.Observer != nil {
		s.o.Observer.ShipFailed()
	}
}

// Run ships a round every interval until ctx ends; after a round that left an
// account with more to ship, the next starts at once.
func (s *Shipper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	for {
		rr, err := s.Round(ctx)
		if err != nil && ctx.Err() == nil {
			s.o.Log.Warn("ledger archive: a shipping round failed", zap.Error(err), zap.Int("failed_accounts", rr.Failed))
		}
		if rr.More > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
