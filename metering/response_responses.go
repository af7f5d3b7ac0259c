package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// Metering the Responses API: a plain body is a response object; a stream is typed
// events (output text deltas, output items, and a final response.completed,
// response.incomplete or response.failed that carries the response with its usage).
// Every event is forwarded: Responses streams report usage without being asked.

// responsesBody meters a plain Responses body.
func (m *ResponseMeter) responsesBody(body []byte) {
	if s, ok := jsonObject(body); ok {
		m.done = true
		m.responseObject(body, s, true)
	}
}

// responsesEvent meters one Responses stream event.
func (m *ResponseMeter) responsesEvent(d []byte) (forward bool) {
	if len(d) == 0 || d[0] != '{' || jsonscan.Check(d, maxBodyDepth) != nil {
		return true
	}
	m.responseEvent(d)
	return true
}

// responseEvent meters one Responses stream event's object.
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
		case f.Is("sequence_number") && m.lim != nil:
			if n, res := jsonscan.IntAt(b, f.Start, f.End); res == jsonscan.IntOK {
				m.lim.seq = max(m.lim.seq, n)
			}
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
					m.countName(outIndex, 0, b, f)
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
				m.readUsage(b, f.Start, f.End)
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
		if m.callMember(b, f, index, 0) { // a function or custom tool call item
			continue
		}
		if (f.Is("content") || f.Is("summary")) && b[f.Start] == '[' {
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
