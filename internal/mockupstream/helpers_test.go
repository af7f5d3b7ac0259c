package mockupstream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pkoukk/tiktoken-go"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

// The structs below mirror OpenAI's documented objects; responses are decoded with
// DisallowUnknownFields, so a misspelt or invented field fails the test.

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             *usage       `json:"usage"`
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index   int `json:"index"`
	Message struct {
		Role        string  `json:"role"`
		Content     string  `json:"content"`
		Refusal     *string `json:"refusal"`
		Annotations []any   `json:"annotations"`
	} `json:"message"`
	Logprobs     any    `json:"logprobs"`
	FinishReason string `json:"finish_reason"`
}

type usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
		AudioTokens  int64 `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int64 `json:"reasoning_tokens"`
		AudioTokens              int64 `json:"audio_tokens"`
		AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

type chatChunk struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	ServiceTier       string `json:"service_tier"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"delta"`
		Logprobs     any     `json:"logprobs"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

type completion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []completionChoice `json:"choices"`
	Usage             *usage             `json:"usage"`
	SystemFingerprint string             `json:"system_fingerprint"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type response struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	CreatedAt         int64  `json:"created_at"`
	Status            string `json:"status"`
	Background        bool   `json:"background"`
	Error             any    `json:"error"`
	IncompleteDetails *struct {
		Reason string `json:"reason"`
	} `json:"incomplete_details"`
	Instructions       *string `json:"instructions"`
	MaxOutputTokens    *int    `json:"max_output_tokens"`
	MaxToolCalls       *int    `json:"max_tool_calls"`
	Model              string  `json:"model"`
	Output             []item  `json:"output"`
	ParallelToolCalls  bool    `json:"parallel_tool_calls"`
	PreviousResponseID *string `json:"previous_response_id"`
	Reasoning          struct {
		Effort  *string `json:"effort"`
		Summary *string `json:"summary"`
	} `json:"reasoning"`
	ServiceTier string  `json:"service_tier"`
	Store       bool    `json:"store"`
	Temperature float64 `json:"temperature"`
	Text        struct {
		Format struct {
			Type string `json:"type"`
		} `json:"format"`
		Verbosity string `json:"verbosity"`
	} `json:"text"`
	ToolChoice  string         `json:"tool_choice"`
	Tools       []any          `json:"tools"`
	TopLogprobs int            `json:"top_logprobs"`
	TopP        float64        `json:"top_p"`
	Truncation  string         `json:"truncation"`
	Usage       *responseUsage `json:"usage"`
	User        *string        `json:"user"`
	Metadata    map[string]any `json:"metadata"`
}

// item is a message or a reasoning output item.
type item struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Role    string       `json:"role"`
	Content []outputText `json:"content"`
	Summary []any        `json:"summary"`
}

type outputText struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
	Text        string `json:"text"`
}

type responseUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// responseEvent is any Responses stream event: the union of their fields.
type responseEvent struct {
	Type           string      `json:"type"`
	SequenceNumber *int        `json:"sequence_number"`
	Response       *response   `json:"response"`
	OutputIndex    *int        `json:"output_index"`
	ContentIndex   *int        `json:"content_index"`
	ItemID         string      `json:"item_id"`
	Item           *item       `json:"item"`
	Part           *outputText `json:"part"`
	Delta          string      `json:"delta"`
	Text           *string     `json:"text"`
	Logprobs       []any       `json:"logprobs"`
}

type embeddingList struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage *struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	} `json:"usage"`
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// tester is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// strict decodes data into v, failing on unknown fields and trailing data.
func strict(t tester, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
	if dec.More() {
		t.Fatalf("trailing data after %T: %s", v, data)
	}
}

// hasKeys fails unless the JSON object has every key, null values included: OpenAI
// sends e.g. "logprobs": null rather than leaving the key out.
func hasKeys(t tester, data []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, data)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %s", k, data)
		}
	}
}

func start(t testing.TB, configure func(*mockupstream.Server)) (*mockupstream.Server, *httptest.Server) {
	t.Helper()
	s := mockupstream.New()
	if configure != nil {
		configure(s)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// post sends a JSON body with the given headers ("Key: value" pairs).
func post(t testing.TB, ctx context.Context, url, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Name string // from "event:", "" when absent
	Data string
}

// readSSE reads events until the body ends, checking the framing: "event:" and "data:"
// lines only, each event ended by a blank line.
func readSSE(t testing.TB, body io.Reader) ([]sseEvent, error) {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	r := bufio.NewReader(body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if line != "" || cur != (sseEvent{}) {
				t.Errorf("stream ends inside an event: %q", line)
			}
			if err == io.EOF {
				err = nil
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if cur.Data == "" {
				t.Errorf("event without data: %+v", cur)
			}
			events = append(events, cur)
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.Name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if cur.Data != "" {
				t.Errorf("two data lines in one event")
			}
			cur.Data = strings.TrimPrefix(line, "data: ")
		default:
			t.Errorf("unexpected SSE line %q", line)
		}
	}
}

var encodings = map[string]string{
	"gpt-4o-mini":            tiktoken.MODEL_O200K_BASE,
	"gpt-5-mini":             tiktoken.MODEL_O200K_BASE,
	"gpt-4":                  tiktoken.MODEL_CL100K_BASE,
	"gpt-3.5-turbo-instruct": tiktoken.MODEL_CL100K_BASE,
	"text-embedding-3-small": tiktoken.MODEL_CL100K_BASE,
	"text-embedding-3-large": tiktoken.MODEL_CL100K_BASE,
}

// countTokens counts text independently of the mock, with tiktoken-go's own encoder.
func countTokens(t tester, model, text string) int64 {
	t.Helper()
	name, ok := encodings[model]
	if !ok {
		t.Fatalf("no encoding listed for model %q", model)
	}
	tk, err := mockupstream.ReferenceTokenizer(name)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(tk.EncodeOrdinary(text)))
}

// chatPrompt is OpenAI's documented count of a chat prompt of (role, content) pairs.
func chatPrompt(t tester, model string, roleContent ...string) int64 {
	n := int64(3)
	for i := 0; i < len(roleContent); i += 2 {
		n += 3 + countTokens(t, model, roleContent[i]) + countTokens(t, model, roleContent[i+1])
	}
	return n
}

func waitIdle(t testing.TB, s *mockupstream.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("mock still busy: %v", err)
	}
}

func lastRequest(t testing.TB, s *mockupstream.Server) mockupstream.Recorded {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request recorded")
	}
	return reqs[len(reqs)-1]
}
