package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/metering"
)

func tokenizer(t testing.TB, enc string) metering.Tokenizer {
	t.Helper()
	tok, err := metering.TokenizerFor(enc)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The nonce's digits never change a count, so the mock's usage (counted on zeros)
// is exact for the text creditgate counted: every 3-digit group is one token.
func TestNonceDoesNotChangeCounts(t *testing.T) {
	for _, enc := range []string{metering.O200kBase, metering.CL100kBase} {
		tok := tokenizer(t, enc)
		want := tok.Count(nonceText() + " Hello there.")
		for i := range 1000 {
			for _, digits := range []string{fmt.Sprintf("%03d000", i), fmt.Sprintf("000%03d", i), fmt.Sprintf("%03d%03d", i, 999-i)} {
				text := noncePrefix + digits + "] Hello there."
				if got := tok.Count(text); got != want {
					t.Fatalf("%s: %q counts %d tokens, zeros count %d", enc, text, got, want)
				}
			}
		}
	}
}

// fill writes a sequence number into every nonce; canonicalizeNonces turns the body
// back into its template; both parse, with the same prompt tokens.
func TestWorkloadFillAndCanonicalize(t *testing.T) {
	tok := tokenizer(t, metering.O200kBase)
	for _, size := range []int{100, 1000, 8000} {
		for _, stream := range []bool{false, true} {
			w, err := newWorkload(sizeName(size), size, 3, stream, tok)
			if err != nil {
				t.Fatal(err)
			}
			if w.tokens < size*9/10 || w.tokens > size*12/10 {
				t.Errorf("workload %s has %d prompt tokens, want about %d", w.name, w.tokens, size)
			}
			body := w.fill(nil, 0, 123456)
			if n := bytes.Count(body, []byte("[ref 123456]")); n != len(w.templates[0].nonces) || n < 2 {
				t.Fatalf("%s: %d nonces set, template has %d", w.name, n, len(w.templates[0].nonces))
			}
			req, err := metering.ParseRequest(metering.ChatCompletions, body)
			if err != nil {
				t.Fatal(err)
			}
			if got := req.InputTokens(tok).Input; got != int64(w.tokens) {
				t.Errorf("%s: filled body counts %d tokens, template %d", w.name, got, w.tokens)
			}
			if req.Stream != stream {
				t.Errorf("%s: stream = %v", w.name, req.Stream)
			}
			if n := canonicalizeNonces(body); n != len(w.templates[0].nonces) || !bytes.Equal(body, w.templates[0].body) {
				t.Errorf("%s: canonicalized %d nonces; body back to its template: %v", w.name, n, bytes.Equal(body, w.templates[0].body))
			}
		}
	}
	if n := canonicalizeNonces([]byte(`"[ref 12345x] [ref 1234] [ref 123456`)); n != 0 {
		t.Errorf("canonicalized %d malformed nonces", n)
	}
}

func TestMergeReport(t *testing.T) {
	block := beginMarker + "\nnew table\n" + endMarker + "\n"
	tests := []struct{ name, old, want string }{
		{"new file", "", block},
		{"no block yet", "# Analysis\nkept\n", block + "\n# Analysis\nkept\n"},
		{"replace", "intro\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## Analysis\nkept\n", "intro\n" + block + "\n## Analysis\nkept\n"},
	}
	for _, tt := range tests {
		if got := mergeReport(tt.old, block); got != tt.want {
			t.Errorf("%s: got\n%q\nwant\n%q", tt.name, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var vals []time.Duration
	for i := 100; i >= 1; i-- {
		vals = append(vals, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(append([]time.Duration(nil), vals...), tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestMonitoredCommand(t *testing.T) {
	const prefix = "cgbench-ab:"
	tests := []struct {
		line, want string
		ok         bool
	}{
		{`+1700000000.123456 [0 127.0.0.1:5000] "evalsha" "3114a5" "7" "cgbench-ab:{acct:bench-01}:acct" "x"`, "EVALSHA", true},
		{`+1700000000.123456 [0 lua] "HMGET" "cgbench-ab:{acct:bench-01}:acct" "tier"`, "", false},
		{`+1700000000.123456 [0 127.0.0.1:5001] "hgetall" "cgbench-ab:key:abc"`, "HGETALL", true},
		{`+1700000000.123456 [0 127.0.0.1:5002] "evalsha" "3114a5" "7" "cgtest-other:{acct:x}:acct"`, "", false},
		{`+OK`, "", false},
	}
	for _, tt := range tests {
		got, ok := monitoredCommand(tt.line, prefix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("monitoredCommand(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPinningRoundTrip(t *testing.T) {
	p := pinning{taskset: "/usr/bin/taskset", load: "0-1", target: "2-3", cores: 4}
	if got := parsePinning(p.String()); got != p {
		t.Errorf("parsePinning(%q) = %+v", p.String(), got)
	}
	if cpuCount("2-3") != 2 || cpuCount("1") != 1 {
		t.Error("cpuCount")
	}
}

// The load generator drives the mock role directly and through the bare proxy role,
// plain and streamed, and the mock's usage matches the nonce-filled prompts.
func TestLoadThroughBareProxy(t *testing.T) {
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
	tok := tokenizer(t, metering.O200kBase)
	client := newClient(4)
	for _, stream := range []bool{false, true} {
		w, err := newWorkload("100", 100, 2, stream, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, base := range []string{upstream.URL, front.URL} {
			res := runLoad(context.Background(), client, loadSpec{url: base + "/v1/chat/completions", keys: []string{"sk-x"}, work: w,
				stream: stream, concurrency: 2, maxRequests: 3})
			if res.errors != 0 || len(res.samples) != 6 {
				t.Fatalf("%s stream=%v: %d samples, %d errors (%s)", base, stream, len(res.samples), res.errors, res.lastErr)
			}
			if stream && res.percentile(50, true) <= 0 {
				t.Errorf("no time to first byte measured")
			}
		}
	}
	// The usage the mock reports is the exact count of what was sent, nonces and all.
	w, _ := newWorkload("100", 100, 1, false, tok)
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/v1/chat/completions", bytes.NewReader(w.fill(nil, 0, 987654)))
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`"prompt_tokens":%d`, w.tokens); !strings.Contains(body.String(), want) {
		t.Errorf("mock answered %s, want %s", body.String(), want)
	}
}

// The replay cache answers a repeated body (whatever its nonces) with the mock's first
// answer, byte for byte and event by event; fault headers always reach the mock.
func TestReplayUpstream(t *testing.T) {
	h, err := mockHandler(8, true)
	if err != nil {
		t.Fatal(err)
	}
	u := h.(*replayUpstream)
	srv := httptest.NewServer(u)
	defer srv.Close()
	tok := tokenizer(t, metering.O200kBase)
	client := newClient(1)
	get := func(w *workload, seq uint64, header http.Header) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader(w.fill(nil, 0, seq)))
		for k, v := range header {
			req.Header[k] = v
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, b.String())
		}
		return b.String()
	}
	for _, stream := range []bool{false, true} {
		w, err := newWorkload("100", 100, 1, stream, tok)
		if err != nil {
			t.Fatal(err)
		}
		first, second := get(w, 1, nil), get(w, 2, nil)
		if first != second {
			t.Errorf("stream=%v: replayed answer differs:\n%s\n%s", stream, first, second)
		}
		if want := fmt.Sprintf(`"prompt_tokens":%d`, w.tokens); !stream && !strings.Contains(first, want) {
			t.Errorf("answer %s lacks %s", first, want)
		}
		if stream && (!strings.HasSuffix(first, "data: [DONE]\n\n") || strings.Count(first, "data: ") != 8+3) {
			t.Errorf("replayed stream: %q", first)
		}
		live := get(w, 3, http.Header{"X-Mock-No-Usage": {"1"}})
		if strings.Contains(live, `"prompt_tokens"`) || live == first {
			t.Errorf("stream=%v: a request with a fault header was replayed: %s", stream, live)
		}
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if len(u.answers) != 2 {
		t.Errorf("%d answers recorded, want 2", len(u.answers))
	}
	for _, a := range u.answers {
		if ct := a.header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") && (!a.flushed || len(a.segments) < 11) {
			t.Errorf("stream recorded in %d segments (flushed %v)", len(a.segments), a.flushed)
		}
	}
}

// Both tables show a target's Redis cells the same way: "–" without Redis.
func TestRedisCells(t *testing.T) {
	withRedis := &target{redis: redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})}
	defer withRedis.redis.Close()
	for _, tt := range []struct {
		name              string
		t                 *target
		time              time.Duration
		calls             float64
		wantTime, wantCnt string
	}{
		{"no redis", &target{}, 1500 * time.Microsecond, 2, "–", "–"},
		{"redis", withRedis, 1500 * time.Microsecond, 2, "1500", "2.00"},
		{"redis, rounded", withRedis, 2499 * time.Nanosecond, 2.004, "2", "2.00"},
	} {
		gotTime, gotCnt := redisCells(tt.t, tt.time, tt.calls)
		if gotTime != tt.wantTime || gotCnt != tt.wantCnt {
			t.Errorf("%s: redisCells = %q, %q, want %q, %q", tt.name, gotTime, gotCnt, tt.wantTime, tt.wantCnt)
		}
	}
}
