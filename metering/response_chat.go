package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// Metering the chat.completion and text_completion objects of chat, completions and
// embeddings: a plain body is one object, a stream one object per event (a chunk),
// ended by [DONE]. The usual chunk takes chunkfast.go's one-pass path; everything
// else takes the general one below.

// chunkBody meters a plain chat, completions or embeddings body.
func (m *ResponseMeter) chunkBody(body []byte) {
	if !m.generalOnly {
		if _, ok := m.fastChunk(body, false); ok {
			m.done = true
			return
		}
	}
	if s, ok := jsonObject(body); ok {
		m.done = true
		m.chunk(body, s, false)
	}
}

// chunkEvent meters one event of a chat or completions stream. The usage-only
// chunk is forwarded or not as forwardChunk decides.
func (m *ResponseMeter) chunkEvent(d []byte) (forward bool) {
	if string(d) == "[DONE]" {
		m.done = true
		return true
	}
	if len(d) == 0 || d[0] != '{' {
		return true
	}
	if !m.generalOnly {
		if usageOnly, ok := m.fastChunk(d, true); ok {
			return m.forwardChunk(usageOnly)
		}
	}
	if jsonscan.Check(d, maxBodyDepth) != nil {
		return true
	}
	return m.forwardChunk(m.chunk(d, 0, true))
}

// Part numbers of outputText.b for chat choices.
const (
	partContent = iota
	partRefusal
	partReasoning
	partFunctionCall
	partToolCalls // + tool call index
)

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
				m.readUsage(b, f.Start, f.End)
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
	var text, finish jsonscan.Member
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
			finish = f
		case f.Is("text"): // completions
			text = f
		case (stream && f.Is("delta")) || (!stream && f.Is("message")):
			msg = f.Start
		}
	}
	if m.lim != nil {
		m.lim.noteChoice(index)
		if finish.Present() {
			m.lim.noteFinish(index, finish.Start, finish.End)
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

// toolCall meters a function call object.
func (m *ResponseMeter) toolCall(b []byte, s int, index, part int64) {
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		m.callMember(b, f, index, part)
	}
}

// callMember meters a member of a function or custom tool call (a chat tool call's
// function, a Responses output item): its name at once, its arguments (or a custom
// tool's input) buffered, since streams send them in pieces. It reports whether f
// was one of those.
func (m *ResponseMeter) callMember(b []byte, f jsonscan.Member, index, part int64) bool {
	switch {
	case f.Is("name"):
		m.countName(index, part, b, f)
	case f.Is("arguments"), f.Is("input"):
		m.appendString(index, part, b, f)
	default:
		return false
	}
	return true
}

// finish records a finish reason; one other than "stop" is kept over "stop".
func (m *ResponseMeter) finish(reason string) {
	if m.status == "" || m.status == "stop" || reason != "stop" {
		m.status = reason
	}
}
