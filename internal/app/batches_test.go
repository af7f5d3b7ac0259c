package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
)

// A whole instance from its configuration: batches billed at
// pricing.batch_discount and settled by the background poller on its own,
// CORS from cors.*, the model catalogue from the price table.
func TestBatchesCORSAndModelsWired(t *testing.T) {
	mock := mockupstream.New()
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	doc := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: [%q] }
upstream: { base_url: %q }
redis: { url: "memory://" }
pricing: { batch_discount: 0.25, aliases: { my-mini: gpt-4o-mini } }
cors: { allowed_origins: ["https://app.example"] }
`, adminToken, up.URL+"/v1")
	cfg, err := config.LoadBytes([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := serveApp(t, cfg, Options{Logger: zaptest.NewLogger(t), BatchPollInterval: 20 * time.Millisecond})
	ctx := context.Background()
	c := &client.Client{BaseURL: "http://" + a.AdminAddr().String(), Token: adminToken}
	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCredits(ctx, "acme", "10.00", nil, "topup"); err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	data := "http://" + a.DataAddr().String()
	do := func(method, path string, body io.Reader, header ...string) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, data+path, body)
		req.Header.Set("Authorization", "Bearer "+key.Key)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b, res.Header
	}

	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	fmt.Fprintln(fw, `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"my-mini","max_tokens":20,"messages":[{"role":"user","content":"Hi"}]}}`)
	mw.WriteField("purpose", "batch")
	mw.Close()
	status, body, _ := do(http.MethodPost, "/v1/files", &buf, "Content-Type", mw.FormDataContentType())
	if status != http.StatusOK {
		t.Fatalf("upload: %d %s", status, body)
	}
	var f struct{ ID string }
	json.Unmarshal(body, &f)
	status, body, _ = do(http.MethodPost, "/v1/batches", strings.NewReader(`{"input_file_id":"`+f.ID+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`))
	if status != http.StatusOK {
		t.Fatalf("batch: %d %s", status, body)
	}
	acct, err := c.GetAccount(ctx, "acme")
	if err != nil || acct.Reserved <= 0 {
		t.Fatalf("nothing held for the batch: %+v %v", acct, err)
	}
	mock.FinishBatches()
	var ev billing.Event
	waitFor(t, "the poller to settle the batch", 10*time.Second, func() bool {
		evs, err := a.Store().Events(ctx, "acme", "", 100)
		if err != nil || len(evs.Events) == 0 {
			return false
		}
		ev = evs.Events[len(evs.Events)-1]
		return ev.Type == billing.EventUsage
	})
	// 1 request: its prompt and output at a quarter of gpt-4o-mini's list price.
	exact := (ev.PromptTokens*150_000 + ev.CompletionTokens*600_000) // micro-USD per 1M tokens × tokens
	want := money.Micros((exact + 4_000_000 - 1) / 4_000_000)
	if ev.Cost != want || ev.Model != "gpt-4o-mini" || !strings.Contains(ev.Note, "billed at 25% of list prices") {
		t.Fatalf("settled %+v, want %s", ev, want)
	}
	if acct, _ = c.GetAccount(ctx, "acme"); acct.Reserved != 0 {
		t.Fatalf("reserved %s after the batch", acct.Reserved)
	}

	// A background response: held while it runs, billed by the same poller.
	status, body, _ = do(http.MethodPost, "/v1/responses", strings.NewReader(`{"model":"my-mini","input":"Hi","max_output_tokens":20,"background":true}`))
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"queued"`) {
		t.Fatalf("background response: %d %s", status, body)
	}
	if acct, _ = c.GetAccount(ctx, "acme"); acct.Reserved <= 0 {
		t.Fatalf("nothing held for the background response: %+v", acct)
	}
	mock.FinishBackground("")
	waitFor(t, "the poller to bill the background response", 10*time.Second, func() bool {
		evs, err := a.Store().Events(ctx, "acme", "", 100)
		if err != nil || len(evs.Events) == 0 {
			return false
		}
		ev = evs.Events[len(evs.Events)-1]
		return ev.Type == billing.EventUsage && ev.Endpoint == "/v1/responses"
	})
	if exact := ev.PromptTokens*150_000 + ev.CompletionTokens*600_000; ev.Cost != money.Micros((exact+1_000_000-1)/1_000_000) || ev.CompletionTokens == 0 {
		t.Fatalf("background response billed %+v", ev)
	}
	if acct, _ = c.GetAccount(ctx, "acme"); acct.Reserved != 0 {
		t.Fatalf("reserved %s after the background response", acct.Reserved)
	}

	req, _ := http.NewRequest(http.MethodOptions, data+"/v1/batches", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}

	status, body, _ = do(http.MethodGet, "/v1/models/my-mini", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"id":"my-mini"`) {
		t.Fatalf("models/my-mini: %d %s", status, body)
	}
	status, body, _ = do(http.MethodGet, "/v1/models", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"id":"gpt-4o"`) || !strings.Contains(string(body), `"id":"my-mini"`) {
		t.Fatalf("models: %d %s", status, body)
	}
}
