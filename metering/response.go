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

// maxUpstreamTokens bounds a believable usage count; larger or negative values are
// ignored in favour of the local count.
const maxUpstreamTokens = 100_000_000

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
}

// ResponseMeter accumulates what one response says about usage: the upstream's usage
// object (the last one seen wins) and the output text, counted locally. It is not
// safe for concurrent use.
type ResponseMeter struct {
	ep           Endpoint
	includeUsage bool
	tok          Tokenizer
	input        Tokens

	usage     Tokens
	hasUsage  bool
	done      bool
	status    string
	unmetered int // events too large to read (passed through by the stream filter)

	texts   []outputText // output text per choice / output item, not yet counted
	counted int64        // output tokens already counted (flushed text, names)

	cached   bool // localOut is up to date
	localOut int64

	generalOnly bool // tests: never take fastChunk's path
}

// outputText is the output text of one choice or output item, buffered so that it is
// counted as a whole rather than delta by delta.
type outputText struct {
	a, b int64 // choice index and part (content, refusal, tool call…)
	buf  []byte
}

// Bounds on buffered output text.
const (
	maxOutputTexts = 1024     // beyond this many choices/parts, text shares the last buffer
	flushAt        = 16 << 10 // a buffer this large is counted up to an exact cut point (bounds memory per stream)
	maxBodyDepth   = 512      // response bodies come from the upstream, not the client
)

// Part numbers of outputText.b for chat choices.
const (
	partContent = iota
	partRefusal
	partReasoning
	partFunctionCall
	partToolCalls // + tool call index
)

// NewResponseMeter starts metering the response to r. tok counts output text (nil
// counts none); input is the local count of the request's input (r.InputTokens).
func NewResponseMeter(r *Request, tok Tokenizer, input Tokens) *ResponseMeter {
	m := &ResponseMeter{ep: ChatCompletions, tok: tok, input: input}
	if r != nil {
		m.ep, m.includeUsage = r.Endpoint, r.IncludeUsage
	}
	return m
}

// Body meters a complete, non-streamed 2xx JSON body.
func (m *ResponseMeter) Body(body []byte) {
	m.cached = false
	if m.ep != Responses && !m.generalOnly {
		if _, ok := m.fastChunk(body, false); ok {
			m.done = true
			return
		}
	}
	if jsonscan.Check(body, maxBodyDepth) != nil {
		return
	}
	s := jsonscan.SkipSpace(body, 0)
	if body[s] != '{' {
		return
	}
	m.done = true
	switch m.ep {
	case Responses:
		m.responseObject(body, s, true)
	default:
		m.chunk(body, s, false)
	}
}

// Event meters one SSE event's data (its data lines joined by "\n"). It returns false
// for the usage-only chunk of a chat or completions stream (no choices, usage set)
// when the client did not ask for usage: the proxy asked for it, so the proxy drops
// that event.
func (m *ResponseMeter) Event(data []byte) (forward bool) {
	m.cached = false
	d := bytes.TrimSpace(data)
	if m.ep != Responses && string(d) == "[DONE]" {
		m.done = true
		return true
	}
	if len(d) == 0 || d[0] != '{' {
		return true
	}
	if m.ep != Responses && !m.generalOnly {
		if usageOnly, ok := m.fastChunk(d, true); ok {
			return !usageOnly || m.includeUsage
		}
	}
	if jsonscan.Check(d, maxBodyDepth) != nil {
		return true
	}
	if m.ep == Responses {
		m.responseEvent(d)
		return true
	}
	usageOnly := m.chunk(d, 0, true)
	return !usageOnly || m.includeUsage
}

// noteUnmetered records an event the stream filter passed through unread.
func (m *ResponseMeter) noteUnmetered() { m.unmetered++ }

// chunk meters a chat or completions object: a plain body or one stream chunk. It
// reports whether the object is a usage-only chunk (empty choices, usage set).
func (m *ResponseMeter) chunk(b []byte, s int, stream bool) (usageOnly bool) {
	emptyChoices, hasUsage := false, false
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("usage"):
			if b[f.Start] == '{' {
				hasUsage = true
				m.readUsage(b, f.Start)
			}
		case f.Is("choices"):
			if b[f.Start] != '[' {
				continue
			}
			n := 0
			ct := jsonscan.Elements(b, f.Start)
			for cs, _, ok := ct.Next(); ok; cs, _, ok = ct.Next() {
				n++
				m.choice(b, cs, stream)
			}
			emptyChoices = n == 0
		case f.Is("error"):
			if b[f.Start] == '{' {
				m.status = "error"
			}
		}
	}
	return emptyChoices && hasUsage
}

// choice meters one element of "choices".
func (m *ResponseMeter) choice(b []byte, s int, stream bool) {
	if b[s] != '{' {
		return
	}
	// The index may come after the text (completions put "text" first), so the
	// members are read before any text is attributed.
	index := int64(0)
	msg := -1
	var text jsonscan.Member
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("index"):
			if v, res := jsonscan.IntAt(b, f.Start, f.End); res == jsonscan.IntOK {
				index = v
			}
		case f.Is("finish_reason"):
			if r, ok := jsonscan.StringAt(b, f.Start, f.End); ok && r != "" {
				m.finish(r)
			}
		case f.Is("text"): // completions
			text = f
		case (stream && f.Is("delta")) || (!stream && f.Is("message")):
			msg = f.Start
		}
	}
	if text.End > text.Start {
		m.appendString(index, partContent, b, text)
	}
	if msg < 0 || b[msg] != '{' {
		return
	}
	it = jsonscan.Members(b, msg)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("content"):
			m.appendString(index, partContent, b, f)
		case f.Is("refusal"):
			m.appendString(index, partRefusal, b, f)
		case f.Is("reasoning_content"), f.Is("reasoning"): // OpenAI-compatible reasoning models
			m.appendString(index, partReasoning, b, f)
		case f.Is("function_call") && b[f.Start] == '{':
			m.toolCall(b, f.Start, index, partFunctionCall)
		case f.Is("tool_calls") && b[f.Start] == '[':
			i := int64(0)
			ct := jsonscan.Elements(b, f.Start)
			for cs, _, ok := ct.Next(); ok; cs, _, ok = ct.Next() {
				ti := i
				i++
				if b[cs] != '{' {
					continue
				}
				tt := jsonscan.Members(b, cs)
				for g, ok := tt.Next(); ok; g, ok = tt.Next() {
					if g.Is("index") {
						if v, res := jsonscan.IntAt(b, g.Start, g.End); res == jsonscan.IntOK {
							ti = v
						}
					}
				}
				tt = jsonscan.Members(b, cs)
				for g, ok := tt.Next(); ok; g, ok = tt.Next() {
					if (g.Is("function") || g.Is("custom")) && b[g.Start] == '{' {
						m.toolCall(b, g.Start, index, partToolCalls+min(max(ti, 0), maxOutputTexts))
					}
				}
			}
		}
	}
}

// toolCall meters a function call object: its name at once, its arguments (or a
// custom tool's input) buffered, since streams send them in pieces.
func (m *ResponseMeter) toolCall(b []byte, s int, index, part int64) {
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("name"):
			if name, ok := jsonscan.StringAt(b, f.Start, f.End); ok {
				m.countNow(name)
			}
		case f.Is("arguments"), f.Is("input"):
			m.appendString(index, part, b, f)
		}
	}
}

// finish records a finish reason; one other than "stop" is kept over "stop".
func (m *ResponseMeter) finish(reason string) {
	if m.status == "" || m.status == "stop" || reason != "stop" {
		m.status = reason
	}
}

// responseEvent meters one Responses stream event.
func (m *ResponseMeter) responseEvent(b []byte) {
	var typ string
	var delta, item, resp jsonscan.Member
	outIndex, partIndex := int64(0), int64(0)
	it := jsonscan.Members(b, 0)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("type"):
			typ, _ = jsonscan.StringAt(b, f.Start, f.End)
		case f.Is("delta"):
			delta = f
		case f.Is("item"):
			item = f
		case f.Is("response"):
			resp = f
		case f.Is("output_index"):
			outIndex, _ = jsonscan.IntAt(b, f.Start, f.End)
		case f.Is("content_index"), f.Is("summary_index"):
			partIndex, _ = jsonscan.IntAt(b, f.Start, f.End)
		}
	}
	switch typ {
	case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
		"response.custom_tool_call_input.delta", "response.reasoning_summary_text.delta":
		if delta.End > delta.Start {
			m.appendString(outIndex, min(max(partIndex, 0), maxOutputTexts), b, delta)
		}
	case "response.output_item.added":
		if item.End > item.Start && b[item.Start] == '{' {
			it := jsonscan.Members(b, item.Start)
			for f, ok := it.Next(); ok; f, ok = it.Next() {
				if f.Is("name") {
					if name, ok := jsonscan.StringAt(b, f.Start, f.End); ok {
						m.countNow(name)
					}
				}
			}
		}
	case "response.completed", "response.incomplete", "response.failed":
		m.done = true
		if resp.End > resp.Start && b[resp.Start] == '{' {
			m.responseObject(b, resp.Start, false)
		}
	case "error":
		m.status = "error"
	}
}

// responseObject meters a Responses response object: its status and usage, and, for
// a plain body, its output (a stream's output was counted from its deltas).
func (m *ResponseMeter) responseObject(b []byte, s int, withOutput bool) {
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("status"):
			if st, ok := jsonscan.StringAt(b, f.Start, f.End); ok && st != "" {
				m.status = st
			}
		case f.Is("usage"):
			if b[f.Start] == '{' {
				m.readUsage(b, f.Start)
			}
		case f.Is("error"):
			if b[f.Start] == '{' && m.status == "" {
				m.status = "error"
			}
		case f.Is("output") && withOutput && b[f.Start] == '[':
			i := int64(0)
			ot := jsonscan.Elements(b, f.Start)
			for os, _, ok := ot.Next(); ok; os, _, ok = ot.Next() {
				m.outputItem(b, os, i)
				i++
			}
		}
	}
}

// outputItem meters one item of a plain Responses body's output.
func (m *ResponseMeter) outputItem(b []byte, s int, index int64) {
	if b[s] != '{' {
		return
	}
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("name"):
			if name, ok := jsonscan.StringAt(b, f.Start, f.End); ok {
				m.countNow(name)
			}
		case f.Is("arguments"), f.Is("input"):
			m.appendString(index, 0, b, f)
		case (f.Is("content") || f.Is("summary")) && b[f.Start] == '[':
			part := int64(0)
			pt := jsonscan.Elements(b, f.Start)
			for ps, _, ok := pt.Next(); ok; ps, _, ok = pt.Next() {
				part++
				if b[ps] != '{' {
					continue
				}
				it := jsonscan.Members(b, ps)
				for g, ok := it.Next(); ok; g, ok = it.Next() {
					if g.Is("text") || g.Is("refusal") {
						m.appendString(index, part, b, g)
					}
				}
			}
		}
	}
}

// readUsage reads a usage object in either naming (prompt/completion or
// input/output). A usage object whose totals are missing or absurd is ignored; an
// absurd detail count reads as 0.
func (m *ResponseMeter) readUsage(b []byte, s int) {
	const unset = -1
	in, out, total := int64(unset), int64(unset), int64(unset)
	var t Tokens
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("prompt_tokens"), f.Is("input_tokens"):
			in = saneCount(b, f)
		case f.Is("completion_tokens"), f.Is("output_tokens"):
			out = saneCount(b, f)
		case f.Is("total_tokens"):
			total = saneCount(b, f)
		case (f.Is("prompt_tokens_details") || f.Is("input_tokens_details")) && b[f.Start] == '{':
			dt := jsonscan.Members(b, f.Start)
			for g, ok := dt.Next(); ok; g, ok = dt.Next() {
				switch {
				case g.Is("cached_tokens"):
					t.CachedInput = max(saneCount(b, g), 0)
				case g.Is("audio_tokens"):
					t.AudioInput = max(saneCount(b, g), 0)
				}
			}
		case (f.Is("completion_tokens_details") || f.Is("output_tokens_details")) && b[f.Start] == '{':
			dt := jsonscan.Members(b, f.Start)
			for g, ok := dt.Next(); ok; g, ok = dt.Next() {
				switch {
				case g.Is("reasoning_tokens"):
					t.Reasoning = max(saneCount(b, g), 0)
				case g.Is("audio_tokens"):
					t.AudioOutput = max(saneCount(b, g), 0)
				}
			}
		}
	}
	if out == unset && in >= 0 {
		switch {
		case m.ep == Embeddings:
			out = 0
		case total >= in:
			out = total - in
		}
	}
	if in < 0 || out < 0 {
		return
	}
	t.Input, t.Output = in, out
	m.usage, m.hasUsage = t, true
}

// saneCount reads a token count: an integer in [0, maxUpstreamTokens], else -1.
func saneCount(b []byte, f jsonscan.Member) int64 {
	v, res := jsonscan.IntAt(b, f.Start, f.End)
	if res != jsonscan.IntOK || v > maxUpstreamTokens {
		return -1
	}
	return v
}

// appendString buffers the string value f as output text of (a, part).
func (m *ResponseMeter) appendString(a, part int64, b []byte, f jsonscan.Member) {
	raw, escaped, ok := jsonscan.RawStringAt(b, f.Start, f.End)
	if !ok || len(raw) == 0 {
		return
	}
	t := m.text(a, part)
	if escaped {
		t.buf = append(t.buf, jsonscan.Unquote(raw)...)
	} else {
		t.buf = append(t.buf, raw...)
	}
	if len(t.buf) >= flushAt {
		m.flush(t)
	}
}

// text finds or adds the buffer of (a, part).
func (m *ResponseMeter) text(a, part int64) *outputText {
	for i := range m.texts {
		if t := &m.texts[i]; t.a == a && t.b == part {
			return t
		}
	}
	if len(m.texts) == maxOutputTexts {
		return &m.texts[len(m.texts)-1]
	}
	m.texts = append(m.texts, outputText{a: a, b: part})
	return &m.texts[len(m.texts)-1]
}

// flush counts a large buffer up to its last exact cut point (a space after a
// non-space, where counting in two parts gives the same total) and keeps the rest.
func (m *ResponseMeter) flush(t *outputText) {
	cut := len(t.buf) / 2 // fallback: an arbitrary cut, off by a token at most
	for i := len(t.buf) - 1; i > 0; i-- {
		if t.buf[i] == ' ' && !isSpaceByte(t.buf[i-1]) {
			cut = i
			break
		}
	}
	m.countNow(jsonscan.View(t.buf[:cut])) // counted at once: a view of the buffer is enough
	t.buf = append(t.buf[:0], t.buf[cut:]...)
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// countNow counts text at once (names, flushed buffers).
func (m *ResponseMeter) countNow(text string) {
	if m.tok != nil && text != "" {
		m.counted += int64(m.tok.Count(text))
	}
}

// Result returns what the response said so far. Counting the buffered output text
// costs time linear in its length; the count is cached until more arrives.
func (m *ResponseMeter) Result() Result {
	if !m.cached {
		m.localOut = m.counted
		if m.tok != nil {
			for _, t := range m.texts {
				m.localOut += int64(m.tok.Count(jsonscan.View(t.buf))) // Count does not keep its text
			}
		}
		m.cached = true
	}
	local := m.input
	local.Output = m.localOut
	res := Result{Tokens: local, Source: SourceLocal, Local: local, Done: m.done, Status: m.status}
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
