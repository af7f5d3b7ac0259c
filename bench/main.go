// Command bench is creditgate's load harness: `go run ./bench -out BENCHMARKS.md`
// (`make bench`). In one run it puts side by side the mock upstream alone, a bare
// httputil.ReverseProxy in front of it and creditgate in front of it (on the real
// Redis, and on the embedded store), for plain and streamed chat completions with
// prompts of about 100, 1,000 and 8,000 tokens. For each it measures requests per
// second under a closed-loop load, latency percentiles under load and unloaded, the
// time to first byte of streams, CPU time, heap allocations and peak RSS per request
// of the component under test, and then probes the Redis round trips per request,
// whether streams are buffered and the memory each open stream holds. Every
// component runs in its own process (this binary re-executed in a role), pinned to a
// CPU of its own when taskset(1) is available, and the results are written between
// markers in the output file, whose other content (the analysis) is kept. The
// upstream mock sits behind a replay cache of its own answers (replay.go), so that it
// is not the bottleneck.
//
// See docs/performance.md for what the numbers mean and how to profile.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	out             string
	duration        time.Duration
	warmup          time.Duration
	latencyDuration time.Duration
	rounds          int
	concurrency     int
	sizes           string
	outputTokens    int
	upstream        string
	redisURL        string
	pin             string
	profileDir      string
	skipEmbedded    bool
	quick           bool
	mockListen      string
	peers           peerFlags
}

func main() {
	var o options
	var rf roleFlags
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file to write the results into (its text outside the generated block is kept)")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured window of each throughput run")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "load before each measured window")
	fs.DurationVar(&o.latencyDuration, "latency-duration", time.Second, "measured window of each unloaded (one request at a time) run")
	fs.IntVar(&o.rounds, "rounds", 2, "rounds; each round runs every target once, so slow drifts of a shared machine hit all alike")
	fs.IntVar(&o.concurrency, "concurrency", 32, "concurrent connections of the throughput runs")
	fs.StringVar(&o.sizes, "sizes", "100,1000,8000", "prompt sizes in tokens")
	fs.IntVar(&o.outputTokens, "output-tokens", 64, "reply length of the mock upstream, in tokens (one stream event each)")
	fs.StringVar(&o.upstream, "upstream", "replay", "replay: the mock answers each distinct request once and its answers are replayed; live: the mock answers every request")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "the real Redis creditgate runs on (keys under a fresh prefix, deleted at the end)")
	fs.StringVar(&o.pin, "pin", "auto", "pin components to CPUs with taskset: auto, on or off")
	fs.StringVar(&o.profileDir, "profile", "", "directory to write pprof CPU and allocation profiles of creditgate under load into")
	fs.BoolVar(&o.skipEmbedded, "skip-embedded", false, "leave out the embedded-store row")
	fs.BoolVar(&o.quick, "quick", false, "a short smoke run (100 ms windows, one round); its numbers are not meaningful")
	fs.StringVar(&o.mockListen, "mock-listen", "127.0.0.1:0", "address of the mock upstream behind the proxies; fix it (e.g. 127.0.0.1:18090) to point peers at it")
	fs.Var(&o.peers, "peer", "another gateway to load beside creditgate, repeatable: name=NAME,url=BASE_URL,key=KEY[,pid=PID…] (see BENCHMARKS.md, \"Peers\")")
	rf.register(fs)
	fs.Parse(os.Args[1:])

	if rf.role != "" {
		if err := runRole(rf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if o.upstream != "replay" && o.upstream != "live" {
		fmt.Fprintf(os.Stderr, "bench: -upstream %q: want replay or live\n", o.upstream)
		os.Exit(2)
	}
	if o.quick {
		o.duration, o.warmup, o.latencyDuration, o.rounds = 150*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, 1
	}
	var pin pinning
	if env := os.Getenv(pinnedEnv); env != "" {
		// This is the harness re-executed on the load CPUs: its own CPU count is now
		// that of its affinity mask, so the placement comes from the parent.
		pin = parsePinning(env)
	} else {
		var err error
		if pin, err = choosePinning(o.pin); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		// Pin the harness itself (the load generator) by running it again under taskset.
		if pin.taskset != "" {
			os.Exit(reexecPinned(pin))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, pin); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const pinnedEnv = "CGBENCH_PINNING" // not CREDITGATE_*: config.Load would take it for a config key

// choosePinning splits the CPUs in two halves: the load generator and the upstream
// mock share the first, the component under test gets the second. Without taskset,
// or with fewer than 2 CPUs, nothing is pinned.
func choosePinning(mode string) (pinning, error) {
	n := runtime.NumCPU()
	path, lookErr := exec.LookPath("taskset")
	switch mode {
	case "off":
		return pinning{}, nil
	case "on":
		if lookErr != nil {
			return pinning{}, fmt.Errorf("-pin on: taskset not found: %v", lookErr)
		}
		if n < 2 {
			return pinning{}, fmt.Errorf("-pin on: needs 2 CPUs, have %d", n)
		}
	case "auto":
		if lookErr != nil || n < 2 {
			return pinning{}, nil
		}
	default:
		return pinning{}, fmt.Errorf("-pin %q: want auto, on or off", mode)
	}
	half := n / 2
	return pinning{taskset: path, load: cpuRange(0, half-1), target: cpuRange(half, n-1), cores: n}, nil
}

// String and parsePinning pass a placement to the re-executed harness.
func (p pinning) String() string {
	return fmt.Sprintf("%s;%s;%s;%d", p.taskset, p.load, p.target, p.cores)
}

func parsePinning(s string) pinning {
	f := strings.Split(s, ";")
	if len(f) != 4 {
		return pinning{}
	}
	n, _ := strconv.Atoi(f[3])
	return pinning{taskset: f[0], load: f[1], target: f[2], cores: n}
}

func cpuRange(a, b int) string {
	if a == b {
		return strconv.Itoa(a)
	}
	return fmt.Sprintf("%d-%d", a, b)
}

// cpuCount is the number of CPUs of a list such as "0" or "2-3".
func cpuCount(list string) int {
	a, b, ok := strings.Cut(list, "-")
	if !ok {
		return 1
	}
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return y - x + 1
}

// reexecPinned runs this command again on the load CPUs and returns its exit code.
func reexecPinned(pin pinning) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	cmd := exec.Command(pin.taskset, append([]string{"-c", pin.load, exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), pinnedEnv+"="+pin.String(), "GOMAXPROCS="+strconv.Itoa(cpuCount(pin.load)))
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	// Pass SIGINT and SIGTERM on: the pinned harness stops its components and deletes
	// its Redis keys before it exits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for sig := range sigs {
			cmd.Process.Signal(sig)
		}
	}()
	if err := cmd.Wait(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
