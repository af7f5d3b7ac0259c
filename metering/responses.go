package metering

import (
	"fmt"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Responses is POST /v1/responses: instructions and input items in, output items
// out, streamed as typed events whose last (response.completed and its kin) always
// carries the usage.
const Responses Endpoint = "responses"

var responsesEndpoint = endpointSpec{
	name: Responses, path: "/v1/responses", parse: (*Request).parseResponses,
	streams: true, caps: []string{"max_output_tokens"},
	minCap: 16, // the API refuses a smaller max_output_tokens
	body:   (*ResponseMeter).responsesBody, event: (*ResponseMeter).responsesEvent,
}

// parseResponses reads the instructions (counted as a system message), the input
// (a string or input items), text.format's schema and the tools.
func (r *Request) parseResponses(f *topFields) error {
	b := r.body
	counted := false
	if f.instructions.Present() {
		switch b[f.instructions.Start] {
		case '"':
			text, _ := jsonscan.TextAt(b, f.instructions.Start, f.instructions.End)
			r.texts = append(r.texts, "system", text)
			r.fixed += tokensPerMessage
			counted = true
		case 'n':
		default:
			return badType("instructions", "a string", b, f.instructions.Start)
		}
	}
	if f.input.Present() {
		switch b[f.input.Start] {
		case '"':
			text, _ := jsonscan.TextAt(b, f.input.Start, f.input.End)
			r.texts = append(r.texts, "user", text)
			r.fixed += tokensPerMessage
			r.ItemsParam, r.Items, r.LargestItem = "input", 1, f.input.End-f.input.Start
			counted = true
		case '[':
			count := 0
			it := jsonscan.Elements(b, f.input.Start)
			r.ItemsParam = "input"
			for s, e, ok := it.Next(); ok; s, e, ok = it.Next() {
				if count == maxItems {
					return badValue("input", "more than %d items.", maxItems)
				}
				if err := r.parseInputItem(s, count); err != nil {
					return err
				}
				count++
				r.LargestItem = max(r.LargestItem, e-s)
				counted = true
			}
			r.Items = count
		case 'n':
		default:
			return badType("input", "a string or an array of input items", b, f.input.Start)
		}
	}
	if counted {
		r.fixed += replyPriming
	}
	if err := r.parseSchema(f.text, "text", "format"); err != nil {
		return err
	}
	return r.parseTools(f)
}

// parseInputItem collects one Responses input item: a message (role + content), a
// function or custom tool call (name + arguments/input) or its output. Other items
// (reasoning, item references, built-in tool calls) are not counted locally.
func (r *Request) parseInputItem(s, i int) error {
	b := r.body
	p := itemParam("input", i)
	if b[s] != '{' {
		return badType(p, "an object", b, s)
	}
	typ := "message"
	var role, content, output jsonscan.Member
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		switch {
		case m.Is("type"):
			t, ok := jsonscan.TextAt(b, m.Start, m.End)
			if !ok {
				return badType(p+".type", "a string", b, m.Start)
			}
			typ = t
		case m.Is("role"):
			role = m
		case m.Is("content"):
			content = m
		case m.Is("output"):
			output = m
		}
	}
	switch typ {
	case "message":
		if role.End == role.Start {
			return &RequestError{Message: fmt.Sprintf("Missing required parameter: '%s.role'.", p), Param: p + ".role"}
		}
		rs, ok := jsonscan.TextAt(b, role.Start, role.End)
		if !ok {
			return badType(p+".role", "a string", b, role.Start)
		}
		r.texts = append(r.texts, rs)
		r.fixed += tokensPerMessage
		if content.End > content.Start {
			switch b[content.Start] {
			case '"':
				text, _ := jsonscan.TextAt(b, content.Start, content.End)
				r.texts = append(r.texts, text)
			case '[':
				return r.parseParts(content.Start, p+".content")
			default:
				return badType(p+".content", "a string or an array of content parts", b, content.Start)
			}
		}
	case "function_call", "custom_tool_call":
		r.fixed += tokensPerMessage
		r.collectStrings(s, "name", "arguments", "input")
	case "function_call_output", "custom_tool_call_output":
		r.fixed += tokensPerMessage
		if output.End > output.Start {
			switch b[output.Start] {
			case '"':
				text, _ := jsonscan.TextAt(b, output.Start, output.End)
				r.texts = append(r.texts, text)
			case '[':
				return r.parseParts(output.Start, p+".output")
			}
		}
	}
	return nil
}
