// Package redisstore implements billing.Ledger and billing.KeyStore on Redis.
//
// Every change to an account's money happens inside one Lua script (lua/*.lua) that
// runs atomically on the node owning the account's hash tag `{acct:<id>}`, so any
// number of proxies may share one Redis, a Redis Cluster or a Sentinel-managed
// primary. Their replies, and the records they store, are decoded strictly
// (reply.go): what does not match a script's contract is an error naming it. Money
// coming in is acknowledged once as many replicas as Options.Durability asks have
// it (durable.go), so that a failover cannot lose it. The package talks to Redis
// through the narrow Client interface, which go-redis's *Client, *ClusterClient
// and UniversalClient all satisfy.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Client is the part of go-redis the store uses.
type Client interface {
	redis.Scripter
	Ping(ctx context.Context) *redis.StatusCmd
	HGetAll(ctx context.Context, key string) *redis.MapStringStringCmd
	HGet(ctx context.Context, key, field string) *redis.StringCmd
	HSet(ctx context.Context, key string, values ...interface{}) *redis.IntCmd
	HDel(ctx context.Context, key string, fields ...string) *redis.IntCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	SAdd(ctx context.Context, key string, members ...interface{}) *redis.IntCmd
	SMembers(ctx context.Context, key string) *redis.StringSliceCmd
	XRangeN(ctx context.Context, stream, start, stop string, count int64) *redis.XMessageSliceCmd
	XRevRangeN(ctx context.Context, stream, start, stop string, count int64) *redis.XMessageSliceCmd
	SetNX(ctx context.Context, key string, value interface{}, expiration time.Duration) *redis.BoolCmd
	// Process sends a command built here (the scripts' calls: args.go).
	Process(ctx context.Context, cmd redis.Cmder) error
}

// Options configure a Store.
type Options struct {
	// Prefix starts every key (default "cg:"). It must not contain '{' or '}'.
	Prefix string
	// Now is the clock (default time.Now). Tests inject one to expire grants.
	Now func() time.Time
	// HoldRecordRetention is how long a settled or released hold's record is kept
	// after the hold's own TTL, so a retried or spooled settle stays idempotent
	// (default 1h). Each record is ~150 bytes.
	HoldRecordRetention time.Duration
	// IdempotencyTTL is how long a top-up's Idempotency-Key is remembered (default 24h).
	IdempotencyTTL time.Duration
	// Durability says when money coming in (top-ups, adjustments, recharges'
	// credits) is acknowledged: the zero value on the master's reply, as for
	// everything else (see durable.go).
	Durability Durability
	// Pipeline batches concurrent callers' scripts into shared pipelines
	// (pipeline.go); the zero value sends each script on its own. A Store that
	// pipelines must be closed (Close) to stop its workers.
	Pipeline PipelineOptions
}

// Store is the Redis ledger and key store. It is safe for concurrent use.
type Store struct {
	c         Client
	prefix    string
	now       func() time.Time
	retention time.Duration
	idemTTL   time.Duration
	// durability is Options.Durability; waitAOF what the server said of WAITAOF
	// (waitAOFUnknown, waitAOFYes, waitAOFNo).
	durability Durability
	waitAOF    atomic.Int32
	// pipeline batches scripts (Options.Pipeline); nil: each on its own.
	pipeline *pipelineRunner
	// tierLimits is the last tiers' usage limits argument built, reused while
	// the policy's limits stay the same (every reserve carries them).
	tierLimits atomic.Pointer[encodedTierLimits]
}

var (
	_ billing.Ledger   = (*Store)(nil)
	_ billing.KeyStore = (*Store)(nil)
)

// New returns a Store on c.
func New(c Client, o Options) (*Store, error) {
	if c == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if o.Prefix == "" {
		o.Prefix = "cg:"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain '{' or '}' (they delimit hash tags)", o.Prefix)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HoldRecordRetention <= 0 {
		o.HoldRecordRetention = time.Hour
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = 24 * time.Hour
	}
	d := &o.Durability
	if d.Replicas < 0 || d.Timeout < 0 {
		return nil, fmt.Errorf("redisstore: durability needs replicas ≥ 0 and a timeout ≥ 0, got %d and %s", d.Replicas, d.Timeout)
	}
	if d.Timeout == 0 {
		d.Timeout = DefaultWaitTimeout
	}
	if d.On() {
		_, cluster := c.(slotMaster)
		_, single := c.(pipeliner)
		if !cluster && !single {
			return nil, errors.New("redisstore: durability needs a client that runs pipelines (go-redis's clients do)")
		}
	}
	st := &Store{c: c, prefix: o.Prefix, now: o.Now, retention: o.HoldRecordRetention, idemTTL: o.IdempotencyTTL, durability: o.Durability}
	if p := o.Pipeline; p.On() {
		pc, ok := c.(pipeliner)
		if !ok {
			return nil, errors.New("redisstore: pipelining needs a client that runs pipelines (go-redis's clients do)")
		}
		if p.MaxBatch > maxPipelineBatch || p.Workers < 0 || p.Workers > maxPipelineBatch {
			return nil, fmt.Errorf("redisstore: pipeline batch %d and workers %d: want a batch of at most %d and workers from 0 (default) to %d",
				p.MaxBatch, p.Workers, maxPipelineBatch, maxPipelineBatch)
		}
		st.pipeline = newPipelineRunner(c, pc, p)
	}
	return st, nil
}

// Close stops the store's pipeline workers (Options.Pipeline); calls after it
// that would run a script fail. It does not close the client. Without
// pipelining it does nothing.
func (s *Store) Close() {
	if s.pipeline != nil {
		s.pipeline.close()
	}
}

// Durability is the Durability the store was opened with, its timeout defaulted.
func (s *Store) Durability() Durability { return s.durability }

// Ping checks that Redis answers (for readiness).
func (s *Store) Ping(ctx context.Context) error { return wrap(s.c.Ping(ctx).Err()) }

// accountKeys are the keys every ledger script receives, in the order the scripts
// expect, with room for the script's own record key. They are cut from one string:
// two allocations per call instead of one per key, on every request.
func (s *Store) accountKeys(id string, extra ...string) []string {
	return s.accountKeysWith(id, "", extra...)
}

// holdKeys are accountKeys with the record of hold holdID as KEYS[7], then extra.
func (s *Store) holdKeys(id, holdID string, extra ...string) []string {
	return s.accountKeysWith(id, holdID, extra...)
}

var ledgerKeyNames = [...]string{"acct", "grants", "live", "holds", "holdamt", "ledger"}

func (s *Store) accountKeysWith(id, holdID string, extra ...string) []string {
	// names becomes the keys: first the suffixes, then each key, a slice of one string.
	names := make([]string, 0, len(ledgerKeyNames)+1+len(extra))
	names = append(names, ledgerKeyNames[:]...)
	hold := -1
	if holdID != "" {
		hold = len(names)
		names = append(names, holdID)
	}
	names = append(names, extra...)
	base := len(s.prefix) + len("{acct:") + len(id) + len("}:")
	size := func(i int) int {
		if i == hold {
			return base + len("hold:") + len(names[i])
		}
		return base + len(names[i])
	}
	n := 0
	for i := range names {
		n += size(i)
	}
	var b strings.Builder
	b.Grow(n)
	for i, k := range names {
		b.WriteString(s.prefix)
		b.WriteString("{acct:")
		b.WriteString(id)
		b.WriteString("}:")
		if i == hold {
			b.WriteString("hold:")
		}
		b.WriteString(k)
	}
	all := b.String()
	start := 0
	for i := range names {
		end := start + size(i)
		names[i] = all[start:end]
		start = end
	}
	return names
}

func (s *Store) acctKey(id string) string   { return s.prefix + "{acct:" + id + "}:acct" }
func (s *Store) ledgerKey(id string) string { return s.prefix + "{acct:" + id + "}:ledger" }
func (s *Store) keysKey(id string) string   { return s.prefix + "{acct:" + id + "}:keys" }
func (s *Store) lookupKey(h billing.KeyHash) string {
	return s.prefix + "key:" + h.Hex()
}
func (s *Store) accountsKey() string { return s.prefix + "accounts" }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// msArg is a time as a script argument: go-redis writes an int64 in decimal, as
// ms does, with one allocation fewer than a string.
func msArg(t time.Time) int64 { return t.UnixMilli() }

// amountArg is an amount as a script argument (decimal micros, written by go-redis).
func amountArg(m money.Micros) int64 { return int64(m) }

// wrap marks store failures as billing.ErrUnavailable so callers answer 503. Redis
// "logical" errors (a script bug, WRONGTYPE…) stay as they are: they are not outages.
func wrap(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || isTransient(err) {
		return fmt.Errorf("%w: %v", billing.ErrUnavailable, err)
	}
	return err
}

// isTransient recognises Redis replies that mean "not now" rather than "wrong".
func isTransient(err error) bool {
	msg := err.Error()
	// NOREPLICAS: the master refuses writes while fewer than min-replicas-to-write
	// replicas are within min-replicas-max-lag.
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY", "NOREPLICAS", "EOF", "connection refused", "i/o timeout"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// run runs sc and returns its reply for strict decoding; a failed run is an error
// naming the script (billing.ErrUnavailable when Redis could not be reached).
func (s *Store) run(ctx context.Context, sc *script, keys []string, args ...interface{}) (reply, error) {
	return s.runCall(ctx, sc, append(evalHead(sc, keys, len(args)), args...))
}

// runArgs is run with a call built by an argList.
func (s *Store) runArgs(ctx context.Context, sc *script, a *argList) (reply, error) {
	return s.runCall(ctx, sc, a.v)
}

func (s *Store) runCall(ctx context.Context, sc *script, call []any) (reply, error) {
	var v any
	var err error
	if s.pipeline != nil {
		v, err = s.pipeline.run(ctx, sc, call)
	} else {
		v, err = runScript(ctx, s.c, sc, call)
	}
	if err != nil {
		return reply{}, sc.failed(wrap(err))
	}
	r := reply{script: sc.name}
	if arr, ok := v.([]interface{}); ok {
		r.v = arr
	} else {
		r.v = []interface{}{v} // a script answering with one integer
	}
	return r, nil
}

func notFound(id string) error { return fmt.Errorf("%w: %q", billing.ErrAccountNotFound, id) }
