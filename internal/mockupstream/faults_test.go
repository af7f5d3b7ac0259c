package mockupstream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

const (
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello!"}]}`
	// A default stream: role chunk, 16 words, finish chunk, usage chunk, [DONE].
	streamEvents = 20
)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*mockupstream.Server)
		method    string
		path      string
		body      string
		headers   []string
		status    int
		wantType  string
		wantCode  string // "" for null
		wantParam string // "" for null
		wantMsg   string // a part of the message
	}{
		{name: "unknown path", path: "/v1/nope", body: "{}", status: 404,
			wantType: "invalid_request_error", wantCode: "unknown_url", wantMsg: "Invalid URL (POST /v1/nope)"},
		{name: "no /v1", path: "/chat/completions", body: chatBody, status: 404, wantType: "invalid_request_error", wantCode: "unknown_url"},
		// GET /v1/chat/completions lists stored completions (stored.go); GET /v1/embeddings is nothing.
		{name: "wrong method", method: http.MethodGet, path: "/v1/embeddings", status: 404,
			wantType: "invalid_request_error", wantCode: "unknown_url", wantMsg: "GET /v1/embeddings"},
		{name: "wrong method on a stored object", method: http.MethodPut, path: "/v1/chat/completions/chatcmpl-x", status: 404,
			wantType: "invalid_request_error", wantCode: "unknown_url", wantMsg: "PUT /v1/chat/completions/chatcmpl-x"},
		{name: "wrong key", configure: func(s *mockupstream.Server) { s.APIKey = "sk-upstream" },
			path: "/v1/chat/completions", body: chatBody, headers: []string{"Authorization: Bearer sk-cg-client"}, status: 401,
			wantType: "invalid_request_error", wantCode: "invalid_api_key", wantMsg: "Incorrect API key provided"},
		{name: "missing key", configure: func(s *mockupstream.Server) { s.APIKey = "sk-upstream" },
			path: "/v1/chat/completions", body: chatBody, status: 401,
			wantType: "invalid_request_error", wantCode: "invalid_api_key", wantMsg: "You didn't provide an API key"},
		{name: "key is checked before the path", configure: func(s *mockupstream.Server) { s.APIKey = "sk-upstream" },
			path: "/v1/nope", body: "{}", status: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "malformed JSON", path: "/v1/chat/completions", body: `{"model":`, status: 400,
			wantType: "invalid_request_error", wantMsg: "We could not parse the JSON body"},
		{name: "wrong type", path: "/v1/chat/completions", body: `{"model":5,"messages":[]}`, status: 400,
			wantType: "invalid_request_error", wantCode: "invalid_type", wantParam: "model"},
		{name: "missing model", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400,
			wantType: "invalid_request_error", wantMsg: "you must provide a model parameter"},
		{name: "missing messages", path: "/v1/chat/completions", body: `{"model":"gpt-4o-mini"}`, status: 400,
			wantType: "invalid_request_error", wantCode: "missing_required_parameter", wantParam: "messages"},
		{name: "n too small", path: "/v1/chat/completions", body: `{"model":"gpt-4o-mini","n":0,"messages":[{"role":"user","content":"x"}]}`, status: 400,
			wantType: "invalid_request_error", wantCode: "integer_below_min_value", wantParam: "n"},
		{name: "max_tokens too small", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","prompt":"x","max_tokens":0}`, status: 400,
			wantType: "invalid_request_error", wantCode: "integer_below_min_value", wantParam: "max_tokens"},
		{name: "missing prompt", path: "/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct"}`, status: 400,
			wantType: "invalid_request_error", wantCode: "missing_required_parameter", wantParam: "prompt"},
		{name: "missing input", path: "/v1/responses", body: `{"model":"gpt-4o-mini"}`, status: 400,
			wantType: "invalid_request_error", wantCode: "missing_required_parameter", wantParam: "input"},
		{name: "bad embedding input", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":{}}`, status: 400,
			wantType: "invalid_request_error", wantMsg: "must be a string, an array of strings"},
		{name: "empty embedding input", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":""}`, status: 400,
			wantType: "invalid_request_error", wantParam: "input"},
		{name: "too many dimensions", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"x","dimensions":2000}`, status: 400,
			wantType: "invalid_request_error", wantCode: "integer_above_max_value", wantParam: "dimensions"},
		{name: "bad encoding_format", path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}`, status: 400,
			wantType: "invalid_request_error", wantCode: "invalid_value", wantParam: "encoding_format"},
		{name: "bad mock header", path: "/v1/chat/completions", body: chatBody, headers: []string{"X-Mock-Delay: soon"}, status: 400,
			wantType: "invalid_request_error", wantMsg: `invalid X-Mock-Delay header "soon"`},
		{name: "bad mock status", path: "/v1/chat/completions", body: chatBody, headers: []string{"X-Mock-Status: 200"}, status: 400,
			wantType: "invalid_request_error", wantMsg: "X-Mock-Status"},
		{name: "injected 500", path: "/v1/chat/completions", body: chatBody, headers: []string{"X-Mock-Status: 500"}, status: 500,
			wantType: "server_error", wantMsg: "The server had an error"},
		{name: "injected 429", path: "/v1/responses", body: `{"model":"gpt-4o-mini","input":"x"}`, headers: []string{"X-Mock-Status: 429"}, status: 429,
			wantType: "requests", wantCode: "rate_limit_exceeded", wantMsg: "Rate limit reached"},
		{name: "injected 400", path: "/v1/chat/completions", body: chatBody, headers: []string{"X-Mock-Status: 400"}, status: 400,
			wantType: "invalid_request_error", wantCode: "context_length_exceeded", wantParam: "messages"},
		{name: "injected 503 on a stream", path: "/v1/chat/completions", body: streamBody, headers: []string{"X-Mock-Status: 503"}, status: 503,
			wantType: "server_error", wantMsg: "overloaded"},
		{name: "injected 502 on models", method: http.MethodGet, path: "/v1/models", headers: []string{"X-Mock-Status: 502"}, status: 502,
			wantType: "server_error"},
		{name: "injected status from the hook",
			configure: func(s *mockupstream.Server) {
				s.Behavior = func(*http.Request, []byte) mockupstream.Behavior { return mockupstream.Behavior{Status: 429} }
			},
			path: "/v1/embeddings", body: `{"model":"text-embedding-3-small","input":"x"}`, status: 429,
			wantType: "requests", wantCode: "rate_limit_exceeded"},
		{name: "header overrides the hook",
			configure: func(s *mockupstream.Server) {
				s.Behavior = func(*http.Request, []byte) mockupstream.Behavior { return mockupstream.Behavior{Status: 429} }
			},
			path: "/v1/chat/completions", body: chatBody, headers: []string{"X-Mock-Status: 500"}, status: 500, wantType: "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := start(t, tc.configure)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, ts.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.headers {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data := readAll(t, resp)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d (%s), want %d: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, data)
			}
			var e errorBody
			strict(t, data, &e)
			hasKeys(t, data, "error")
			var inner struct{ Error map[string]any }
			strict(t, data, &inner)
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := inner.Error[k]; !ok {
					t.Errorf("error has no %q key: %s", k, data)
				}
			}
			if e.Error.Type != tc.wantType || deref(e.Error.Code) != tc.wantCode || deref(e.Error.Param) != tc.wantParam ||
				!strings.Contains(e.Error.Message, tc.wantMsg) || e.Error.Message == "" {
				t.Errorf("error %s, want type %q code %q param %q message with %q", data, tc.wantType, tc.wantCode, tc.wantParam, tc.wantMsg)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// The key check must not echo the key that was sent, even masked.
func TestWrongKeyIsNotEchoed(t *testing.T) {
	_, ts := start(t, func(s *mockupstream.Server) { s.APIKey = "sk-upstream" })
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", chatBody, "Authorization: Bearer sk-cg-secret1234")
	if data := readAll(t, resp); strings.Contains(string(data), "1234") || strings.Contains(string(data), "sk-cg") {
		t.Errorf("401 body echoes the key: %s", data)
	}
	resp = post(t, context.Background(), ts.URL+"/v1/chat/completions", chatBody, "Authorization: Bearer sk-upstream")
	if data := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("right key: status %d: %s", resp.StatusCode, data)
	}
}

func TestRecording(t *testing.T) {
	s, ts := start(t, func(s *mockupstream.Server) { s.APIKey = "sk-upstream" })
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", chatBody, "Authorization: Bearer sk-upstream", "X-Custom: yes")
	readAll(t, resp)
	resp = post(t, context.Background(), ts.URL+"/v1/embeddings", `{}`, "Authorization: Bearer wrong")
	readAll(t, resp)
	waitIdle(t, s)
	reqs := s.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests recorded, want 2", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" || string(r.Body) != chatBody ||
		r.Header.Get("Authorization") != "Bearer sk-upstream" || r.Header.Get("X-Custom") != "yes" || !r.Finished || r.Cancelled || r.Events != 0 {
		t.Errorf("first request %+v", r)
	}
	if r := reqs[1]; r.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer wrong" || !r.Finished {
		t.Errorf("second request %+v", r)
	}
	// The snapshot is a copy.
	reqs[0].Header.Set("X-Custom", "changed")
	if s.Requests()[0].Header.Get("X-Custom") != "yes" {
		t.Error("Requests returns shared headers")
	}
	s.Reset()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests after Reset", n)
	}
}

func TestMaxRecorded(t *testing.T) {
	s, ts := start(t, func(s *mockupstream.Server) { s.MaxRecorded = 3 })
	for i := range 10 {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", chatBody, fmt.Sprintf("X-Seq: %d", i))
		readAll(t, resp)
	}
	waitIdle(t, s)
	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests kept, want 3", len(reqs))
	}
	for i, r := range reqs {
		if want := fmt.Sprint(7 + i); r.Header.Get("X-Seq") != want {
			t.Errorf("request %d is X-Seq %s, want %s", i, r.Header.Get("X-Seq"), want)
		}
	}
}

// streamUntil posts a stream and reads n events, then returns the response and a
// cancel that makes the client go away.
func streamUntil(t *testing.T, url string, n int, headers ...string) (*bufio.Reader, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp := post(t, ctx, url+"/v1/chat/completions", streamBody, headers...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	for i := range n {
		if _, err := readEvent(r); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return r, cancel
}

// readEvent reads one "data: …\n\n" event.
func readEvent(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	blank, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "data: ") || blank != "\n" {
		return "", fmt.Errorf("bad event %q %q", line, blank)
	}
	return line, nil
}

func TestStreamFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		// headers or hook set the fault
		headers []string
		hook    func(*http.Request, []byte) mockupstream.Behavior
		// read events before the client leaves; -1: read to the end
		read          int
		wantReadErr   bool // the body ends in an error (dropped connection)
		wantEvents    int  // recorded
		wantFinished  bool
		wantCancelled bool
		wantLast      string // prefix of the last event read, when reading to the end
	}{
		{name: "drop after 3", headers: []string{"X-Mock-Drop-After: 3"}, read: -1, wantReadErr: true, wantEvents: 3},
		{name: "drop after all events", headers: []string{"X-Mock-Drop-After: 20"}, read: -1, wantReadErr: true, wantEvents: streamEvents},
		{name: "drop beyond the stream", headers: []string{"X-Mock-Drop-After: 21"}, read: -1, wantEvents: streamEvents, wantFinished: true, wantLast: "data: [DONE]"},
		{name: "drop from the hook", hook: func(*http.Request, []byte) mockupstream.Behavior { return mockupstream.Behavior{DropAfter: 5} },
			read: -1, wantReadErr: true, wantEvents: 5},
		{name: "stall after 2", headers: []string{"X-Mock-Stall-After: 2"}, read: 2, wantEvents: 2, wantCancelled: true},
		{name: "client leaves mid-stream", headers: []string{"X-Mock-Event-Delay: 1h"}, read: 1, wantEvents: 1, wantCancelled: true},
		{name: "client leaves during the delay", headers: []string{"X-Mock-Delay: 1h"}, read: 0, wantEvents: 0, wantCancelled: true},
		{name: "short delays", headers: []string{"X-Mock-Delay: 1ms", "X-Mock-Event-Delay: 1ms"}, read: -1,
			wantEvents: streamEvents, wantFinished: true, wantLast: "data: [DONE]"},
		{name: "no done", headers: []string{"X-Mock-No-Done: 1"}, read: -1, wantEvents: streamEvents - 1, wantFinished: true, wantLast: `data: {"id":"chatcmpl-`},
		{name: "no usage", headers: []string{"X-Mock-No-Usage: 1"}, read: -1, wantEvents: streamEvents - 1, wantFinished: true, wantLast: "data: [DONE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			s, ts := start(t, func(s *mockupstream.Server) {
				s.Behavior = func(r *http.Request, body []byte) mockupstream.Behavior {
					arrived <- struct{}{}
					if tc.hook != nil {
						return tc.hook(r, body)
					}
					return mockupstream.Behavior{}
				}
			})
			if tc.read == 0 {
				// The headers are delayed: post in the background, leave once the mock has the request.
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(streamBody))
					for _, h := range tc.headers {
						k, v, _ := strings.Cut(h, ": ")
						req.Header.Set(k, v)
					}
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						resp.Body.Close()
					}
					done <- err
				}()
				<-arrived
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("client got %v, want context.Canceled", err)
				}
			} else {
				r, cancel := streamUntil(t, ts.URL, max(tc.read, 0), tc.headers...)
				if tc.read < 0 {
					var last string
					var err error
					for {
						var ev string
						if ev, err = readEvent(r); err != nil {
							break
						}
						last = ev
					}
					if gotErr := !errors.Is(err, io.EOF); gotErr != tc.wantReadErr {
						t.Errorf("stream ended with %v, want an error: %v", err, tc.wantReadErr)
					}
					if !strings.HasPrefix(last, tc.wantLast) {
						t.Errorf("last event %q, want %q…", last, tc.wantLast)
					}
				}
				cancel()
			}
			waitIdle(t, s)
			got := lastRequest(t, s)
			if got.Events != tc.wantEvents || got.Finished != tc.wantFinished || got.Cancelled != tc.wantCancelled {
				t.Errorf("recorded events %d finished %v cancelled %v, want %d %v %v",
					got.Events, got.Finished, got.Cancelled, tc.wantEvents, tc.wantFinished, tc.wantCancelled)
			}
		})
	}
}

func TestPlainFaults(t *testing.T) {
	for _, tc := range []struct {
		name          string
		header        string
		wantCancelled bool
	}{
		{name: "drop without a response", header: "X-Mock-Drop-After: 1"},
		{name: "stall before the headers", header: "X-Mock-Stall-After: 1", wantCancelled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			s, ts := start(t, func(s *mockupstream.Server) {
				s.Behavior = func(*http.Request, []byte) mockupstream.Behavior {
					arrived <- struct{}{}
					return mockupstream.Behavior{}
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(chatBody))
				k, v, _ := strings.Cut(tc.header, ": ")
				req.Header.Set(k, v)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			<-arrived
			if tc.wantCancelled {
				cancel()
			}
			if err := <-done; err == nil {
				t.Fatal("the client got a response")
			}
			waitIdle(t, s)
			if got := lastRequest(t, s); got.Finished || got.Cancelled != tc.wantCancelled || got.Events != 0 {
				t.Errorf("recorded %+v, want cancelled %v", got, tc.wantCancelled)
			}
		})
	}
}

// HTTP/2 cannot hijack a connection: a drop resets the stream instead.
func TestDropOverHTTP2(t *testing.T) {
	s := mockupstream.New()
	ts := httptest.NewUnstartedServer(s)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(streamBody))
	req.Header.Set("X-Mock-Drop-After", "2")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s", resp.Proto)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the dropped stream ended cleanly")
	}
	waitIdle(t, s)
	if got := lastRequest(t, s); got.Events != 2 || got.Finished || got.Cancelled {
		t.Errorf("recorded %+v", got)
	}
}

// Hundreds of concurrent requests, plain and streamed, all answered in full (run with
// -race).
func TestConcurrentRequests(t *testing.T) {
	s, ts := start(t, func(s *mockupstream.Server) { s.APIKey = "k" })
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := chatBody
			if i%2 == 1 {
				body = streamBody
			}
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer k")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"total_tokens"`) {
				errs <- fmt.Errorf("request %d: status %d, %v", i, resp.StatusCode, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitIdle(t, s)
	reqs := s.Requests()
	finished := 0
	for _, r := range reqs {
		if r.Finished {
			finished++
		}
	}
	if len(reqs) != n || finished != n {
		t.Errorf("%d recorded, %d finished, want %d", len(reqs), finished, n)
	}
}
