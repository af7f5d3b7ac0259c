package mockupstream_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

const helloMessages = `[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello!"}]`

func TestChatCompletion(t *testing.T) {
	for _, tc := range []struct {
		name          string
		configure     func(*mockupstream.Server)
		body          string
		headers       []string
		wantChoices   int
		wantWords     int // tokens of text per choice
		wantFinish    string
		wantPrompt    int64 // 0: OpenAI's formula over the hello messages
		wantCached    int64
		wantReasoning int64
	}{
		{name: "default length", body: `{"model":"gpt-4o-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantPrompt: 19},
		{name: "cl100k model", body: `{"model":"gpt-4","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantPrompt: 19},
		{name: "configured length", configure: func(s *mockupstream.Server) { s.OutputTokens = 40 },
			body:        `{"model":"gpt-4o-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 40, wantFinish: "stop"},
		{name: "max_tokens below length", body: `{"model":"gpt-4o-mini","max_tokens":5,"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 5, wantFinish: "length"},
		{name: "max_completion_tokens wins over max_tokens", body: `{"model":"gpt-4o-mini","max_tokens":5,"max_completion_tokens":3,"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 3, wantFinish: "length"},
		{name: "max tokens equal to length", body: `{"model":"gpt-4o-mini","max_tokens":16,"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop"},
		{name: "n choices", body: `{"model":"gpt-4o-mini","n":3,"messages":` + helloMessages + `}`,
			wantChoices: 3, wantWords: 16, wantFinish: "stop"},
		{name: "n choices cut", body: `{"model":"gpt-4o-mini","n":2,"max_tokens":4,"messages":` + helloMessages + `}`,
			wantChoices: 2, wantWords: 4, wantFinish: "length"},
		{name: "server cached tokens", configure: func(s *mockupstream.Server) { s.CachedTokens = 7 },
			body:        `{"model":"gpt-4o-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantCached: 7},
		{name: "cached tokens capped at prompt", headers: []string{"X-Mock-Cached-Tokens: 1000"},
			body:        `{"model":"gpt-4o-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantCached: 19},
		{name: "reasoning tokens", headers: []string{"X-Mock-Reasoning-Tokens: 9"},
			body:        `{"model":"gpt-5-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantReasoning: 9},
		{name: "reasoning counts against the limit", configure: func(s *mockupstream.Server) { s.ReasoningTokens = 6 },
			body:        `{"model":"gpt-5-mini","max_completion_tokens":10,"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 4, wantFinish: "length", wantReasoning: 6},
		{name: "header overrides server", configure: func(s *mockupstream.Server) { s.ReasoningTokens = 6 },
			headers:     []string{"X-Mock-Reasoning-Tokens: 2"},
			body:        `{"model":"gpt-5-mini","messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantReasoning: 2},
		{name: "content parts and name", body: `{"model":"gpt-4o-mini","messages":[{"role":"user","name":"bob","content":[{"type":"text","text":"Hello!"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":" How are you?"}]}]}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop",
			wantPrompt: 3 + 3 + 1 + 2 + 4 + 1 + 1}, // priming, message, "user", "Hello!", " How are you?", name, "bob"
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, tc.configure)
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", tc.body, tc.headers...)
			data := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var got chatCompletion
			strict(t, data, &got)
			hasKeys(t, data, "id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier")
			var model struct{ Model string }
			json.Unmarshal([]byte(tc.body), &model)
			if !strings.HasPrefix(got.ID, "chatcmpl-") || got.Object != "chat.completion" || got.Model != model.Model || got.Created == 0 {
				t.Errorf("header fields: id %q object %q model %q created %d", got.ID, got.Object, got.Model, got.Created)
			}
			if len(got.Choices) != tc.wantChoices {
				t.Fatalf("%d choices, want %d", len(got.Choices), tc.wantChoices)
			}
			var textTokens int64
			seen := map[string]bool{}
			for i, c := range got.Choices {
				if c.Index != i || c.Message.Role != "assistant" || c.FinishReason != tc.wantFinish || c.Logprobs != nil || c.Message.Annotations == nil {
					t.Errorf("choice %d: %+v, want finish %q", i, c, tc.wantFinish)
				}
				n := countTokens(t, model.Model, c.Message.Content)
				if n != int64(tc.wantWords) {
					t.Errorf("choice %d: %d tokens in %q, want %d", i, n, c.Message.Content, tc.wantWords)
				}
				textTokens += n
				seen[c.Message.Content] = true
			}
			if len(seen) != tc.wantChoices {
				t.Errorf("choices are not distinct: %v", seen)
			}
			wantPrompt := tc.wantPrompt
			if wantPrompt == 0 {
				wantPrompt = chatPrompt(t, model.Model, "system", "You are a helpful assistant.", "user", "Hello!")
			}
			u := got.Usage
			if u == nil {
				t.Fatal("no usage")
			}
			if u.PromptTokens != wantPrompt || u.CompletionTokens != textTokens+tc.wantReasoning || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Errorf("usage %+v, want prompt %d completion %d", *u, wantPrompt, textTokens+tc.wantReasoning)
			}
			if u.PromptTokensDetails.CachedTokens != tc.wantCached || u.CompletionTokensDetails.ReasoningTokens != tc.wantReasoning {
				t.Errorf("usage details %+v, want cached %d reasoning %d", *u, tc.wantCached, tc.wantReasoning)
			}
		})
	}
}

// The same prompt gets the same reply; another prompt gets another one.
func TestChatCompletionIsDeterministic(t *testing.T) {
	_, ts := start(t, nil)
	reply := func(content string) string {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`+content+`"}]}`)
		var got chatCompletion
		strict(t, readAll(t, resp), &got)
		return got.Choices[0].Message.Content
	}
	a, b, c := reply("one"), reply("one"), reply("two")
	if a != b {
		t.Errorf("same prompt, different replies: %q, %q", a, b)
	}
	if a == c {
		t.Errorf("different prompts, same reply %q", a)
	}
}

func TestChatCompletionStream(t *testing.T) {
	for _, tc := range []struct {
		name         string
		body         string
		headers      []string
		wantChoices  int
		wantWords    int
		wantFinish   string
		includeUsage bool
		wantUsage    bool
	}{
		{name: "without usage", body: `{"model":"gpt-4o-mini","stream":true,"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop"},
		{name: "include_usage false", body: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":false},"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop"},
		{name: "include_usage", body: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", includeUsage: true, wantUsage: true},
		{name: "include_usage with No-Usage fault", headers: []string{"X-Mock-No-Usage: 1"},
			body:        `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":` + helloMessages + `}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", includeUsage: true},
		{name: "n and max_tokens", body: `{"model":"gpt-4","stream":true,"n":2,"max_tokens":7,"stream_options":{"include_usage":true},"messages":` + helloMessages + `}`,
			wantChoices: 2, wantWords: 7, wantFinish: "length", includeUsage: true, wantUsage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := start(t, nil)
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", tc.body, tc.headers...)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
				t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			events, err := readSSE(t, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(events); n == 0 || events[n-1].Data != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %v", events)
			}
			var model struct{ Model string }
			json.Unmarshal([]byte(tc.body), &model)
			texts := make([]string, tc.wantChoices)
			roles := make([]int, tc.wantChoices)
			finishes := make([]string, tc.wantChoices)
			var final *usage
			var id string
			for i, ev := range events[:len(events)-1] {
				if ev.Name != "" {
					t.Errorf("chat events have no event name, got %q", ev.Name)
				}
				var c chatChunk
				strict(t, []byte(ev.Data), &c)
				if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Model != model.Model {
					t.Errorf("chunk %d: %+v", i, c)
				}
				if id == "" {
					id = c.ID
				} else if c.ID != id {
					t.Errorf("chunk %d changes the id", i)
				}
				var m map[string]json.RawMessage
				json.Unmarshal([]byte(ev.Data), &m)
				usageJSON, hasUsage := m["usage"]
				if hasUsage != tc.includeUsage {
					t.Errorf("chunk %d has usage key %v, include_usage %v", i, hasUsage, tc.includeUsage)
				}
				if final != nil {
					t.Errorf("chunk %d after the usage chunk", i)
				}
				if len(c.Choices) == 0 {
					if c.Usage == nil || m["choices"] == nil || string(m["choices"]) != "[]" {
						t.Errorf("chunk %d without choices must carry usage and \"choices\":[]: %s", i, ev.Data)
					}
					final = c.Usage
					continue
				}
				if string(usageJSON) != "" && string(usageJSON) != "null" {
					t.Errorf("chunk %d with choices has usage %s", i, usageJSON)
				}
				hasKeys(t, []byte(ev.Data), "id", "object", "created", "model", "choices", "system_fingerprint")
				for _, ch := range c.Choices {
					if ch.Delta.Role != "" {
						roles[ch.Index]++
						if texts[ch.Index] != "" {
							t.Errorf("role chunk after content for choice %d", ch.Index)
						}
					}
					if finishes[ch.Index] != "" {
						t.Errorf("chunk for choice %d after its finish_reason", ch.Index)
					}
					if ch.Delta.Content != nil {
						texts[ch.Index] += *ch.Delta.Content
					}
					if ch.FinishReason != nil {
						finishes[ch.Index] = *ch.FinishReason
					}
				}
			}
			if (final != nil) != tc.wantUsage {
				t.Fatalf("usage chunk present %v, want %v", final != nil, tc.wantUsage)
			}
			var textTokens int64
			for i := range tc.wantChoices {
				if roles[i] != 1 || finishes[i] != tc.wantFinish {
					t.Errorf("choice %d: %d role chunks, finish %q, want 1 and %q", i, roles[i], finishes[i], tc.wantFinish)
				}
				n := countTokens(t, model.Model, texts[i])
				if n != int64(tc.wantWords) {
					t.Errorf("choice %d: %d tokens in %q, want %d", i, n, texts[i], tc.wantWords)
				}
				textTokens += n
			}
			// One event per generated word, plus role and finish chunks per choice.
			want := tc.wantChoices*(tc.wantWords+2) + 1
			if tc.wantUsage {
				want++
			}
			if len(events) != want {
				t.Errorf("%d events, want %d", len(events), want)
			}
			if final != nil {
				wantPrompt := chatPrompt(t, model.Model, "system", "You are a helpful assistant.", "user", "Hello!")
				if final.PromptTokens != wantPrompt || final.CompletionTokens != textTokens || final.TotalTokens != wantPrompt+textTokens {
					t.Errorf("usage %+v, want prompt %d completion %d", *final, wantPrompt, textTokens)
				}
			}
			waitIdle(t, s)
			if r := lastRequest(t, s); !r.Finished || r.Cancelled || r.Events != len(events) {
				t.Errorf("recorded %+v, want finished with %d events", r, len(events))
			}
		})
	}
}

func TestCompletions(t *testing.T) {
	const model = "gpt-3.5-turbo-instruct"
	for _, tc := range []struct {
		name        string
		body        string
		wantChoices int
		wantWords   int
		wantFinish  string
		wantPrompt  int64
	}{
		{name: "string prompt", body: `{"model":"` + model + `","prompt":"Say this is a test"}`,
			wantChoices: 1, wantWords: 16, wantFinish: "stop", wantPrompt: 5},
		{name: "prompts and n", body: `{"model":"` + model + `","prompt":["Say this is a test","Hi"],"n":2}`,
			wantChoices: 4, wantWords: 16, wantFinish: "stop", wantPrompt: 6},
		{name: "token prompt", body: `{"model":"` + model + `","prompt":[1,2,3],"max_tokens":3}`,
			wantChoices: 1, wantWords: 3, wantFinish: "length", wantPrompt: 3},
		{name: "token prompts", body: `{"model":"` + model + `","prompt":[[1,2],[3]]}`,
			wantChoices: 2, wantWords: 16, wantFinish: "stop", wantPrompt: 3},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", tc.name, stream), func(t *testing.T) {
				_, ts := start(t, nil)
				body := tc.body
				if stream {
					body = strings.TrimSuffix(body, "}") + `,"stream":true,"stream_options":{"include_usage":true}}`
				}
				resp := post(t, context.Background(), ts.URL+"/v1/completions", body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
				}
				texts := make([]string, tc.wantChoices)
				finishes := make([]string, tc.wantChoices)
				var u *usage
				if !stream {
					data := readAll(t, resp)
					var got completion
					strict(t, data, &got)
					hasKeys(t, data, "id", "object", "created", "model", "choices", "usage", "system_fingerprint")
					if !strings.HasPrefix(got.ID, "cmpl-") || got.Object != "text_completion" || len(got.Choices) != tc.wantChoices {
						t.Fatalf("completion %+v", got)
					}
					for i, c := range got.Choices {
						if c.Index != i || c.FinishReason == nil {
							t.Fatalf("choice %d: %+v", i, c)
						}
						texts[i], finishes[i] = c.Text, *c.FinishReason
					}
					u = got.Usage
				} else {
					events, err := readSSE(t, resp.Body)
					if err != nil || len(events) == 0 || events[len(events)-1].Data != "[DONE]" {
						t.Fatalf("stream: %v, %v", err, events)
					}
					for _, ev := range events[:len(events)-1] {
						var c completion
						strict(t, []byte(ev.Data), &c)
						if c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") {
							t.Errorf("chunk %+v", c)
						}
						if len(c.Choices) == 0 {
							u = c.Usage
						}
						for _, ch := range c.Choices {
							texts[ch.Index] += ch.Text
							if ch.FinishReason != nil {
								finishes[ch.Index] = *ch.FinishReason
							}
						}
					}
					if want := tc.wantChoices*(tc.wantWords+1) + 2; len(events) != want {
						t.Errorf("%d events, want %d", len(events), want)
					}
				}
				var textTokens int64
				for i := range texts {
					n := countTokens(t, model, texts[i])
					if n != int64(tc.wantWords) || finishes[i] != tc.wantFinish {
						t.Errorf("choice %d: %d tokens, finish %q; want %d, %q", i, n, finishes[i], tc.wantWords, tc.wantFinish)
					}
					textTokens += n
				}
				if u == nil || u.PromptTokens != tc.wantPrompt || u.CompletionTokens != textTokens || u.TotalTokens != tc.wantPrompt+textTokens {
					t.Errorf("usage %+v, want prompt %d completion %d", u, tc.wantPrompt, textTokens)
				}
			})
		}
	}
}

func TestResponses(t *testing.T) {
	const model = "gpt-4o-mini"
	for _, tc := range []struct {
		name          string
		body          string
		headers       []string
		wantWords     int
		wantStatus    string
		wantPrompt    int64
		wantReasoning int64
		wantCached    int64
		wantUsage     bool
	}{
		{name: "string input", body: `{"model":"` + model + `","input":"Hello!"}`,
			wantWords: 16, wantStatus: "completed", wantPrompt: 3 + 3 + 1 + 2, wantUsage: true},
		{name: "instructions and items", body: `{"model":"` + model + `","instructions":"You are a helpful assistant.","input":[{"role":"user","content":[{"type":"input_text","text":"Hello!"}]},{"type":"function_call_output","call_id":"c","output":"42"}]}`,
			wantWords: 16, wantStatus: "completed", wantPrompt: 3 + (3 + 1 + 6) + (3 + 1 + 2), wantUsage: true},
		{name: "max_output_tokens", body: `{"model":"` + model + `","input":"Hello!","max_output_tokens":5}`,
			wantWords: 5, wantStatus: "incomplete", wantPrompt: 9, wantUsage: true},
		{name: "reasoning and cached", headers: []string{"X-Mock-Reasoning-Tokens: 3", "X-Mock-Cached-Tokens: 4"},
			body:      `{"model":"` + model + `","input":"Hello!"}`,
			wantWords: 16, wantStatus: "completed", wantPrompt: 9, wantReasoning: 3, wantCached: 4, wantUsage: true},
		{name: "no usage", headers: []string{"X-Mock-No-Usage: true"}, body: `{"model":"` + model + `","input":"Hello!"}`,
			wantWords: 16, wantStatus: "completed"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", tc.name, stream), func(t *testing.T) {
				_, ts := start(t, nil)
				body := tc.body
				if stream {
					body = strings.TrimSuffix(body, "}") + `,"stream":true}`
				}
				resp := post(t, context.Background(), ts.URL+"/v1/responses", body, tc.headers...)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
				}
				var got response
				var streamed string
				if !stream {
					data := readAll(t, resp)
					strict(t, data, &got)
					hasKeys(t, data, "id", "object", "created_at", "status", "error", "incomplete_details", "instructions",
						"max_output_tokens", "model", "output", "parallel_tool_calls", "previous_response_id", "reasoning",
						"store", "temperature", "text", "tool_choice", "tools", "top_p", "truncation", "usage", "user", "metadata")
				} else {
					streamed = checkResponseEvents(t, resp, tc.wantStatus, &got)
				}
				if !strings.HasPrefix(got.ID, "resp_") || got.Object != "response" || got.Model != model || got.Status != tc.wantStatus {
					t.Errorf("response %+v", got)
				}
				if (got.IncompleteDetails != nil) != (tc.wantStatus == "incomplete") ||
					got.IncompleteDetails != nil && got.IncompleteDetails.Reason != "max_output_tokens" {
					t.Errorf("incomplete_details %+v with status %s", got.IncompleteDetails, got.Status)
				}
				var msg *item
				for i := range got.Output {
					switch it := &got.Output[i]; it.Type {
					case "message":
						msg = it
					case "reasoning":
						if tc.wantReasoning == 0 || !strings.HasPrefix(it.ID, "rs_") {
							t.Errorf("reasoning item %+v", it)
						}
					}
				}
				if msg == nil || len(msg.Content) != 1 || msg.Role != "assistant" || !strings.HasPrefix(msg.ID, "msg_") {
					t.Fatalf("output %+v", got.Output)
				}
				text := msg.Content[0].Text
				if stream && streamed != text {
					t.Errorf("deltas %q != final text %q", streamed, text)
				}
				if n := countTokens(t, model, text); n != int64(tc.wantWords) {
					t.Errorf("%d tokens in %q, want %d", n, text, tc.wantWords)
				}
				if !tc.wantUsage {
					if got.Usage != nil {
						t.Errorf("usage %+v with X-Mock-No-Usage", got.Usage)
					}
					return
				}
				u := got.Usage
				out := int64(tc.wantWords) + tc.wantReasoning
				if u == nil || u.InputTokens != tc.wantPrompt || u.OutputTokens != out || u.TotalTokens != tc.wantPrompt+out ||
					u.InputTokensDetails.CachedTokens != tc.wantCached || u.OutputTokensDetails.ReasoningTokens != tc.wantReasoning {
					t.Errorf("usage %+v, want input %d output %d cached %d reasoning %d", u, tc.wantPrompt, out, tc.wantCached, tc.wantReasoning)
				}
			})
		}
	}
}

// checkResponseEvents reads a Responses stream, checks the order and framing of its
// typed events, stores the final response in got and returns the concatenated deltas.
func checkResponseEvents(t *testing.T, resp *http.Response, wantStatus string, got *response) string {
	t.Helper()
	events, err := readSSE(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var deltas string
	for i, ev := range events {
		var e responseEvent
		strict(t, []byte(ev.Data), &e)
		if e.Type != ev.Name {
			t.Errorf("event %d: name %q, data type %q", i, ev.Name, e.Type)
		}
		if e.SequenceNumber == nil || *e.SequenceNumber != i {
			t.Errorf("event %d: sequence_number %v", i, e.SequenceNumber)
		}
		switch e.Type {
		case "response.created", "response.in_progress":
			if e.Response == nil || e.Response.Status != "in_progress" || len(e.Response.Output) != 0 || e.Response.Usage != nil {
				t.Errorf("%s: %+v", e.Type, e.Response)
			}
		case "response.output_text.delta":
			if e.OutputIndex == nil || e.ContentIndex == nil || e.ItemID == "" || e.Logprobs == nil {
				t.Errorf("delta event %s", ev.Data)
			}
			deltas += e.Delta
		case "response.completed", "response.incomplete":
			*got = *e.Response
		}
		if len(types) == 0 || types[len(types)-1] != e.Type {
			types = append(types, e.Type)
		}
	}
	final := "response.completed"
	if wantStatus == "incomplete" {
		final = "response.incomplete"
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", final}
	joined := strings.Join(types, " ")
	// A reasoning item adds its own added/done pair before the message's.
	joined = strings.Replace(joined, "response.output_item.added response.output_item.done response.output_item.added", "response.output_item.added", 1)
	if joined != strings.Join(want, " ") {
		t.Errorf("event types %v, want %v", types, want)
	}
	return deltas
}

func TestEmbeddings(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		wantCount  int
		wantDims   int
		wantTokens int64
	}{
		{name: "string", body: `{"model":"text-embedding-3-small","input":"The food was delicious and the waiter..."}`,
			wantCount: 1, wantDims: 1536, wantTokens: 8},
		{name: "strings large", body: `{"model":"text-embedding-3-large","input":["Hello!","Hello world"]}`,
			wantCount: 2, wantDims: 3072, wantTokens: 4},
		{name: "dimensions", body: `{"model":"text-embedding-3-small","input":"Hello!","dimensions":256}`,
			wantCount: 1, wantDims: 256, wantTokens: 2},
		{name: "tokens", body: `{"model":"text-embedding-3-small","input":[9906,0]}`,
			wantCount: 1, wantDims: 1536, wantTokens: 2},
		{name: "token arrays", body: `{"model":"text-embedding-3-small","input":[[9906,0],[1,2,3]]}`,
			wantCount: 2, wantDims: 1536, wantTokens: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, nil)
			floats := fetchEmbeddings(t, ts.URL, tc.body, tc.wantCount, tc.wantTokens)
			base64Body := strings.TrimSuffix(tc.body, "}") + `,"encoding_format":"base64"}`
			decoded := fetchEmbeddings(t, ts.URL, base64Body, tc.wantCount, tc.wantTokens)
			for i, v := range floats {
				if len(v) != tc.wantDims {
					t.Errorf("embedding %d: %d dimensions, want %d", i, len(v), tc.wantDims)
				}
				var norm float64
				for j, f := range v {
					norm += float64(f) * float64(f)
					if f != decoded[i][j] {
						t.Fatalf("embedding %d[%d]: float %v, base64 %v", i, j, f, decoded[i][j])
					}
				}
				if math.Abs(norm-1) > 1e-3 {
					t.Errorf("embedding %d: norm² %v, want 1", i, norm)
				}
			}
		})
	}
}

// fetchEmbeddings posts body and returns the vectors, checking shapes and usage.
func fetchEmbeddings(t *testing.T, url, body string, wantCount int, wantTokens int64) [][]float32 {
	t.Helper()
	resp := post(t, context.Background(), url+"/v1/embeddings", body)
	data := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var got embeddingList
	strict(t, data, &got)
	if got.Object != "list" || len(got.Data) != wantCount || got.Usage == nil ||
		got.Usage.PromptTokens != wantTokens || got.Usage.TotalTokens != wantTokens {
		t.Fatalf("embeddings: object %q, %d items, usage %+v; want %d items, %d tokens", got.Object, len(got.Data), got.Usage, wantCount, wantTokens)
	}
	var out [][]float32
	for i, d := range got.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Errorf("item %d: object %q index %d", i, d.Object, d.Index)
		}
		var v []float32
		if d.Embedding[0] == '"' {
			var s string
			json.Unmarshal(d.Embedding, &s)
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(raw)%4 != 0 {
				t.Fatalf("base64 embedding: %v, %d bytes", err, len(raw))
			}
			for j := 0; j < len(raw); j += 4 {
				v = append(v, math.Float32frombits(binary.LittleEndian.Uint32(raw[j:])))
			}
		} else if err := json.Unmarshal(d.Embedding, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestModels(t *testing.T) {
	_, ts := start(t, func(s *mockupstream.Server) { s.Models = []string{"gpt-4o-mini", "my-custom-model"} })
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	data := readAll(t, resp)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	strict(t, data, &list)
	ids := map[string]int{}
	for _, m := range list.Data {
		ids[m.ID]++
		if m.Object != "model" || m.Created == 0 || m.OwnedBy == "" {
			t.Errorf("model %+v", m)
		}
	}
	if list.Object != "list" || ids["my-custom-model"] != 1 || ids["gpt-4o-mini"] != 1 || ids["text-embedding-3-small"] != 1 {
		t.Errorf("models %s", data)
	}
	for _, tc := range []struct {
		path   string
		status int
	}{{"/v1/models/my-custom-model", 200}, {"/v1/models/nope", 404}} {
		resp, err := http.Get(ts.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if data := readAll(t, resp); resp.StatusCode != tc.status {
			t.Errorf("GET %s: %d %s", tc.path, resp.StatusCode, data)
		}
	}
}
