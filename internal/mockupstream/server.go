// Package mockupstream is an OpenAI-compatible mock upstream for tests, the demo and
// `creditgate mock-upstream`. It serves /v1/chat/completions, /v1/completions,
// /v1/embeddings, /v1/responses, /v1/moderations, /v1/images/generations|edits|variations,
// /v1/audio/speech (audio bytes of the requested format), /v1/audio/transcriptions and
// translations (transcriptions.go) and /v1/models with OpenAI's JSON shapes, SSE framing,
// error bodies and tiktoken-exact usage for the deterministic text it generates, and it
// records every request. It keeps stored objects in memory: files (/v1/files),
// batches (/v1/batches, run by the mock's own handlers into output files whose lines
// carry usage; batches.go), stored responses and stored chat completions
// (stored.go). Faults (error statuses, delays, dropped or stalled streams,
// missing usage or [DONE]) and lies (output past the cap asked for, inflated usage,
// a body cut mid-way, an HTML page for an answer) are injected per server through
// [Server] fields and the [Server.Behavior] hook, or per request through X-Mock-*
// headers (see [Behavior]).
package mockupstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultOutputTokens is the generated length when Server.OutputTokens is zero.
const DefaultOutputTokens = 16

// maxBodyBytes bounds what one request may send; OpenAI's own limit is of this order.
const maxBodyBytes = 32 << 20

// Server is an http.Handler that behaves like OpenAI's API under /v1. Set its fields
// before serving; it is safe for concurrent use afterwards.
//
// Any model name is accepted and echoed. Replies cycle through a word list from a point
// seeded by the prompt, each word one token, so a reply of k words is exactly k tokens
// of o200k_base or cl100k_base (chosen by model as OpenAI does); chat and completions
// stream one word per event. Usage is exact for the reply. Prompt tokens follow
// OpenAI's chat formula (3 per message + role + content + name (+1) + 3 priming; only
// string contents and text parts count); a Responses request counts its instructions
// as a leading message; completions and embeddings count each input's tokens.
// Reasoning tokens are added to the output tokens and, like OpenAI's, spend the
// request's max tokens first; cached tokens are a part of the prompt tokens.
type Server struct {
	// APIKey is the bearer key every request must carry; "" accepts any or none.
	APIKey string
	// OutputTokens is the generated length in tokens per choice (default 16); a smaller
	// max_tokens, max_completion_tokens or max_output_tokens in the request wins.
	OutputTokens int
	// CachedTokens is reported as cached prompt tokens (capped at the prompt tokens).
	CachedTokens int64
	// ReasoningTokens are extra output tokens reported as reasoning, once per request.
	ReasoningTokens int64
	// EventDelay is the pause between stream events.
	EventDelay time.Duration
	// Behavior, when set, is asked for every authorized request to a known endpoint; its
	// non-zero fields override the fields above, and X-Mock-* headers override both.
	Behavior func(r *http.Request, body []byte) Behavior
	// Models are listed by GET /v1/models besides a few defaults.
	Models []string
	// MaxRecorded, when > 0, keeps only the newest MaxRecorded requests, so long load
	// runs don't grow memory without bound.
	MaxRecorded int
	// BatchDelay, when > 0, ends a batch at the first look at it once that long
	// has passed since its creation; 0 leaves batches running until
	// FinishBatches (batches.go).
	BatchDelay time.Duration
	// BackgroundDelay, when > 0, ends a background response (background:
	// true) at the first look at it once that long has passed since its
	// creation; 0 leaves it queued until FinishBackground (stored.go).
	BackgroundDelay time.Duration

	objects objectStore // files, batches, stored responses and chat completions

	mu       sync.Mutex
	recs     []*record
	inflight int
	idle     chan struct{} // closed when inflight drops to zero
}

// Behavior is what one request gets besides the normal answer. Zero values mean "no
// fault". Each field has a request header of the same meaning:
//
//	Status           X-Mock-Status: 429           answer with this status and OpenAI's error body for it
//	Delay            X-Mock-Delay: 2s             wait before the response headers
//	EventDelay       X-Mock-Event-Delay: 50ms     wait between stream events
//	DropAfter        X-Mock-Drop-After: 3         close the connection after 3 stream events (a
//	                                              non-streamed request is dropped with no response)
//	StallAfter       X-Mock-Stall-After: 2        after 2 stream events, send nothing until the
//	                                              client goes away (non-streamed: before headers)
//	NoUsage          X-Mock-No-Usage: 1           leave usage out, even when include_usage asks
//	NoDone           X-Mock-No-Done: 1            leave out the final "data: [DONE]"
//	CachedTokens     X-Mock-Cached-Tokens: 10     report cached prompt tokens
//	ReasoningTokens  X-Mock-Reasoning-Tokens: 5   add reasoning output tokens
//	PromptTokens     X-Mock-Prompt-Tokens: 500    report 500 prompt tokens, not the true count
//	CompletionTokens X-Mock-Completion-Tokens: 9  report 9 completion tokens, not the true count
//	IgnoreCap        X-Mock-Ignore-Cap: 10        ignore the request's output cap: write 10 × it (10 × the
//	                                              default length when it set none), reported truly, finish "stop"
//	InflateUsage     X-Mock-Inflate-Usage: 10     report 10 × the usage (prompt, completion and their details)
//	CutBody          X-Mock-Cut-Body: 200         send the headers (a plain answer's full Content-Length) and
//	                                              the first 200 bytes of the body, then drop the connection
//	HTML             X-Mock-HTML: 1               answer 200 with an HTML page (a captive portal, an error
//	                                              page of a proxy in between) instead of the API's answer
//
// Header values are an error status (400-599), Go durations, counts, booleans ("1",
// "true") and token counts; a bad value gets a 400 naming the header. Delays and
// stalls end early when the client goes away. PromptTokens and CompletionTokens change
// only the usage reported (as an upstream whose tokenizer or formula differs would),
// not the text generated: tests of token drift use them. Cached and reasoning details
// are capped at the reported counts. IgnoreCap, InflateUsage, CutBody and HTML are the
// upstreams creditgate must not trust (a stream that hangs mid-way is StallAfter).
type Behavior struct {
	Status                int
	Delay, EventDelay     time.Duration
	DropAfter, StallAfter int
	NoUsage, NoDone       bool
	CachedTokens          int64
	ReasoningTokens       int64
	PromptTokens          int64
	CompletionTokens      int64
	IgnoreCap             int
	InflateUsage          int
	CutBody               int
	HTML                  bool
}

// Recorded is one request as the mock saw it, and how its answer ended.
type Recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	// Events is the number of SSE events written.
	Events int
	// Cancelled: the client went away before the answer was complete.
	Cancelled bool
	// Finished: the answer was written in full. Neither flag is set while the request is
	// in flight or when a DropAfter fault cut it.
	Finished bool
}

type record struct {
	Recorded // immutable after creation except through the atomics below
	events   atomic.Int64
	outcome  atomic.Int32
}

const (
	outcomePending int32 = iota
	outcomeFinished
	outcomeCancelled
	outcomeDropped
)

// New returns a Server with the default output length and no faults.
func New() *Server {
	return &Server{OutputTokens: DefaultOutputTokens}
}

// Requests returns a copy of the recorded requests, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.recs
	if s.MaxRecorded > 0 && len(recs) > s.MaxRecorded {
		recs = recs[len(recs)-s.MaxRecorded:]
	}
	out := make([]Recorded, len(recs))
	for i, rec := range recs {
		out[i] = rec.Recorded
		out[i].Header = rec.Header.Clone()
		out[i].Body = slices.Clone(rec.Body)
		out[i].Events = int(rec.events.Load())
		switch rec.outcome.Load() {
		case outcomeFinished:
			out[i].Finished = true
		case outcomeCancelled:
			out[i].Cancelled = true
		}
	}
	return out
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.recs = nil
	s.mu.Unlock()
}

// Wait blocks until no request is being served, or ctx ends. Tests use it to read the
// outcome of a request whose client went away without sleeping for it.
func (s *Server) Wait(ctx context.Context) error {
	s.mu.Lock()
	if s.inflight == 0 {
		s.mu.Unlock()
		return nil
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) begin(r *http.Request, body []byte) *record {
	rec := &record{Recorded: Recorded{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == 0 {
		s.idle = make(chan struct{})
	}
	s.inflight++
	s.recs = append(s.recs, rec)
	if s.MaxRecorded > 0 && len(s.recs) >= 2*s.MaxRecorded {
		// Trim in halves so appending stays amortised O(1).
		s.recs = append(s.recs[:0:0], s.recs[len(s.recs)-s.MaxRecorded:]...)
	}
	return rec
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 {
		close(s.idle)
	}
}

// errClientGone (also returned for failed writes) and errDropped end an answer early;
// they decide the recorded outcome.
var (
	errClientGone = errors.New("mockupstream: client went away")
	errDropped    = errors.New("mockupstream: connection dropped by fault injection")
)

// ServeHTTP answers like OpenAI's API does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	rec := s.begin(r, body)
	defer s.end()
	x := &exchange{w: w, r: r, body: body, rec: rec}
	defer func() { rec.outcome.Store(outcomeOf(x.err)) }()

	switch {
	case readErr != nil:
		x.err = errClientGone
		return
	case len(body) > maxBodyBytes:
		x.err = x.writeError(http.StatusRequestEntityTooLarge, apiError{Message: "Request body too large.", Type: "invalid_request_error"})
		return
	case !s.authorized(r):
		x.err = x.writeError(http.StatusUnauthorized, invalidKeyError(r))
		return
	}
	handle := s.route(r)
	if handle == nil {
		x.err = x.writeError(http.StatusNotFound, apiError{
			Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")",
			Type:    "invalid_request_error",
			Code:    "unknown_url",
		})
		return
	}
	b, err := s.behavior(r, body)
	if err != nil {
		x.err = x.writeError(http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error"})
		return
	}
	x.b = b
	if x.err = x.sleep(b.Delay); x.err != nil {
		return
	}
	if b.Status != 0 {
		x.err = x.writeError(b.Status, statusError(b.Status))
		return
	}
	if b.HTML {
		x.err = x.writeHTML()
		return
	}
	x.err = handle(x)
	if x.cut {
		x.err = errDropped
	}
}

// route picks the handler of a method and path, or nil for OpenAI's 404.
func (s *Server) route(r *http.Request) func(*exchange) error {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return nil
	}
	if h := s.objectRoute(r.Method, path); h != nil {
		return h
	}
	if r.Method == http.MethodGet {
		if path == "models" {
			return s.listModels
		}
		if id, ok := strings.CutPrefix(path, "models/"); ok && id != "" && !strings.Contains(id, "/") {
			return func(x *exchange) error { return s.getModel(x, id) }
		}
		return nil
	}
	if r.Method != http.MethodPost {
		return nil
	}
	switch path {
	case "chat/completions":
		return s.chatCompletions
	case "completions":
		return s.completions
	case "embeddings":
		return s.embeddings
	case "responses":
		return s.responses
	case "audio/transcriptions":
		return s.transcriptions
	case "audio/translations":
		return s.translations
	case "moderations":
		return s.moderations
	case "images/generations":
		return s.imageGenerations
	case "images/edits", "images/variations":
		return s.imageEdits
	case "audio/speech":
		return s.speech
	}
	return nil
}

func (s *Server) authorized(r *http.Request) bool {
	if s.APIKey == "" {
		return true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && key == s.APIKey
}

func outcomeOf(err error) int32 {
	switch {
	case err == nil:
		return outcomeFinished
	case errors.Is(err, errDropped):
		return outcomeDropped
	}
	return outcomeCancelled
}
