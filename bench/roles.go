package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// The harness runs every component in its own process (this binary, re-executed with
// -role), so that CPU time, allocations and memory are measured per component, and so
// that each can be pinned to a CPU. A child prints one JSON line (a handshake) on
// stdout once it serves, and exits when its stdin closes: a harness that dies takes
// its children with it.

// handshake is the line a child prints when it is ready.
type handshake struct {
	Addr  string   `json:"addr"`  // the served address (host:port)
	Stats string   `json:"stats"` // the stats and pprof address
	Keys  []string `json:"keys,omitempty"`
	Error string   `json:"error,omitempty"`
}

// roleFlags are the flags of a child.
type roleFlags struct {
	role         string
	upstream     string // bare, creditgate: the mock's base URL (http://host:port)
	redisURL     string // creditgate
	prefix       string // creditgate: Redis key prefix
	accounts     int    // creditgate: accounts (one key each) to create
	outputTokens int    // mock
	replay       bool   // mock: replay recorded answers
	listen       string // mock: the address to listen on
}

func (f *roleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.role, "role", "", "internal: run as a child process (mock, bare, creditgate)")
	fs.StringVar(&f.upstream, "role-upstream", "", "internal: upstream base URL")
	fs.StringVar(&f.redisURL, "role-redis", "", "internal: redis URL")
	fs.StringVar(&f.prefix, "role-prefix", "", "internal: Redis key prefix")
	fs.IntVar(&f.accounts, "role-accounts", 16, "internal: accounts to create")
	fs.IntVar(&f.outputTokens, "role-output-tokens", 64, "internal: mock reply length")
	fs.BoolVar(&f.replay, "role-replay", true, "internal: replay the mock's recorded answers")
	fs.StringVar(&f.listen, "role-listen", "127.0.0.1:0", "internal: the mock's listen address")
}

// upstreamKey is the key the proxies send upstream; the mock accepts any.
const upstreamKey = "sk-bench-upstream"

// runRole runs a child until its stdin closes.
func runRole(f roleFlags) error {
	ctx := context.Background()
	var (
		hs       handshake
		handler  http.Handler
		shutdown func()
		err      error
	)
	stats, err := serveStats()
	if err != nil {
		return announce(handshake{Error: err.Error()})
	}
	hs.Stats = stats
	switch f.role {
	case "mock":
		handler, err = mockHandler(f.outputTokens, f.replay)
	case "bare":
		handler, err = bareProxy(f.upstream)
	case "creditgate":
		hs.Addr, hs.Keys, shutdown, err = startCreditgate(ctx, f)
	default:
		err = fmt.Errorf("unknown role %q", f.role)
	}
	if err != nil {
		return announce(handshake{Error: err.Error()})
	}
	if handler != nil {
		addr := "127.0.0.1:0"
		if f.role == "mock" {
			addr = f.listen
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return announce(handshake{Error: err.Error()})
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go srv.Serve(ln)
		hs.Addr = ln.Addr().String()
		shutdown = func() {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}
	}
	if err := announce(hs); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin) // until the harness closes it (or dies)
	shutdown()
	return nil
}

func announce(hs handshake) error {
	line, _ := json.Marshal(hs)
	_, err := fmt.Fprintf(os.Stdout, "%s\n", line)
	if hs.Error != "" {
		return errors.New(hs.Error)
	}
	return err
}

// mockHandler is the mock upstream behind the nonce canonicalizer and, with replay,
// the cache of its answers (see replayUpstream).
func mockHandler(outputTokens int, replay bool) (http.Handler, error) {
	if err := mockupstream.Preload(); err != nil {
		return nil, err
	}
	m := mockupstream.New()
	m.OutputTokens = outputTokens
	m.MaxRecorded = 1 // a load run must not grow the record without bound
	return newReplayUpstream(m, replay), nil
}

// bareProxy is the baseline: httputil.ReverseProxy with the same transport as
// creditgate's and a pool of copy buffers, doing only what any proxy in front of
// OpenAI must do (point the request at the upstream, swap the key).
func bareProxy(upstream string) (http.Handler, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set("Authorization", "Bearer "+upstreamKey)
		},
		Transport:  proxy.NewTransport(10 * time.Minute),
		BufferPool: copyBuffers{},
	}, nil
}

type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *(copyBufferPool.Get().(*[]byte)) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// startCreditgate runs creditgate through internal/app, as `creditgate serve` does,
// on a generated configuration, and creates the accounts and keys the load uses.
func startCreditgate(ctx context.Context, f roleFlags) (addr string, keys []string, shutdown func(), err error) {
	cfg, err := config.LoadBytes([]byte(creditgateConfig(f)), nil)
	if err != nil {
		return "", nil, nil, fmt.Errorf("bench config: %w", err)
	}
	a, err := app.New(ctx, cfg, app.Options{})
	if err != nil {
		return "", nil, nil, err
	}
	store := a.Store()
	policy := cfg.Policy()
	for i := range f.accounts {
		id := fmt.Sprintf("bench-%02d", i)
		if _, err := store.CreateAccount(ctx, id, "bench"); err != nil {
			a.Shutdown(ctx)
			return "", nil, nil, fmt.Errorf("creating account %s: %w", id, err)
		}
		if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: money.MustParse("100000.00")}); err != nil {
			a.Shutdown(ctx)
			return "", nil, nil, fmt.Errorf("top-up of %s: %w", id, err)
		}
		_, secret, err := store.CreateKey(ctx, id, "bench")
		if err != nil {
			a.Shutdown(ctx)
			return "", nil, nil, fmt.Errorf("key for %s: %w", id, err)
		}
		keys = append(keys, secret)
	}
	go a.Serve()
	shutdown = func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	}
	return a.DataAddr().String(), keys, shutdown, nil
}

// creditgateConfig is the configuration the harness runs creditgate with: defaults
// (pricing, grace, clamping, key cache, info logging — one JSON line per request)
// except for the addresses, the store and a tier large enough for long runs.
func creditgateConfig(f roleFlags) string {
	return fmt.Sprintf(`listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:0"
  tokens: [%q]
upstream:
  base_url: %q
  api_key: %q
redis:
  url: %q
  key_prefix: %q
billing:
  default_tier: bench
  tiers:
    bench: { max_topup: "1000000.00", max_balance: "100000000.00" }
logging:
  level: info
`, randomHex(16), f.upstream+"/v1", upstreamKey, f.redisURL, f.prefix)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// procStats are a child's counters, read by the harness before and after a window.
type procStats struct {
	CPU        time.Duration `json:"cpu"`         // user + system CPU time since start
	Allocs     uint64        `json:"allocs"`      // heap objects allocated since start
	AllocBytes uint64        `json:"alloc_bytes"` // heap bytes allocated since start
	RSS        int64         `json:"rss"`         // resident set size, bytes
	PeakRSS    int64         `json:"peak_rss"`    // peak RSS since start or the last reset
	LiveHeap   uint64        `json:"live_heap"`   // heap objects + goroutine stacks after a GC (?gc=1 only)
	Goroutines int           `json:"goroutines"`
}

// serveStats serves /stats, /reset-peak and /debug/pprof on a loopback port of its own.
func serveStats() (string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(readStats(r.URL.Query().Get("gc") == "1"))
	})
	mux.HandleFunc("/reset-peak", func(w http.ResponseWriter, r *http.Request) {
		// Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go http.Serve(ln, mux)
	return ln.Addr().String(), nil
}

var statMetrics = []metrics.Sample{
	{Name: "/gc/heap/allocs:objects"},
	{Name: "/gc/heap/allocs:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/stacks:bytes"},
}

var statMu sync.Mutex

func readStats(gc bool) procStats {
	statMu.Lock()
	defer statMu.Unlock()
	if gc {
		runtime.GC()
	}
	metrics.Read(statMetrics)
	s := procStats{
		CPU:        processCPU(),
		Allocs:     statMetrics[0].Value.Uint64(),
		AllocBytes: statMetrics[1].Value.Uint64(),
		Goroutines: runtime.NumGoroutine(),
	}
	if gc {
		s.LiveHeap = statMetrics[2].Value.Uint64() + statMetrics[3].Value.Uint64()
	}
	s.RSS, s.PeakRSS = memoryOf("self")
	return s
}

// memoryOf reads VmRSS and VmHWM of /proc/<pid>/status, in bytes (0 if unknown).
func memoryOf(pid string) (rss, peak int64) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}
