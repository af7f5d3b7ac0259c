package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// rawRequest sends a request line exactly as given (Go's client would clean or
// re-encode it) and returns the status.
func rawRequest(t *testing.T, h *harness, method, target, key string, extra ...string) int {
	t.Helper()
	addr := strings.TrimPrefix(h.server.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n", method, target, addr, key)
	for _, e := range extra {
		req += e + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h.inflight.Wait()
	return res.StatusCode
}

// The upstream is fixed by configuration: whatever the request line, Host or
// path says, the proxy only ever reaches the configured upstream's /v1 paths it
// serves (metered endpoints and the model list) — never, by a dot segment,
// another upstream path with the operator's key (an app could otherwise list
// the operator's files or fine-tunes, unmetered).
func TestUpstreamIsFixedByConfig(t *testing.T) {
	tests := []struct {
		name   string
		target string
		extra  []string
	}{
		{name: "dot segments", target: "/v1/models/../files"},
		{name: "dot segments past /v1", target: "/v1/models/../../organization/usage"},
		{name: "encoded dot segments", target: "/v1/models/%2e%2e/files"},
		{name: "encoded slash", target: "/v1/models/x%2f..%2f..%2ffiles"},
		{name: "double slash", target: "/v1/models//files"},
		{name: "absolute-form to another host", target: "http://evil.example/v1/models"},
		{name: "Host header", target: "/v1/models", extra: []string{"X-Forwarded-Host: evil.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			status := rawRequest(t, h, http.MethodGet, tc.target, key, tc.extra...)
			for _, up := range h.mock.Requests() {
				if up.Path != "/v1/models" && !strings.HasPrefix(up.Path, "/v1/models/") || strings.Contains(up.Path, "..") || strings.Contains(up.Path, "//") {
					t.Fatalf("GET %s reached the upstream at %s (status %d)", tc.target, up.Path, status)
				}
			}
			if n := len(h.events("acme")); n != 1 {
				t.Fatalf("%d ledger events, want only the top-up", n)
			}
		})
	}
}

// A body that is not UTF-8 is not JSON (RFC 8259 §8.1): refused with a clear 400
// before it is counted, charged or forwarded, wherever the bad bytes are.
func TestNonUTF8BodyIsRefused(t *testing.T) {
	tests := []struct{ name, body string }{
		{"in a message", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}"},
		{"truncated sequence", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xe2\x82\"}]}"},
		{"overlong encoding", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}"},
		{"encoded surrogate", "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}"},
		{"in an ignored field", "{\"model\":\"gpt-4o-mini\",\"user\":\"\xff\xfe\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			res := h.post("/v1/chat/completions", key, tc.body)
			checkRefusal(t, h, res, readAll(t, res), 400, "", "UTF-8")
		})
	}
}
