package mockupstream_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

// The upstreams creditgate must not trust: one that writes past the cap it was
// asked for, one that reports more usage than it generated.
func TestLyingUpstreams(t *testing.T) {
	chat := func(extra string) string {
		return `{"model":"gpt-4o-mini","messages":` + helloMessages + extra + `}`
	}
	for _, tc := range []struct {
		name, path, body string
		headers          []string
		words            int    // generated
		prompt, output   int64  // reported
		finish           string // finish reason or response status
	}{
		{"ignores max_tokens", "/v1/chat/completions", chat(`,"max_tokens":4`), []string{"X-Mock-Ignore-Cap: 10"}, 40, 19, 40, "stop"},
		{"ignores max_completion_tokens", "/v1/chat/completions", chat(`,"max_completion_tokens":3`), []string{"X-Mock-Ignore-Cap: 5"}, 15, 19, 15, "stop"},
		{"ignores the default length", "/v1/chat/completions", chat(""), []string{"X-Mock-Ignore-Cap: 3"}, 48, 19, 48, "stop"},
		{"ignores max_output_tokens", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hello!","max_output_tokens":16}`, []string{"X-Mock-Ignore-Cap: 4"}, 64, 9, 64, "completed"},
		{"inflates usage", "/v1/chat/completions", chat(`,"max_tokens":4`), []string{"X-Mock-Inflate-Usage: 10"}, 4, 190, 40, "length"},
		{"inflates usage of completions", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":2}`,
			[]string{"X-Mock-Inflate-Usage: 10"}, 2, 50, 20, "length"},
		{"both", "/v1/chat/completions", chat(`,"max_tokens":2`), []string{"X-Mock-Ignore-Cap: 10", "X-Mock-Inflate-Usage: 10"}, 20, 190, 200, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, nil)
			resp := post(t, context.Background(), ts.URL+tc.path, tc.body, tc.headers...)
			data := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			var v struct {
				Choices []struct {
					Text         string
					Message      struct{ Content string }
					FinishReason string `json:"finish_reason"`
				}
				Status string
				Output []struct {
					Content []struct{ Text string }
				}
				Usage struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
					InputTokens      int64 `json:"input_tokens"`
					OutputTokens     int64 `json:"output_tokens"`
				}
			}
			if err := json.Unmarshal(data, &v); err != nil {
				t.Fatal(err)
			}
			text, finish := "", v.Status
			prompt, output := v.Usage.PromptTokens+v.Usage.InputTokens, v.Usage.CompletionTokens+v.Usage.OutputTokens
			if len(v.Choices) > 0 {
				text, finish = v.Choices[0].Message.Content+v.Choices[0].Text, v.Choices[0].FinishReason
			} else if len(v.Output) > 0 {
				text = v.Output[0].Content[0].Text
			}
			if got := len(strings.Fields(text)); got != tc.words || prompt != tc.prompt || output != tc.output || finish != tc.finish {
				t.Fatalf("%d words, usage %d+%d, finish %q; want %d, %d+%d, %q", got, prompt, output, finish, tc.words, tc.prompt, tc.output, tc.finish)
			}
		})
	}
}

// A stream that ignores its cap streams every word it wrote, one per event.
func TestIgnoreCapStream(t *testing.T) {
	_, ts := start(t, nil)
	body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":3,"messages":` + helloMessages + `}`
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", body, "X-Mock-Ignore-Cap: 7")
	events, err := readSSE(t, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// role, 21 words, finish, [DONE]
	if len(events) != 24 || !strings.Contains(events[22].Data, `"finish_reason":"stop"`) {
		t.Fatalf("%d events, finish %s", len(events), events[len(events)-2].Data)
	}
}

// X-Mock-Cut-Body sends the headers and so many bytes of the body, then drops the
// connection: the client reads exactly those bytes and then an error.
func TestCutBody(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		cut        int
	}{
		{"plain", chatBody, 57},
		{"stream", streamBody, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := start(t, nil)
			full := readAll(t, post(t, context.Background(), ts.URL+"/v1/chat/completions", tc.body))
			if len(full) <= tc.cut {
				t.Fatalf("the whole answer is %d bytes, no longer than the cut", len(full))
			}
			resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", tc.body, "X-Mock-Cut-Body: "+itoa(tc.cut))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got, err := io.ReadAll(resp.Body)
			if err == nil || len(got) != tc.cut {
				t.Fatalf("read %d bytes then %v, want %d bytes then an error", len(got), err, tc.cut)
			}
			waitIdle(t, s)
			if r := lastRequest(t, s); r.Finished || r.Cancelled {
				t.Fatalf("recorded %+v, want dropped", r)
			}
		})
	}
}

// X-Mock-HTML answers 200 with a page, whatever was asked.
func TestHTMLAnswer(t *testing.T) {
	_, ts := start(t, nil)
	for _, body := range []string{chatBody, streamBody} {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", body, "X-Mock-HTML: 1")
		data := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.HasPrefix(string(data), "<!DOCTYPE html>") {
			t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
	}
}

// The hook sets the lies too.
func TestLiesFromTheHook(t *testing.T) {
	_, ts := start(t, func(s *mockupstream.Server) {
		s.Behavior = func(*http.Request, []byte) mockupstream.Behavior { return mockupstream.Behavior{HTML: true} }
	})
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", chatBody)
	if data := readAll(t, resp); !strings.HasPrefix(string(data), "<!DOCTYPE html>") {
		t.Fatalf("%s", data)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
