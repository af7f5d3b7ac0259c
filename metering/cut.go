package metering

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Cutting a stream at its output cap (Limit.PerChoice). The relayed output of each
// choice (chat, completions) or of the whole response (responses) is counted as it
// goes; the text that takes it past the cap is cut at the last token boundary (as
// the local tokenizer counts, and never inside a character) that keeps it within,
// and the stream is ended the way OpenAI ends one at max_tokens: for chat and
// completions a chunk with finish_reason "length" per choice cut, then, once every
// choice is, the usage chunk if the app asked for usage (with the billed numbers)
// and [DONE]; for responses a response.incomplete event with incomplete_details
// reason "max_output_tokens" and the billed usage. With n > 1 the other choices go
// on; the text of a choice already cut is dropped. A usage object whose numbers
// pass what the request could cost is relayed with the billed numbers instead.
//
// Counting stays cheap for an honest stream: a token has at least one byte, so
// while the tokens of a choice at its last exact count plus the bytes added since
// stay within the cap, nothing is counted; past that, the choice is counted
// exactly (its buffers committed up to exact cut points first, so each count is of
// a short tail), and the bound starts again from there.

// limiter is a ResponseMeter's Limit and the state of enforcing it on a stream.
type limiter struct {
	Limit
	groups    []budget  // per choice (chat, completions), or one for the whole response
	one       [1]budget // groups when there is one (no allocation)
	cuts      int       // groups cut
	unrelayed int64     // tokens of output cut off
	first     []byte    // responses: a copy of the stream's first event, whose response object response.incomplete reuses
	seq       int64     // responses: the highest sequence_number seen
	ended     bool      // every group is cut: nothing more is relayed

	// The event being metered: its data, the edits it needs, the groups it cut,
	// the choices it carries (those already cut) and their finish reasons.
	data                []byte
	edits               []edit
	cutNow              []int
	finishes            []choiceSpan
	choices, cutAlready int
	usageSeen           bool

	ends      []int  // scratch for TokenEnds
	out       []byte // the replacement of the last event changed (reused)
	responses bool   // the Responses API: first is kept
}

// budget is the count of one group's relayed output.
type budget struct {
	exact int64 // tokens at the last exact count (names added since included)
	since int64 // bytes of text added since: an upper bound on their tokens
	cut   bool
}

// choiceSpan is where a member of one choice's value is in the event's data.
type choiceSpan struct {
	index      int64
	start, end int
}

var (
	emptyString = []byte(`""`)
	jsonNull    = []byte("null")
)

// SetLimit makes the meter enforce l on a stream (Event): the stream is cut at
// l.PerChoice, and a usage object past l.MaxCost is relayed with the billed
// numbers. A plain body (Body) is never changed. Call it before the first event.
func (m *ResponseMeter) SetLimit(l Limit) {
	n := 1
	if m.spec.stop != stopResponse {
		n = int(min(max(l.Choices, 1), maxOutputTexts))
	}
	m.limStore = limiter{Limit: l, responses: m.spec.stop == stopResponse}
	m.lim = &m.limStore
	m.lim.groups = m.lim.one[:]
	if n > 1 {
		m.lim.groups = make([]budget, n)
	}
}

// cutting reports whether streams are cut at the cap.
func (l *limiter) cutting() bool { return l.PerChoice > 0 && !l.noCut }

// group is the budget a choice index counts against; an index the request cannot
// have counts against the last choice's.
func (l *limiter) group(index int64) int {
	return int(min(max(index, 0), int64(len(l.groups)-1)))
}

// begin starts an event.
func (l *limiter) begin(d []byte) {
	l.data = d
	l.edits, l.cutNow, l.finishes = l.edits[:0], l.cutNow[:0], l.finishes[:0]
	l.choices, l.cutAlready, l.usageSeen = 0, 0, false
	if l.responses && l.first == nil && len(d) > 0 && d[0] == '{' && jsonscan.Check(d, maxBodyDepth) == nil {
		l.first = bytes.Clone(d)
	}
}

// end finishes an event the endpoint's meter decided to forward or not: the finish
// reasons of choices cut are nulled (the cut sends its own), and an event of
// nothing but choices cut before it is dropped.
func (l *limiter) end(m *ResponseMeter, forward bool) bool {
	m.cached = false // a usage rewrite may have counted mid-event
	if l.cuts == 0 && len(l.edits) == 0 {
		return forward
	}
	for _, f := range l.finishes {
		if l.groups[l.group(f.index)].cut && l.data[f.start] == '"' {
			l.edits = append(l.edits, edit{f.start, f.end, jsonNull})
		}
	}
	if l.choices > 0 && l.choices == l.cutAlready && !l.usageSeen {
		l.edits = l.edits[:0]
		return false
	}
	return forward
}

// noteChoice records a choice of the current event, before its text is metered.
func (l *limiter) noteChoice(index int64) {
	l.choices++
	if l.groups[l.group(index)].cut {
		l.cutAlready++
	}
}

// noteFinish records where a choice's finish_reason value is.
func (l *limiter) noteFinish(index int64, start, end int) {
	l.finishes = append(l.finishes, choiceSpan{index, start, end})
}

// limitText meters the text member f (its content raw) of t under the limit: it
// is buffered as usual while its choice stays within the cap, cut at the cap, or,
// for a choice cut already, dropped.
func (m *ResponseMeter) limitText(t *outputText, f jsonscan.Member, raw []byte, escaped bool) {
	l := m.lim
	gi := l.group(t.a)
	g := &l.groups[gi]
	if g.cut {
		l.edits = append(l.edits, edit{f.Start, f.End, emptyString})
		l.unrelayed += m.countRaw(raw, escaped)
		return
	}
	from := len(t.buf)
	m.buffer(t, raw, escaped)
	g.since += int64(len(raw)) // raw is at least as long as the text it spells
	if g.exact+g.since > l.PerChoice {
		exact, at, tail := m.countGroup(gi, t, from)
		if exact > l.PerChoice {
			m.cutText(gi, t, at, l.PerChoice-(exact-tail), f)
			return
		}
		g.exact, g.since = exact, 0
	}
	if len(t.buf) >= flushAt {
		m.flush(t)
	}
}

// limitName reports whether a name of n tokens of t's choice is relayed: not when
// the choice is cut already or the name would take it past the cap (it then ends
// the choice); a name not relayed is edited out of the event.
func (m *ResponseMeter) limitName(t *outputText, f jsonscan.Member, n int64) bool {
	l := m.lim
	gi := l.group(t.a)
	g := &l.groups[gi]
	if !g.cut {
		if g.exact+n+g.since <= l.PerChoice {
			g.exact += n
			return true
		}
		exact, _, _ := m.countGroup(gi, nil, 0)
		if exact+n <= l.PerChoice {
			g.exact, g.since = exact+n, 0
			return true
		}
		m.cutGroup(gi)
	}
	l.edits = append(l.edits, edit{f.Start, f.End, emptyString})
	l.unrelayed += n
	return false
}

// countGroup counts group gi exactly, committing its buffers up to exact cut points
// first (t's only up to from, where its newest text starts). It returns the
// group's tokens, where t's newest text now starts, and the tokens of t's buffer.
func (m *ResponseMeter) countGroup(gi int, t *outputText, from int) (tokens int64, at int, tail int64) {
	for i := range m.texts {
		u := &m.texts[i]
		if m.lim.group(u.a) != gi {
			continue
		}
		if u == t {
			from -= m.commit(u, from)
		} else {
			m.commit(u, len(u.buf))
		}
		c := m.count(jsonscan.View(u.buf))
		if u == t {
			tail = c
		}
		tokens += u.counted + c
	}
	return tokens, from, tail
}

// cutText cuts t's buffer, whose newest text (from the event member f) starts at
// from, to at most allowed tokens, and ends t's choice there: f is relayed with
// what is kept of it, the rest counts as unrelayed.
func (m *ResponseMeter) cutText(gi int, t *outputText, from int, allowed int64, f jsonscan.Member) {
	l := m.lim
	cut := m.cutPoint(t.buf, from, allowed)
	l.unrelayed += m.count(jsonscan.View(t.buf[cut:]))
	l.edits = append(l.edits, edit{f.Start, f.End, appendJSONString(nil, t.buf[from:cut])})
	t.buf = t.buf[:cut]
	m.cutGroup(gi)
}

// cutGroup ends group gi's output at the cap.
func (m *ResponseMeter) cutGroup(gi int) {
	l := m.lim
	l.groups[gi].cut = true
	l.cuts++
	l.cutNow = append(l.cutNow, gi)
	if m.spec.stop == stopResponse {
		m.status = "incomplete"
	} else {
		m.finish("length")
	}
	if l.cuts == len(l.groups) && l.Choices <= maxOutputTexts {
		l.ended = true
		m.done = true
	}
}

// cutPoint is where text may be cut so that text[:cut] counts at most allowed
// tokens: the last token boundary at or after from that is also a character
// boundary (text before from has been relayed already, so never before from).
func (m *ResponseMeter) cutPoint(text []byte, from int, allowed int64) int {
	if allowed <= 0 || from >= len(text) {
		return from
	}
	s := jsonscan.View(text)
	fits := func(cut int) bool { return m.count(s[:cut]) <= allowed }
	if te, ok := m.tok.(tokenEnder); ok {
		m.lim.ends = te.TokenEnds(m.lim.ends[:0], s)
		ends := m.lim.ends
		if len(ends) > 0 {
			// The first allowed tokens, then back to a character boundary; a prefix
			// may count more than its place in the whole, so check.
			for k := min(int64(len(ends)), allowed) - 1; k >= 0; k-- {
				cut := ends[k]
				if cut <= from {
					break
				}
				if (cut == len(text) || utf8.RuneStart(text[cut])) && fits(cut) {
					return cut
				}
			}
			return from
		}
	}
	// Count alone: the longest prefix, at a character boundary, that fits.
	lo, hi := from, len(text)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		for mid > lo && mid < len(text) && !utf8.RuneStart(text[mid]) {
			mid--
		}
		if mid == lo {
			// No character boundary in (lo, mid]: try the next one up.
			mid = lo + 1
			for mid < hi && !utf8.RuneStart(text[mid]) {
				mid++
			}
			if mid > hi || !fits(mid) {
				break
			}
			lo = mid
			continue
		}
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// countRaw counts a JSON string's content.
func (m *ResponseMeter) countRaw(raw []byte, escaped bool) int64 {
	if escaped {
		return m.count(jsonscan.Unquote(raw))
	}
	return m.count(jsonscan.View(raw))
}

// rewriteUsage relays the usage object at data[start:end] (just read) with the
// billed numbers when the upstream's pass what the request could cost.
func (m *ResponseMeter) rewriteUsage(start, end int) {
	l := m.lim
	l.usageSeen = true
	if bill := m.bill(); bill.Tokens != m.usage {
		l.edits = append(l.edits, edit{start, end, m.appendUsage(nil, bill.Tokens)})
	}
}

// stopped reports whether the stream was ended at the cap: nothing more is relayed.
func (m *ResponseMeter) stopped() bool { return m.lim != nil && m.lim.ended }

// replacement returns what to relay instead of ev, the event just metered and
// forwarded, when the limit changed it: ev edited, then the events its cut adds.
// ok is false when ev goes as it is. The bytes are valid until the next call.
func (m *ResponseMeter) replacement(ev []byte) (out []byte, ok bool) {
	l := m.lim
	if l == nil || len(l.edits) == 0 && len(l.cutNow) == 0 {
		return nil, false
	}
	out = l.out[:0]
	if len(l.edits) == 0 {
		out = append(out, ev...)
	} else {
		out = l.appendEdited(out, ev)
	}
	out = m.appendCutEvents(out)
	l.out = out
	return out, true
}

// cutAll ends every choice at once, for a stream whose next event is too large to
// meter (past any cap); it returns the events that end the stream, or ok false
// when streams are not cut.
func (m *ResponseMeter) cutAll() (out []byte, ok bool) {
	l := m.lim
	if l == nil || !l.cutting() || l.ended {
		return nil, false
	}
	l.begin(nil)
	for gi := range l.groups {
		if !l.groups[gi].cut {
			m.cutGroup(gi)
		}
	}
	l.ended, m.done = true, true
	out = m.appendCutEvents(l.out[:0])
	l.out = out
	return out, true
}

// appendEdited appends ev with its data edited: its other lines (event, id,
// comments) first, then the data on as many data lines as it has line feeds.
func (l *limiter) appendEdited(out, ev []byte) []byte {
	for len(ev) > 0 {
		var line []byte
		i := lineEnd(ev)
		switch {
		case i < 0:
			line, ev = ev, nil
		case ev[i] == '\r' && i+1 < len(ev) && ev[i+1] == '\n':
			line, ev = ev[:i], ev[i+2:]
		default:
			line, ev = ev[:i], ev[i+1:]
		}
		if name, _, _ := bytes.Cut(line, []byte(":")); len(line) > 0 && string(name) != "data" {
			out = append(append(out, line...), '\n')
		}
	}
	slices.SortFunc(l.edits, func(a, b edit) int { return a.start - b.start })
	out = append(out, "data: "...)
	at := 0
	for _, e := range l.edits {
		out = appendData(out, l.data[at:e.start])
		out = appendData(out, e.text)
		at = e.end
	}
	out = appendData(out, l.data[at:])
	return append(out, "\n\n"...)
}

// appendData appends b to a data line, each line feed starting another.
func appendData(out, b []byte) []byte {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, b...)
		}
		out = append(append(out, b[:i]...), "\ndata: "...)
		b = b[i+1:]
	}
}

// appendCutEvents appends the events that end the choices cut by the current
// event, and the stream once every choice is cut.
func (m *ResponseMeter) appendCutEvents(out []byte) []byte {
	l := m.lim
	if m.spec.stop == stopResponse {
		if !l.ended {
			return out
		}
		out = append(out, "event: response.incomplete\ndata: "...)
		out = append(out, `{"type":"response.incomplete","sequence_number":`...)
		out = strconv.AppendInt(out, l.seq+1, 10)
		out = append(out, `,"response":`...)
		out = m.appendIncomplete(out)
		return append(out, "}\n\n"...)
	}
	for _, gi := range l.cutNow {
		out = append(out, "data: "...)
		out = l.appendHeader(out)
		out = append(out, `"choices":[{`...)
		if m.spec.stop == stopCompletions {
			out = append(out, `"text":"","index":`...)
			out = strconv.AppendInt(out, int64(gi), 10)
		} else {
			out = append(out, `"index":`...)
			out = strconv.AppendInt(out, int64(gi), 10)
			out = append(out, `,"delta":{}`...)
		}
		out = append(out, `,"logprobs":null,"finish_reason":"length"}]}`+"\n\n"...)
	}
	if !l.ended {
		return out
	}
	if m.includeUsage {
		out = append(out, "data: "...)
		out = l.appendHeader(out)
		out = append(out, `"choices":[],"usage":`...)
		out = m.appendUsage(out, m.bill().Tokens)
		out = append(out, "}\n\n"...)
	}
	return append(out, "data: [DONE]\n\n"...)
}

// appendHeader appends "{" and the current chunk's id, object, created, model,
// system_fingerprint and service_tier members, each followed by a comma (nothing
// of them when there is no current chunk: a stream cut by cutAll).
func (l *limiter) appendHeader(out []byte) []byte {
	out = append(out, '{')
	d := l.data
	if len(d) == 0 || d[0] != '{' {
		return out
	}
	it := jsonscan.Members(d, 0)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("id"), f.Is("object"), f.Is("created"), f.Is("model"), f.Is("system_fingerprint"), f.Is("service_tier"):
			out = append(out, '"')
			out = append(out, f.Key...)
			out = append(out, `":`...)
			out = append(out, d[f.Start:f.End]...)
			out = append(out, ',')
		}
	}
	return out
}

// appendIncomplete appends the response object of response.incomplete: the one the
// stream began with (response.created), incomplete, with the billed usage.
func (m *ResponseMeter) appendIncomplete(out []byte) []byte {
	l := m.lim
	usage := m.appendUsage(nil, m.bill().Tokens)
	sets := [...]struct {
		key   string
		value []byte
	}{
		{"status", []byte(`"incomplete"`)},
		{"incomplete_details", []byte(`{"reason":"max_output_tokens"}`)},
		{"usage", usage},
	}
	var obj []byte
	it := jsonscan.Members(l.first, 0)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Is("response") && l.first[f.Start] == '{' {
			obj = l.first[f.Start:f.End]
		}
	}
	if obj == nil {
		obj = []byte(`{"object":"response"}`)
	}
	var done [len(sets)]bool
	at, members := 0, 0
	it = jsonscan.Members(obj, 0)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		members++
		for i, s := range sets {
			if !done[i] && f.Is(s.key) {
				out = append(append(out, obj[at:f.Start]...), s.value...)
				at, done[i] = f.End, true
			}
		}
	}
	out = append(out, obj[at:len(obj)-1]...)
	for i, s := range sets {
		if done[i] {
			continue
		}
		if members > 0 {
			out = append(out, ',')
		}
		members++
		out = strconv.AppendQuote(out, s.key)
		out = append(append(out, ':'), s.value...)
	}
	return append(out, '}')
}

// appendUsage appends t as the endpoint's usage object.
func (m *ResponseMeter) appendUsage(out []byte, t Tokens) []byte {
	n := func(prefix string, v int64) { out = strconv.AppendInt(append(out, prefix...), v, 10) }
	if m.spec.stop == stopResponse {
		n(`{"input_tokens":`, t.Input)
		n(`,"input_tokens_details":{"cached_tokens":`, t.CachedInput)
		n(`},"output_tokens":`, t.Output)
		n(`,"output_tokens_details":{"reasoning_tokens":`, t.Reasoning)
		n(`},"total_tokens":`, t.Input+t.Output)
		return append(out, '}')
	}
	n(`{"prompt_tokens":`, t.Input)
	n(`,"completion_tokens":`, t.Output)
	n(`,"total_tokens":`, t.Input+t.Output)
	n(`,"prompt_tokens_details":{"cached_tokens":`, t.CachedInput)
	n(`,"audio_tokens":`, t.AudioInput)
	n(`},"completion_tokens_details":{"reasoning_tokens":`, t.Reasoning)
	n(`,"audio_tokens":`, t.AudioOutput)
	return append(out, "}}"...)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(out, '\\', c)
			case c == '\n':
				out = append(out, `\n`...)
			case c == '\r':
				out = append(out, `\r`...)
			case c == '\t':
				out = append(out, `\t`...)
			case c < 0x20:
				out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, `\ufffd`...)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return append(out, '"')
}
