package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// The local count of a request's input: the counting formulas of OpenAI's cookbook
// ("How to count tokens with tiktoken") applied to what the endpoint parsers
// collected. Tool definitions have their own formula, in tools.go.

// The chat format's overheads, from OpenAI's cookbook "How to count tokens with
// tiktoken": every message is framed as <|start|>{role/name}\n{content}<|end|>\n.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	replyPriming     = 3 // every reply is primed with <|start|>assistant<|message|>
)

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
	var texts int64
	if tok != nil {
		for _, t := range r.texts {
			texts += int64(tok.Count(t))
		}
	}
	init := int64(0)
	if r.funcs > 0 {
		enc := EncodingForModel(r.Model)
		if e, ok := tok.(encoder); ok {
			enc = e.Encoding()
		}
		init = funcInitO200k
		if enc == CL100kBase {
			init = funcInitCL100
		}
	}
	return r.inputTokens(texts, init)
}

// InputTokenBound is an upper bound on InputTokens(tok) for tok of o200k_base or
// cl100k_base, computed without a tokenizer, in time linear in the number of texts
// (not their length): every token of those encodings is at least one byte of text,
// so each text counts its UTF-8 length in bytes; the fixed overheads (message
// framing, names, reply priming, image tiles, token-id prompts, tool properties)
// are added exactly as InputTokens adds them, and each function definition costs
// the larger of the two encodings' overheads (cl100k's 10). Same rounding rule
// (inputTokens).
//
// It equals InputTokens when every text is one token per byte (empty texts,
// single characters, "a b c"-style one-byte pieces) and, with functions, the
// encoding is cl100k_base; otherwise it is larger (about 4× for English prose).
func (r *Request) InputTokenBound() Tokens {
	var texts int64
	for _, t := range r.texts {
		texts += int64(len(t))
	}
	return r.inputTokens(texts, funcInitCL100)
}

// inputTokens is the one formula of InputTokens and InputTokenBound: the fixed
// overheads, the texts' counts, funcInit per function definition, at least 0.
//
// Image inputs of an image edit are priced apart (media.go): they ride in the
// AudioInput class, at the model's image input price, counted exactly by both.
func (r *Request) inputTokens(texts, funcInit int64) Tokens {
	return Tokens{Input: max(r.fixed+texts+r.funcs*funcInit, 0) + r.imageInput, AudioInput: r.imageInput}
}
