package main

import (
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/metering"
)

func TestParsePeer(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    peer
		wantErr []string // each must appear in the error
	}{
		{in: "name=one-api,url=http://127.0.0.1:3000,key=sk-1", want: peer{name: "one-api", baseURL: "http://127.0.0.1:3000", key: "sk-1"}},
		{in: "name=litellm, url=http://localhost:4000/v1/, key=sk-2, pid=10, pid=11", want: peer{name: "litellm", baseURL: "http://localhost:4000", key: "sk-2", pids: []int{10, 11}}},
		{in: "name=bifrost,url=https://gw.example/openai,key=k", want: peer{name: "bifrost", baseURL: "https://gw.example/openai", key: "k"}},
		{in: "", wantErr: []string{"name is missing", "url is missing", "key is missing"}},
		{in: "name=a,url=ftp://x,key=k", wantErr: []string{`url "ftp://x"`}},
		{in: "name=a,url=http://u:p@x,key=k", wantErr: []string{"credentials"}},
		{in: "name=a|b,url=http://x,key=", wantErr: []string{"markdown", "key is empty"}},
		{in: "name=a,url=http://x,key=k,pid=-3,colour=red,oops", wantErr: []string{`pid "-3"`, `unknown field "colour"`, `"oops" is not name=value`}},
		{in: "name=a,name=b,url=http://x,key=k", wantErr: []string{"name given twice"}},
	} {
		got, err := parsePeer(tt.in)
		if len(tt.wantErr) > 0 {
			if err == nil {
				t.Errorf("parsePeer(%q) = %+v, want an error", tt.in, got)
				continue
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("parsePeer(%q) error %q lacks %q", tt.in, err, w)
				}
			}
			continue
		}
		if err != nil || got.name != tt.want.name || got.baseURL != tt.want.baseURL || got.key != tt.want.key || !slices.Equal(got.pids, tt.want.pids) {
			t.Errorf("parsePeer(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	var f peerFlags
	if err := f.Set("name=a,url=http://x,key=k"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("name=a,url=http://y,key=k"); err == nil || !strings.Contains(err.Error(), `two peers named "a"`) {
		t.Errorf("a second peer of the same name: %v", err)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime 250 and stime 50 ticks = 3 s.
	stat := "4242 (my (odd) gw) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 200"
	if got, err := parseProcStatCPU(stat); err != nil || got != 3*time.Second {
		t.Errorf("parseProcStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "4242 no parens 1 2", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 1"} {
		if _, err := parseProcStatCPU(bad); err == nil {
			t.Errorf("parseProcStatCPU(%q): no error", bad)
		}
	}
}

// A peer is loaded like any target, and its CPU is read from /proc: here the
// "peer" is a bare proxy served by this very test process, named by its pid.
func TestPeerIsMeasured(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skipf("no /proc (%v): peer CPU cannot be read here", err)
	}
	mock, err := mockHandler(8, true)
	if err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(mock)
	defer upstream.Close()
	bare, err := bareProxy(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(bare)
	defer front.Close()
	p, err := parsePeer("name=self,url=" + front.URL + "/v1,key=sk-x,pid=" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	w, err := newWorkload("100", 100, 2, false, tokenizer(t, metering.O200kBase))
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{id: "peer:self", name: "self (peer)", proc: &p, keys: []string{p.key}, peer: true}
	mz := measureRun(context.Background(), newClient(4), tg, cell{work: w}, options{concurrency: 2, warmup: 20 * time.Millisecond, duration: 300 * time.Millisecond})
	if mz.res.errors != 0 || len(mz.res.samples) == 0 {
		t.Fatalf("%d samples, %d errors (%s)", len(mz.res.samples), mz.res.errors, mz.res.lastErr)
	}
	if mz.cpuTarget <= 0 {
		t.Errorf("peer CPU over the window = %v, want > 0 (this process served %d requests)", mz.cpuTarget, len(mz.res.samples))
	}
	if mz.peakRSS <= 0 {
		t.Errorf("peer peak RSS = %d, want > 0", mz.peakRSS)
	}
	if mz.allocs != 0 {
		t.Errorf("peer allocations = %d: a peer's heap is not read", mz.allocs)
	}
}

func FuzzParsePeer(f *testing.F) {
	f.Add("name=one-api,url=http://127.0.0.1:3000,key=sk-1,pid=3")
	f.Add("name=a,url=http://x/v1/,key=k,pid=1,pid=2")
	f.Add(",,=,name==,url=http://[::1]:80,key=\x00")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePeer(s)
		if err != nil {
			return
		}
		if p.name == "" || p.key == "" || !strings.HasPrefix(p.baseURL, "http") || strings.HasSuffix(p.baseURL, "/v1") || len(p.pids) > maxPeerPIDs {
			t.Fatalf("parsePeer(%q) accepted %+v", s, p)
		}
		for _, pid := range p.pids {
			if pid <= 0 {
				t.Fatalf("parsePeer(%q) accepted pid %d", s, pid)
			}
		}
	})
}
