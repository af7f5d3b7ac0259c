package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/internal/memredis"
)

// MemoryURL selects the embedded in-process store: for trying creditgate out, not
// durable (everything is lost when the process exits).
const MemoryURL = "memory://"

// Defaults of ConnOptions.
const (
	DefaultTimeout          = 2 * time.Second
	DefaultOperationTimeout = 5 * time.Second
)

// ConnOptions say how to reach Redis and how long to wait for it.
//
// How long a call may take when Redis is gone: every command (a script call, a
// key lookup, a ping) is cut off after OperationTimeout, retries and their backoff
// included, and each attempt's dial, write, read and wait for a pooled connection
// is cut off after Timeout. A request whose admission cannot reach Redis is
// therefore answered 503 after at most OperationTimeout per store call it makes
// (one with the key cache warm, two when the key is looked up too). A script run
// right after Redis restarted may take two commands (EVALSHA, then EVAL on
// NOSCRIPT), hence at most twice that.
type ConnOptions struct {
	// URL of a single Redis ("redis://user:pass@host:6379/0", "rediss://…" for TLS) or
	// MemoryURL. Exclusive with ClusterAddrs.
	URL string
	// ClusterAddrs are Redis Cluster seed nodes, or Sentinel addresses when
	// SentinelMaster is set.
	ClusterAddrs   []string
	SentinelMaster string
	Username       string
	Password       string
	// Timeout bounds each attempt's dial, each read and write, and waiting for a
	// pooled connection (default DefaultTimeout).
	Timeout time.Duration
	// MaxRetries is how many times a command is resent after a network error or a
	// timeout; 0 means never. Resending is safe: every ledger script is
	// idempotent by its hold, grant or key id, so a script whose reply was lost is
	// answered from its record the second time instead of applied twice.
	MaxRetries int
	// OperationTimeout bounds one command from first try to last retry (default
	// DefaultOperationTimeout, and never less than Timeout).
	OperationTimeout time.Duration
	PoolSize         int
}

// Conn is an open connection to the store.
type Conn struct {
	Client redis.UniversalClient
	// Embedded is true for MemoryURL.
	Embedded bool
	mini     *miniredis.Miniredis
}

// Close closes the client and, for the embedded store, stops it.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.mini != nil {
		c.mini.Close()
	}
	return err
}

// Connect opens the store described by o and checks that it answers.
func Connect(ctx context.Context, o ConnOptions) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = DefaultOperationTimeout
	}
	o.OperationTimeout = max(o.OperationTimeout, o.Timeout)
	if o.MaxRetries < 0 {
		return nil, fmt.Errorf("redis: max retries %d is negative", o.MaxRetries)
	}
	// go-redis reads 0 as "its default" (3) and -1 as "never".
	retries := o.MaxRetries
	if retries == 0 {
		retries = -1
	}
	conn := &Conn{}
	switch {
	case o.URL != "" && len(o.ClusterAddrs) > 0:
		return nil, errors.New("redis: set either url or cluster_addrs, not both")
	case strings.HasPrefix(o.URL, "memory:"):
		m, err := memredis.Start()
		if err != nil {
			return nil, fmt.Errorf("redis: starting the embedded store: %w", err)
		}
		conn.mini, conn.Embedded = m, true
		opt := &redis.Options{Addr: m.Addr(), PoolSize: o.PoolSize}
		bound(opt, o, retries)
		conn.Client = redis.NewClient(opt)
	case o.URL != "":
		opt, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		if o.PoolSize > 0 {
			opt.PoolSize = o.PoolSize
		}
		if o.Username != "" {
			opt.Username = o.Username
		}
		if o.Password != "" {
			opt.Password = o.Password
		}
		bound(opt, o, retries)
		conn.Client = redis.NewClient(opt)
	case len(o.ClusterAddrs) > 0:
		conn.Client = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:                 o.ClusterAddrs,
			MasterName:            o.SentinelMaster,
			Username:              o.Username,
			Password:              o.Password,
			DialTimeout:           o.Timeout,
			ReadTimeout:           o.Timeout,
			WriteTimeout:          o.Timeout,
			PoolTimeout:           o.Timeout,
			PoolSize:              o.PoolSize,
			MaxRetries:            retries,
			MaxRetryBackoff:       maxRetryBackoff(o),
			DialerRetries:         1,
			ContextTimeoutEnabled: true,
			// cluster_addrs always means a cluster, even with a single seed node.
			IsClusterMode: o.SentinelMaster == "",
		})
	default:
		return nil, errors.New("redis: set redis.url or redis.cluster_addrs")
	}
	conn.Client.AddHook(operationDeadline(o.OperationTimeout))
	pctx, cancel := context.WithTimeout(ctx, o.OperationTimeout)
	defer cancel()
	if err := conn.Client.Ping(pctx).Err(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return conn, nil
}

// bound applies o's timeouts and retries to a single-node client's options.
//
// go-redis on its own would retry a command 3 times and, inside each try, dial up
// to 5 times, each dial waiting DialTimeout: 20 dial timeouts for one command
// against a black-holed Redis. Here a try dials once, and the deadline hook caps
// the whole command.
func bound(opt *redis.Options, o ConnOptions, retries int) {
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = o.Timeout, o.Timeout, o.Timeout, o.Timeout
	opt.MaxRetries = retries
	opt.MaxRetryBackoff = maxRetryBackoff(o)
	opt.DialerRetries = 1
	// Let the caller's deadline (and the hook's) cut a read or write short;
	// without this go-redis only applies its own per-attempt timeouts.
	opt.ContextTimeoutEnabled = true
}

// maxRetryBackoff keeps the pause between tries well inside the operation budget.
func maxRetryBackoff(o ConnOptions) time.Duration {
	return min(512*time.Millisecond, o.OperationTimeout/8)
}

// operationDeadline is a go-redis hook giving each command (and each pipeline) a
// deadline d from its start, unless the caller's context ends sooner. It wraps
// go-redis's retry loop, so retries and backoff fit inside d.
type operationDeadline time.Duration

func (d operationDeadline) DialHook(next redis.DialHook) redis.DialHook { return next }

func (d operationDeadline) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, cancel := d.bound(ctx)
		defer cancel()
		return next(ctx, cmd)
	}
}

func (d operationDeadline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, cancel := d.bound(ctx)
		defer cancel()
		return next(ctx, cmds)
	}
}

func (d operationDeadline) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= time.Duration(d) {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Duration(d))
}
