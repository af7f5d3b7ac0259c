package metrics_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// TestRedisHook runs real commands through the hook: successes, a missing key, an
// error reply, a script load (NOSCRIPT then EVAL), a pipeline, an expired
// deadline and a Redis that refuses connections.
func TestRedisHook(t *testing.T) {
	r := testredis.New(t)
	m := newMetrics(t, nil)
	r.Client.AddHook(m.RedisHook())
	ctx := context.Background()
	key := r.Prefix + "hook"

	if err := r.Client.Set(ctx, key, "not a number", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Get(ctx, r.Prefix+"missing").Err(); err != redis.Nil {
		t.Fatalf("get missing: %v", err)
	}
	if err := r.Client.Incr(ctx, key).Err(); err == nil {
		t.Fatal("INCR of a string succeeded")
	}
	// A script Redis has not seen: EVALSHA answers NOSCRIPT, go-redis falls back to EVAL.
	script := redis.NewScript("return ARGV[1] .. '" + r.Prefix + "'")
	if err := script.Run(ctx, r.Client, []string{key}, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, key)
		p.Exists(ctx, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if err := r.Client.Get(expired, key).Err(); err == nil {
		t.Fatal("GET with an expired deadline succeeded")
	}

	tests := []series{
		{"creditgate_redis_command_duration_seconds", map[string]string{"command": "set"}, 1},
		{"creditgate_redis_command_duration_seconds", map[string]string{"command": "get"}, 2},
		{"creditgate_redis_command_duration_seconds", map[string]string{"command": "incr"}, 1},
		{"creditgate_redis_errors_total", map[string]string{"command": "incr", "kind": "server"}, 1},
		{"creditgate_redis_errors_total", map[string]string{"command": "get", "kind": "timeout"}, 1},
		{"creditgate_redis_errors_total", map[string]string{"command": "get", "kind": "server"}, -1},     // redis.Nil is no error
		{"creditgate_redis_errors_total", map[string]string{"command": "evalsha", "kind": "server"}, -1}, // nor is NOSCRIPT
	}
	if r.Kind != testredis.KindMemory { // miniredis has no script cache to miss
		tests = append(tests,
			series{"creditgate_redis_command_duration_seconds", map[string]string{"command": "evalsha"}, 1},
			series{"creditgate_redis_command_duration_seconds", map[string]string{"command": "eval"}, 1})
	}
	for _, s := range tests {
		if got := sample(t, m.Gatherer(), s.name, s.labels); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	// go-redis also pipelines its connection handshake, so count at least ours.
	if got := sample(t, m.Gatherer(), "creditgate_redis_command_duration_seconds", map[string]string{"command": "pipeline"}); got < 1 {
		t.Errorf("pipelines timed: %v", got)
	}
}

func TestRedisHookUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	m := newMetrics(t, nil)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	c.AddHook(m.RedisHook())
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	if got := sample(t, m.Gatherer(), "creditgate_redis_errors_total", map[string]string{"command": "ping", "kind": "network"}); got != 1 {
		t.Errorf("ping network errors = %v, want 1", got)
	}
	// The pool retries a failed dial a few times within one command.
	if got := sample(t, m.Gatherer(), "creditgate_redis_errors_total", map[string]string{"command": "dial", "kind": "dial"}); got < 1 {
		t.Errorf("dial errors = %v, want at least 1", got)
	}
}

// TestRedisHookIgnoresTheHandshake opens fresh connections through the hook: go-redis
// pipelines CLIENT SETINFO into every connection's handshake and ignores its
// refusal (Redis before 7.2, miniredis), so a new connection is no Redis error. A
// pipeline whose own command fails still counts.
func TestRedisHookIgnoresTheHandshake(t *testing.T) {
	r := testredis.New(t)
	m := newMetrics(t, nil)
	ctx := context.Background()
	opts := &redis.Options{Addr: r.Addr, PoolSize: 4}
	if r.Kind == testredis.KindCluster {
		t.Skip("one node of a cluster would answer MOVED; the handshake is the same on every node")
	}
	for i := range 5 { // five clients, five handshakes
		c := redis.NewClient(opts)
		c.AddHook(m.RedisHook())
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		c.Close()
	}
	if got := sample(t, m.Gatherer(), "creditgate_redis_errors_total", map[string]string{"command": "pipeline", "kind": "server"}); got != -1 {
		t.Fatalf("handshakes counted as %v pipeline errors, want none", got)
	}

	c := redis.NewClient(opts)
	defer c.Close()
	c.AddHook(m.RedisHook())
	key := r.Prefix + "{hs}str"
	if err := c.Set(ctx, key, "not a number", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	defer c.Del(ctx, key)
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, key)
		p.Incr(ctx, key)
		return nil
	}); err == nil {
		t.Fatal("a pipeline with INCR of a string succeeded")
	}
	if got := sample(t, m.Gatherer(), "creditgate_redis_errors_total", map[string]string{"command": "pipeline", "kind": "server"}); got != 1 {
		t.Fatalf("pipeline server errors = %v, want 1", got)
	}
}
