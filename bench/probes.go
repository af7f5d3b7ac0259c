package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

type probeResults struct {
	roundTrips   []roundTrips
	roundTripErr string
	buffering    []bufferingResult
	streamMemory []streamMemoryResult
}

// roundTrips counts the Redis commands creditgate sent for a number of requests.
type roundTrips struct {
	cell     string
	requests int
	byName   map[string]int // command name → count
	total    int
}

// probeRoundTrips sends requests through creditgate while a MONITOR connection
// watches Redis, and counts the commands that touch the harness's key prefix, sent
// by a client (commands run inside Lua scripts show up in MONITOR as "lua" and are
// not round trips). Other users of the same Redis use other prefixes, so they are not
// counted. The key cache makes key lookups rare; they are counted too.
func probeRoundTrips(ctx context.Context, client *http.Client, redisURL, prefix string, t *target, cells ...cell) ([]roundTrips, error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	var out []roundTrips
	for _, c := range cells {
		// Warm creditgate's key cache (auth.key_cache_ttl, 5 s): a cold entry costs one
		// more round trip (a key lookup), once per key and TTL, whatever the load.
		runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: c.stream,
			concurrency: 1, maxRequests: len(t.keys)}) // worker 0 uses every key in turn
		conn, err := net.DialTimeout("tcp", opt.Addr, 5*time.Second)
		if err != nil {
			return out, err
		}
		r := bufio.NewReaderSize(conn, 1<<20)
		if err := monitorHandshake(conn, r, opt); err != nil {
			conn.Close()
			return out, err
		}
		counted := make(chan roundTrips, 1)
		go func() {
			rt := roundTrips{cell: c.name(), byName: map[string]int{}}
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					counted <- rt
					return
				}
				if name, ok := monitoredCommand(line, prefix); ok {
					rt.byName[name]++
					rt.total++
				}
			}
		}()
		const requests = 200
		res := runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: c.stream,
			concurrency: 4, maxRequests: requests / 4})
		// A request settles after its last byte reached the client: give the last
		// settlements time to reach Redis.
		time.Sleep(500 * time.Millisecond)
		conn.Close()
		rt := <-counted
		rt.requests = len(res.samples)
		if res.errors > 0 {
			return out, fmt.Errorf("%d requests failed: %s", res.errors, res.lastErr)
		}
		out = append(out, rt)
	}
	return out, nil
}

func monitorHandshake(conn net.Conn, r *bufio.Reader, opt *redis.Options) error {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	send := func(args ...string) error {
		var sb strings.Builder
		fmt.Fprintf(&sb, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(sb.String())); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+") {
			return fmt.Errorf("redis: %s", strings.TrimSpace(line))
		}
		return nil
	}
	if opt.Password != "" {
		args := []string{"AUTH", opt.Password}
		if opt.Username != "" {
			args = []string{"AUTH", opt.Username, opt.Password}
		}
		if err := send(args...); err != nil {
			return err
		}
	}
	return send("MONITOR")
}

// monitoredCommand parses a MONITOR line, `+1700000000.123456 [0 127.0.0.1:5000]
// "evalsha" "…" "1" "prefix{acct:a}:acct" …`, and returns the command name when a
// client (not a script) sent it and one of its arguments starts with prefix.
func monitoredCommand(line, prefix string) (string, bool) {
	open := strings.IndexByte(line, '[')
	end := strings.IndexByte(line, ']')
	if open < 0 || end < open {
		return "", false
	}
	_, from, _ := strings.Cut(line[open+1:end], " ")
	if from == "lua" || !strings.Contains(line[end:], `"`+prefix) {
		return "", false
	}
	rest := strings.TrimSpace(line[end+1:])
	name, _, _ := strings.Cut(rest, " ")
	return strings.ToUpper(strings.Trim(name, `"`)), true
}

// bufferingResult is the probe of slow streams: the time to first byte against the
// whole stream's duration.
type bufferingResult struct {
	target     string
	eventDelay time.Duration
	res        loadResult
}

// probeBuffering streams replies whose events the mock spaces out: a proxy that
// buffered would show a first byte as late as the whole stream.
func probeBuffering(ctx context.Context, client *http.Client, targets []*target, c cell, quick bool) []bufferingResult {
	const delay = time.Millisecond
	n := 40
	if quick {
		n = 4
	}
	var out []bufferingResult
	for _, t := range targets {
		res := runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: true,
			concurrency: 1, maxRequests: n, header: http.Header{"X-Mock-Event-Delay": {delay.String()}}})
		out = append(out, bufferingResult{target: t.name, eventDelay: delay, res: res})
	}
	return out
}

// streamMemoryResult is what n open streams cost a proxy.
type streamMemoryResult struct {
	target                 string
	streams                int
	liveHeapPerStream      float64 // bytes of live heap (objects + stacks) per open stream
	goroutinesPerStream    float64
	peakRSSDelta           int64 // peak RSS during the probe minus RSS before it
	completed, errors      int
	lastErr                string
	heapBefore, heapDuring uint64
}

const streamProbeConns = 200

// probeStreamMemory holds streamProbeConns slow streams open through each proxy and
// measures, halfway through, the live heap (after a GC) and goroutines against the
// idle proxy's.
func probeStreamMemory(ctx context.Context, client *http.Client, targets []*target, c cell, quick bool) []streamMemoryResult {
	delay := 10 * time.Millisecond
	if quick {
		delay = 2 * time.Millisecond
	}
	var out []streamMemoryResult
	for _, t := range targets {
		r := streamMemoryResult{target: t.name, streams: streamProbeConns}
		before, err := t.proc.stats(true)
		if err != nil {
			r.lastErr = err.Error()
			out = append(out, r)
			continue
		}
		t.proc.resetPeak()
		var during procStats
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The streams last about (output tokens + 3) × delay; sample at a third.
			sleep(ctx, 20*delay)
			during, _ = t.proc.stats(true)
		}()
		res := runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: true,
			concurrency: streamProbeConns, maxRequests: 1, header: http.Header{"X-Mock-Event-Delay": {delay.String()}}})
		wg.Wait()
		after, _ := t.proc.stats(false)
		r.completed, r.errors, r.lastErr = len(res.samples), res.errors, res.lastErr
		r.heapBefore, r.heapDuring = before.LiveHeap, during.LiveHeap
		r.liveHeapPerStream = (float64(during.LiveHeap) - float64(before.LiveHeap)) / streamProbeConns
		r.goroutinesPerStream = float64(during.Goroutines-before.Goroutines) / streamProbeConns
		r.peakRSSDelta = after.PeakRSS - before.RSS
		out = append(out, r)
	}
	return out
}

// profileCreditgate takes CPU and allocation profiles of creditgate under the
// throughput load of each cell.
func profileCreditgate(ctx context.Context, client *http.Client, t *target, cells []cell, o options) error {
	cg, ok := t.proc.(*child)
	if !ok {
		return fmt.Errorf("%s is not a process of the harness", t.name)
	}
	seconds := max(int(o.duration.Seconds()+0.5), 1) + 2
	for _, c := range cells {
		name := strings.ReplaceAll(c.name(), " ", "-")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[0] = cg.profile(fmt.Sprintf("profile?seconds=%d", seconds), filepath.Join(o.profileDir, "cpu-"+name+".pprof"))
		}()
		go func() {
			defer wg.Done()
			errs[1] = cg.profile(fmt.Sprintf("allocs?seconds=%d", seconds), filepath.Join(o.profileDir, "allocs-"+name+".pprof"))
		}()
		runLoad(ctx, client, loadSpec{url: t.proc.url("/v1/chat/completions"), keys: t.keys, work: c.work, stream: c.stream,
			concurrency: o.concurrency, warmup: 0, duration: time.Duration(seconds+1) * time.Second})
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// sortedKeys returns m's keys, most frequent first.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
