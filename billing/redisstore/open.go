package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// MemoryURL selects the embedded in-process store: for trying creditgate out, not
// durable (everything is lost when the process exits).
const MemoryURL = "memory://"

// ConnOptions say how to reach Redis.
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
	// Timeout bounds dialing, each read and write, and waiting for a pooled
	// connection, so a request fails (503) instead of hanging when Redis is gone.
	Timeout  time.Duration
	PoolSize int
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
		o.Timeout = 2 * time.Second
	}
	conn := &Conn{}
	switch {
	case o.URL != "" && len(o.ClusterAddrs) > 0:
		return nil, errors.New("redis: set either url or cluster_addrs, not both")
	case strings.HasPrefix(o.URL, "memory:"):
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("redis: starting the embedded store: %w", err)
		}
		conn.mini, conn.Embedded = m, true
		conn.Client = redis.NewClient(&redis.Options{Addr: m.Addr(), DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, PoolTimeout: o.Timeout})
	case o.URL != "":
		opt, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = o.Timeout, o.Timeout, o.Timeout, o.Timeout
		if o.PoolSize > 0 {
			opt.PoolSize = o.PoolSize
		}
		if o.Username != "" {
			opt.Username = o.Username
		}
		if o.Password != "" {
			opt.Password = o.Password
		}
		conn.Client = redis.NewClient(opt)
	case len(o.ClusterAddrs) > 0:
		conn.Client = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:        o.ClusterAddrs,
			MasterName:   o.SentinelMaster,
			Username:     o.Username,
			Password:     o.Password,
			DialTimeout:  o.Timeout,
			ReadTimeout:  o.Timeout,
			WriteTimeout: o.Timeout,
			PoolTimeout:  o.Timeout,
			PoolSize:     o.PoolSize,
			// cluster_addrs always means a cluster, even with a single seed node.
			IsClusterMode: o.SentinelMaster == "",
		})
	default:
		return nil, errors.New("redis: set redis.url or redis.cluster_addrs")
	}
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := conn.Client.Ping(pctx).Err(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return conn, nil
}
