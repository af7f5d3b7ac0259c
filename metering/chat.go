package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// ChatCompletions is POST /v1/chat/completions: messages in, choices of messages
// out, streamed as chat.completion.chunk events.
const ChatCompletions Endpoint = "chat.completions"

var chatEndpoint = endpointSpec{
	name: ChatCompletions, path: "/v1/chat/completions", parse: (*Request).parseChat,
	streams: true, usageOnRequest: true, caps: []string{"max_completion_tokens", "max_tokens"}, minCap: 1,
	body: (*ResponseMeter).chunkBody, event: (*ResponseMeter).chunkEvent, stop: stopChat,
}

// parseChat reads n, the messages (each counted by OpenAI's message formula),
// response_format's schema and the tools.
func (r *Request) parseChat(f *topFields) error {
	b := r.body
	if err := r.parseN(f); err != nil {
		return err
	}
	if !f.messages.Present() {
		return missingParam("messages")
	}
	if b[f.messages.Start] != '[' {
		return badType("messages", "an array", b, f.messages.Start)
	}
	if err := r.parseItems(f.messages.Start, "messages", "messages", (*Request).parseMessage); err != nil {
		return err
	}
	if r.Items == 0 {
		return badValue("messages", "empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	r.fixed += replyPriming
	if err := r.parseSchema(f.responseFormat, "response_format", "json_schema"); err != nil {
		return err
	}
	return r.parseTools(f)
}

// parseMessage collects messages[i]: every string member (role, content, name,
// tool_call_id…) is counted, plus content parts, tool calls and function calls.
func (r *Request) parseMessage(s, i int) error {
	const list = "messages"
	b := r.body
	if b[s] != '{' {
		return badType(itemParam(list, i), "an object", b, s)
	}
	r.fixed += tokensPerMessage
	hasRole := false
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		name := m.NameView()
		switch b[m.Start] {
		case '"':
			text, _ := jsonscan.TextAt(b, m.Start, m.End)
			r.texts = append(r.texts, text)
			switch name {
			case "name":
				r.fixed += tokensPerName
			case "role":
				hasRole = true
			}
			continue
		case '[':
			switch name {
			case "content":
				if err := r.parseParts(m.Start, itemParam(list, i)+".content"); err != nil {
					return err
				}
				continue
			case "tool_calls":
				if err := r.parseToolCalls(m.Start, itemParam(list, i)+".tool_calls"); err != nil {
					return err
				}
				continue
			}
		case '{':
			if name == "function_call" {
				r.collectStrings(m.Start, "name", "arguments")
				continue
			}
		case 'n':
			if name != "role" {
				continue
			}
		}
		switch name {
		case "role":
			return badType(itemParam(list, i)+".role", "a string", b, m.Start)
		case "content":
			return badType(itemParam(list, i)+".content", "a string or an array of content parts", b, m.Start)
		}
	}
	if !hasRole {
		return missingParam(itemParam(list, i) + ".role")
	}
	return nil
}

// parseParts collects an array of content parts (chat and Responses shapes): text
// parts by their text, images by OpenAI's tile rule; audio and file parts are not
// counted locally (the upstream's usage covers them).
func (r *Request) parseParts(s int, param string) error {
	b := r.body
	i := 0
	it := jsonscan.Elements(b, s)
	for ps, _, ok := it.Next(); ok; ps, _, ok = it.Next() {
		p := itemParam(param, i)
		i++
		if b[ps] == '"' { // a bare string part (Responses' function_call_output may hold one)
			text, _ := jsonscan.TextAt(b, ps, jsonscan.SkipValue(b, ps))
			r.texts = append(r.texts, text)
			continue
		}
		if b[ps] != '{' {
			return badType(p, "an object", b, ps)
		}
		var typ string
		var text, image, detail jsonscan.Member
		pt := jsonscan.Members(b, ps)
		for m, ok := pt.Next(); ok; m, ok = pt.Next() {
			switch {
			case m.Is("type"):
				t, err := stringParam(b, m, p, ".type")
				if err != nil {
					return err
				}
				typ = t
			case m.Is("text"), m.Is("refusal"):
				text = m
			case m.Is("image_url"):
				image = m
			case m.Is("detail"):
				detail = m
			case m.Is("file_id"):
				// Every occurrence is a reference: a key given twice is read
				// as the first or the last depending on the reader upstream.
				if err := r.reference(RefFile, m, p+".file_id"); err != nil {
					return err
				}
			case m.Is("file"):
				if err := r.fileReference(m, p+".file"); err != nil {
					return err
				}
			}
		}
		switch typ {
		case "image_url", "input_image":
			if image.End > image.Start {
				r.fixed += imageTokensAt(b, image, detail)
			} else if typ == "image_url" {
				return missingParam(p + ".image_url")
			} else {
				r.fixed += imageDefaultTokens // an input_image by file_id
			}
			continue
		case "input_audio", "input_file", "file":
			continue
		}
		if text.End > text.Start {
			t, err := stringParam(b, text, p, ".text")
			if err != nil {
				return err
			}
			r.texts = append(r.texts, t)
		}
	}
	return nil
}

// parseToolCalls collects the function names and arguments of an assistant message's
// tool calls.
func (r *Request) parseToolCalls(s int, param string) error {
	b := r.body
	i := 0
	it := jsonscan.Elements(b, s)
	for cs, _, ok := it.Next(); ok; cs, _, ok = it.Next() {
		if b[cs] != '{' {
			return badType(itemParam(param, i), "an object", b, cs)
		}
		i++
		ct := jsonscan.Members(b, cs)
		for m, ok := ct.Next(); ok; m, ok = ct.Next() {
			if b[m.Start] == '{' && (m.Is("function") || m.Is("custom")) {
				r.collectStrings(m.Start, "name", "arguments", "input")
			}
		}
	}
	return nil
}
