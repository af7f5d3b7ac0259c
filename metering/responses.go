package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// Responses is POST /v1/responses: instructions and input items in, output items
// out, streamed as typed events whose last (response.completed and its kin) always
// carries the usage.
const Responses Endpoint = "responses"

var responsesEndpoint = endpointSpec{
	name: Responses, path: "/v1/responses", parse: (*Request).parseResponses,
	streams: true, caps: []string{"max_output_tokens"},
	minCap: 16, // the API refuses a smaller max_output_tokens
	body:   (*ResponseMeter).responsesBody, event: (*ResponseMeter).responsesEvent, stop: stopResponse,
}

// parseResponses reads the instructions (counted as a system message), the input
// (a string or input items), text.format's schema and the tools.
func (r *Request) parseResponses(f *topFields) error {
	b := r.body
	counted := false
	if f.instructions.Present() {
		switch b[f.instructions.Start] {
		case '"':
			r.stringMessage("system", f.instructions)
			counted = true
		case 'n':
		default:
			return badType("instructions", "a string", b, f.instructions.Start)
		}
	}
	if f.input.Present() {
		switch b[f.input.Start] {
		case '"':
			r.stringMessage("user", f.input)
			r.ItemsParam, r.Items, r.LargestItem = "input", 1, f.input.End-f.input.Start
			counted = true
		case '[':
			if err := r.parseItems(f.input.Start, "input", "items", (*Request).parseInputItem); err != nil {
				return err
			}
			counted = r.Items > 0
		case 'n':
		default:
			return badType("input", "a string or an array of input items", b, f.input.Start)
		}
	}
	if counted {
		r.fixed += replyPriming
	}
	if f.previousResponseID.Present() {
		if err := r.reference(RefResponse, f.previousResponseID, "previous_response_id"); err != nil {
			return err
		}
	}
	if f.conversation.Present() {
		if err := r.conversationReference(f.conversation); err != nil {
			return err
		}
	}
	if err := r.parseBackground(f); err != nil {
		return err
	}
	if err := r.parseSchema(f.text, "text", "format"); err != nil {
		return err
	}
	return r.parseTools(f)
}

// stringMessage counts the string m as one message of the role: the instructions
// are a system message, an input string a user message.
func (r *Request) stringMessage(role string, m jsonscan.Member) {
	text, _ := jsonscan.TextAt(r.body, m.Start, m.End)
	r.texts = append(r.texts, role, text)
	r.fixed += tokensPerMessage
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
			t, err := stringParam(b, m, p, ".type")
			if err != nil {
				return err
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
		if !role.Present() {
			return missingParam(p + ".role")
		}
		rs, err := stringParam(b, role, p, ".role")
		if err != nil {
			return err
		}
		r.texts = append(r.texts, rs)
		r.fixed += tokensPerMessage
		if content.Present() {
			if ok, err := r.parseTextOrParts(content, p, ".content"); !ok {
				return badType(p+".content", "a string or an array of content parts", b, content.Start)
			} else if err != nil {
				return err
			}
		}
	case "function_call", "custom_tool_call":
		r.fixed += tokensPerMessage
		r.collectStrings(s, "name", "arguments", "input")
	case "function_call_output", "custom_tool_call_output":
		r.fixed += tokensPerMessage
		if output.Present() {
			_, err := r.parseTextOrParts(output, p, ".output") // other outputs count nothing
			return err
		}
	}
	return nil
}

// parseTextOrParts collects the member m of item p that is a string or an array of
// content parts (param p+field); it reports false, collecting nothing, for any other
// value.
func (r *Request) parseTextOrParts(m jsonscan.Member, p, field string) (bool, error) {
	b := r.body
	switch b[m.Start] {
	case '"':
		text, _ := jsonscan.TextAt(b, m.Start, m.End)
		r.texts = append(r.texts, text)
		return true, nil
	case '[':
		return true, r.parseParts(m.Start, p+field)
	}
	return false, nil
}

// parseBackground reads background. A background response is billed when a
// poller finds it ended (its usage then), which a stream would not wait for: an
// app that leaves a background stream early stops reading while the upstream
// goes on generating. So background streams are refused.
func (r *Request) parseBackground(f *topFields) error {
	if !f.background.Present() {
		return nil
	}
	switch r.body[f.background.Start] {
	case 't':
		r.Background = true
	case 'f', 'n':
		return nil
	default:
		return badType("background", "a boolean", r.body, f.background.Start)
	}
	if r.Stream {
		return badValue("background", "creditgate bills a background response when it ends, by polling it, and does not relay background streams; send background: true without stream, then retrieve the response.")
	}
	return nil
}
