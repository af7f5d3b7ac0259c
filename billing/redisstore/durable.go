package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
)

// Redis replicates asynchronously: a master acknowledges a write before any
// replica has it, and a failover promotes a replica that may lack the writes of
// its last moments. Money coming in (a top-up, an adjustment, a recharge's
// credit) is therefore acknowledged only once Durability says it is safe: after
// the script, durable asks the account's master to confirm that the script's
// ledger event is there and has reached enough replicas (WAIT, or WAITAOF for
// the append-only files). Settlements are not waited for (see
// docs/reliability.md): what a failover can lose of them is bounded by the
// replication lag, which min-replicas-max-lag caps.

// DefaultWaitTimeout is Durability.Timeout when it is not set.
const DefaultWaitTimeout = time.Second

// durableMarkerTTL is how long the marker durable writes lives: only its
// replication matters, at once.
const durableMarkerTTL = time.Hour

// Durability says when a change that brings money in is acknowledged.
type Durability struct {
	// Replicas is how many replicas must have the change; 0 (the default)
	// acknowledges on the master's reply alone.
	Replicas int
	// AOF also waits for the change to be fsynced to the master's append-only
	// file, and counts only replicas that fsynced it too: WAITAOF, Redis 7.2 and
	// later. An earlier Redis has no WAITAOF: replicas are then counted by WAIT and
	// the master's fsync is not waited for (CheckDurability says so).
	AOF bool
	// Timeout bounds the wait (default DefaultWaitTimeout). It must be shorter than
	// the client's read timeout, within which the answer is read.
	Timeout time.Duration
}

// On reports whether anything is waited for.
func (d Durability) On() bool { return d.Replicas > 0 || d.AOF }

// waitAOF support, learnt from the server: unknown until a WAITAOF or a
// CheckDurability tells.
const (
	waitAOFUnknown int32 = iota
	waitAOFYes
	waitAOFNo
)

// pipeliner is a client whose pipelines run on one connection: a single Redis,
// or the master a Sentinel names.
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// slotMaster is a Redis Cluster client: it names the node owning a key's slot.
type slotMaster interface {
	MasterForKey(ctx context.Context, key string) (*redis.Client, error)
}

func (s *Store) durableKey(id string) string { return s.prefix + "{acct:" + id + "}:durable" }

// durable confirms that eventID, the ledger event of account that a script has
// just written (or found, replaying an idempotent request), is on the account's
// master and, per s.durability, on enough replicas: only then may the change be
// acknowledged. It returns nil at once when durability is off, and an error
// wrapping billing.ErrNotDurable when the change cannot be confirmed: the caller
// retries with the same idempotency key, which applies the change once on
// whatever master holds the account by then, or confirms it.
//
// WAIT and WAITAOF count the replicas that have every write the connection they
// are sent on made before them, so they must follow a write on that connection,
// on the master that ran the script. One pipeline, one connection, to the node
// owning the account's slot (on a cluster, not wherever go-redis would route a
// keyless command) reads the event (it is there: this master has the change,
// whether this call's script wrote it or an earlier one did), writes a marker in
// the same slot (after the change in this master's replication stream) and
// waits. A failover between the script and this pipeline shows as a missing event
// (the new master never had the change) or a refused write (the old master is a
// replica now): not confirmed either way.
func (s *Store) durable(ctx context.Context, account, eventID string) error {
	d := s.durability
	if !d.On() {
		return nil
	}
	if eventID == "" {
		return fmt.Errorf("%w: account %q: the change has no ledger event to confirm", billing.ErrNotDurable, account)
	}
	aof := d.AOF && s.waitAOF.Load() != waitAOFNo
	local, replicas, err := s.confirm(ctx, account, eventID, d.Replicas, aof)
	if aof && isUnknownCommand(err) {
		// Redis before 7.2: WAIT counts the replicas, and the master's own fsync
		// cannot be waited for. The marker makes a second pipeline as good as the first.
		s.waitAOF.Store(waitAOFNo)
		aof = false
		local, replicas, err = s.confirm(ctx, account, eventID, d.Replicas, false)
	}
	if err != nil {
		return fmt.Errorf("%w: event %s of account %q: %w", billing.ErrNotDurable, eventID, account, err)
	}
	if aof {
		s.waitAOF.Store(waitAOFYes)
	}
	if replicas < d.Replicas || (aof && local < 1) {
		what := fmt.Sprintf("%d of %d replicas confirmed", replicas, d.Replicas)
		if aof {
			what = fmt.Sprintf("%d of %d replicas fsynced it and the master's append-only file %s", replicas, d.Replicas,
				map[bool]string{true: "did", false: "did not"}[local >= 1])
		}
		return fmt.Errorf("%w: event %s of account %q: %s within %s", billing.ErrNotDurable, eventID, account, what, d.Timeout)
	}
	return nil
}

// confirm runs durable's pipeline on account's master: the event, the marker,
// then WAIT (or WAITAOF when aof) for replicas. It returns how many replicas,
// and for WAITAOF how many local files, have every write before it.
func (s *Store) confirm(ctx context.Context, account, eventID string, replicas int, aof bool) (local, acked int, err error) {
	pipe, err := s.masterPipeline(ctx, s.ledgerKey(account))
	if err != nil {
		return 0, 0, wrap(err)
	}
	event := pipe.XRangeN(ctx, s.ledgerKey(account), eventID, eventID, 1)
	pipe.Set(ctx, s.durableKey(account), eventID, durableMarkerTTL)
	timeout := s.durability.Timeout.Milliseconds()
	var (
		wait    *redis.IntCmd
		waitAOF *redis.IntSliceCmd
	)
	if aof {
		waitAOF = redis.NewIntSliceCmd(ctx, "waitaof", 1, replicas, timeout)
		_ = pipe.Process(ctx, waitAOF)
	} else {
		wait = redis.NewIntCmd(ctx, "wait", replicas, timeout)
		_ = pipe.Process(ctx, wait)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, 0, wrap(err)
	}
	if msgs := event.Val(); len(msgs) != 1 || msgs[0].ID != eventID {
		return 0, 0, errors.New("the event is not on the master: a failover lost the change")
	}
	if !aof {
		return 0, int(wait.Val()), nil
	}
	v := waitAOF.Val()
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("WAITAOF answered %d numbers, want 2", len(v))
	}
	return int(v[0]), int(v[1]), nil
}

// masterPipeline is a pipeline on the master owning key's slot.
func (s *Store) masterPipeline(ctx context.Context, key string) (redis.Pipeliner, error) {
	switch c := s.c.(type) {
	case slotMaster:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		return node.Pipeline(), nil
	case pipeliner:
		return c.Pipeline(), nil
	}
	return nil, errors.New("redisstore: the client cannot run pipelines, which durability needs")
}

func isUnknownCommand(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "unknown command")
}

// DurabilityReport is what CheckDurability found.
type DurabilityReport struct {
	// Replicas is how many replicas the master has connected (on a cluster, the
	// fewest any master has).
	Replicas int
	// WaitAOF is true when the server knows WAITAOF (Redis 7.2 and later; on a
	// cluster, every master).
	WaitAOF bool
	// AppendOnly is true when the master writes an append-only file (on a
	// cluster, every master).
	AppendOnly bool
	// Warnings say where the configured Durability and the server disagree: money
	// coming in that a failover can lose, or that can never be confirmed.
	Warnings []string
}

// CheckDurability compares the configured Durability with what the master (on a
// cluster, every master) reports in INFO: how many replicas it has, its version
// (WAITAOF came with Redis 7.2) and whether it writes an append-only file.
// Start-up logs the warnings.
func (s *Store) CheckDurability(ctx context.Context) (DurabilityReport, error) {
	var (
		mu    sync.Mutex
		nodes []map[string]string
	)
	inspect := func(ctx context.Context, c interface {
		Info(ctx context.Context, section ...string) *redis.StringCmd
	}) error {
		text, err := c.Info(ctx).Result() // the default sections: server, persistence, replication…
		if err != nil {
			return wrap(err)
		}
		mu.Lock()
		nodes = append(nodes, infoFields(text))
		mu.Unlock()
		return nil
	}
	var err error
	switch c := s.c.(type) {
	case interface {
		ForEachMaster(ctx context.Context, fn func(ctx context.Context, c *redis.Client) error) error
	}:
		err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return inspect(ctx, n) })
	case interface {
		Info(ctx context.Context, section ...string) *redis.StringCmd
	}:
		err = inspect(ctx, c)
	default:
		err = errors.New("redisstore: the client cannot run INFO")
	}
	if err != nil {
		return DurabilityReport{}, err
	}
	rep := DurabilityReport{Replicas: -1, WaitAOF: len(nodes) > 0, AppendOnly: len(nodes) > 0}
	for _, f := range nodes {
		n, _ := strconv.Atoi(f["connected_slaves"])
		if rep.Replicas < 0 || n < rep.Replicas {
			rep.Replicas = n
		}
		rep.WaitAOF = rep.WaitAOF && versionAtLeast(f["redis_version"], 7, 2)
		rep.AppendOnly = rep.AppendOnly && f["aof_enabled"] == "1"
	}
	rep.Replicas = max(rep.Replicas, 0)
	if rep.WaitAOF {
		s.waitAOF.Store(waitAOFYes)
	} else {
		s.waitAOF.Store(waitAOFNo)
	}
	rep.Warnings = s.durability.warnings(rep)
	return rep, nil
}

// warnings are the ways d and what the server reported disagree.
func (d Durability) warnings(rep DurabilityReport) []string {
	var ws []string
	switch {
	case !d.On() && rep.Replicas > 0:
		ws = append(ws, fmt.Sprintf("redis.wait.replicas is 0, but the master has %d replica(s): a failover can lose top-ups, adjustments and recharges acknowledged within the replication lag; set redis.wait.replicas: 1", rep.Replicas))
	case d.Replicas > rep.Replicas:
		ws = append(ws, fmt.Sprintf("redis.wait.replicas is %d, but the master has %d replica(s) connected: every top-up, adjustment and recharge answers 503 (not confirmed) until enough replicas connect", d.Replicas, rep.Replicas))
	}
	if d.AOF && !rep.WaitAOF {
		ws = append(ws, "redis.wait.aof is true, but this Redis has no WAITAOF (Redis 7.2 and later): replicas are counted by WAIT and the master's own fsync is not waited for (appendfsync always gives that)")
	}
	if d.AOF && rep.WaitAOF && !rep.AppendOnly {
		ws = append(ws, "redis.wait.aof is true, but the master writes no append-only file (appendonly no): WAITAOF fails, so every top-up, adjustment and recharge answers 503; turn AOF on or set redis.wait.aof: false")
	}
	return ws
}

// infoFields parses an INFO answer's "name:value" lines.
func infoFields(text string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			f[k] = v
		}
	}
	return f
}

// versionAtLeast reports whether the version "7.0.15" is major.minor or later.
func versionAtLeast(version string, major, minor int) bool {
	p := strings.SplitN(version, ".", 3)
	if len(p) < 2 {
		return false
	}
	a, err1 := strconv.Atoi(p[0])
	b, err2 := strconv.Atoi(p[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return a > major || a == major && b >= minor
}
