package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
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

// TestOfficialGoSDKReadsACutStream: streams an upstream wrote past their caps end
// where creditgate cut them, and OpenAI's Go SDK reads them to the end without an
// error: chat with finish_reason length and the billed usage, completions likewise,
// responses with response.incomplete for max_output_tokens.
func TestOfficialGoSDKReadsACutStream(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHeader("X-Mock-Ignore-Cap", "10"))
	tok, _ := metering.TokenizerFor(metering.O200kBase)

	chat := client.Chat.Completions.NewStreaming(h.ctx, openai.ChatCompletionNewParams{
		Model:         "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		MaxTokens:     openai.Int(6),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for chat.Next() {
		acc.AddChunk(chat.Current())
	}
	if err := chat.Err(); err != nil {
		t.Fatal(err)
	}
	if c := acc.Choices[0]; c.FinishReason != "length" || tok.Count(c.Message.Content) != 6 || acc.Usage.CompletionTokens != 6 {
		t.Fatalf("chat: finish %q, %d tokens of content, usage %+v", c.FinishReason, tok.Count(c.Message.Content), acc.Usage)
	}
	if ev := h.lastEvent("acme"); ev.CompletionTokens != 6 || ev.PromptTokens != acc.Usage.PromptTokens || ev.ExcessTokens == 0 {
		t.Fatalf("chat billed %+v for usage %+v", ev, acc.Usage)
	}

	completion := client.Completions.NewStreaming(h.ctx, openai.CompletionNewParams{
		Model: "gpt-4o-mini", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}, MaxTokens: openai.Int(4),
	})
	var text strings.Builder
	finish := ""
	for completion.Next() {
		for _, c := range completion.Current().Choices {
			text.WriteString(c.Text)
			if c.FinishReason != "" {
				finish = string(c.FinishReason)
			}
		}
	}
	if err := completion.Err(); err != nil || finish != "length" || tok.Count(text.String()) != 4 {
		t.Fatalf("completions: %v, finish %q, %q", err, finish, text.String())
	}

	resp := client.Responses.NewStreaming(h.ctx, responses.ResponseNewParams{
		Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello.")}, MaxOutputTokens: openai.Int(16),
	})
	var last responses.ResponseStreamEventUnion
	text.Reset()
	for resp.Next() {
		last = resp.Current()
		if last.Type == "response.output_text.delta" {
			text.WriteString(last.Delta)
		}
	}
	if err := resp.Err(); err != nil {
		t.Fatal(err)
	}
	if last.Type != "response.incomplete" || last.Response.Status != "incomplete" || last.Response.IncompleteDetails.Reason != "max_output_tokens" ||
		last.Response.Usage.OutputTokens != 16 || tok.Count(text.String()) != 16 {
		t.Fatalf("responses: last %s %s %q, usage %+v, %d tokens", last.Type, last.Response.Status, last.Response.IncompleteDetails.Reason,
			last.Response.Usage, tok.Count(text.String()))
	}
}
