package proxy

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// TestEveryEndpointThroughTheSDK calls each metered endpoint, plain and streamed,
// with OpenAI's official Go SDK through the proxy, and checks that the account was
// charged exactly the SPEC's price of the usage the SDK received: ceil(Σ tokens ×
// price / 1e6) over the token classes, with cached and reasoning tokens at their
// own rates and never twice.
func TestEveryEndpointThroughTheSDK(t *testing.T) {
	type call func(ctx context.Context, c openai.Client) (metering.Tokens, error)
	chatMsgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage("Describe metering.")}
	tests := []struct {
		name     string
		model    string
		endpoint string
		header   []string // X-Mock-* usage shaping
		call     call
	}{
		{name: "chat", model: "gpt-4o", endpoint: "/v1/chat/completions", header: []string{"X-Mock-Cached-Tokens", "12", "X-Mock-Reasoning-Tokens", "5"},
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				r, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: chatMsgs})
				if err != nil {
					return metering.Tokens{}, err
				}
				u := r.Usage
				return metering.Tokens{Input: u.PromptTokens, CachedInput: u.PromptTokensDetails.CachedTokens, Output: u.CompletionTokens, Reasoning: u.CompletionTokensDetails.ReasoningTokens}, nil
			}},
		{name: "chat stream", model: "gpt-4o", endpoint: "/v1/chat/completions", header: []string{"X-Mock-Cached-Tokens", "12", "X-Mock-Reasoning-Tokens", "5"},
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				s := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: chatMsgs,
					StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
				var t metering.Tokens
				for s.Next() {
					if u := s.Current().Usage; u.TotalTokens > 0 {
						t = metering.Tokens{Input: u.PromptTokens, CachedInput: u.PromptTokensDetails.CachedTokens, Output: u.CompletionTokens, Reasoning: u.CompletionTokensDetails.ReasoningTokens}
					}
				}
				return t, s.Err()
			}},
		{name: "completions", model: "gpt-4o-mini", endpoint: "/v1/completions",
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				r, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "gpt-4o-mini",
					Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"Once upon a time", "In a galaxy"}}})
				if err != nil {
					return metering.Tokens{}, err
				}
				return metering.Tokens{Input: r.Usage.PromptTokens, Output: r.Usage.CompletionTokens}, nil
			}},
		{name: "completions stream", model: "gpt-4o-mini", endpoint: "/v1/completions",
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				s := c.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: "gpt-4o-mini",
					Prompt:        openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
					StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
				var t metering.Tokens
				for s.Next() {
					if u := s.Current().Usage; u.TotalTokens > 0 {
						t = metering.Tokens{Input: u.PromptTokens, Output: u.CompletionTokens}
					}
				}
				return t, s.Err()
			}},
		{name: "embeddings", model: "text-embedding-3-small", endpoint: "/v1/embeddings",
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				r, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
					Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"metering proxy", "prepaid credit"}}})
				if err != nil {
					return metering.Tokens{}, err
				}
				return metering.Tokens{Input: r.Usage.PromptTokens}, nil
			}},
		{name: "responses", model: "gpt-4o", endpoint: "/v1/responses", header: []string{"X-Mock-Cached-Tokens", "4", "X-Mock-Reasoning-Tokens", "9"},
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				r, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", Instructions: openai.String("Be brief."),
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is a hold?")}})
				if err != nil {
					return metering.Tokens{}, err
				}
				u := r.Usage
				return metering.Tokens{Input: u.InputTokens, CachedInput: u.InputTokensDetails.CachedTokens, Output: u.OutputTokens, Reasoning: u.OutputTokensDetails.ReasoningTokens}, nil
			}},
		{name: "responses stream", model: "gpt-4o", endpoint: "/v1/responses", header: []string{"X-Mock-Cached-Tokens", "4", "X-Mock-Reasoning-Tokens", "9"},
			call: func(ctx context.Context, c openai.Client) (metering.Tokens, error) {
				s := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-4o",
					Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is a hold?")}})
				var t metering.Tokens
				for s.Next() {
					if ev := s.Current(); ev.Type == "response.completed" {
						u := ev.Response.Usage
						t = metering.Tokens{Input: u.InputTokens, CachedInput: u.InputTokensDetails.CachedTokens, Output: u.OutputTokens, Reasoning: u.OutputTokensDetails.ReasoningTokens}
					}
				}
				return t, s.Err()
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			key := h.account("acme", "5.00")
			opts := []option.RequestOption{option.WithBaseURL(h.server.URL + "/v1"), option.WithAPIKey(key), option.WithMaxRetries(0)}
			for i := 0; i+1 < len(tc.header); i += 2 {
				opts = append(opts, option.WithHeader(tc.header[i], tc.header[i+1]))
			}
			tokens, err := tc.call(h.ctx, openai.NewClient(opts...))
			if err != nil {
				t.Fatal(err)
			}
			if tokens.Input == 0 {
				t.Fatalf("the SDK saw no usage: %+v", tokens)
			}
			ev := h.lastEvent("acme")
			want := mustPrice(t, h, tc.model).Cost(tokens)
			if ev.Type != billing.EventUsage || ev.Cost != want || ev.TokenSource != billing.TokenSourceUpstream || ev.Endpoint != tc.endpoint || ev.Model != tc.model {
				t.Fatalf("event %+v; usage %+v costs %s", ev, tokens, want)
			}
			if ev.PromptTokens != tokens.Input || ev.CompletionTokens != tokens.Output || ev.CachedTokens != tokens.CachedInput || ev.ReasoningTokens != tokens.Reasoning {
				t.Fatalf("event tokens %+v, usage %+v", ev, tokens)
			}
			if a := h.get("acme"); a.Balance() != usd("5.00")-want || a.Reserved != 0 {
				t.Fatalf("account %+v", a)
			}
		})
	}
}
