package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// batchWorstCase is what a batch of file holds: each line estimated as the
// proxy estimates a chat request (ParseRequest, InputTokens, Estimate), the sum
// at half price, rounded up.
func batchWorstCase(t *testing.T, h *harness, file []byte) money.Micros {
	t.Helper()
	_, price, _ := h.settings.Load().Pricing.Resolve("gpt-4o-mini")
	tok, err := metering.TokenizerFor(metering.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	var sum money.Micros
	sc := bufio.NewScanner(bytes.NewReader(file))
	for sc.Scan() {
		var line struct{ Body json.RawMessage }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		req, err := metering.ParseRequest(metering.ChatCompletions, line.Body)
		if err != nil {
			t.Fatal(err)
		}
		sum += req.Estimate(price, req.InputTokens(tok))
	}
	return (sum + 1) / 2
}

// outputCost is the exact half-price cost of a batch output file's usage, from
// the mock's own file: ceil(Σ tokens × list price / 10^6 / 2), in rationals.
func outputCost(t *testing.T, h *harness, fileID string) (money.Micros, metering.Tokens) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.upstream.URL+"/v1/files/"+fileID+"/content", nil)
	req.Header.Set("Authorization", "Bearer "+upstreamKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data := readAll(t, res)
	var tk metering.Tokens
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var line struct {
			Response struct {
				Body struct {
					Usage chatUsage `json:"usage"`
				} `json:"body"`
			} `json:"response"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		tk = tk.Add(tokensOf(line.Response.Body.Usage))
	}
	// gpt-4o-mini: input 0.15, cached 0.075, output 0.60 USD per 1M tokens.
	micros := new(big.Rat).SetInt64((tk.Input-tk.CachedInput)*150_000 + tk.CachedInput*75_000 + tk.Output*600_000)
	micros.Quo(micros, big.NewRat(2_000_000, 1))
	ceil := new(big.Int).Quo(micros.Num(), micros.Denom())
	if new(big.Rat).SetInt(ceil).Cmp(micros) < 0 {
		ceil.Add(ceil, big.NewInt(1))
	}
	return money.Micros(ceil.Int64()), tk
}

// newBatch uploads file and creates a batch of it through the proxy.
func newBatch(t *testing.T, h *harness, key string, file []byte, metadata string) (batchID string, status int, body []byte) {
	t.Helper()
	in := h.upload(key, "in.jsonl", "batch", file)
	create := `{"input_file_id":"` + in + `","endpoint":"/v1/chat/completions","completion_window":"24h"` + metadata + `}`
	status, body = h.do(http.MethodPost, "/v1/batches", key, strings.NewReader(create), "Content-Type", "application/json")
	if status == http.StatusOK {
		batchID = idOf(t, body)
	}
	return batchID, status, body
}

// TestBatchSettlement: a batch holds its worst case at the batch price from
// its creation, and when it ends the poller settles exactly what ran, at half
// price — every line of a completed batch, the lines that ran of an expired or
// cancelled one — or releases the hold of a batch that failed or ran nothing.
func TestBatchSettlement(t *testing.T) {
	h, _ := newObjectHarness(t)
	file := batchFile(3)
	held := batchWorstCase(t, h, file)
	for _, tc := range []struct {
		name, metadata string
		cancel         bool
		answered       int
		released       bool
	}{
		{name: "completed", answered: 3},
		{name: "expired mid-way", metadata: `,"metadata":{"mock_outcome":"expired:1"}`, answered: 1},
		{name: "cancelled mid-way", metadata: `,"metadata":{"mock_outcome":"cancelled:2"}`, answered: 2},
		{name: "cancelled before it ran", cancel: true, released: true},
		{name: "failed", metadata: `,"metadata":{"mock_outcome":"failed"}`, released: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			account := strings.ReplaceAll(tc.name, " ", "-")
			key := h.account(account, "10.00")
			id, status, body := newBatch(t, h, key, file, tc.metadata)
			if status != http.StatusOK || !strings.Contains(string(body), `"status":"validating"`) {
				t.Fatalf("create: %d %s", status, body)
			}
			a := h.get(account)
			if a.Reserved != held || held <= 0 {
				t.Fatalf("reserved %s, want the worst case at half price %s", a.Reserved, held)
			}
			rec, err := h.store.GetBatch(h.ctx, account, id)
			if err != nil || rec.Held != held || rec.Discount != DefaultBatchDiscount || rec.Requests != 3 || rec.Model != "gpt-4o-mini" ||
				rec.HoldExpires.Sub(rec.CreatedAt) != 24*time.Hour+batchHoldMargin {
				t.Fatalf("batch record %+v %v", rec, err)
			}
			// Running: the poller leaves it alone.
			if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Open != 1 {
				t.Fatalf("while running: %+v %v", sw, err)
			}
			if tc.cancel {
				if status, body := h.do(http.MethodPost, "/v1/batches/"+id+"/cancel", key, nil); status != http.StatusOK {
					t.Fatalf("cancel: %d %s", status, body)
				}
			}
			h.mock.FinishBatches()
			sw, err := h.proxy.SettleBatches(h.ctx)
			if err != nil || sw.Settled+sw.Released != 1 || (sw.Released == 1) != tc.released {
				t.Fatalf("round: %+v %v", sw, err)
			}
			a = h.get(account)
			ev := h.lastEvent(account)
			if a.Reserved != 0 {
				t.Fatalf("reserved %s after the batch ended", a.Reserved)
			}
			if tc.released {
				if ev.Type != billing.EventRelease || ev.Amount != held || a.Balance() != usd("10.00") {
					t.Fatalf("released: %+v, balance %s", ev, a.Balance())
				}
				return
			}
			var got struct {
				OutputFileID string `json:"output_file_id"`
			}
			_, body = h.do(http.MethodGet, "/v1/batches/"+id, key, nil)
			json.Unmarshal(body, &got)
			cost, tk := outputCost(t, h, got.OutputFileID)
			if ev.Type != billing.EventUsage || ev.Cost != cost || cost <= 0 || ev.Endpoint != "/v1/batches" || ev.Model != "gpt-4o-mini" ||
				ev.PromptTokens != tk.Input || ev.CompletionTokens != tk.Output || ev.TokenSource != billing.TokenSourceUpstream ||
				!strings.Contains(ev.Note, "billed at 50% of list prices") || ev.Prices == nil || ev.Prices.Input != usd("0.075") {
				t.Fatalf("settled %+v, want a usage event of %s for %+v", ev, cost, tk)
			}
			if !strings.Contains(ev.Note, id) || !strings.Contains(ev.Note, []string{"", "1 of 3", "2 of 3", "3 of 3"}[tc.answered]) {
				t.Fatalf("note %q", ev.Note)
			}
			if a.Balance() != usd("10.00")-cost || cost > held {
				t.Fatalf("balance %s, cost %s of a hold of %s", a.Balance(), cost, held)
			}
			// The owner downloads the output; the next round books nothing more.
			if status, _ := h.do(http.MethodGet, "/v1/files/"+got.OutputFileID+"/content", key, nil); status != http.StatusOK {
				t.Fatalf("output file: %d", status)
			}
			checkSettledOnce(t, h, account, rec)
		})
	}
}

// checkSettledOnce: once rec (a batch or background response) is settled, the
// next poller round books nothing more; and a round that settled but could not
// close it (rec open again) only closes it.
func checkSettledOnce(t *testing.T, h *harness, account string, rec billing.Batch) {
	t.Helper()
	n := len(h.events(account))
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw != (BatchSweep{}) || len(h.events(account)) != n {
		t.Fatalf("next round: %+v %v", sw, err)
	}
	if err := h.store.OpenBatch(h.ctx, rec); err != nil {
		t.Fatal(err)
	}
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Settled != 1 || len(h.events(account)) != n {
		t.Fatalf("replayed round: %+v %v, %d events (was %d)", sw, err, len(h.events(account)), n)
	}
}

// A batch runs up to its completion window: its hold outlives billing.hold_ttl
// (15m here) until the window and the margin have passed; the sweep ends it
// only then, and a settlement after that still charges what ran.
func TestBatchHoldOutlivesHoldTTL(t *testing.T) {
	h, clk := newObjectHarness(t)
	key := h.account("acme", "10.00")
	id, status, body := newBatch(t, h, key, batchFile(2), "")
	if status != http.StatusOK {
		t.Fatalf("create: %d %s", status, body)
	}
	held := h.get("acme").Reserved
	clk.Advance(testPolicy.HoldTTL + time.Minute)
	clk.Advance(24*time.Hour + batchHoldMargin - testPolicy.HoldTTL - 2*time.Minute) // just before the end
	if a := h.get("acme"); a.Reserved != held {
		t.Fatalf("reserved %s after %s, want %s held", a.Reserved, 24*time.Hour+batchHoldMargin-time.Minute, held)
	}
	for _, ev := range h.events("acme") {
		if ev.Type == billing.EventHoldExpired {
			t.Fatalf("the batch hold expired early: %+v", ev)
		}
	}
	clk.Advance(2 * time.Minute)
	if a := h.get("acme"); a.Reserved != 0 {
		t.Fatalf("reserved %s after the window and the margin", a.Reserved)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventHoldExpired || ev.Amount != held {
		t.Fatalf("last event %+v, want hold_expired", ev)
	}
	h.mock.FinishBatches()
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Settled != 1 {
		t.Fatalf("late settle: %+v %v", sw, err)
	}
	var got struct {
		OutputFileID string `json:"output_file_id"`
	}
	_, body = h.do(http.MethodGet, "/v1/batches/"+id, key, nil)
	json.Unmarshal(body, &got)
	cost, _ := outputCost(t, h, got.OutputFileID)
	if ev := h.lastEvent("acme"); ev.Type != billing.EventUsage || ev.Cost != cost {
		t.Fatalf("late settle booked %+v, want usage of %s", ev, cost)
	}
}

// What a batch create is refused for, and that a refused one holds nothing
// and, before its hold, reaches no upstream batch.
func TestBatchAdmission(t *testing.T) {
	h, _ := newObjectHarness(t)
	h.mock.Behavior = func(r *http.Request, body []byte) mockupstream.Behavior {
		if r.URL.Path == "/v1/batches" && bytes.Contains(body, []byte(`"upstream_fails"`)) {
			return mockupstream.Behavior{Status: http.StatusInternalServerError}
		}
		return mockupstream.Behavior{}
	}
	rich := h.account("rich", "10.00")
	poor := h.account("poor", "5.00")
	if _, err := h.store.Settle(h.ctx, billing.SettleRequest{Account: "poor", HoldID: "drain", Cost: usd("5.00")}); err != nil {
		t.Fatal(err)
	}
	good := h.upload(rich, "in.jsonl", "batch", batchFile(2))
	bad := h.upload(rich, "bad.jsonl", "batch", append(batchFile(1), []byte(`{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":{"model":"unpriced","messages":[{"role":"user","content":"x"}]}}`+"\n")...))
	poorFile := h.upload(poor, "in.jsonl", "batch", batchFile(2))
	create := func(file, extra string) string {
		return `{"input_file_id":"` + file + `","endpoint":"/v1/chat/completions","completion_window":"24h"` + extra + `}`
	}
	for _, tc := range []struct {
		name, key, body string
		status          int
		want            string
		creates         bool // the upstream was asked to create a batch
	}{
		{"empty balance", poor, create(poorFile, ""), http.StatusTooManyRequests, "insufficient_quota", false},
		{"a line without a price", rich, create(bad, ""), http.StatusBadRequest, "Line 2 of the batch input file", false},
		{"a key given twice", rich, `{"input_file_id":"` + good + `","input_file_id":"file-other","endpoint":"/v1/chat/completions","completion_window":"24h"}`, http.StatusBadRequest, "Duplicate key 'input_file_id'", false},
		{"an unmetered endpoint", rich, `{"input_file_id":"` + good + `","endpoint":"/v1/audio/voices","completion_window":"24h"}`, http.StatusBadRequest, "Invalid 'endpoint'", false},
		{"an endpoint not batched", rich, `{"input_file_id":"` + good + `","endpoint":"/v1/images/generations","completion_window":"24h"}`, http.StatusBadRequest, "Invalid 'endpoint'", false},
		{"no window", rich, `{"input_file_id":"` + good + `","endpoint":"/v1/chat/completions"}`, http.StatusBadRequest, "completion_window", false},
		{"a window of nothing", rich, `{"input_file_id":"` + good + `","endpoint":"/v1/chat/completions","completion_window":"soon"}`, http.StatusBadRequest, "completion_window", false},
		{"not JSON", rich, `{"input_file_id":`, http.StatusBadRequest, "could not parse", false},
		{"no key", "", create(good, ""), http.StatusUnauthorized, "invalid_api_key", false},
		{"the upstream fails", rich, create(good, `,"metadata":{"x":"upstream_fails"}`), http.StatusInternalServerError, "server_error", true},
		{"the upstream refuses the window", rich, `{"input_file_id":"` + good + `","endpoint":"/v1/chat/completions","completion_window":"48h"}`, http.StatusBadRequest, "completion_window", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.upstreamHits("/v1/batches")
			n := len(h.events("rich"))
			status, body := h.do(http.MethodPost, "/v1/batches", tc.key, strings.NewReader(tc.body), "Content-Type", "application/json")
			if status != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%d %s, want %d with %q", status, body, tc.status, tc.want)
			}
			if created := h.upstreamHits("/v1/batches") > before; created != tc.creates {
				t.Fatalf("upstream asked to create a batch: %v", created)
			}
			if a := h.get("rich"); a.Reserved != 0 || a.Balance() != usd("10.00") {
				t.Fatalf("after a refused batch: reserved %s, balance %s", a.Reserved, a.Balance())
			}
			if tc.creates { // held, then released
				evs := h.events("rich")
				if len(evs) != n+1 || evs[len(evs)-1].Type != billing.EventRelease {
					t.Fatalf("events %+v", evs[n:])
				}
			}
		})
	}
	if open, err := h.store.OpenBatches(h.ctx, 10); err != nil || len(open) != 0 {
		t.Fatalf("open batches after refusals: %v %v", open, err)
	}
}
