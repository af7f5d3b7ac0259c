package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// A peer is another gateway the operator runs (one-api, Bifrost, LiteLLM …),
// measured beside creditgate in the same run: the harness does not start it, it
// only sends it the same load. Its config is the operator's: for the rows to be
// comparable it must point at the harness's mock upstream (-mock-listen), route
// benchModel, and have its budgets on.
type peer struct {
	name    string
	baseURL string // scheme://host[:port][/prefix], without a trailing /v1
	key     string
	pids    []int // its processes, for CPU time and peak RSS (none: not measured)
}

// maxPeerPIDs bounds a peer's process list: a gateway of many workers is named by
// its workers' pids, and a dozen covers every peer measured so far.
const maxPeerPIDs = 64

// parsePeer reads -peer's value: comma-separated name=value pairs, name, url
// and key required, pid repeatable ("name=one-api,url=http://127.0.0.1:3000,
// key=sk-…,pid=4242").
func parsePeer(s string) (peer, error) {
	var p peer
	var problems []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			problems = append(problems, fmt.Sprintf("%q is not name=value", part))
			continue
		}
		if seen[name] && name != "pid" {
			problems = append(problems, fmt.Sprintf("%s given twice", name))
			continue
		}
		seen[name] = true
		switch name {
		case "name":
			if value == "" || strings.ContainsAny(value, "|\n") {
				problems = append(problems, fmt.Sprintf("name %q: want a non-empty name without | or newlines (it goes into a markdown table)", value))
			}
			p.name = value
		case "url":
			u, err := url.Parse(value)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				problems = append(problems, fmt.Sprintf("url %q: want http(s)://host[:port]", value))
				continue
			}
			if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				problems = append(problems, fmt.Sprintf("url %q: want no query, fragment or credentials (the key goes in key=)", value))
				continue
			}
			p.baseURL = trimBase(value)
		case "key":
			if value == "" {
				problems = append(problems, "key is empty")
			}
			p.key = value
		case "pid":
			n, err := strconv.Atoi(value)
			if err != nil || n <= 0 {
				problems = append(problems, fmt.Sprintf("pid %q: want a process id", value))
				continue
			}
			if len(p.pids) == maxPeerPIDs {
				problems = append(problems, fmt.Sprintf("more than %d pids", maxPeerPIDs))
				continue
			}
			p.pids = append(p.pids, n)
		default:
			problems = append(problems, fmt.Sprintf("unknown field %q (want name, url, key, pid)", name))
		}
	}
	for _, req := range []string{"name", "url", "key"} {
		if !seen[req] {
			problems = append(problems, req+" is missing")
		}
	}
	if len(problems) > 0 {
		return peer{}, fmt.Errorf("-peer %q: %s", s, strings.Join(problems, "; "))
	}
	return p, nil
}

// trimBase drops trailing slashes and /v1 segments: the harness adds /v1/… itself.
func trimBase(u string) string {
	for {
		switch {
		case strings.HasSuffix(u, "/"):
			u = u[:len(u)-1]
		case strings.HasSuffix(u, "/v1"):
			u = u[:len(u)-3]
		default:
			return u
		}
	}
}

// peerFlags is -peer, repeatable.
type peerFlags []peer

func (f *peerFlags) String() string {
	names := make([]string, len(*f))
	for i, p := range *f {
		names[i] = p.name
	}
	return strings.Join(names, ",")
}

func (f *peerFlags) Set(s string) error {
	p, err := parsePeer(s)
	if err != nil {
		return err
	}
	for _, q := range *f {
		if q.name == p.name {
			return fmt.Errorf("-peer: two peers named %q", p.name)
		}
	}
	*f = append(*f, p)
	return nil
}

// A component is what the harness loads and reads counters of: a child it
// started, or a peer it did not.
type component interface {
	url(path string) string
	stats(gc bool) (procStats, error)
	resetPeak() error
}

func (p *peer) url(path string) string { return p.baseURL + path }

// stats sums CPU time and peak RSS over the peer's processes from /proc. A peer
// is not a Go program of ours, so allocations are not known (the report says
// "–"); without pids nothing is.
func (p *peer) stats(bool) (procStats, error) {
	var s procStats
	var errs []error
	for _, pid := range p.pids {
		cpu, err := procCPU(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.CPU += cpu
		rss, peak := memoryOf(strconv.Itoa(pid))
		s.RSS += rss
		s.PeakRSS += peak
	}
	return s, errors.Join(errs...)
}

func (p *peer) resetPeak() error {
	var errs []error
	for _, pid := range p.pids {
		// As for a child (serveStats): 5 resets VmHWM. Needs the peer's user or root.
		if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: resetting peak RSS of pid %d: %w", p.name, pid, err))
		}
	}
	return errors.Join(errs...)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on every
// Linux architecture Go supports (the kernel fixes it for user space).
const clockTicks = 100

// procCPU is the user plus system CPU time of process pid (/proc/<pid>/stat
// fields 14 and 15, after the parenthesised command name, which may hold spaces).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(string(data))
}

func parseProcStatCPU(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc stat %.40q: no command name", stat)
	}
	f := strings.Fields(stat[end+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc stat: CPU time %q is not a tick count", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}
