package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// The local count of the output: text buffered per choice or output item and
// counted as a whole (counting delta by delta would split words), with a cap on
// what one stream may buffer.

// Bounds on buffered output text.
const (
	maxOutputTexts = 1024     // beyond this many choices/parts, text shares the last buffer
	flushAt        = 16 << 10 // a buffer this large is counted up to an exact cut point (bounds memory per stream)
)

// outputText is the output text of one choice or output item, buffered so that it is
// counted as a whole rather than delta by delta.
type outputText struct {
	a, b    int64 // choice index and part (content, refusal, tool call…)
	buf     []byte
	counted int64 // tokens of this text counted already: names, and text flushed from buf
}

// appendString buffers the string value f as output text of (a, part). Under a
// limit (a stream with SetLimit), the text may instead be cut or dropped (cut.go).
func (m *ResponseMeter) appendString(a, part int64, b []byte, f jsonscan.Member) {
	raw, escaped, ok := jsonscan.RawStringAt(b, f.Start, f.End)
	if !ok || len(raw) == 0 {
		return
	}
	t := m.text(a, part)
	if m.lim != nil && m.lim.cutting() {
		m.limitText(t, f, raw, escaped)
		return
	}
	m.buffer(t, raw, escaped)
	if len(t.buf) >= flushAt {
		m.flush(t)
	}
}

// buffer appends a string's content, unescaped, to t.
func (m *ResponseMeter) buffer(t *outputText, raw []byte, escaped bool) {
	if escaped {
		t.buf = append(t.buf, jsonscan.Unquote(raw)...)
	} else {
		t.buf = append(t.buf, raw...)
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

// flush counts a large buffer up to its last exact cut point and keeps the rest;
// without one, it cuts in the middle (off by a token at most).
func (m *ResponseMeter) flush(t *outputText) {
	if m.commit(t, len(t.buf)) == 0 {
		m.commitAt(t, len(t.buf)/2)
	}
}

// commit counts t.buf up to its last exact cut point before upto — a space after a
// non-space, where counting in two parts gives the same total (see nextSegment) —
// and keeps the rest. It returns how many bytes it took from the front of t.buf.
func (m *ResponseMeter) commit(t *outputText, upto int) int {
	for i := upto - 1; i > 0; i-- {
		if t.buf[i] == ' ' && !isSpaceByte(t.buf[i-1]) {
			m.commitAt(t, i)
			return i
		}
	}
	return 0
}

// commitAt counts t.buf[:cut] now and keeps the rest.
func (m *ResponseMeter) commitAt(t *outputText, cut int) {
	t.counted += m.count(jsonscan.View(t.buf[:cut])) // counted at once: a view of the buffer is enough
	t.buf = append(t.buf[:0], t.buf[cut:]...)
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// countName counts a function or tool name of (a, part) at once: names arrive
// whole. Under a limit, a name past the cap is not relayed (cut.go).
func (m *ResponseMeter) countName(a, part int64, b []byte, f jsonscan.Member) {
	name, ok := jsonscan.StringAt(b, f.Start, f.End)
	if !ok || name == "" {
		return
	}
	t := m.text(a, part)
	n := m.count(name)
	if m.lim != nil && m.lim.cutting() && !m.limitName(t, f, n) {
		return
	}
	t.counted += n
}

// count is the local token count of text (0 without a tokenizer).
func (m *ResponseMeter) count(text string) int64 {
	if m.tok == nil || text == "" {
		return 0
	}
	return int64(m.tok.Count(text))
}
