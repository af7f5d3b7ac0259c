// Package testredis gives each test its own slice of a real Redis: a client and a
// unique key prefix whose keys are deleted when the test ends.
//
// It uses, in order: the Redis Cluster named by CREDITGATE_TEST_REDIS_CLUSTER
// (comma-separated seed addresses), the Redis at CREDITGATE_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). When neither answers it falls back to an in-process
// miniredis and reports it through skipreport (the package fails after its tests
// unless CREDITGATE_TEST_ALLOW_MISSING accepts "redis"), or, under
// CREDITGATE_TEST_REQUIRE_REDIS=1 (CI), fails the test. Under
// CREDITGATE_TEST_REQUIRE_REDIS_CLUSTER=1 (CI's cluster run) a test that gets no
// cluster fails.
//
// Every client it hands out carries SlotGuard, a hook that fails any script call
// or multi-key command whose keys span two Redis Cluster slots, so cross-slot
// bugs show up on a single Redis and on miniredis too, not only on a cluster.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/internal/memredis"
	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// Kind says which store a test got.
type Kind string

const (
	KindRedis   Kind = "redis"
	KindCluster Kind = "cluster"
	KindMemory  Kind = "miniredis"
)

// Store is a test's Redis: a client and the key prefix the test must use.
type Store struct {
	Client redis.UniversalClient
	Prefix string
	Kind   Kind
	// Addr is the address of the single Redis (or first cluster seed, or miniredis).
	Addr string
	// Mini is the in-process server when Kind is KindMemory (for FastForward etc.).
	Mini *miniredis.Miniredis
}

// New returns a Store for t. Keys under Store.Prefix are removed at cleanup.
func New(t testing.TB) *Store {
	t.Helper()
	s, err := open(t)
	if err != nil {
		t.Fatal(err)
	}
	s.Prefix = "cgtest:" + randomHex(6) + ":"
	s.Client.AddHook(SlotGuard())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := DeletePrefix(ctx, s.Client, s.Prefix); err != nil {
			t.Logf("testredis: cleaning %s*: %v", s.Prefix, err)
		}
		s.Client.Close()
	})
	return s
}

// Memory returns a Store on a fresh in-process miniredis, whatever is reachable.
func Memory(t testing.TB) *Store {
	t.Helper()
	m := miniredis.RunT(t)
	memredis.Install(m)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	c.AddHook(SlotGuard())
	t.Cleanup(func() { c.Close() })
	return &Store{Client: c, Prefix: "cgtest:" + randomHex(6) + ":", Kind: KindMemory, Addr: m.Addr(), Mini: m}
}

func open(t testing.TB) (*Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	seeds := os.Getenv("CREDITGATE_TEST_REDIS_CLUSTER")
	if seeds == "" && skipreport.Required(skipreport.RedisCluster) {
		skipreport.Missing(t, skipreport.RedisCluster, "CREDITGATE_TEST_REDIS_CLUSTER is not set") // fails t
	}
	if seeds != "" {
		addrs := strings.Split(seeds, ",")
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			return nil, fmt.Errorf("testredis: CREDITGATE_TEST_REDIS_CLUSTER=%s is set but unreachable: %w", seeds, err)
		}
		return &Store{Client: c, Kind: KindCluster, Addr: addrs[0]}, nil
	}
	url := os.Getenv("CREDITGATE_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("testredis: CREDITGATE_TEST_REDIS_URL: %w", err)
	}
	opt.DialTimeout = time.Second
	c := redis.NewClient(opt)
	perr := c.Ping(ctx).Err()
	if perr == nil {
		return &Store{Client: c, Kind: KindRedis, Addr: opt.Addr}, nil
	}
	c.Close()
	// Fails t when real Redis is required; else the package reports it after its tests.
	skipreport.Missing(t, skipreport.Redis, fmt.Sprintf("real Redis at %s is unreachable (%v); the tests ran on in-process miniredis instead, which does not prove behaviour on real Redis", url, perr))
	m := miniredis.RunT(t)
	memredis.Install(m)
	return &Store{Client: redis.NewClient(&redis.Options{Addr: m.Addr()}), Kind: KindMemory, Addr: m.Addr(), Mini: m}, nil
}

// DeletePrefix deletes every key starting with prefix, on every master of a cluster.
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	del := func(ctx context.Context, node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			// One key per DEL: keys of different slots cannot share a command on a cluster.
			if err := node.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return del(ctx, n) })
	}
	return del(ctx, c)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
