package spool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// In-flight records make a crashed process's requests recoverable. The proxy
// calls Begin when it admits a request (after its hold), Progress as it relays
// the answer, and End once the request is settled or spooled. They go to an
// append-only log in the spool directory (inflight-<n>.log), one checksummed
// line each:
//
//	<crc32c hex> B <JSON of the InFlight>
//	<crc32c hex> P <hold id> <output tokens relayed so far>
//	<crc32c hex> E <hold id>
//
// Lines are written with write(2) and no fsync of their own: the kernel keeps
// what was written when the process dies (kill -9, a panic, the OOM killer),
// which is the crash this is for. A background fsync every SyncInterval bounds
// what a machine crash loses; a request whose Begin a machine crash lost ends as
// hold_expired in the ledger, which says so. The log is compacted (the live
// records rewritten to a new file, fsynced, the old ones removed) once it
// passes CompactAfter bytes.
//
// At Open, every record left without its End belongs to a process that died (the
// directory lock says no other process has it): it becomes a spooled settlement,
// which the start-up replay books through the ledger like any other, and the log
// is removed. A record with progress settles for what was relayed: the prompt
// plus the output tokens of its last Progress written, priced with the record's
// own price, at most its hold, token_source local. A record without any Progress
// is released: the proxy writes the first Progress when the upstream's 2xx
// answer arrives, before it relays a byte, so none means nothing was relayed.
// The replay asks the ledger first (Ledger.HoldOutcome), so a request the dead
// process did settle (it died before its End) is not debited again.

// InFlight is what a restarted process needs to settle an admitted request that
// this one may not live to settle.
type InFlight struct {
	Account   string `json:"account"`
	HoldID    string `json:"hold_id"`
	RequestID string `json:"request_id,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	Model     string `json:"model,omitempty"`    // the priced model name
	Endpoint  string `json:"endpoint,omitempty"` // the request path
	// Price is the model's price when the request was admitted (a reload may
	// change the price list before the restart); Prompt is the local count of the
	// request's input tokens.
	Price  metering.Price  `json:"price"`
	Prompt metering.Tokens `json:"prompt"`
	// Held is the request's hold: a recovered settlement never charges more
	// (0: no cap).
	Held money.Micros `json:"held"`
	// Triggers are passed on with the recovered settle, as the proxy's own
	// settle would have.
	Triggers billing.Triggers `json:"triggers"`
	Started  time.Time        `json:"started"`
	// Cost, when set, is what the request costs once its answer was relayed,
	// for a price not per token (whisper-1: per second of audio, known when it
	// is admitted); else the prompt and the output relayed are priced with Price.
	Cost money.Micros `json:"cost,omitempty"`
}

// Notes of the settlements recovered from in-flight records.
const (
	NoteSettledAfterCrash  = "settled after a crash from the in-flight record"
	NoteReleasedAfterCrash = "released after a crash: the in-flight record shows no response relayed"
)

// ErrNotInFlight is returned by Progress and End for a hold without an open
// in-flight record (its Begin failed, or it ended already).
var ErrNotInFlight = errors.New("spool: no in-flight record for this hold")

// Defaults of the in-flight log's Options.
const (
	DefaultProgressInterval = 250 * time.Millisecond
	DefaultProgressTokens   = 64
	DefaultSyncInterval     = time.Second
	DefaultCompactAfter     = 4 << 20
)

const (
	inflightPrefix = "inflight-"
	inflightSuffix = ".log"
)

// flight is an open in-flight record, in memory.
type flight struct {
	begin    []byte // its B line, rewritten by a compaction
	output   int64  // output tokens of the last Progress written
	seen     int64  // output tokens of the last Progress call
	writtenN int64  // time of the last write (Begin or Progress), UnixNano
	relayed  bool   // a Progress was written
}

// Begin opens r's in-flight record. Call it once the request is admitted (its
// hold reserved), before it is forwarded; a failure leaves the request without
// recovery (the proxy logs it and serves the request anyway).
func (s *Spool) Begin(r InFlight) error {
	if r.Account == "" || !validHoldID(r.HoldID) {
		return fmt.Errorf("spool: in-flight record for account %q, hold %q: %w", r.Account, r.HoldID, billing.ErrInvalid)
	}
	line, err := encodeInFlight(append(make([]byte, 0, 640), "00000000 B "...), &r)
	if err != nil {
		return fmt.Errorf("spool: encoding an in-flight record: %w", err)
	}
	line = sealLine(line)
	now := s.now().UnixNano()
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fclosed {
		return ErrClosed
	}
	if _, dup := s.flights[r.HoldID]; dup {
		return fmt.Errorf("spool: hold %q is in flight already: %w", r.HoldID, billing.ErrInvalid)
	}
	if err := s.writeInFlight(line); err != nil {
		return err
	}
	s.flights[r.HoldID] = &flight{begin: line, writtenN: now}
	return nil
}

// Progress records that output tokens of hold's answer have been relayed so
// far (a running total, not an increment). Call it with 0 when the upstream's
// 2xx answer arrives, before relaying its first byte, then as output is
// relayed (after each chunk is fine). The first call is written at once;
// later ones when ProgressInterval passed since the hold's last write or
// ProgressTokens more tokens were relayed, so a crash loses less than
// ProgressTokens tokens of a request, and at most ProgressInterval of its
// output. Calls in between only update memory and cost a map lookup.
func (s *Spool) Progress(hold string, output int64) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fclosed {
		return ErrClosed
	}
	f := s.flights[hold]
	if f == nil {
		return ErrNotInFlight
	}
	if output < f.seen {
		output = f.seen // running totals only grow
	}
	f.seen = output
	if f.relayed && output == f.output {
		return nil
	}
	now := s.now().UnixNano()
	if f.relayed && output-f.output < s.progressTokens && now-f.writtenN < int64(s.progressInterval) {
		return nil
	}
	b := append(s.fbuf[:0], "00000000 P "...)
	b = append(b, hold...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, output, 10)
	s.fbuf = sealLine(b)
	if err := s.writeInFlight(s.fbuf); err != nil {
		return err
	}
	f.output, f.writtenN, f.relayed = output, now, true
	return nil
}

// End closes hold's in-flight record: call it once the request is settled,
// released or spooled, whatever the outcome. The record is gone from memory
// even when writing the end fails; a restart then finds it open, asks the
// ledger, and books nothing twice.
func (s *Spool) End(hold string) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.fclosed {
		return ErrClosed
	}
	if s.flights[hold] == nil {
		return ErrNotInFlight
	}
	delete(s.flights, hold)
	b := append(s.fbuf[:0], "00000000 E "...)
	b = append(b, hold...)
	s.fbuf = sealLine(b)
	return s.writeInFlight(s.fbuf)
}

// InFlight is the number of open in-flight records.
func (s *Spool) InFlight() int {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return len(s.flights)
}

// Recovered is the number of in-flight records of a crashed process that Open
// turned into spooled settlements.
func (s *Spool) Recovered() int { return s.recovered }

// writeInFlight appends line to the in-flight log, opening one if needed. A
// log grown past CompactAfter is compacted first, so line lands in the new
// log: a compaction rewrites what memory holds, and the callers update memory
// only once line is written, so a line written before a compaction would be
// lost with the old log (a Begin's whole record). s.fmu is held.
func (s *Spool) writeInFlight(line []byte) error {
	if s.fl != nil && s.flSize >= s.compactAt {
		if err := s.compactInFlight(); err != nil {
			// The log stays valid as it is; try again after as much again.
			s.compactAt = s.flSize + s.compactAfter
			s.log.Warn("spool: compacting the in-flight log failed; it keeps growing", zap.Error(err))
		}
	}
	if s.fl == nil {
		if err := s.openInFlight(nil); err != nil {
			return err
		}
	}
	n, err := s.fl.Write(line)
	s.flSize += int64(n)
	if err != nil {
		// A torn line would swallow the next one: later lines go to a new file,
		// and this one stays until a compaction, which rewrites what is live.
		s.fl.Close()
		s.fl = nil
		return fmt.Errorf("spool: writing the in-flight log: %w", err)
	}
	s.fdirty = true
	return nil
}

// openInFlight starts a new in-flight log holding lines (the live records of a
// compaction, or nothing), durable before it is used. s.fmu is held.
func (s *Spool) openInFlight(lines []byte) error {
	seq := s.flNext
	path := s.inflightPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(lines) > 0 {
		if _, err := f.Write(lines); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("spool: writing the in-flight log: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("spool: syncing the in-flight log: %w", err)
		}
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if s.fl != nil {
		s.fl.Close()
	}
	s.flNext++
	s.fl, s.flSeq, s.flSize = f, seq, int64(len(lines))
	s.compactAt = s.flSize + s.compactAfter
	return nil
}

// compactInFlight rewrites the open records to a new log and removes the older
// ones. s.fmu is held.
func (s *Spool) compactInFlight() error {
	var lines []byte
	for hold, f := range s.flights {
		lines = append(lines, f.begin...)
		if f.relayed {
			b := append([]byte("00000000 P "), hold...)
			b = append(b, ' ')
			lines = append(lines, sealLine(strconv.AppendInt(b, f.output, 10))...)
		}
	}
	if err := s.openInFlight(lines); err != nil {
		return err
	}
	seqs, err := s.inflightLogs()
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq < s.flSeq {
			if err := os.Remove(s.inflightPath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
		}
	}
	return syncDir(s.dir)
}

// syncInFlight fsyncs the in-flight log if it was written since the last time.
func (s *Spool) syncInFlight() {
	s.fmu.Lock()
	f, dirty := s.fl, s.fdirty
	s.fdirty = false
	s.fmu.Unlock()
	if f != nil && dirty {
		// A compaction may close f meanwhile: its Sync then fails harmlessly, and
		// the new log was synced when it was made.
		_ = f.Sync()
	}
}

// syncLoop runs syncInFlight every interval until stop is closed.
func (s *Spool) syncLoop(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.syncInFlight()
		}
	}
}

// closeInFlight syncs and closes the in-flight log; open records stay on disk,
// for the next Open to recover.
func (s *Spool) closeInFlight() {
	s.fmu.Lock()
	if s.fclosed {
		s.fmu.Unlock()
		return
	}
	s.fclosed = true
	f := s.fl
	s.fl = nil
	s.fmu.Unlock()
	if s.stopSync != nil {
		close(s.stopSync)
		<-s.syncDone
	}
	if f != nil {
		_ = f.Sync()
		f.Close()
	}
}

// recoverInFlight turns the open records of the in-flight logs a dead process
// left into spooled settlements (one write and fsync), skipping holds that
// have a spooled settlement already (the dead process spooled it and died
// before its End), then removes the logs. Called by Open, before anything else
// uses the spool.
func (s *Spool) recoverInFlight(spooled map[string]bool) error {
	seqs, err := s.inflightLogs()
	if err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	open := map[string]*orphan{}
	torn := 0
	for _, seq := range seqs {
		data, err := os.ReadFile(s.inflightPath(seq))
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		torn += replayInFlight(data, open)
	}
	if torn > 0 {
		s.log.Warn("spool: skipped unreadable in-flight lines (a write torn by a crash)", zap.Int("lines", torn))
	}
	var ps []billing.PendingSettlement
	for hold, o := range open {
		if spooled[o.rec.Account+" "+hold] {
			continue
		}
		ps = append(ps, o.settlement())
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].At.Before(ps[j].At) })
	if len(ps) > 0 {
		if err := s.save(ps...); err != nil {
			return err
		}
		s.log.Warn("spool: requests of a crashed process were in flight; each is settled for what it relayed (or released) by the replay",
			zap.Int("requests", len(ps)))
	}
	s.recovered = len(ps)
	for _, seq := range seqs {
		if err := os.Remove(s.inflightPath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: %w", err)
		}
		s.flNext = max(s.flNext, seq+1)
	}
	return syncDir(s.dir)
}

// orphan is an open record read back from an in-flight log.
type orphan struct {
	rec     InFlight
	output  int64
	relayed bool
}

// settlement is what a restart books for o: the prompt and the output relayed,
// or a release when nothing was.
func (o *orphan) settlement() billing.PendingSettlement {
	r := o.rec
	u := billing.Usage{RequestID: r.RequestID, KeyID: r.KeyID, Model: r.Model, Endpoint: r.Endpoint}
	p := billing.PendingSettlement{At: r.Started, Settle: billing.SettleRequest{Account: r.Account, HoldID: r.HoldID, Usage: u}}
	if !o.relayed {
		p.Release = true
		p.Settle.Usage.Note = NoteReleasedAfterCrash
		return p
	}
	t := r.Prompt
	t.Output = o.output
	cost := r.Price.Cost(t)
	if r.Cost > 0 {
		cost = r.Cost
	}
	note := NoteSettledAfterCrash
	if r.Held > 0 && cost > r.Held {
		cost, note = r.Held, NoteSettledAfterCrash+"; capped at the hold"
	}
	p.Settle.Cost, p.Settle.Triggers = cost, r.Triggers
	p.Settle.Usage = billing.Usage{RequestID: r.RequestID, KeyID: r.KeyID, Model: r.Model, Endpoint: r.Endpoint,
		PromptTokens: t.Input, CompletionTokens: t.Output, CachedTokens: t.CachedInput, AudioPromptTokens: t.AudioInput,
		LocalPromptTokens: t.Input, LocalCompletionTokens: t.Output, TokenSource: billing.TokenSourceLocal, Note: note}
	return p
}

// replayInFlight applies the lines of one in-flight log to open (hold id →
// record) and returns how many lines were damaged. Lines for holds it does not
// know (their Begin was lost to a torn write or a compaction) are ignored.
func replayInFlight(data []byte, open map[string]*orphan) (torn int) {
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		data = rest
		kind, body, ok := openLine(line)
		if !ok || !complete {
			if len(line) > 0 {
				torn++
			}
			continue
		}
		switch kind {
		case 'B':
			var r InFlight
			if json.Unmarshal(body, &r) != nil || r.Account == "" || !validHoldID(r.HoldID) {
				torn++
				continue
			}
			open[r.HoldID] = &orphan{rec: r}
		case 'P':
			hold, n, _ := strings.Cut(string(body), " ")
			out, err := strconv.ParseInt(n, 10, 64)
			if err != nil || out < 0 {
				torn++
				continue
			}
			if o := open[hold]; o != nil && (!o.relayed || out > o.output) {
				o.output, o.relayed = out, true
			}
		case 'E':
			delete(open, string(body))
		default:
			torn++
		}
	}
	return torn
}

// sealLine fills the checksum placeholder of b ("00000000 <kind> <body>") and
// adds the newline.
func sealLine(b []byte) []byte {
	var sum [4]byte
	c := crc32.Checksum(b[9:], castagnoli)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	hex.Encode(b[:8], sum[:])
	return append(b, '\n')
}

// openLine checks one line (without its newline) and splits it into its kind
// and body; false when it is damaged.
func openLine(line []byte) (kind byte, body []byte, ok bool) {
	if len(line) < 11 || line[8] != ' ' || line[10] != ' ' {
		return 0, nil, false
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(line[9:], castagnoli) {
		return 0, nil, false
	}
	return line[9], line[11:], true
}

// validHoldID: a hold id is one word (it ends a P or E line).
func validHoldID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, " \r\n\t")
}

// inflightLogs lists the in-flight log numbers, oldest first.
func (s *Spool) inflightLogs() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, inflightPrefix) || !strings.HasSuffix(name, inflightSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, inflightPrefix), inflightSuffix), 10, 64)
		if err == nil && n > 0 {
			seqs = append(seqs, n)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func (s *Spool) inflightPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", inflightPrefix, seq, inflightSuffix))
}
