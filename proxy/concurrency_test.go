package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestConcurrentRequestsNeverOverdraw sends 600 concurrent requests through the
// real proxy against a balance that pays for a small fraction of them. The overdraft
// must stay within grace, every answered request must be booked exactly once at the
// price of its reported usage, and nothing may stay reserved.
func TestConcurrentRequestsNeverOverdraw(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	const n = 600
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	type outcome struct {
		status int
		id     string
		usage  chatUsage
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			stream := i%2 == 1
			extra := `"max_tokens":16`
			if stream {
				extra += `,"stream_options":{"include_usage":true}`
			}
			req, _ := http.NewRequest(http.MethodPost, h.server.URL+"/v1/chat/completions", strings.NewReader(chatBody("dear", stream, extra)))
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			body := readAll(t, res)
			out[i] = outcome{status: res.StatusCode, id: res.Header.Get(RequestIDHeader)}
			if res.StatusCode != http.StatusOK {
				return
			}
			if !stream {
				out[i].usage = decodeUsage(t, body)
				return
			}
			for _, e := range sseEvents(body) {
				var chunk struct{ Usage *chatUsage }
				if json.Unmarshal([]byte(e), &chunk) == nil && chunk.Usage != nil {
					out[i].usage = *chunk.Usage
				}
			}
		}(i)
	}
	close(start)
	wg.Wait()

	price := mustPrice(t, h, "dear")
	events := map[string]billing.Event{}
	for _, ev := range h.events("acme") {
		if ev.Type == billing.EventUsage {
			if _, dup := events[ev.RequestID]; dup {
				t.Fatalf("request %s booked twice", ev.RequestID)
			}
			events[ev.RequestID] = ev
		}
	}
	var ok, refused int
	var spent money.Micros
	for _, o := range out {
		switch o.status {
		case http.StatusOK:
			ok++
			ev, found := events[o.id]
			if !found {
				t.Fatalf("answered request %s has no usage event", o.id)
			}
			want := price.Cost(tokensOf(o.usage))
			if ev.Cost != want || ev.TokenSource != billing.TokenSourceUpstream {
				t.Fatalf("request %s billed %s (%s), its usage costs %s", o.id, ev.Cost, ev.TokenSource, want)
			}
			spent += want
		case http.StatusTooManyRequests:
			refused++
			if _, found := events[o.id]; found {
				t.Fatalf("refused request %s was booked", o.id)
			}
		default:
			t.Fatalf("unexpected status %d", o.status)
		}
	}
	if len(events) != ok {
		t.Fatalf("%d usage events for %d answered requests", len(events), ok)
	}
	a := h.get("acme")
	if a.Reserved != 0 || a.Totals.Usage != spent || a.Balance() != usd("5.00")-spent {
		t.Fatalf("account %+v; answered requests cost %s", a, spent)
	}
	if a.Balance() < -testPolicy.Grace {
		t.Fatalf("overdraft %s beyond grace %s", -a.Balance(), testPolicy.Grace)
	}
	if ok == 0 || refused == 0 {
		t.Fatalf("%d answered, %d refused: the balance should run out mid-test", ok, refused)
	}
	t.Logf("%d answered, %d refused (429); spent %s of 5.00, balance %s", ok, refused, spent, a.Balance())
}
