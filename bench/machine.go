package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// machine describes where the harness ran.
type machine struct {
	CPU       string
	Cores     int
	GoVersion string
	OS        string
	Date      time.Time
	Commit    string
	Dirty     bool // tracked Go files differed from Commit
	Redis     string
	Pinning   string
	LoadAvg   string // at the start
}

func describeMachine(pin pinning) machine {
	m := machine{CPU: cpuModel(), Cores: max(runtime.NumCPU(), pin.cores), GoVersion: runtime.Version(), Date: time.Now().UTC(), LoadAvg: loadAvg()}
	m.OS = runtime.GOOS + "/" + runtime.GOARCH
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", kernel " + strings.TrimSpace(string(rel))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		// Uncommitted changes to tracked Go files make the commit a partial answer to
		// "what was measured"; say so rather than let the figures be pinned on it.
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", "*.go", "go.mod", "go.sum").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			m.Dirty = true
		}
	}
	if pin.taskset == "" {
		m.Pinning = "none (every process may run on every CPU)"
	} else {
		m.Pinning = fmt.Sprintf("component under test on CPU %s; load generator and upstream mock on CPU %s (taskset)", pin.target, pin.load)
	}
	return m
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the 1, 5 and 15 minute load averages: other work on the machine skews
// every figure, so the report shows how busy it was.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// redisVersion asks the Redis at url for its version.
func redisVersion(url string) string {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return "unknown"
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "unreachable: " + err.Error()
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}
