// Package spool is creditgate's durable local spool of settlements. When Redis
// fails after the upstream has answered, the proxy cannot book the request's cost
// (or release its hold); it hands a billing.PendingSettlement to Save, which
// appends it to a file and fsyncs it before returning, so an acknowledged
// settlement survives a crash of the process. Replay applies the spooled
// settlements through the ledger once Redis answers again — each after asking the
// ledger whether its hold is already booked (Ledger.HoldOutcome, which reads the
// hold's record or, without one, the ledger), and Settle and Release are
// idempotent by hold id besides, so applying one twice books it once — and the app replays
// the spool first thing at start-up, before it serves. Run retries in the
// background while the spool is not empty; Depth is exposed for metrics.
//
// The spool also keeps a durable record of every request in flight (Begin,
// Progress, End; inflight.go), so that when the process dies mid-request the
// next one, at Open, spools a settlement for what each request relayed.
//
// On disk, a spool is a directory holding a lock file (one process per spool),
// numbered segment files of checksummed JSON lines, a ".done" file next to a
// segment that is being replayed (the hold ids already applied, so a crash during
// a replay does not apply them again long after the store forgot them),
// rejected.log for settlements the ledger refused for good (an account deleted
// meanwhile), kept for an operator to book by hand, and the in-flight log
// (inflight-<n>.log).
package spool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
)

// Ledger is what a replay needs of billing.Ledger.
type Ledger interface {
	Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error)
	Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error)
	HoldOutcome(ctx context.Context, account, holdID string, since time.Time) (billing.HoldOutcome, error)
}

// Options adjust a Spool.
type Options struct {
	// Logger receives replay progress and problems; never keys or prompts (a
	// settlement holds none). Default: none.
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time

	// ProgressInterval and ProgressTokens bound how often Progress writes to the
	// in-flight log: when this long passed since the hold's last write, or this
	// many more output tokens were relayed (defaults 250ms and 64 tokens).
	ProgressInterval time.Duration
	ProgressTokens   int64
	// SyncInterval is how often the in-flight log is fsynced (default 1s; below
	// zero: never, for benchmarks of the write path alone). Its writes survive
	// a crash of the process without it; this bounds what a machine crash loses.
	SyncInterval time.Duration
	// CompactAfter is the in-flight log's size in bytes that triggers its
	// compaction (default 4 MiB).
	CompactAfter int64
}

// Spool is an open spool directory. It is safe for concurrent use.
type Spool struct {
	dir  string
	log  *zap.Logger
	now  func() time.Time
	lock *os.File

	mu        sync.Mutex // guards active, activeSeq, activeN, nextSeq, closed
	active    *os.File
	activeSeq uint64
	activeN   int // records appended to the active segment
	nextSeq   uint64
	closed    bool

	replayMu sync.Mutex // one replay at a time
	depth    atomic.Int64

	// The in-flight log (inflight.go). fmu guards what follows it.
	fmu               sync.Mutex
	flights           map[string]*flight // hold id → open record
	fl                *os.File           // the log appended to (nil until the first Begin)
	flSeq, flNext     uint64             // fl's number, the next log's
	flSize, compactAt int64
	fdirty, fclosed   bool   // written since the last fsync; closed
	fbuf              []byte // reused for P and E lines
	progressInterval  time.Duration
	progressTokens    int64
	compactAfter      int64
	stopSync          chan struct{} // closing it stops syncLoop, which then closes syncDone
	syncDone          chan struct{}
	recovered         int // in-flight records of a dead process that Open spooled
}

// Result counts what one Replay did.
type Result struct {
	Applied  int // settled or released now
	Replayed int // the store had already booked them (a lost reply, or a replay after a crash)
	Rejected int // refused for good by the ledger; moved to rejected.log
	Left     int // still spooled (the store is still failing, or ctx ended)
}

const (
	lockName     = "LOCK"
	rejectedName = "rejected.log"
	segPrefix    = "seg-"
	segSuffix    = ".log"
	doneSuffix   = ".done"
	// recordVersion is the format of a spooled line's JSON.
	recordVersion = 1
	// searchMargin is how far before a settlement's spooling time the ledger is
	// searched for it: the store may have applied it up to a settle timeout
	// earlier, and the store's clock (stream ids) may differ from ours.
	searchMargin = 10 * time.Minute
)

// ErrClosed is returned by Save after Close.
var ErrClosed = errors.New("spool: closed")

// Open opens (creating it if needed) the spool in dir and locks it for this
// process. Another process holding the same directory is an error: two
// processes replaying one spool could apply a settlement twice after the store
// forgot it.
func Open(dir string, o Options) (*Spool, error) {
	if dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.ProgressTokens <= 0 {
		o.ProgressTokens = DefaultProgressTokens
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.CompactAfter <= 0 {
		o.CompactAfter = DefaultCompactAfter
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", dir, err)
	}
	s := &Spool{dir: dir, log: o.Logger, now: o.Now, lock: lock, flights: map[string]*flight{}, flNext: 1,
		progressInterval: o.ProgressInterval, progressTokens: o.ProgressTokens, compactAfter: o.CompactAfter}
	segs, err := s.segments()
	if err != nil {
		s.unlock()
		return nil, err
	}
	pending := 0
	spooled := map[string]bool{} // "account hold" of each pending settlement
	for _, seq := range segs {
		recs, _, err := s.readSegment(seq)
		if err != nil {
			s.unlock()
			return nil, err
		}
		done, err := s.readDone(seq)
		if err != nil {
			s.unlock()
			return nil, err
		}
		for _, r := range recs {
			if !done[r.key()] {
				pending++
				spooled[r.P.Settle.Account+" "+r.P.Settle.HoldID] = true
			}
		}
		s.nextSeq = seq + 1
	}
	s.depth.Store(int64(pending))
	if s.nextSeq == 0 {
		s.nextSeq = 1
	}
	if err := s.recoverInFlight(spooled); err != nil {
		s.unlock()
		return nil, err
	}
	if o.SyncInterval > 0 {
		s.stopSync, s.syncDone = make(chan struct{}), make(chan struct{})
		go s.syncLoop(o.SyncInterval, s.stopSync, s.syncDone)
	}
	return s, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Depth is the number of spooled settlements not yet applied.
func (s *Spool) Depth() int { return int(s.depth.Load()) }

// Save appends p to the spool and syncs it to disk: when Save returns nil, p
// survives a crash of the process (and of the machine, if the disk keeps what it
// acknowledged). It implements proxy.Spool.
func (s *Spool) Save(p billing.PendingSettlement) error { return s.save(p) }

// save appends ps with one write and one fsync.
func (s *Spool) save(ps ...billing.PendingSettlement) error {
	var lines []byte
	for _, p := range ps {
		line, err := encode(p)
		if err != nil {
			return err
		}
		lines = append(lines, line...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.active == nil {
		if err := s.openActive(); err != nil {
			return err
		}
	}
	if _, err := s.active.Write(lines); err != nil {
		// A partial line fails its checksum on reading; start a clean segment so
		// later records do not follow a torn one.
		s.sealActive()
		return fmt.Errorf("spool: writing: %w", err)
	}
	if err := s.active.Sync(); err != nil {
		s.sealActive()
		return fmt.Errorf("spool: syncing: %w", err)
	}
	s.activeN += len(ps)
	s.depth.Add(int64(len(ps)))
	return nil
}

// openActive starts a new segment for appends. s.mu is held.
func (s *Spool) openActive() error {
	seq := s.nextSeq
	f, err := os.OpenFile(s.segPath(seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	// The new file's name must be durable too, or a crash could lose the file.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.nextSeq++
	s.active, s.activeSeq, s.activeN = f, seq, 0
	return nil
}

// sealActive closes the active segment; the next Save starts a new one. s.mu is held.
func (s *Spool) sealActive() {
	if s.active != nil {
		s.active.Close()
		s.active, s.activeN = nil, 0
	}
}

// Close releases the spool. What it holds stays on disk for the next Open,
// open in-flight records included: the next Open settles them.
func (s *Spool) Close() error {
	s.closeInFlight()
	s.mu.Lock()
	s.closed = true
	s.sealActive()
	s.mu.Unlock()
	s.replayMu.Lock() // wait for a replay in progress
	defer s.replayMu.Unlock()
	return s.unlock()
}

func (s *Spool) unlock() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing the descriptor drops the lock
	s.lock = nil
	return err
}

// Replay applies every spooled settlement through l, oldest first, and deletes
// what it applied. It stops early, leaving the rest spooled, when the store is
// unavailable (billing.ErrUnavailable) or ctx ends; the error then says why.
// Settlements the ledger refuses for another reason (the account no longer
// exists) are moved to rejected.log and logged: retrying them would not help.
func (s *Spool) Replay(ctx context.Context, l Ledger) (Result, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	var res Result
	var err error
	s.mu.Lock()
	if s.closed {
		err = ErrClosed
	}
	s.mu.Unlock()
	for err == nil {
		var seq uint64
		if seq, err = s.nextSealed(); err != nil || seq == 0 {
			break
		}
		err = s.replaySegment(ctx, l, seq, &res)
	}
	res.Left = s.Depth()
	if res.Applied+res.Replayed+res.Rejected > 0 || err != nil {
		s.log.Info("spool replay", zap.Int("applied", res.Applied), zap.Int("already_booked", res.Replayed),
			zap.Int("rejected", res.Rejected), zap.Int("left", res.Left), zap.Error(err))
	}
	return res, err
}

// nextSealed returns the oldest segment not being appended to, sealing the
// active one when it is the only one left with records; 0 when there is none.
func (s *Spool) nextSealed() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	segs, err := s.segments()
	if err != nil {
		return 0, err
	}
	for _, seq := range segs {
		if s.active == nil || seq != s.activeSeq {
			return seq, nil
		}
	}
	if s.active != nil && s.activeN > 0 {
		seq := s.activeSeq
		s.sealActive()
		return seq, nil
	}
	return 0, nil
}

// replaySegment applies one sealed segment and removes it when all of it is
// applied.
func (s *Spool) replaySegment(ctx context.Context, l Ledger, seq uint64, res *Result) error {
	recs, torn, err := s.readSegment(seq)
	if err != nil {
		return err
	}
	if torn > 0 {
		s.log.Warn("spool: skipped unreadable lines (a write torn by a crash: never acknowledged)",
			zap.String("segment", s.segPath(seq)), zap.Int("lines", torn))
	}
	done, err := s.readDone(seq)
	if err != nil {
		return err
	}
	doneFile, err := os.OpenFile(s.donePath(seq), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer doneFile.Close()
	markDone := func(r record) error {
		done[r.key()] = true
		s.depth.Add(-1)
		if _, err := doneFile.WriteString(r.key() + "\n"); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		// Synced each time: once the store forgets a hold, this file is what keeps a crash-and-restart from booking it a second time.
		return doneFile.Sync()
	}
	for _, r := range recs {
		if done[r.key()] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		outcome, err := s.apply(ctx, l, r.P)
		switch {
		case err == nil:
			if outcome == replayed {
				res.Replayed++
			} else {
				res.Applied++
			}
		case errors.Is(err, billing.ErrUnavailable) || ctx.Err() != nil:
			return err
		default:
			if rerr := s.reject(r, err); rerr != nil {
				return rerr
			}
			res.Rejected++
		}
		if err := markDone(r); err != nil {
			return err
		}
	}
	// Everything in the segment is applied: drop it, then its done list.
	if err := os.Remove(s.segPath(seq)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	doneFile.Close()
	if err := os.Remove(s.donePath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(s.dir)
}

type outcome int

const (
	applied outcome = iota
	replayed
)

// apply books one settlement, unless the ledger says its hold is booked
// already: the store applied it before and its reply was lost, or a replay
// crashed before noting it done. The ledger is asked every time, whatever the
// settlement's age: Settle and Release are idempotent by hold id only while the
// store keeps the hold's record, and a restore, a failover or eviction can lose
// the record of a hold whose usage event is still there. When the ledger was
// trimmed past the hold (billing.HoldTrimmed), nothing can tell, and the
// settlement is rejected (errHoldTrimmed) rather than risk a double booking. A release of a hold that
// expired unsettled books nothing either (its hold_expired already ended it); a
// settle of one books its late usage.
func (s *Spool) apply(ctx context.Context, l Ledger, p billing.PendingSettlement) (outcome, error) {
	o, err := l.HoldOutcome(ctx, p.Settle.Account, p.Settle.HoldID, p.At.Add(-searchMargin))
	if err != nil {
		return applied, err
	}
	if o.Booked() || (p.Release && o.State == billing.HoldExpired) {
		return replayed, nil
	}
	if o.State == billing.HoldTrimmed {
		return applied, errHoldTrimmed
	}
	var st billing.Settlement
	if p.Release {
		st, err = l.Release(ctx, p.Settle.Account, p.Settle.HoldID, p.Settle.Usage)
	} else {
		st, err = l.Settle(ctx, p.Settle)
	}
	if err != nil {
		return applied, err
	}
	if st.Replayed {
		return replayed, nil
	}
	return applied, nil
}

// errHoldTrimmed refuses a settlement whose hold the store can no longer tell
// booked or not (billing.HoldTrimmed): it goes to rejected.log rather than risk
// booking a request twice.
var errHoldTrimmed = errors.New("the hold's record and ledger events are gone (the ledger was trimmed past it): " +
	"whether it was booked cannot be told, and booking it could book it twice; look it up in the ledger archive " +
	"(or the account's usage) and book it by hand if it was not")

// reject records a settlement the ledger refused for good.
func (s *Spool) reject(r record, cause error) error {
	s.log.Error("spool: the ledger refused a spooled settlement; it is kept in "+rejectedName+" to be booked by hand",
		zap.String("account", r.P.Settle.Account), zap.String("hold_id", r.P.Settle.HoldID),
		zap.Bool("release", r.P.Release), zap.Stringer("cost", r.P.Settle.Cost), zap.Error(cause))
	f, err := os.OpenFile(filepath.Join(s.dir, rejectedName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	line, err := encode(r.P)
	if err != nil {
		return err
	}
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return f.Sync()
}

// Run replays the spool through l every interval while it is not empty, until
// ctx ends. Failures are logged by Replay and retried at the next tick.
func (s *Spool) Run(ctx context.Context, l Ledger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Depth() > 0 {
				_, _ = s.Replay(ctx, l)
			}
		}
	}
}

// record is one spooled settlement as it is read back.
type record struct {
	V int                       `json:"v"`
	P billing.PendingSettlement `json:"p"`
}

// key identifies a record in a done list. Settle and release of one hold are
// distinct records (a proxy spools at most one of them per hold anyway).
func (r record) key() string {
	kind := "s"
	if r.P.Release {
		kind = "r"
	}
	return kind + " " + r.P.Settle.Account + " " + r.P.Settle.HoldID
}

// encode formats one line: 8 hex digits of the CRC-32 (Castagnoli) of the JSON,
// a space, the JSON, a newline.
func encode(p billing.PendingSettlement) ([]byte, error) {
	js, err := json.Marshal(record{V: recordVersion, P: p})
	if err != nil {
		return nil, fmt.Errorf("spool: encoding: %w", err)
	}
	line := make([]byte, 0, len(js)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(js, castagnoli))
	line = append(line, js...)
	return append(line, '\n'), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decode parses one line (without its newline); false if it is damaged.
func decode(line []byte) (record, bool) {
	sum, js, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return record{}, false
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(js, castagnoli) {
		return record{}, false
	}
	var r record
	if json.Unmarshal(js, &r) != nil || r.V != recordVersion || r.P.Settle.HoldID == "" {
		return record{}, false
	}
	return r, true
}

// readSegment returns a segment's records and the number of damaged lines.
func (s *Spool) readSegment(seq uint64) ([]record, int, error) {
	data, err := os.ReadFile(s.segPath(seq))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	var recs []record
	torn := 0
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		data = rest
		if r, ok := decode(line); ok && complete {
			recs = append(recs, r)
		} else if len(line) > 0 {
			torn++
		}
	}
	return recs, torn, nil
}

// readDone returns the keys of a segment's records already applied.
func (s *Spool) readDone(seq uint64) (map[string]bool, error) {
	done := make(map[string]bool)
	f, err := os.Open(s.donePath(seq))
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		done[sc.Text()] = true
	}
	return done, sc.Err()
}

// segments lists the segment numbers in the directory, oldest first.
func (s *Spool) segments() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64)
		if err == nil && n > 0 {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", segPrefix, seq, segSuffix))
}

func (s *Spool) donePath(seq uint64) string { return s.segPath(seq) + doneSuffix }

// syncDir makes a directory's entries (files created or removed) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
