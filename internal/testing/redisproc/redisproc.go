// Package redisproc runs redis-server processes of a test's own on free loopback
// ports: masters, replicas and sentinels, each with its data and log in a
// temporary directory, so that a test can kill one (SIGKILL), stop one
// (SIGSTOP, SIGCONT) and watch a failover. A test that needs redis-server skips,
// saying so on stderr, when it is not installed, unless
// CREDITGATE_TEST_REQUIRE_REDIS=1 (set by CI), which makes that a failure.
package redisproc

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
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv names the variable that turns a missing redis-server into a failure.
const RequireEnv = "CREDITGATE_TEST_REQUIRE_REDIS"

var warnOnce sync.Once

// Binary is the path of redis-server. When it is missing, t skips (or fails,
// with RequireEnv=1).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server not found (%v), and %s=1 requires it", err, RequireEnv)
		}
		warnOnce.Do(func() {
			fmt.Fprintf(os.Stderr, "\n*** WARNING: redis-server is not installed: the tests that run their own Redis (replication, Sentinel failover) are SKIPPED.\n\n")
		})
		t.Skipf("SKIPPED: redis-server is not installed (%v); set %s=1 to make this a failure", err, RequireEnv)
	}
	return bin
}

// FreePort is a loopback TCP port nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is one redis-server (or sentinel) process.
type Server struct {
	t    testing.TB
	bin  string
	args []string
	// Dir holds its data, its log (redis.log) and, for a sentinel, its config.
	Dir  string
	Port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan error
	paused bool
}

// Start runs redis-server on a free port with nothing persisted (no RDB, no
// AOF) unless args, appended last, say otherwise ("--appendonly", "yes"), and
// replicas synced without delay. The process is killed when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Dir: t.TempDir(), Port: FreePort(t)}
	s.args = append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", filepath.Join(s.Dir, "redis.log"),
		// A replica's first sync starts at once, not after the default 5 s.
		"--repl-diskless-sync-delay", "0"}, args...)
	s.run()
	return s
}

// StartReplica runs a replica of the master at masterAddr ("127.0.0.1:port":
// the master's Addr, or a fault proxy in front of it) and waits until its link
// to the master is up.
func StartReplica(t testing.TB, masterAddr string, args ...string) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, append([]string{"--replicaof", host, port}, args...)...)
	s.WaitFor("the replica's link to its master", 20*time.Second, func(c *redis.Client) bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return s
}

// Sentinel configures StartSentinel.
type Sentinel struct {
	// Name is the monitored master's name.
	Name string
	// Master is the monitored master's address ("127.0.0.1:port"), the one its
	// replicas are configured with: a sentinel "fixes" a replica whose master
	// address differs, by pointing it at this one.
	Master string
	// Quorum is how many sentinels must agree the master is down.
	Quorum int
	// DownAfter is how long the master may not answer before a sentinel thinks it
	// down (sentinel down-after-milliseconds).
	DownAfter time.Duration
	// FailoverTimeout is sentinel failover-timeout.
	FailoverTimeout time.Duration
}

// StartSentinel runs a sentinel (redis-server --sentinel) monitoring cfg.Master.
func StartSentinel(t testing.TB, cfg Sentinel) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Dir: t.TempDir(), Port: FreePort(t)}
	host, port, err := net.SplitHostPort(cfg.Master)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(s.Dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor %s %s %s %d\n"+
		"sentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s %d\n"+
		"sentinel parallel-syncs %s 1\n",
		s.Port, s.Dir, filepath.Join(s.Dir, "redis.log"),
		cfg.Name, host, port, cfg.Quorum,
		cfg.Name, cfg.DownAfter.Milliseconds(),
		cfg.Name, cfg.FailoverTimeout.Milliseconds(),
		cfg.Name)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{conf, "--sentinel"}
	s.run()
	return s
}

// Addr is "127.0.0.1:<port>".
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Client is a new client of the process (closed when the test ends).
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// run starts the process and waits until it answers PING.
func (s *Server) run() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.done, s.paused = cmd, done, false
	s.mu.Unlock()
	s.t.Cleanup(s.Kill)
	s.WaitFor("redis-server to answer", 20*time.Second, func(c *redis.Client) bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// WaitFor polls cond with a client of the process until it holds; the bound
// only guards against a hang.
func (s *Server) WaitFor(what string, bound time.Duration, cond func(c *redis.Client) bool) {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(bound)
	for !cond(c) {
		if time.Now().After(deadline) {
			s.t.Fatalf("still waiting after %s for %s (%s); its log:\n%s", bound, what, s.Addr(), s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL: no shutdown, no final save. Killing a
// killed process does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done, paused := s.cmd, s.done, s.paused
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-done
}

// Pause stops the process (SIGSTOP): it answers nothing and, a replica,
// acknowledges nothing of its master's stream, until Resume. (What the master
// already sent stays in the kernel's socket buffers and reaches the replica
// when it resumes, even if the master died meanwhile: to make a replica lose
// writes, drop them between the two, with a fault proxy.)
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("%s: the process is not running", s.Addr())
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("%s: %v", s.Addr(), err)
	}
	s.paused = paused
}

// Log is the process's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}
