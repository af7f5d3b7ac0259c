package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
)

type failingLedger struct{ billing.Ledger }

func (failingLedger) Reserve(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
	return billing.Reservation{}, fmt.Errorf("%w: connection refused", billing.ErrUnavailable)
}

func TestUpstreamErrorStatusIsNotCharged(t *testing.T) {
	for _, status := range []string{"500", "429", "400", "503"} {
		t.Run(status, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			for _, stream := range []bool{false, true} {
				res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", stream, ""), "X-Mock-Status", status)
				body := readAll(t, res)
				if got := res.Status[:3]; got != status || !strings.Contains(string(body), `"error"`) {
					t.Fatalf("stream=%v: %s %s; the upstream's error must pass through", stream, res.Status, body)
				}
			}
			a := h.get("acme")
			if a.Balance() != usd("5.00") || a.Reserved != 0 || a.Totals.Usage != 0 {
				t.Fatalf("charged for an upstream error: %+v", a)
			}
			ev := h.lastEvent("acme")
			if ev.Type != billing.EventRelease || ev.Amount == 0 {
				t.Fatalf("last event %+v, want the hold's release", ev)
			}
		})
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	// A port with nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	h := newHarness(t, func(o *Options) { o.Upstream, _ = url.Parse("http://" + dead + "/v1") })
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	body := readAll(t, res)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), `"code": "upstream_unreachable"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if a := h.get("acme"); a.Balance() != usd("5.00") || a.Reserved != 0 {
		t.Fatalf("charged: %+v", a)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventRelease {
		t.Fatalf("last event %+v", ev)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	key := h.account("acme", "5.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""), "X-Mock-Delay", "5s")
	body := readAll(t, res)
	if res.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), `"code": "upstream_timeout"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if a := h.get("acme"); a.Balance() != usd("5.00") || a.Reserved != 0 {
		t.Fatalf("charged: %+v", a)
	}
}

func TestBillingStoreUnavailable(t *testing.T) {
	// A Redis that is not there: every call fails after the dial timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	c := redis.NewClient(&redis.Options{Addr: dead, DialTimeout: 200 * time.Millisecond, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	down, err := redisstore.New(c, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Ledger, o.Keys = down, down })
	for _, path := range []string{"/v1/chat/completions", "/v1/credits"} {
		method := http.MethodPost
		if path == "/v1/credits" {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, h.server.URL+path, strings.NewReader(chatBody("gpt-4o-mini", false, "")))
		req.Header.Set("Authorization", "Bearer sk-cg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, res)
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"type": "server_error"`) {
			t.Fatalf("%s: %d %s", path, res.StatusCode, body)
		}
	}
	if n := len(h.mock.Requests()); n != 0 {
		t.Fatalf("forwarded without a hold: %d upstream requests", n)
	}
}

// A store that answers the key lookup but fails the reserve: still nothing forwarded.
func TestReserveFailureForwardsNothing(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	h.proxy.opts.Ledger = failingLedger{h.store}
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	body := readAll(t, res)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"type": "server_error"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if n := len(h.mock.Requests()); n != 0 {
		t.Fatalf("forwarded without a hold: %d upstream requests", n)
	}
}
