package mockupstream_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

// The official Go SDK, pointed at the mock, parses every answer: the shapes satisfy a
// real client.
func TestOfficialSDK(t *testing.T) {
	s, ts := start(t, func(s *mockupstream.Server) { s.APIKey = "sk-upstream" })
	client := openai.NewClient(
		option.WithBaseURL(ts.URL+"/v1/"),
		option.WithAPIKey("sk-upstream"),
		option.WithMaxRetries(0),
	)
	ctx := context.Background()
	messages := []openai.ChatCompletionMessageParamUnion{
		openai.SystemMessage("You are a helpful assistant."),
		openai.UserMessage("Hello!"),
	}

	t.Run("chat completion", func(t *testing.T) {
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: openai.ChatModelGPT4oMini, Messages: messages})
		if err != nil {
			t.Fatal(err)
		}
		text := c.Choices[0].Message.Content
		if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Choices[0].FinishReason != "stop" || c.Usage.PromptTokens != 19 ||
			c.Usage.CompletionTokens != countTokens(t, "gpt-4o-mini", text) || c.Usage.TotalTokens != 19+c.Usage.CompletionTokens {
			t.Errorf("completion %s", c.RawJSON())
		}
	})

	t.Run("streamed chat completion with usage", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:               openai.ChatModelGPT4oMini,
			Messages:            messages,
			MaxCompletionTokens: openai.Int(5),
			StreamOptions:       openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("accumulator rejected chunk %s", stream.Current().RawJSON())
			}
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		text := acc.Choices[0].Message.Content
		if chunks != 5+3 || acc.Choices[0].FinishReason != "length" || countTokens(t, "gpt-4o-mini", text) != 5 ||
			acc.Usage.PromptTokens != 19 || acc.Usage.CompletionTokens != 5 || acc.Usage.TotalTokens != 24 {
			t.Errorf("%d chunks, finish %q, text %q, usage %+v", chunks, acc.Choices[0].FinishReason, text, acc.Usage)
		}
	})

	t.Run("embedding", func(t *testing.T) {
		for _, format := range []openai.EmbeddingNewParamsEncodingFormat{openai.EmbeddingNewParamsEncodingFormatFloat, openai.EmbeddingNewParamsEncodingFormatBase64} {
			e, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model:          openai.EmbeddingModelTextEmbedding3Small,
				Input:          openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"Hello!", "Hello world"}},
				Dimensions:     openai.Int(64),
				EncodingFormat: format,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Data) != 2 || len(e.Data[0].Embedding) != 64 || e.Data[1].Index != 1 || e.Usage.PromptTokens != 4 || e.Usage.TotalTokens != 4 {
				t.Errorf("%s: %d items, usage %+v", format, len(e.Data), e.Usage)
			}
		}
	})

	t.Run("response", func(t *testing.T) {
		r, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model:        openai.ChatModelGPT4oMini,
			Instructions: openai.String("You are a helpful assistant."),
			Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello!")},
		})
		if err != nil {
			t.Fatal(err)
		}
		text := r.OutputText()
		if r.Status != responses.ResponseStatusCompleted || text == "" || r.Usage.InputTokens != 19 ||
			r.Usage.OutputTokens != countTokens(t, "gpt-4o-mini", text) {
			t.Errorf("response %s", r.RawJSON())
		}
	})

	t.Run("streamed response", func(t *testing.T) {
		stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
			Model:           openai.ChatModelGPT4oMini,
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello!")},
			MaxOutputTokens: openai.Int(4),
		})
		var deltas string
		var final responses.Response
		for stream.Next() {
			switch ev := stream.Current(); ev.Type {
			case "response.output_text.delta":
				deltas += ev.AsResponseOutputTextDelta().Delta
			case "response.incomplete":
				final = ev.AsResponseIncomplete().Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if final.Status != responses.ResponseStatusIncomplete || final.IncompleteDetails.Reason != "max_output_tokens" ||
			final.OutputText() != deltas || final.Usage.OutputTokens != 4 || countTokens(t, "gpt-4o-mini", deltas) != 4 {
			t.Errorf("deltas %q, final %s", deltas, final.RawJSON())
		}
	})

	t.Run("error", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: openai.ChatModelGPT4oMini, Messages: messages},
			option.WithHeader("X-Mock-Status", "429"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" {
			t.Errorf("error %v", err)
		}
	})

	for _, r := range s.Requests() {
		if r.Header.Get("Authorization") != "Bearer sk-upstream" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
	}
}
