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
	// References are the stored objects the body points at by id (references.go),
	// which the proxy checks belong to the caller's account.
	References []Reference
	// Background is a Responses request's background: true. The upstream answers
	// at once (status queued or in_progress) and runs the response on its own; the
	// proxy holds the request's worst case until a poller finds it ended.
	Background bool

	spec    *endpointSpec // the endpoint's parser, output caps and meters
	echo    bool          // completions: the response repeats the prompt before the output
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

	// The media endpoints (media.go): what prices the request, and the most
	// output it may bill (images, or audio tokens), set by the endpoint's
	// unitPrice; imageInput is the estimate of an edit's image input tokens.
	media       mediaParams
	outputBound int64
	imageInput  int64
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

func missingParam(param string) *RequestError {
	return &RequestError{Message: "Missing required parameter: '" + param + "'.", Param: param}
}

// stringParam reads the member m of p that must be a string, such as a part's or an
// item's type; its error names p+field, joined only then.
func stringParam(b []byte, m jsonscan.Member, p, field string) (string, error) {
	text, ok := jsonscan.TextAt(b, m.Start, m.End)
	if !ok {
		return "", badType(p+field, "a string", b, m.Start)
	}
	return text, nil
}

// topFields are the top-level members ParseRequest reads, for all endpoints: a key
// given twice is refused whichever endpoint reads it. An endpoint that reads a new
// top-level key adds it here.
type topFields struct {
	model, stream, streamOptions, n, bestOf         jsonscan.Member
	maxTokens, maxCompletionTokens, maxOutputTokens jsonscan.Member
	messages, tools, functions, prompt, input       jsonscan.Member
	instructions, responseFormat, text, echo        jsonscan.Member
	previousResponseID, background, conversation    jsonscan.Member
	size, quality, voice, streamFormat              jsonscan.Member // images and speech (media.go)
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
	case "echo":
		return &f.echo, 1 << 16
	case "previous_response_id":
		return &f.previousResponseID, 1 << 17
	case "size":
		return &f.size, 1 << 18
	case "quality":
		return &f.quality, 1 << 19
	case "voice":
		return &f.voice, 1 << 20
	case "stream_format":
		return &f.streamFormat, 1 << 21
	case "background":
		return &f.background, 1 << 22
	case "conversation":
		return &f.conversation, 1 << 23
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
	spec := specOf(ep)
	if spec == nil {
		return nil, &RequestError{Message: fmt.Sprintf("metering: unknown endpoint %q", ep)}
	}
	if spec.multipart {
		return nil, &RequestError{Message: "Invalid Content-Type header: this endpoint expects multipart/form-data with a boundary."}
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
	r := &Request{Endpoint: ep, spec: spec, body: body, Choices: 1, objEnd: jsonscan.SkipValue(body, start) - 1, empty: true, texts: make([]string, 0, 16)}

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
	if err := spec.parse(r, &f); err != nil {
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

// parseCommon reads model, stream, stream_options and the output caps, those the
// endpoint reads.
func (r *Request) parseCommon(f *topFields) error {
	b := r.body
	if (!f.model.Present() || b[f.model.Start] == 'n') && r.spec.defaultModel != "" {
		r.Model = r.spec.defaultModel // the upstream's own default, which it then serves
		return nil
	}
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

	if !r.spec.streams {
		return nil // nor has it an output cap (embeddings)
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

	for _, name := range r.spec.caps {
		m, _ := f.slot(name)
		if !m.Present() {
			continue
		}
		r.caps = append(r.caps, *m)
		v, present, err := positiveInt(b, *m, name, maxOutputCap)
		if err != nil {
			return err
		}
		if present && v > r.MaxOutput {
			r.MaxOutput = v
		}
	}
	return nil
}

// capField is the output-cap parameter Rewrite adds when the client set none, ""
// for an endpoint without one.
func (r *Request) capField() string {
	if !r.spec.hasOutput() {
		return ""
	}
	return r.spec.caps[0]
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

func itemParam(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// parseItems walks the array at b[s] of chat messages or Responses input items (at
// most maxItems; noun names them in the error), parses each with parse, and records
// Items, ItemsParam and LargestItem.
func (r *Request) parseItems(s int, param, noun string, parse func(r *Request, s, i int) error) error {
	count := 0
	it := jsonscan.Elements(r.body, s)
	r.ItemsParam = param
	for s, e, ok := it.Next(); ok; s, e, ok = it.Next() {
		if count == maxItems {
			return badValue(param, "more than %d %s.", maxItems, noun)
		}
		if err := parse(r, s, count); err != nil {
			return err
		}
		count++
		r.LargestItem = max(r.LargestItem, e-s)
	}
	r.Items = count
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
