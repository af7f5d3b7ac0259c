package metering

import (
	"bytes"
	"math"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Token sources of a Result.
const (
	SourceUpstream = "upstream" // the upstream's usage object
	SourceLocal    = "local"    // local tiktoken counts
)

// Result is what one response says about usage.
type Result struct {
	Tokens Tokens // what to bill: the upstream's usage when it reported one, else Local
	Source string // SourceUpstream or SourceLocal
	Local  Tokens // the input estimate plus the output counted from the text seen
	// Done reports that the response ended properly: a complete plain body, or a
	// stream that reached [DONE] (chat, completions) or response.completed /
	// response.incomplete / response.failed (responses).
	Done bool
	// Status is the finish reason or response status when known: "stop", "length",
	// "tool_calls", "content_filter" (chat and completions; with n > 1 a reason other
	// than "stop" wins), "completed", "incomplete", "failed" (responses), or "error"
	// when the upstream sent an error object.
	Status string
	// Cut reports that the stream reached its limit's output cap and the filter
	// cut it (SetLimit): Status is then "length" (chat, completions) or
	// "incomplete" (responses). Unrelayed is the local count of the output the
	// upstream sent past the cap, which was not relayed (and is not in Local).
	Cut       bool
	Unrelayed int64
}

// ResponseMeter accumulates what one response says about usage: the upstream's usage
// object (the last one seen wins) and the output text, counted locally. It is not
// safe for concurrent use.
type ResponseMeter struct {
	spec         *endpointSpec
	includeUsage bool // the client asked for stream usage itself
	tok          Tokenizer
	input        Tokens
	boundOf      *Request // input is this request's byte bound, not yet counted (SetInputBound)

	usage     Tokens
	hasUsage  bool
	done      bool
	status    string
	unmetered int // events too large to read (passed through by the stream filter)

	texts []outputText // output text per choice / output item

	cached   bool // localOut is up to date
	localOut int64

	lim      *limiter // the output cap enforced on a stream, and the bill bound (cut.go); nil: none
	limStore limiter  // what lim points to (no allocation)

	generalOnly bool // tests: never take fastChunk's path

	outputBound int64 // media endpoints: the request's output bound (media.go)
	perImage    bool  // images: billed per image, counted in the body
}

// maxBodyDepth bounds the nesting of a response body: it comes from the upstream,
// not the client.
const maxBodyDepth = 512

// NewResponseMeter starts metering the response to r. tok counts output text (nil
// counts none); input is the local count of the request's input (r.InputTokens).
func NewResponseMeter(r *Request, tok Tokenizer, input Tokens) *ResponseMeter {
	m := &ResponseMeter{spec: &chatEndpoint, tok: tok, input: input}
	if r != nil {
		if s := specOf(r.Endpoint); s != nil {
			m.spec = s
		}
		m.includeUsage = r.IncludeUsage
		m.outputBound = r.outputBound
		m.perImage = r.media.perImage
	}
	return m
}

// SetInputBound marks the meter's input as r's byte bound (r.InputTokenBound,
// which the proxy may admit on): the meter counts r's input exactly, with its
// tokenizer, the first time a bill under its limit needs it
// (Limit.NeedsExactInput), or when ExactInput is called.
func (m *ResponseMeter) SetInputBound(r *Request) { m.boundOf = r }

// InputCounted reports whether the meter's input is a count, not a bound.
func (m *ResponseMeter) InputCounted() bool { return m.boundOf == nil }

// ExactInput counts the request's input if the meter holds its bound, and
// returns the count; its limit's Input becomes that count too.
func (m *ResponseMeter) ExactInput() Tokens {
	if r := m.boundOf; r != nil {
		m.input, m.boundOf = r.InputTokens(m.tok), nil
		if m.lim != nil {
			m.lim.Input = m.input
		}
	}
	return m.input
}

// SetInput replaces the local count of the request's input that Result carries
// (0: not counted, when no bill needed it).
func (m *ResponseMeter) SetInput(input Tokens) { m.input, m.boundOf = input, nil }

// bill is what the response so far is billed under its limit, the input counted
// exactly first if the bill depends on it.
func (m *ResponseMeter) bill() Bill {
	res := m.Result()
	if m.boundOf != nil && m.lim.NeedsExactInput(res) {
		m.ExactInput()
		res = m.Result()
	}
	return m.lim.Bill(res)
}

// Body meters a complete, non-streamed 2xx JSON body. A limit does not cut a plain
// body (it is relayed as it is); Limit.Bill bounds what it is billed.
func (m *ResponseMeter) Body(body []byte) {
	m.cached = false
	lim := m.lim
	m.lim = nil
	m.spec.body(m, body)
	m.lim = lim
}

// Event meters one SSE event's data (its data lines joined by "\n"). It returns false
// for the usage-only chunk of a chat or completions stream (no choices, usage set)
// when the client did not ask for usage: the proxy asked for it, so the proxy drops
// that event.
//
// Under a limit (SetLimit), the event may also be rewritten or followed by events
// that end the stream at the output cap: the stream filter applies that.
func (m *ResponseMeter) Event(data []byte) (forward bool) {
	m.cached = false
	d := bytes.TrimSpace(data)
	if m.lim == nil {
		return m.spec.event(m, d)
	}
	m.lim.begin(d)
	return m.lim.end(m, m.spec.event(m, d))
}

// jsonObject returns where the object b holds starts; ok is false when b is not
// valid JSON or not an object.
func jsonObject(b []byte) (start int, ok bool) {
	if jsonscan.Check(b, maxBodyDepth) != nil {
		return 0, false
	}
	start = jsonscan.SkipSpace(b, 0)
	return start, b[start] == '{'
}

// noteUnmetered records an event the stream filter passed through unread.
func (m *ResponseMeter) noteUnmetered() { m.unmetered++ }

// Result returns what the response said so far. Counting the buffered output text
// costs time linear in its length; the count is cached until more arrives.
func (m *ResponseMeter) Result() Result {
	if !m.cached {
		m.localOut = 0
		for _, t := range m.texts {
			m.localOut += t.counted + m.count(jsonscan.View(t.buf)) // Count does not keep its text
		}
		m.cached = true
	}
	local := m.input
	local.Output = m.localOut
	if m.spec.unitPrice != nil {
		local.Output = m.outputBound // media: no text to count; the bound is the estimate
	}
	res := Result{Tokens: local, Source: SourceLocal, Local: local, Done: m.done, Status: m.status}
	if m.lim != nil {
		res.Cut, res.Unrelayed = m.lim.cuts > 0, m.lim.unrelayed
	}
	if m.hasUsage {
		res.Tokens, res.Source = m.usage, SourceUpstream
	}
	return res
}

// DriftExceeds reports whether the upstream's and the local input+output totals
// differ by more than tol, relative to the upstream's total (any difference counts
// when the upstream reported zero).
func DriftExceeds(upstream, local Tokens, tol float64) bool {
	u := upstream.Input + upstream.Output
	l := local.Input + local.Output
	diff := math.Abs(float64(u - l))
	if u <= 0 {
		return diff > 0
	}
	return diff > tol*float64(u)
}
