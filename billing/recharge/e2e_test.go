package recharge

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/proxy"
)

// triggeringLedger passes the worker's triggers with every settle, as the proxy
// does once its settings carry them (see the wiring notes in docs/billing.md).
type triggeringLedger struct {
	billing.Ledger
	w *Worker
}

func (l triggeringLedger) Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	s.Triggers = l.w.Triggers()
	return l.Ledger.Settle(ctx, s)
}

// TestRechargeUnderLoadThroughProxy: 200 concurrent requests through the real
// proxy drain an account past its threshold; the charger is called exactly once,
// one grant is credited, and the ledger audits clean.
func TestRechargeUnderLoadThroughProxy(t *testing.T) {
	e := newEnv(t, nil)
	e.account(t, "load", "10.00") // below 5.00 buy 10.00
	_, key, err := e.store.CreateKey(e.ctx, "load", "app")
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(mockupstream.New())
	t.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL + "/v1")
	pricing, err := metering.NewPricing(map[string]metering.Price{
		// Dear enough that 200 small requests cost more than the 5.00 above the threshold.
		"dear": {Input: usd("1000"), CachedInput: usd("500"), AudioInput: usd("1000"), Output: usd("2000"), Reasoning: usd("2000"), AudioOutput: usd("2000"), MaxOutputTokens: 64, Encoding: metering.O200kBase},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	settings := &proxy.Settings{Policy: billing.Policy{Grace: usd("0.50"), HoldTTL: time.Minute, CreditTTL: policy.CreditTTL}, Pricing: pricing, ClampMaxTokens: true}
	p, err := proxy.New(proxy.Options{
		Upstream: upURL, Ledger: triggeringLedger{Ledger: e.store, w: e.worker}, Keys: e.store,
		Settings: func() *proxy.Settings { return settings }, OnSettled: e.worker.OnSettled,
	})
	if err != nil {
		t.Fatal(err)
	}
	var inflight sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.worker.Run(ctx) }()
	statuses := make(chan int, 200)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"dear","max_tokens":16,"messages":[{"role":"user","content":"Say hello."}]}`))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	wg.Wait()
	inflight.Wait()
	close(statuses)
	byStatus := map[int]int{}
	for s := range statuses {
		byStatus[s]++
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.account_(t, "load").Recharge.Pending != "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	a := e.account_(t, "load")
	n, total := grantsFrom(a, billing.SourceAutoRecharge)
	t.Logf("statuses %v; usage %s; balance %s; auto-recharged %d× %s", byStatus, a.Totals.Usage, a.Balance(), n, total)
	if a.Totals.Usage <= usd("5.00") {
		t.Fatalf("usage %s: the load should cross the 5.00 threshold", a.Totals.Usage)
	}
	if calls := len(e.charger.deliveries()); calls != 1 || n != 1 || total != usd("10.00") {
		t.Fatalf("charger called %d times, %d recharge grants of %s; want exactly one", calls, n, total)
	}
	if byStatus[http.StatusOK] == 0 {
		t.Fatalf("no request succeeded: %v", byStatus)
	}
	e.audit(t, "load")

}
