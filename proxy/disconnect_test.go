package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// TestClientDisconnectMidStream: the app reads a few events and hangs up. The
// upstream request must be cancelled, and the account billed for the prompt plus the
// output the proxy had relayed, counted locally.
func TestClientDisconnectMidStream(t *testing.T) {
	h := newHarness(t)
	h.mock.OutputTokens = 200
	key := h.account("acme", "5.00")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.server.URL+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", true, "")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Mock-Event-Delay", "20ms")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(res.Body)
	var seen strings.Builder
	events := 0
	for events < 5 && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			t.Fatal(err)
		}
		if len(chunk.Choices) > 0 {
			seen.WriteString(chunk.Choices[0].Delta.Content)
		}
		events++
	}
	cancel()
	res.Body.Close()

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := h.mock.Wait(wctx); err != nil {
		t.Fatal("upstream request still running after the client left:", err)
	}
	if up := h.mock.Requests()[0]; !up.Cancelled || up.Finished {
		t.Fatalf("upstream request not cancelled: %+v", up)
	}
	ev := waitForEvent(t, h, "acme", billing.EventUsage, wctx)
	if ev.TokenSource != billing.TokenSourceLocal || ev.Note == "" {
		t.Fatalf("event %+v: an abandoned stream is billed on the local count", ev)
	}
	tok, _ := metering.TokenizerFor(metering.O200kBase)
	delivered := int64(tok.Count(seen.String()))
	// The proxy may have relayed an event or two the client never read.
	if ev.CompletionTokens < delivered || ev.CompletionTokens > delivered+20 || ev.CompletionTokens >= 200 {
		t.Fatalf("billed %d completion tokens; the client saw %d of 200", ev.CompletionTokens, delivered)
	}
	if ev.PromptTokens == 0 || ev.Cost == 0 {
		t.Fatalf("prompt not billed: %+v", ev)
	}
	if a := h.get("acme"); a.Reserved != 0 || a.Balance() != usd("5.00")-ev.Cost {
		t.Fatalf("account %+v", a)
	}
}

// TestStreamWithoutUsage: an upstream that never reports usage (or never sends
// [DONE]) is billed on the local count and marked so.
func TestStreamWithoutUsage(t *testing.T) {
	for _, header := range []string{"X-Mock-No-Usage", "X-Mock-No-Done"} {
		t.Run(header, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", true, ""), header, "1")
			body := readAll(t, res)
			var text strings.Builder
			for _, e := range sseEvents(body) {
				var chunk struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				if json.Unmarshal([]byte(e), &chunk) == nil && len(chunk.Choices) > 0 {
					text.WriteString(chunk.Choices[0].Delta.Content)
				}
			}
			ev := h.lastEvent("acme")
			tok, _ := metering.TokenizerFor(metering.O200kBase)
			if header == "X-Mock-No-Usage" && (ev.TokenSource != billing.TokenSourceLocal || ev.CompletionTokens != int64(tok.Count(text.String()))) {
				t.Fatalf("event %+v, text has %d tokens", ev, tok.Count(text.String()))
			}
			if header == "X-Mock-No-Done" && ev.Note == "" {
				t.Fatalf("a stream without [DONE] must be noted as incomplete: %+v", ev)
			}
		})
	}
}

func waitForEvent(t *testing.T, h *harness, account string, typ billing.EventType, ctx context.Context) billing.Event {
	t.Helper()
	for {
		evs := h.events(account)
		for i := len(evs) - 1; i >= 0; i-- {
			if evs[i].Type == typ {
				return evs[i]
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event: %v", typ, evs)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
