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
	a, b int64 // choice index and part (content, refusal, tool call…)
	buf  []byte
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
