package metering

import (
	"bytes"
	"math"
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
	if checkJSON(body, maxBodyDepth) != nil {
		return
	}
	s := skipSpace(body, 0)
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
	if checkJSON(d, maxBodyDepth) != nil {
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
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("usage"):
			if b[f.start] == '{' {
				hasUsage = true
				m.readUsage(b, f.start)
			}
		case f.is("choices"):
			if b[f.start] != '[' {
				continue
			}
			n := 0
			ct := iterArray(b, f.start)
			for cs, _, ok := ct.next(); ok; cs, _, ok = ct.next() {
				n++
				m.choice(b, cs, stream)
			}
			emptyChoices = n == 0
		case f.is("error"):
			if b[f.start] == '{' {
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
	var text member
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("index"):
			if v, res := intAt(b, f.start, f.end); res == intOK {
				index = v
			}
		case f.is("finish_reason"):
			if r, ok := stringAt(b, f.start, f.end); ok && r != "" {
				m.finish(r)
			}
		case f.is("text"): // completions
			text = f
		case (stream && f.is("delta")) || (!stream && f.is("message")):
			msg = f.start
		}
	}
	if text.end > text.start {
		m.appendString(index, partContent, b, text)
	}
	if msg < 0 || b[msg] != '{' {
		return
	}
	it = iterObject(b, msg)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("content"):
			m.appendString(index, partContent, b, f)
		case f.is("refusal"):
			m.appendString(index, partRefusal, b, f)
		case f.is("reasoning_content"), f.is("reasoning"): // OpenAI-compatible reasoning models
			m.appendString(index, partReasoning, b, f)
		case f.is("function_call") && b[f.start] == '{':
			m.toolCall(b, f.start, index, partFunctionCall)
		case f.is("tool_calls") && b[f.start] == '[':
			i := int64(0)
			ct := iterArray(b, f.start)
			for cs, _, ok := ct.next(); ok; cs, _, ok = ct.next() {
				ti := i
				i++
				if b[cs] != '{' {
					continue
				}
				tt := iterObject(b, cs)
				for g, ok := tt.next(); ok; g, ok = tt.next() {
					if g.is("index") {
						if v, res := intAt(b, g.start, g.end); res == intOK {
							ti = v
						}
					}
				}
				tt = iterObject(b, cs)
				for g, ok := tt.next(); ok; g, ok = tt.next() {
					if (g.is("function") || g.is("custom")) && b[g.start] == '{' {
						m.toolCall(b, g.start, index, partToolCalls+min(max(ti, 0), maxOutputTexts))
					}
				}
			}
		}
	}
}

// toolCall meters a function call object: its name at once, its arguments (or a
// custom tool's input) buffered, since streams send them in pieces.
func (m *ResponseMeter) toolCall(b []byte, s int, index, part int64) {
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("name"):
			if name, ok := stringAt(b, f.start, f.end); ok {
				m.countNow(name)
			}
		case f.is("arguments"), f.is("input"):
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
	var delta, item, resp member
	outIndex, partIndex := int64(0), int64(0)
	it := iterObject(b, 0)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("type"):
			typ, _ = stringAt(b, f.start, f.end)
		case f.is("delta"):
			delta = f
		case f.is("item"):
			item = f
		case f.is("response"):
			resp = f
		case f.is("output_index"):
			outIndex, _ = intAt(b, f.start, f.end)
		case f.is("content_index"), f.is("summary_index"):
			partIndex, _ = intAt(b, f.start, f.end)
		}
	}
	switch typ {
	case "response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
		"response.custom_tool_call_input.delta", "response.reasoning_summary_text.delta":
		if delta.end > delta.start {
			m.appendString(outIndex, min(max(partIndex, 0), maxOutputTexts), b, delta)
		}
	case "response.output_item.added":
		if item.end > item.start && b[item.start] == '{' {
			it := iterObject(b, item.start)
			for f, ok := it.next(); ok; f, ok = it.next() {
				if f.is("name") {
					if name, ok := stringAt(b, f.start, f.end); ok {
						m.countNow(name)
					}
				}
			}
		}
	case "response.completed", "response.incomplete", "response.failed":
		m.done = true
		if resp.end > resp.start && b[resp.start] == '{' {
			m.responseObject(b, resp.start, false)
		}
	case "error":
		m.status = "error"
	}
}

// responseObject meters a Responses response object: its status and usage, and, for
// a plain body, its output (a stream's output was counted from its deltas).
func (m *ResponseMeter) responseObject(b []byte, s int, withOutput bool) {
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("status"):
			if st, ok := stringAt(b, f.start, f.end); ok && st != "" {
				m.status = st
			}
		case f.is("usage"):
			if b[f.start] == '{' {
				m.readUsage(b, f.start)
			}
		case f.is("error"):
			if b[f.start] == '{' && m.status == "" {
				m.status = "error"
			}
		case f.is("output") && withOutput && b[f.start] == '[':
			i := int64(0)
			ot := iterArray(b, f.start)
			for os, _, ok := ot.next(); ok; os, _, ok = ot.next() {
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
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("name"):
			if name, ok := stringAt(b, f.start, f.end); ok {
				m.countNow(name)
			}
		case f.is("arguments"), f.is("input"):
			m.appendString(index, 0, b, f)
		case (f.is("content") || f.is("summary")) && b[f.start] == '[':
			part := int64(0)
			pt := iterArray(b, f.start)
			for ps, _, ok := pt.next(); ok; ps, _, ok = pt.next() {
				part++
				if b[ps] != '{' {
					continue
				}
				it := iterObject(b, ps)
				for g, ok := it.next(); ok; g, ok = it.next() {
					if g.is("text") || g.is("refusal") {
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
	it := iterObject(b, s)
	for f, ok := it.next(); ok; f, ok = it.next() {
		switch {
		case f.is("prompt_tokens"), f.is("input_tokens"):
			in = saneCount(b, f)
		case f.is("completion_tokens"), f.is("output_tokens"):
			out = saneCount(b, f)
		case f.is("total_tokens"):
			total = saneCount(b, f)
		case (f.is("prompt_tokens_details") || f.is("input_tokens_details")) && b[f.start] == '{':
			dt := iterObject(b, f.start)
			for g, ok := dt.next(); ok; g, ok = dt.next() {
				switch {
				case g.is("cached_tokens"):
					t.CachedInput = max(saneCount(b, g), 0)
				case g.is("audio_tokens"):
					t.AudioInput = max(saneCount(b, g), 0)
				}
			}
		case (f.is("completion_tokens_details") || f.is("output_tokens_details")) && b[f.start] == '{':
			dt := iterObject(b, f.start)
			for g, ok := dt.next(); ok; g, ok = dt.next() {
				switch {
				case g.is("reasoning_tokens"):
					t.Reasoning = max(saneCount(b, g), 0)
				case g.is("audio_tokens"):
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
func saneCount(b []byte, f member) int64 {
	v, res := intAt(b, f.start, f.end)
	if res != intOK || v > maxUpstreamTokens {
		return -1
	}
	return v
}

// appendString buffers the string value f as output text of (a, part).
func (m *ResponseMeter) appendString(a, part int64, b []byte, f member) {
	raw, escaped, ok := rawStringAt(b, f.start, f.end)
	if !ok || len(raw) == 0 {
		return
	}
	t := m.text(a, part)
	if escaped {
		t.buf = append(t.buf, unquoteBytes(raw)...)
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
	m.countNow(view(t.buf[:cut])) // counted at once: a view of the buffer is enough
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
				m.localOut += int64(m.tok.Count(view(t.buf))) // Count does not keep its text
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
