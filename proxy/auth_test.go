package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUpstreamNeverSeesClientCredentials(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""),
		"OpenAI-Organization", "org-client", "OpenAI-Project", "proj-client",
		"X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil.example", "Forwarded", "for=6.6.6.6",
		"X-Forwarded-Port", "6666", "X-Forwarded-Server", "evil.example", "X-Forwarded-Prefix", "/evil",
		"X-Forwarded-Ssl", "on", "X-Real-IP", "6.6.6.6", "True-Client-IP", "6.6.6.6", "Via", "1.1 evil.example",
		"Cookie", "session=abc", "Api-Key", key)
	if body := readAll(t, res); res.StatusCode != 200 {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	up := h.mock.Requests()[0]
	if got := up.Header.Get("Authorization"); got != "Bearer "+upstreamKey {
		t.Fatalf("upstream Authorization %q", got)
	}
	for name, vals := range up.Header {
		if strings.HasPrefix(name, "X-Forwarded-") || name == "Forwarded" || name == "X-Real-Ip" || name == "Via" {
			t.Errorf("upstream got client network header %s: %v", name, vals)
		}
		for _, v := range vals {
			if strings.Contains(v, key) || strings.Contains(v, "6.6.6.6") || strings.Contains(v, "evil.example") || strings.Contains(v, "org-client") || strings.Contains(v, "proj-client") || strings.Contains(v, "session") || strings.Contains(v, "6666") || strings.Contains(v, "/evil") {
				t.Errorf("upstream got %s: %s", name, v)
			}
		}
	}
	if strings.Contains(string(up.Body), key) {
		t.Error("the client key reached the upstream body")
	}
}

func TestRevokedKeyStopsWorking(t *testing.T) {
	tests := []struct {
		name     string
		cacheTTL time.Duration
	}{
		{name: "no cache", cacheTTL: 0},
		{name: "cache expires", cacheTTL: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			clock := func() time.Time { return now }
			h := newHarness(t, func(o *Options) { o.KeyCacheTTL = tc.cacheTTL; o.Now = clock })
			if _, err := h.store.CreateAccount(h.ctx, "acme", "tier-1"); err != nil {
				t.Fatal(err)
			}
			k, secret, err := h.store.CreateKey(h.ctx, "acme", "app")
			if err != nil {
				t.Fatal(err)
			}
			ask := func() int {
				res := h.post("/v1/chat/completions", secret, chatBody("gpt-4o-mini", false, ""))
				readAll(t, res)
				return res.StatusCode
			}
			if got := ask(); got != http.StatusTooManyRequests { // valid key, no credit
				t.Fatalf("before revocation: %d", got)
			}
			if err := h.store.RevokeKey(h.ctx, "acme", k.ID); err != nil {
				t.Fatal(err)
			}
			if tc.cacheTTL > 0 {
				if got := ask(); got != http.StatusTooManyRequests {
					t.Fatalf("within the cache TTL the cached key still works: %d", got)
				}
				now = now.Add(tc.cacheTTL)
			}
			if got := ask(); got != http.StatusUnauthorized {
				t.Fatalf("after revocation: %d", got)
			}
		})
	}
}
