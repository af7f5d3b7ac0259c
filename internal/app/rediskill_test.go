package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// redisServer is a redis-server of the test's own, on a free loopback port,
// with its data (and AOF) in a temporary directory, so the test can kill it.
type redisServer struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CREDITGATE_TEST_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not found: %v", err)
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: port}
	s.start()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs redis-server with AOF on (fsync every second, Redis's default) and
// waits until it answers.
func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(s.cmd, s.done)
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	waitFor(s.t, "redis-server to answer", 20*time.Second, func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// kill ends redis-server with SIGKILL: no shutdown, no final save.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Redis is killed (SIGKILL) and restarted from its AOF in the middle of a load
// run. Requests arriving while it is down get 503; requests whose settlement
// fails are spooled and replayed once it is back. Not one acknowledged debit is
// lost: every request answered 2xx is in the ledger exactly once.
func TestRedisKilledAndRestartedLosesNoAcknowledgedDebit(t *testing.T) {
	rs := startRedisServer(t)
	f := newFixture(t)
	// The store under test is the test's own redis-server.
	rc := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: 5})
	rc.AddHook(testredis.SlotGuard())
	t.Cleanup(func() { rc.Close() })
	store, err := redisstore.New(rc, redisstore.Options{Prefix: f.redis.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	f.doc["redis"] = fmt.Sprintf(`{ url: "redis://%s/0", key_prefix: %q, timeout: 300ms, max_retries: 2, operation_timeout: 1s }`, rs.addr(), f.redis.Prefix)
	f.doc["auth"] = `{ key_cache_ttl: 30s }`
	f.start()
	key := f.account("acme", "1000.00")

	const workers = 16
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
		maxDepth atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				// Requests spend a little time upstream, so some are there when
				// Redis dies and must settle into the spool.
				o := post(loadClient, f.data, key, chat("gpt-4o-mini", (w+i)%3 == 0, 16), "X-Mock-Delay", "100ms")
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if d := int64(f.app.SpoolDepth()); d > maxDepth.Load() {
					maxDepth.Store(d)
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(outcomes) }
	waitFor(t, "load before the kill", 30*time.Second, func() bool { return count() >= 300 })
	rs.kill()
	killedAt := count()
	time.Sleep(time.Second)
	rs.start()
	restartedAt := count()
	waitFor(t, "load after the restart", 30*time.Second, func() bool { return count() >= restartedAt+300 })
	stop.Store(true)
	wg.Wait()
	f.app.inflight.wait(30 * time.Second)
	waitFor(t, "the spool to drain", 30*time.Second, func() bool { return f.app.SpoolDepth() == 0 })

	statuses := map[int]int{}
	for _, o := range outcomes {
		if o.err != nil {
			t.Fatalf("request failed without an answer: %v", o.err)
		}
		statuses[o.status]++
		if o.status != 200 && o.status != 503 {
			t.Fatalf("unexpected answer %d %s", o.status, o.body)
		}
	}
	a := checkLedger(t, f.store, "acme", outcomes, money.MustParse("0.50"))
	if statuses[503] == 0 {
		t.Fatal("no request noticed the outage")
	}
	spooled := strings.Count(string(f.logs.Bytes()), `"msg":"settlement spooled`)
	t.Logf("redis-server killed after %d requests, restarted from its AOF 1s later (%d requests in between); %d requests in all: %d answered 200, %d answered 503 (nothing forwarded); %d settlements spooled (depth peaked at %d) and replayed after the restart; every 200 booked exactly once (usage %s): zero acknowledged debits lost",
		killedAt, restartedAt-killedAt, len(outcomes), statuses[200], statuses[503], spooled, maxDepth.Load(), a.Totals.Usage)
}

// creditgate through Redis Sentinel (go-redis's failover client, chosen by
// redis.sentinel_master): a real sentinel monitoring the test's own
// redis-server hands creditgate the master, and requests are booked there.
func TestThroughSentinel(t *testing.T) {
	rs := startRedisServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sentinelPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor creditgate %s 1\n",
		sentinelPort, strings.Replace(rs.addr(), ":", " ", 1))), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command(rs.bin, conf, "--sentinel", "--logfile", conf+".log")
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sentinel.Process.Kill(); _ = sentinel.Wait() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sentinelPort)})
	defer sc.Close()
	waitFor(t, "the sentinel to know the master", 20*time.Second, func() bool {
		addr, err := sc.GetMasterAddrByName(context.Background(), "creditgate").Result()
		return err == nil && len(addr) == 2
	})

	f := newFixture(t)
	rc := redis.NewClient(&redis.Options{Addr: rs.addr()})
	t.Cleanup(func() { rc.Close() })
	store, err := redisstore.New(rc, redisstore.Options{Prefix: f.redis.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	f.doc["redis"] = fmt.Sprintf(`{ cluster_addrs: ["127.0.0.1:%d"], sentinel_master: creditgate, key_prefix: %q }`, sentinelPort, f.redis.Prefix)
	f.start()
	key := f.account("acme", "5.00")
	var outcomes []outcome
	for i := range 5 {
		o := post(loadClient, f.data, key, chat("gpt-4o-mini", i%2 == 0, 16))
		if o.status != 200 {
			t.Fatalf("through the sentinel: %d %s", o.status, o.body)
		}
		outcomes = append(outcomes, o)
	}
	f.app.inflight.wait(10 * time.Second)
	if a := checkLedger(t, f.store, "acme", outcomes, money.MustParse("0.50")); a.Totals.Usage == 0 {
		t.Fatal("nothing booked on the master")
	}
}
