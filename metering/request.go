package metering

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Request is a parsed, validated request body: what the proxy needs to estimate and
// admit it, and what InputTokens and Rewrite need. It keeps a reference to the body
// it was parsed from, and the texts it counts share the body's memory (parsing copies
// only texts with JSON escapes): the body must not be modified while the Request is
// in use.
type Request struct {
	Endpoint     Endpoint
	Model        string
	Stream       bool
	IncludeUsage bool // the client itself asked for stream_options.include_usage
	// Choices is the number of outputs the request generates, each up to MaxOutput
	// tokens: n (chat), max(n, best_of) × the number of prompts (completions), 1
	// otherwise.
	Choices int64
	// MaxOutput is the output cap the client set: max_completion_tokens or max_tokens
	// (chat; the larger if both are set), max_tokens (completions), max_output_tokens
	// (responses); 0 if none.
	MaxOutput int64
	// Items is the number of messages (chat), input items (responses), prompts
	// (completions) or inputs (embeddings); LargestItem is the size in bytes of the
	// largest one as sent; ItemsParam names the parameter ("messages", "input",
	// "prompt"). The proxy enforces limits.max_messages and max_message_bytes on them.
	Items       int
	LargestItem int
	ItemsParam  string

	body    []byte
	objEnd  int               // offset of the top-level '}'
	empty   bool              // the top-level object has no members
	caps    []jsonscan.Member // the output-cap members present (values may be null)
	opts    jsonscan.Member   // stream_options, when hasOpts
	hasOpts bool

	// What InputTokens counts: each text separately, plus fixed overheads (message
	// framing, images, token arrays), plus the per-function overhead of funcs tool
	// definitions, which depends on the encoding.
	texts []string
	fixed int64
	funcs int64
}

// RequestError is a client error in a request body (HTTP 400,
// invalid_request_error). Param names the offending parameter, as OpenAI's "param"
// field does ("" when none applies, e.g. for malformed JSON).
type RequestError struct {
	Message string
	Param   string
}

func (e *RequestError) Error() string { return e.Message }

// Bounds on a request body, so parsing a hostile body costs at most linear time.
const (
	maxDepth     = 64        // nesting of arrays and objects
	maxItems     = 100_000   // messages, input items, prompts, embedding inputs
	maxN         = 128       // OpenAI's own limit on n
	maxBestOf    = 20        // OpenAI's own limit on best_of
	maxOutputCap = 1<<31 - 1 // output caps; keeps Choices × MaxOutput far from overflow
)

func badType(param, want string, b []byte, at int) *RequestError {
	return &RequestError{
		Message: fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", param, want, jsonscan.KindOf(b, at)),
		Param:   param,
	}
}

func badValue(param, format string, args ...any) *RequestError {
	return &RequestError{Message: fmt.Sprintf("Invalid value for '%s': ", param) + fmt.Sprintf(format, args...), Param: param}
}

// topFields are the top-level members ParseRequest reads.
type topFields struct {
	model, stream, streamOptions, n, bestOf         jsonscan.Member
	maxTokens, maxCompletionTokens, maxOutputTokens jsonscan.Member
	messages, tools, functions, prompt, input       jsonscan.Member
	instructions, responseFormat, text              jsonscan.Member
	seen                                            uint32
}

// slot returns the member slot of a key ParseRequest reads and its bit, or nil.
func (f *topFields) slot(key string) (*jsonscan.Member, uint32) {
	switch key {
	case "model":
		return &f.model, 1 << 0
	case "stream":
		return &f.stream, 1 << 1
	case "stream_options":
		return &f.streamOptions, 1 << 2
	case "n":
		return &f.n, 1 << 3
	case "best_of":
		return &f.bestOf, 1 << 4
	case "max_tokens":
		return &f.maxTokens, 1 << 5
	case "max_completion_tokens":
		return &f.maxCompletionTokens, 1 << 6
	case "max_output_tokens":
		return &f.maxOutputTokens, 1 << 7
	case "messages":
		return &f.messages, 1 << 8
	case "tools":
		return &f.tools, 1 << 9
	case "functions":
		return &f.functions, 1 << 10
	case "prompt":
		return &f.prompt, 1 << 11
	case "input":
		return &f.input, 1 << 12
	case "instructions":
		return &f.instructions, 1 << 13
	case "response_format":
		return &f.responseFormat, 1 << 14
	case "text":
		return &f.text, 1 << 15
	}
	return nil, 0
}

// ParseRequest validates and parses a request body for endpoint ep. Every error is a
// *RequestError naming the parameter at fault. A body that is not UTF-8 is refused.
// Work is linear in the body size: nesting deeper than 64 levels and more than
// 100,000 messages or items are rejected.
// A known top-level key given twice is rejected (the upstream would read the last
// one, which could smuggle an output cap past Rewrite); keys are compared unescaped.
func ParseRequest(ep Endpoint, body []byte) (*Request, error) {
	switch ep {
	case ChatCompletions, Completions, Embeddings, Responses:
	default:
		return nil, &RequestError{Message: fmt.Sprintf("metering: unknown endpoint %q", ep)}
	}
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259 §8.1); counting and forwarding other bytes would
		// bill text the upstream reads differently.
		return nil, &RequestError{Message: fmt.Sprintf("We could not parse the JSON body of your request: it is not valid UTF-8 (at byte offset %d). The API expects a JSON object encoded as UTF-8.", invalidUTF8At(body))}
	}
	if err := jsonscan.Check(body, maxDepth); err != nil {
		return nil, &RequestError{Message: "We could not parse the JSON body of your request: " + err.Error() + ". The API expects a JSON object."}
	}
	start := jsonscan.SkipSpace(body, 0)
	if body[start] != '{' {
		return nil, &RequestError{Message: "The request body must be a JSON object, not " + jsonscan.KindOf(body, start) + "."}
	}
	r := &Request{Endpoint: ep, body: body, Choices: 1, objEnd: jsonscan.SkipValue(body, start) - 1, empty: true, texts: make([]string, 0, 16)}

	var f topFields
	it := jsonscan.Members(body, start)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		r.empty = false
		key := m.NameView()
		slot, bit := f.slot(key)
		if slot == nil {
			continue
		}
		if f.seen&bit != 0 {
			return nil, &RequestError{Message: fmt.Sprintf("Duplicate key '%s' in the request body.", key), Param: strings.Clone(key)}
		}
		f.seen |= bit
		*slot = m
	}

	if err := r.parseCommon(&f); err != nil {
		return nil, err
	}
	var err error
	switch ep {
	case ChatCompletions:
		err = r.parseChat(&f)
	case Completions:
		err = r.parseCompletions(&f)
	case Embeddings:
		err = r.parseEmbeddings(&f)
	case Responses:
		err = r.parseResponses(&f)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// invalidUTF8At returns the offset of the first byte of b that is not part of a valid
// UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// parseCommon reads model, stream, stream_options and the output caps.
func (r *Request) parseCommon(f *topFields) error {
	b := r.body
	if !f.model.Present() || b[f.model.Start] == 'n' {
		return &RequestError{Message: "you must provide a model parameter", Param: "model"}
	}
	model, ok := jsonscan.TextAt(b, f.model.Start, f.model.End)
	if !ok {
		return badType("model", "a string", b, f.model.Start)
	}
	if model == "" {
		return badValue("model", "expected a model name, but got an empty string.")
	}
	r.Model = strings.Clone(model) // outlives the body in logs

	if r.Endpoint == Embeddings {
		return nil // embeddings have no stream, n or output cap
	}
	if f.stream.Present() {
		switch b[f.stream.Start] {
		case 't':
			r.Stream = true
		case 'f', 'n':
		default:
			return badType("stream", "a boolean", b, f.stream.Start)
		}
	}
	if f.streamOptions.Present() {
		switch b[f.streamOptions.Start] {
		case '{':
			r.opts, r.hasOpts = f.streamOptions, true
			var seen bool
			it := jsonscan.Members(b, f.streamOptions.Start)
			for m, ok := it.Next(); ok; m, ok = it.Next() {
				if !m.Is("include_usage") {
					continue
				}
				if seen {
					return &RequestError{Message: "Duplicate key 'include_usage' in 'stream_options'.", Param: "stream_options.include_usage"}
				}
				seen = true
				switch b[m.Start] {
				case 't':
					r.IncludeUsage = true
				case 'f', 'n':
				default:
					return badType("stream_options.include_usage", "a boolean", b, m.Start)
				}
			}
		case 'n':
			r.opts, r.hasOpts = f.streamOptions, true
		default:
			return badType("stream_options", "an object", b, f.streamOptions.Start)
		}
	}

	capNames := [...]struct {
		m    *jsonscan.Member
		name string
	}{{&f.maxCompletionTokens, "max_completion_tokens"}, {&f.maxTokens, "max_tokens"}, {&f.maxOutputTokens, "max_output_tokens"}}
	for _, c := range capNames {
		if !c.m.Present() || !r.usesCap(c.name) {
			continue
		}
		r.caps = append(r.caps, *c.m)
		v, present, err := positiveInt(b, *c.m, c.name, maxOutputCap)
		if err != nil {
			return err
		}
		if present && v > r.MaxOutput {
			r.MaxOutput = v
		}
	}
	return nil
}

// usesCap reports whether the endpoint reads the output-cap parameter name.
func (r *Request) usesCap(name string) bool {
	switch r.Endpoint {
	case ChatCompletions:
		return name == "max_completion_tokens" || name == "max_tokens"
	case Completions:
		return name == "max_tokens"
	case Responses:
		return name == "max_output_tokens"
	}
	return false
}

// capField is the output-cap parameter Rewrite adds when the client set none.
func (r *Request) capField() string {
	switch r.Endpoint {
	case ChatCompletions:
		return "max_completion_tokens"
	case Completions:
		return "max_tokens"
	case Responses:
		return "max_output_tokens"
	}
	return ""
}

// snippet quotes a value in an error message, shortened: it may be megabytes long.
func snippet(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

// positiveInt reads an optional integer parameter in [1, limit]; null is absent.
func positiveInt(b []byte, m jsonscan.Member, param string, limit int64) (v int64, present bool, err error) {
	if b[m.Start] == 'n' {
		return 0, false, nil
	}
	v, res := jsonscan.IntAt(b, m.Start, m.End)
	switch {
	case res == jsonscan.IntNotNumber:
		return 0, false, badType(param, "an integer", b, m.Start)
	case res == jsonscan.IntNotInteger:
		return 0, false, badValue(param, "expected an integer, but got %s.", snippet(b[m.Start:m.End]))
	case res == jsonscan.IntTooLarge || v > limit:
		return 0, false, badValue(param, "integer above maximum value. Expected a value <= %d, but got %s instead.", limit, snippet(b[m.Start:m.End]))
	case res == jsonscan.IntNegative || v < 1:
		return 0, false, badValue(param, "expected a positive integer, but got %s.", snippet(b[m.Start:m.End]))
	}
	return v, true, nil
}

func (r *Request) parseN(f *topFields) error {
	if !f.n.Present() {
		return nil
	}
	n, present, err := positiveInt(r.body, f.n, "n", maxN)
	if err != nil {
		return err
	}
	if present {
		r.Choices = n
	}
	return nil
}

func (r *Request) parseChat(f *topFields) error {
	b := r.body
	if err := r.parseN(f); err != nil {
		return err
	}
	if !f.messages.Present() {
		return &RequestError{Message: "Missing required parameter: 'messages'.", Param: "messages"}
	}
	if b[f.messages.Start] != '[' {
		return badType("messages", "an array", b, f.messages.Start)
	}
	count := 0
	it := jsonscan.Elements(b, f.messages.Start)
	r.ItemsParam = "messages"
	for s, e, ok := it.Next(); ok; s, e, ok = it.Next() {
		if count == maxItems {
			return badValue("messages", "more than %d messages.", maxItems)
		}
		if err := r.parseMessage(s, "messages", count); err != nil {
			return err
		}
		count++
		r.LargestItem = max(r.LargestItem, e-s)
	}
	r.Items = count
	if count == 0 {
		return badValue("messages", "empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	r.fixed += replyPriming
	if err := r.parseSchema(f.responseFormat, "response_format", "json_schema"); err != nil {
		return err
	}
	return r.parseTools(f)
}

// parseSchema counts a structured-output JSON schema — chat's
// response_format.json_schema, the Responses API's text.format — as prompt text:
// the model reads the schema, though OpenAI documents no exact overhead, so its JSON
// text as sent is the estimate. Other formats (text, json_object) count nothing.
func (r *Request) parseSchema(m jsonscan.Member, param, schemaKey string) error {
	b := r.body
	if !m.Present() || b[m.Start] == 'n' {
		return nil
	}
	if b[m.Start] != '{' {
		return badType(param, "an object", b, m.Start)
	}
	it := jsonscan.Members(b, m.Start)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Is(schemaKey) && b[f.Start] == '{' {
			if schemaKey == "format" { // text.format is the schema object itself
				return r.parseSchema(f, param+".format", "schema")
			}
			r.texts = append(r.texts, string(b[f.Start:f.End]))
		}
	}
	return nil
}

// The chat format's overheads, from OpenAI's cookbook "How to count tokens with
// tiktoken": every message is framed as <|start|>{role/name}\n{content}<|end|>\n.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	replyPriming     = 3 // every reply is primed with <|start|>assistant<|message|>
)

func itemParam(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// parseMessage collects one chat message: every string member (role, content, name,
// tool_call_id…) is counted, plus content parts, tool calls and function calls.
func (r *Request) parseMessage(s int, list string, i int) error {
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
		return &RequestError{Message: fmt.Sprintf("Missing required parameter: '%s.role'.", itemParam(list, i)), Param: itemParam(list, i) + ".role"}
	}
	return nil
}

// collectStrings counts the named string members of the object at b[s].
func (r *Request) collectStrings(s int, names ...string) {
	b := r.body
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if b[m.Start] != '"' {
			continue
		}
		for _, n := range names {
			if m.Is(n) {
				text, _ := jsonscan.TextAt(b, m.Start, m.End)
				r.texts = append(r.texts, text)
				break
			}
		}
	}
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
				t, ok := jsonscan.TextAt(b, m.Start, m.End)
				if !ok {
					return badType(p+".type", "a string", b, m.Start)
				}
				typ = t
			case m.Is("text"), m.Is("refusal"):
				text = m
			case m.Is("image_url"):
				image = m
			case m.Is("detail"):
				detail = m
			}
		}
		switch typ {
		case "image_url", "input_image":
			if image.End > image.Start {
				r.fixed += imageTokensAt(b, image, detail)
			} else if typ == "image_url" {
				return &RequestError{Message: fmt.Sprintf("Missing required parameter: '%s.image_url'.", p), Param: p + ".image_url"}
			} else {
				r.fixed += imageDefaultTokens // an input_image by file_id
			}
			continue
		case "input_audio", "input_file", "file":
			continue
		}
		if text.End > text.Start {
			t, ok := jsonscan.TextAt(b, text.Start, text.End)
			if !ok {
				return badType(p+".text", "a string", b, text.Start)
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

// The tool-definition overheads of OpenAI's cookbook ("How to count tokens with
// tiktoken", section 7): per function 7 tokens (o200k models) or 10 (cl100k), 3 to
// open the properties, 3 per property, -3 for an enum plus 3 per enum item, and 12 to
// close the list.
const (
	funcInitO200k = 7
	funcInitCL100 = 10
	propInit      = 3
	propKey       = 3
	enumInit      = -3
	enumItem      = 3
	funcEnd       = 12
)

// parseTools collects the tool (and legacy function) definitions by the cookbook's
// formula.
func (r *Request) parseTools(f *topFields) error {
	b := r.body
	funcs := r.funcs
	for _, list := range [...]struct {
		m    *jsonscan.Member
		name string
	}{{&f.tools, "tools"}, {&f.functions, "functions"}} {
		if !list.m.Present() || b[list.m.Start] == 'n' {
			continue
		}
		if b[list.m.Start] != '[' {
			return badType(list.name, "an array", b, list.m.Start)
		}
		i := 0
		it := jsonscan.Elements(b, list.m.Start)
		for ts, _, ok := it.Next(); ok; ts, _, ok = it.Next() {
			if b[ts] != '{' {
				return badType(itemParam(list.name, i), "an object", b, ts)
			}
			i++
			if i > maxItems {
				return badValue(list.name, "more than %d tools.", maxItems)
			}
			def, isFunc := ts, list.name == "functions"
			tt := jsonscan.Members(b, ts)
			for m, ok := tt.Next(); ok; m, ok = tt.Next() {
				switch {
				case m.Is("function") && b[m.Start] == '{':
					def, isFunc = m.Start, true
				case m.Is("type"):
					if t, _ := jsonscan.TextAt(b, m.Start, m.End); t == "function" {
						isFunc = true
					}
				}
			}
			if isFunc {
				r.collectFunction(def)
			}
		}
	}
	if r.funcs > funcs {
		r.fixed += funcEnd
	}
	return nil
}

// collectFunction counts one function definition: "name:description", then each
// property as "key:type:description" plus its enum items. Nested object properties
// are counted the same way (an extension of the cookbook's flat formula).
func (r *Request) collectFunction(s int) {
	b := r.body
	r.funcs++
	var name, desc string
	params := -1
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		switch {
		case m.Is("name"):
			name, _ = jsonscan.TextAt(b, m.Start, m.End)
		case m.Is("description"):
			desc, _ = jsonscan.TextAt(b, m.Start, m.End)
		case m.Is("parameters") && b[m.Start] == '{':
			params = m.Start
		}
	}
	r.texts = append(r.texts, name+":"+strings.TrimSuffix(desc, "."))
	if params >= 0 {
		r.collectProperties(params)
	}
}

// collectProperties counts the "properties" of the schema object at b[s].
func (r *Request) collectProperties(s int) {
	b := r.body
	props := -1
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if m.Is("properties") && b[m.Start] == '{' {
			props = m.Start
		}
	}
	if props < 0 {
		return
	}
	pt := jsonscan.Members(b, props)
	first := true
	for p, ok := pt.Next(); ok; p, ok = pt.Next() {
		if first {
			r.fixed += propInit
			first = false
		}
		r.fixed += propKey
		var typ, desc string
		it := jsonscan.Members(b, p.Start)
		for m, ok := it.Next(); ok; m, ok = it.Next() {
			switch {
			case m.Is("type"):
				if t, ok := jsonscan.TextAt(b, m.Start, m.End); ok {
					typ = t
				} else {
					typ = string(b[m.Start:m.End])
				}
			case m.Is("description"):
				desc, _ = jsonscan.TextAt(b, m.Start, m.End)
			case m.Is("enum") && b[m.Start] == '[':
				r.fixed += enumInit
				et := jsonscan.Elements(b, m.Start)
				for es, ee, ok := et.Next(); ok; es, ee, ok = et.Next() {
					r.fixed += enumItem
					if t, ok := jsonscan.TextAt(b, es, ee); ok {
						r.texts = append(r.texts, t)
					} else {
						r.texts = append(r.texts, string(b[es:ee]))
					}
				}
			case m.Is("properties") && b[m.Start] == '{':
				r.collectProperties(p.Start)
			case m.Is("items") && b[m.Start] == '{':
				r.collectProperties(m.Start)
			}
		}
		r.texts = append(r.texts, p.Name()+":"+typ+":"+strings.TrimSuffix(desc, "."))
	}
}

func (r *Request) parseCompletions(f *topFields) error {
	b := r.body
	if err := r.parseN(f); err != nil {
		return err
	}
	if f.bestOf.Present() {
		bestOf, present, err := positiveInt(b, f.bestOf, "best_of", maxBestOf)
		if err != nil {
			return err
		}
		if present && bestOf > r.Choices {
			r.Choices = bestOf // best_of candidates are generated and billed server-side
		}
	}
	if !f.prompt.Present() {
		return nil
	}
	prompts, err := r.parsePromptLike(f.prompt, "prompt")
	if err != nil {
		return err
	}
	r.Choices *= max(prompts, 1) // each prompt gets its own completions
	return nil
}

func (r *Request) parseEmbeddings(f *topFields) error {
	if !f.input.Present() {
		return &RequestError{Message: "Missing required parameter: 'input'.", Param: "input"}
	}
	items, err := r.parsePromptLike(f.input, "input")
	if err != nil {
		return err
	}
	if items == 0 {
		return badValue("input", "expected a non-empty string or array, but got an empty array.")
	}
	return nil
}

// parsePromptLike collects a completions prompt or an embeddings input: a string, an
// array of strings, an array of token ids, or an array of token-id arrays (token
// arrays count by their length). It returns the number of prompts.
func (r *Request) parsePromptLike(m jsonscan.Member, param string) (int64, error) {
	b := r.body
	switch b[m.Start] {
	case '"':
		text, _ := jsonscan.TextAt(b, m.Start, m.End)
		r.texts = append(r.texts, text)
		r.ItemsParam, r.Items, r.LargestItem = param, 1, m.End-m.Start
		return 1, nil
	case 'n':
		if param == "prompt" {
			return 0, nil
		}
	case '[':
		const (
			unknown = iota
			strs
			ids
			idArrays
		)
		kind, count, idx := unknown, int64(0), 0
		it := jsonscan.Elements(b, m.Start)
		r.ItemsParam = param
		for s, e, ok := it.Next(); ok; s, e, ok = it.Next() {
			p := itemParam(param, idx)
			idx++
			if count == maxItems {
				return 0, badValue(param, "more than %d items.", maxItems)
			}
			count++
			k := unknown
			switch b[s] {
			case '"':
				k = strs
			case '[':
				k = idArrays
			default:
				k = ids
			}
			if kind == unknown {
				kind = k
			} else if k != kind {
				return 0, badType(p, "the same type as the other items", b, s)
			}
			if k != ids {
				r.LargestItem = max(r.LargestItem, e-s)
			}
			switch k {
			case strs:
				text, _ := jsonscan.TextAt(b, s, e)
				r.texts = append(r.texts, text)
			case ids:
				if _, res := jsonscan.IntAt(b, s, e); res != jsonscan.IntOK {
					return 0, badType(p, "a string, an integer token id or an array of token ids", b, s)
				}
				r.fixed++
				count-- // one token array is one prompt
			case idArrays:
				n := int64(0)
				et := jsonscan.Elements(b, s)
				for es, ee, ok := et.Next(); ok; es, ee, ok = et.Next() {
					if _, res := jsonscan.IntAt(b, es, ee); res != jsonscan.IntOK {
						return 0, badType(itemParam(p, int(n)), "an integer token id", b, es)
					}
					n++
				}
				r.fixed += n
			}
		}
		if kind == ids {
			r.Items, r.LargestItem = 1, m.End-m.Start
			return 1, nil
		}
		r.Items = int(count)
		return count, nil
	}
	return 0, badType(param, "a string, an array of strings, or an array of token ids", b, m.Start)
}

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

// InputTokens is the local count of the request's input tokens, the estimate made
// before the request is forwarded and the fallback when the upstream reports no usage:
//   - chat: OpenAI's message formula (cookbook "How to count tokens with tiktoken"):
//     3 tokens per message, every string member counted (role, content, name,
//     tool_call_id…), +1 per name, +3 to prime the reply; content parts by their
//     text; tool calls by function name and arguments; images by the tile rule (see
//     imageTokens); audio and file parts are not counted locally.
//   - tools and legacy functions: the cookbook's formula — per function 7 (o200k) or
//     10 (cl100k) tokens plus "name:description", per property 3 plus
//     "key:type:description", enums -3 plus 3 and the item per item, 12 to close.
//   - completions and embeddings: each prompt or input string; token arrays count
//     by their length.
//   - responses: instructions as a system message and input items as messages
//     (function calls by name and arguments, their outputs by text), +3 to prime
//     the reply; items that are not text (reasoning, references) are not counted.
//
// tok counts text in the model's encoding; if it reports its encoding (an
// Encoding() string method, as TokenizerFor's do), that picks the tool overhead,
// else EncodingForModel(r.Model) does.
func (r *Request) InputTokens(tok Tokenizer) Tokens {
	n := r.fixed
	if tok != nil {
		for _, t := range r.texts {
			n += int64(tok.Count(t))
		}
	}
	if r.funcs > 0 {
		enc := EncodingForModel(r.Model)
		if e, ok := tok.(encoder); ok {
			enc = e.Encoding()
		}
		init := int64(funcInitO200k)
		if enc == CL100kBase {
			init = funcInitCL100
		}
		n += r.funcs * init
	}
	return Tokens{Input: max(n, 0)}
}
