package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/creditgate/creditgate/billing"
)

// TestOfficialGoSDK drives the proxy with OpenAI's own Go SDK: a plain and a
// streamed completion, then — once the balance is gone — the 429 the SDK reports as
// insufficient_quota.
func TestOfficialGoSDK(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage("Say hello.")},
	}

	c, err := client.Chat.Completions.New(h.ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Message.Content == "" || c.Usage.CompletionTokens == 0 {
		t.Fatalf("completion %+v", c)
	}
	ev := h.lastEvent("acme")
	if ev.Type != billing.EventUsage || ev.PromptTokens != c.Usage.PromptTokens || ev.CompletionTokens != c.Usage.CompletionTokens {
		t.Fatalf("billed %+v for usage %+v", ev, c.Usage)
	}

	stream := client.Chat.Completions.NewStreaming(h.ctx, params)
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 2 || acc.Choices[0].Message.Content == "" {
		t.Fatalf("%d chunks, content %q", chunks, acc.Choices[0].Message.Content)
	}
	ev = h.lastEvent("acme")
	if ev.Type != billing.EventUsage || ev.TokenSource != billing.TokenSourceUpstream || ev.CompletionTokens == 0 {
		t.Fatalf("streamed request billed %+v", ev)
	}

	// Spend the rest at the ledger, as other requests would have.
	rest := h.get("acme").Available()
	if _, err := h.store.Settle(h.ctx, billing.SettleRequest{Account: "acme", HoldID: "drain", Cost: rest}); err != nil {
		t.Fatal(err)
	}
	if a := h.get("acme"); a.Available() != 0 {
		t.Fatalf("account not drained: %+v", a)
	}
	_, err = client.Chat.Completions.New(h.ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "insufficient_quota" || apiErr.Type != "insufficient_quota" ||
		!strings.Contains(apiErr.Message, "check your plan and billing details") {
		t.Fatalf("SDK error %d code=%q type=%q %q", apiErr.StatusCode, apiErr.Code, apiErr.Type, apiErr.Message)
	}
}
