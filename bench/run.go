package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/metering"
)

// target is a component under load: the mock alone, or a proxy in front of the mock.
type target struct {
	id, name string
	redis    *redis.Client // the real Redis a creditgate target runs on (nil: none or embedded)
	proc     component     // the component under test
	upstream *child        // the mock behind a proxy; nil for the mock itself
	peer     bool          // proc is a peer gateway (-peer): allocations unknown
	keys     []string      // app keys to send
	warm     bool          // repeat texts (count cache warm) instead of new ones
	only     string        // when set, the only size this target runs at
}

// cell is one workload: plain or streamed, one prompt size.
type cell struct {
	stream bool
	work   *workload
}

func (c cell) name() string {
	if c.stream {
		return c.work.name + " stream"
	}
	return c.work.name + " plain"
}

// measure is one measured run with the processes' counters over its window.
type measure struct {
	res        loadResult
	cpuTarget  time.Duration // CPU time of the component under test
	cpuMock    time.Duration // of the mock behind a proxy
	cpuLoad    time.Duration // of the load generator (this process)
	allocs     uint64        // heap objects allocated by the component under test
	allocBytes uint64
	peakRSS    int64
	statsErr   error
	// Redis, for creditgate on the real Redis: the server's script calls and their
	// execution time over the window (INFO commandstats; the instance is shared, so
	// other clients' calls are counted too — compare calls with 2 per request).
	redisCalls int64
	redisTime  time.Duration
}

// results holds every run, by cell and target id.
type results struct {
	throughput map[string]map[string][]measure
	latency    map[string]map[string][]loadResult
}

func run(ctx context.Context, o options, pin pinning) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "creditgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	m := describeMachine(pin)
	m.Redis = redisVersion(o.redisURL)
	logf("creditgate bench on %s (%d CPUs), %s; pinning: %s", m.CPU, m.Cores, m.GoVersion, m.Pinning)

	tok, err := metering.TokenizerFor(metering.O200kBase)
	if err != nil {
		return err
	}
	var cells []cell
	for _, s := range strings.Split(o.sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 20 {
			return fmt.Errorf("-sizes: %q is not a prompt size in tokens (20 or more)", s)
		}
		for _, stream := range []bool{false, true} {
			w, err := newWorkload(sizeName(n), n, 4, stream, tok)
			if err != nil {
				return err
			}
			cells = append(cells, cell{stream: stream, work: w})
		}
	}

	// Components. Children on the target CPUs get GOMAXPROCS = their CPU count, so
	// the Go scheduler does not run more threads than it has CPUs.
	targetProcs, loadProcs := 0, 0
	if pin.taskset != "" {
		targetProcs, loadProcs = cpuCount(pin.target), cpuCount(pin.load)
	}
	var children []*child
	prefix := "cgbench-" + randomHex(6) + ":"
	defer func() {
		for _, c := range children {
			c.stop()
		}
		cleanRedis(o.redisURL, prefix)
	}()
	spawn := func(name, cpus string, procs int, args ...string) (*child, error) {
		logf("starting %s", name)
		c, err := startChild(ctx, name, dir, pin, cpus, procs, args...)
		if err == nil {
			children = append(children, c)
		}
		return c, err
	}
	outTok := "-role-output-tokens=" + strconv.Itoa(o.outputTokens)
	replay := "-role-replay=" + strconv.FormatBool(o.upstream == "replay")
	mockDirect, err := spawn("mock-direct", pin.target, targetProcs, "-role=mock", outTok, replay)
	if err != nil {
		return err
	}
	mockUp, err := spawn("mock-upstream", pin.load, loadProcs, "-role=mock", outTok, replay, "-role-listen="+o.mockListen)
	if err != nil {
		return err
	}
	upstreamURL := "http://" + mockUp.hs.Addr
	bare, err := spawn("bare", pin.target, targetProcs, "-role=bare", "-role-upstream="+upstreamURL)
	if err != nil {
		return err
	}
	cg, err := spawn("creditgate-redis", pin.target, targetProcs, "-role=creditgate", "-role-upstream="+upstreamURL,
		"-role-redis="+o.redisURL, "-role-prefix="+prefix)
	if err != nil {
		return err
	}
	ropt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return err
	}
	rc := redis.NewClient(ropt)
	defer rc.Close()
	targets := []*target{
		{id: "mock", name: "mock upstream alone", proc: mockDirect, keys: []string{"sk-bench"}},
		{id: "bare", name: "bare ReverseProxy", proc: bare, upstream: mockUp, keys: []string{"sk-bench"}},
		{id: "cg", name: "creditgate, Redis", proc: cg, upstream: mockUp, keys: cg.hs.Keys, redis: rc},
		{id: "cgwarm", name: "creditgate, Redis, repeated texts", proc: cg, upstream: mockUp, keys: cg.hs.Keys, warm: true, only: "1k", redis: rc},
	}
	if !o.skipEmbedded {
		mem, err := spawn("creditgate-embedded", pin.target, targetProcs, "-role=creditgate", "-role-upstream="+upstreamURL,
			"-role-redis=memory://", "-role-prefix=cgbench:")
		if err != nil {
			return err
		}
		targets = append(targets, &target{id: "cgmem", name: "creditgate, embedded store", proc: mem, upstream: mockUp, keys: mem.hs.Keys})
	}

	for i := range o.peers {
		p := &o.peers[i]
		logf("peer %s at %s (not started by the harness; its upstream should be the mock at %s)", p.name, p.baseURL, upstreamURL)
		targets = append(targets, &target{id: "peer:" + p.name, name: p.name + " (peer)", proc: p, upstream: mockUp, keys: []string{p.key}, peer: true})
	}

	client := newClient(max(o.concurrency, streamProbeConns) + 8)
	res := results{throughput: map[string]map[string][]measure{}, latency: map[string]map[string][]loadResult{}}
	for _, c := range cells {
		res.throughput[c.name()] = map[string][]measure{}
		res.latency[c.name()] = map[string][]loadResult{}
		for round := range o.rounds {
			for _, t := range targets {
				if t.only != "" && t.only != c.work.name {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				mz := measureRun(ctx, client, t, c, o)
				res.throughput[c.name()][t.id] = append(res.throughput[c.name()][t.id], mz)
				var redisBefore, redisAfter scriptStats
				lat := runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: c.stream,
					concurrency: 1, warmup: o.warmup / 5, duration: o.latencyDuration, fixedNonce: t.warm,
					atWindow: func(start bool) {
						// Unloaded, the scripts' time inside Redis is their own cost, not
						// inflated by CPU contention with the load as under load.
						if t.redis == nil {
							return
						}
						if start {
							redisBefore = readScriptStats(ctx, t.redis)
						} else {
							redisAfter = readScriptStats(ctx, t.redis)
						}
					}})
				lat.redisCalls, lat.redisTime = redisAfter.calls-redisBefore.calls, redisAfter.time-redisBefore.time
				res.latency[c.name()][t.id] = append(res.latency[c.name()][t.id], lat)
				logf("%-12s round %d  %-36s %8.0f req/s  p50 %v  unloaded p50 %v  errors %d %s", c.name(), round+1, t.name,
					mz.res.rps(), mz.res.percentile(50, false).Round(time.Microsecond), lat.percentile(50, false).Round(time.Microsecond),
					mz.res.errors+lat.errors, firstNonEmpty(mz.res.lastErr, lat.lastErr))
			}
		}
	}

	probes := probeResults{}
	// The probes use the 1k cells (or the largest size when 1k is not run).
	plainOneK, oneK := cells[len(cells)-2], cells[len(cells)-1]
	for i := 0; i+1 < len(cells); i += 2 {
		if cells[i].work.name == "1k" {
			plainOneK, oneK = cells[i], cells[i+1]
		}
	}
	logf("probe: Redis round trips per request (MONITOR)")
	probes.roundTrips, err = probeRoundTrips(ctx, client, o.redisURL, prefix, targets[2], plainOneK, oneK)
	if err != nil {
		logf("round-trip probe failed: %v", err)
		probes.roundTripErr = err.Error()
	}
	logf("probe: time to first byte of slow streams")
	probes.buffering = probeBuffering(ctx, client, []*target{targets[0], targets[1], targets[2]}, oneK, o.quick)
	logf("probe: memory per open stream")
	probes.streamMemory = probeStreamMemory(ctx, client, []*target{targets[1], targets[2]}, oneK, o.quick)
	if o.profileDir != "" {
		logf("profiling creditgate under load into %s", o.profileDir)
		if err := profileCreditgate(ctx, client, targets[2], []cell{plainOneK, oneK}, o); err != nil {
			logf("profiling failed: %v", err)
		}
	}

	report := renderReport(m, o, pin, cells, targets, res, probes, time.Since(start))
	if err := writeReport(o.out, report); err != nil {
		return err
	}
	logf("wrote %s (%v)", o.out, time.Since(start).Round(time.Second))
	return nil
}

func sizeName(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return "last error: " + v
		}
	}
	return ""
}

// measureRun runs one throughput run of c against t and reads the processes'
// counters around its measured window.
func measureRun(ctx context.Context, client *http.Client, t *target, c cell, o options) measure {
	var mz measure
	var before, after [2]procStats
	var loadBefore time.Duration
	var redisBefore, redisAfter scriptStats
	snap := func(into *[2]procStats) {
		var err error
		if into[0], err = t.proc.stats(false); err != nil {
			mz.statsErr = err
		}
		if t.upstream != nil {
			if into[1], err = t.upstream.stats(false); err != nil {
				mz.statsErr = err
			}
		}
	}
	mz.res = runLoad(ctx, client, loadSpec{
		url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: c.stream,
		concurrency: o.concurrency, warmup: o.warmup, duration: o.duration, fixedNonce: t.warm,
		atWindow: func(start bool) {
			if start {
				if err := t.proc.resetPeak(); err != nil {
					mz.statsErr = err
				}
				snap(&before)
				loadBefore = processCPU()
				if t.redis != nil {
					redisBefore = readScriptStats(ctx, t.redis)
				}
				return
			}
			mz.cpuLoad = processCPU() - loadBefore
			if t.redis != nil {
				redisAfter = readScriptStats(ctx, t.redis)
			}
			snap(&after)
		},
	})
	mz.cpuTarget = after[0].CPU - before[0].CPU
	mz.cpuMock = after[1].CPU - before[1].CPU
	mz.allocs = after[0].Allocs - before[0].Allocs
	mz.allocBytes = after[0].AllocBytes - before[0].AllocBytes
	mz.peakRSS = after[0].PeakRSS
	mz.redisCalls = redisAfter.calls - redisBefore.calls
	mz.redisTime = redisAfter.time - redisBefore.time
	return mz
}

// scriptStats are the EVALSHA and EVAL counters of INFO commandstats.
type scriptStats struct {
	calls int64
	time  time.Duration
}

func readScriptStats(ctx context.Context, c *redis.Client) scriptStats {
	var s scriptStats
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return s
	}
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.calls += n
			case "usec":
				s.time += time.Duration(n) * time.Microsecond
			}
		}
	}
	return s
}

// cleanRedis deletes the harness's keys.
func cleanRedis(redisURL, prefix string) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if c.Del(ctx, iter.Val()).Err() == nil {
			n++
		}
	}
	if err := iter.Err(); err != nil {
		logf("cleaning Redis keys %s*: %v", prefix, err)
		return
	}
	logf("deleted %d Redis keys under %s", n, prefix)
}
