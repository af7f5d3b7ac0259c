package mockupstream

import (
	"encoding/json"
	"net/http"
	"time"
)

// systemFingerprint stands for the backend configuration, as OpenAI's fp_… values do.
const systemFingerprint = "fp_m0ck5e4f1d"

// emptyList marshals as [], for the arrays OpenAI always sends.
type emptyList [0]struct{}

// usage is the usage object of chat completions and completions.
type usage struct {
	PromptTokens            int64                   `json:"prompt_tokens"`
	CompletionTokens        int64                   `json:"completion_tokens"`
	TotalTokens             int64                   `json:"total_tokens"`
	PromptTokensDetails     promptTokensDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails completionTokensDetails `json:"completion_tokens_details"`
}

type promptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
	AudioTokens  int64 `json:"audio_tokens"`
}

type completionTokensDetails struct {
	ReasoningTokens          int64 `json:"reasoning_tokens"`
	AudioTokens              int64 `json:"audio_tokens"`
	AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
}

// generation is what a request gets generated: one text per choice and the counts.
type generation struct {
	id, model    string
	created      int64
	promptTokens int64
	texts        []text
	reasoning    int64
	finish       string // "stop" or "length"
}

// generate plans the replies: n choices for each prompt, seeded by its hash, each cut
// to the request's limit.
func (x *exchange) generate(s *Server, idPrefix, model string, promptTokens int64, seeds []uint64, n int, limit *int) generation {
	out := s.OutputTokens
	if out <= 0 {
		out = DefaultOutputTokens
	}
	if k := x.b.IgnoreCap; k > 0 {
		// The lying upstream: k times what was asked for, and no cap at all.
		if limit != nil {
			out = *limit
		}
		out, limit = k*out, nil
	}
	length, reasoning, truncated := budget(out, limit, x.b.ReasoningTokens)
	g := generation{
		id: newID(idPrefix), model: model, created: time.Now().Unix(),
		promptTokens: promptTokens, reasoning: reasoning, finish: "stop",
		texts: make([]text, 0, len(seeds)*n),
	}
	if truncated {
		g.finish = "length"
	}
	for _, seed := range seeds {
		for choice := range n {
			g.texts = append(g.texts, newText(seed, choice, length))
		}
	}
	return g
}

// outputTokens is the exact token count of every choice's text plus reasoning.
func (g generation) outputTokens() int64 {
	n := g.reasoning
	for _, t := range g.texts {
		n += int64(t.n) // each word is one token: see words
	}
	return n
}

// usage is the usage reported: the true counts, unless b overrides the prompt or
// completion tokens.
func (g generation) usage(b Behavior) usage {
	prompt, out := g.promptTokens, g.outputTokens()
	if b.PromptTokens > 0 {
		prompt = b.PromptTokens
	}
	if b.CompletionTokens > 0 {
		out = b.CompletionTokens
	}
	cached, reasoning := min(b.CachedTokens, prompt), min(g.reasoning, out)
	if k := int64(b.InflateUsage); k > 1 {
		prompt, out, cached, reasoning = k*prompt, k*out, k*cached, k*reasoning
	}
	return usage{
		PromptTokens:            prompt,
		CompletionTokens:        out,
		TotalTokens:             prompt + out,
		PromptTokensDetails:     promptTokensDetails{CachedTokens: cached},
		CompletionTokensDetails: completionTokensDetails{ReasoningTokens: reasoning},
	}
}

// reportedUsage is the usage an answer carries, or nil when b leaves it out.
func (g generation) reportedUsage(b Behavior) *usage {
	if b.NoUsage {
		return nil
	}
	u := g.usage(b)
	return &u
}

// usageField is the "usage" of a stream's final chunk, or nil when it is left out.
func (g generation) usageField(x *exchange, include bool) json.RawMessage {
	if !include || x.b.NoUsage {
		return nil
	}
	data, _ := json.Marshal(g.usage(x.b)) // a struct of integers always marshals
	return data
}

// jsonNull is a JSON null, e.g. the "usage": null that every chunk carries when
// include_usage is on.
var jsonNull = json.RawMessage("null")

func (s *Server) chatCompletions(x *exchange) error {
	var req chatRequest
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if e := firstError(
		checkChoices(req.Model, req.N, req.MaxTokens),
		outOfRange("max_completion_tokens", req.MaxCompletionTokens, 1, 0),
	); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if len(req.Messages) == 0 {
		return x.writeError(http.StatusBadRequest, *missingParam("messages"))
	}
	prompt, seed, err := chatPromptTokens(encodingFor(req.Model), req.Messages)
	if err != nil {
		return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
	}
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	g := x.generate(s, "chatcmpl-", req.Model, prompt, []uint64{seed}, valueOr(req.N, 1), limit)
	if req.Stream {
		return streamChat(x, g, req.StreamOptions.includeUsage())
	}
	type assistantMessage struct {
		Role        string    `json:"role"`
		Content     string    `json:"content"`
		Refusal     *string   `json:"refusal"`
		Annotations emptyList `json:"annotations"`
	}
	type choice struct {
		Index        int              `json:"index"`
		Message      assistantMessage `json:"message"`
		Logprobs     *struct{}        `json:"logprobs"`
		FinishReason string           `json:"finish_reason"`
	}
	resp := struct {
		ID                string   `json:"id"`
		Object            string   `json:"object"`
		Created           int64    `json:"created"`
		Model             string   `json:"model"`
		Choices           []choice `json:"choices"`
		Usage             *usage   `json:"usage,omitempty"`
		ServiceTier       string   `json:"service_tier"`
		SystemFingerprint string   `json:"system_fingerprint"`
	}{
		ID: g.id, Object: "chat.completion", Created: g.created, Model: g.model,
		ServiceTier: "default", SystemFingerprint: systemFingerprint,
	}
	for i, t := range g.texts {
		resp.Choices = append(resp.Choices, choice{
			Index: i, Message: assistantMessage{Role: "assistant", Content: t.String()}, FinishReason: g.finish,
		})
	}
	resp.Usage = g.reportedUsage(x.b)
	if req.Store {
		s.keepChat(resp, g.id, g.model, g.created, req.Metadata, req.Messages)
	}
	return x.answer(resp)
}

// streamChat streams chat.completion.chunk events, opening each choice with its role.
func streamChat(x *exchange, g generation, includeUsage bool) error {
	type delta struct {
		Role    string          `json:"role,omitempty"`
		Content *string         `json:"content,omitempty"`
		Refusal json.RawMessage `json:"refusal,omitempty"`
	}
	type choice struct {
		Index        int       `json:"index"`
		Delta        delta     `json:"delta"`
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	chunk := struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           int64           `json:"created"`
		Model             string          `json:"model"`
		ServiceTier       string          `json:"service_tier"`
		SystemFingerprint string          `json:"system_fingerprint"`
		Choices           []choice        `json:"choices"`
		Usage             json.RawMessage `json:"usage,omitempty"`
	}{
		ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.model,
		ServiceTier: "default", SystemFingerprint: systemFingerprint, Choices: make([]choice, 1),
	}
	if includeUsage {
		chunk.Usage = jsonNull
	}
	empty, placeholder := "", wordPlaceholder
	return x.streamChoices(g, includeUsage, choiceChunks{
		chunk: &chunk,
		role: func(i int) {
			chunk.Choices[0] = choice{Index: i, Delta: delta{Role: "assistant", Content: &empty, Refusal: jsonNull}}
		},
		word:   func(i int) { chunk.Choices[0] = choice{Index: i, Delta: delta{Content: &placeholder}} },
		finish: func(i int, reason *string) { chunk.Choices[0] = choice{Index: i, FinishReason: reason} },
		usage:  func(u json.RawMessage) { chunk.Choices, chunk.Usage = []choice{}, u },
	})
}

func (s *Server) completions(x *exchange) error {
	var req completionRequest
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if e := checkChoices(req.Model, req.N, req.MaxTokens); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if len(req.Prompt) == 0 {
		return x.writeError(http.StatusBadRequest, *missingParam("prompt"))
	}
	// Each prompt gets n choices, indexed prompt by prompt, as OpenAI does.
	enc := encodingFor(req.Model)
	var prompt int64
	seeds := make([]uint64, len(req.Prompt))
	for i, in := range req.Prompt {
		tokens, err := inputTokens(enc, in)
		if err != nil {
			return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
		}
		prompt += tokens
		seeds[i] = inputSeed(in)
	}
	g := x.generate(s, "cmpl-", req.Model, prompt, seeds, valueOr(req.N, 1), req.MaxTokens)
	if req.Stream {
		return streamCompletion(x, g, req.StreamOptions.includeUsage())
	}
	type choice struct {
		Text         string    `json:"text"`
		Index        int       `json:"index"`
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason string    `json:"finish_reason"`
	}
	resp := struct {
		ID                string   `json:"id"`
		Object            string   `json:"object"`
		Created           int64    `json:"created"`
		Model             string   `json:"model"`
		Choices           []choice `json:"choices"`
		Usage             *usage   `json:"usage,omitempty"`
		SystemFingerprint string   `json:"system_fingerprint"`
	}{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model, SystemFingerprint: systemFingerprint}
	for i, t := range g.texts {
		resp.Choices = append(resp.Choices, choice{Text: t.String(), Index: i, FinishReason: g.finish})
	}
	resp.Usage = g.reportedUsage(x.b)
	return x.answer(resp)
}

// streamCompletion streams text_completion chunks; a choice's finish chunk has an
// empty text.
func streamCompletion(x *exchange, g generation, includeUsage bool) error {
	type choice struct {
		Text         string    `json:"text"`
		Index        int       `json:"index"`
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	chunk := struct {
		ID                string          `json:"id"`
		Object            string          `json:"object"`
		Created           int64           `json:"created"`
		Model             string          `json:"model"`
		Choices           []choice        `json:"choices"`
		SystemFingerprint string          `json:"system_fingerprint"`
		Usage             json.RawMessage `json:"usage,omitempty"`
	}{
		ID: g.id, Object: "text_completion", Created: g.created, Model: g.model,
		SystemFingerprint: systemFingerprint, Choices: make([]choice, 1),
	}
	if includeUsage {
		chunk.Usage = jsonNull
	}
	return x.streamChoices(g, includeUsage, choiceChunks{
		chunk:  &chunk,
		word:   func(i int) { chunk.Choices[0] = choice{Text: wordPlaceholder, Index: i} },
		finish: func(i int, reason *string) { chunk.Choices[0] = choice{Index: i, FinishReason: reason} },
		usage:  func(u json.RawMessage) { chunk.Choices, chunk.Usage = []choice{}, u },
	})
}

// choiceChunks is what differs between a chat and a completion stream: the chunk
// every event encodes, and how to set its one choice (or its usage) for each event.
type choiceChunks struct {
	chunk  any                         // a pointer to the chunk struct
	role   func(i int)                 // choice i's opening chunk (chat's role); nil: none
	word   func(i int)                 // choice i with wordPlaceholder as its text
	finish func(i int, reason *string) // choice i with its finish reason
	usage  func(u json.RawMessage)     // no choices and the usage
}

// streamChoices sends a chat or completion stream: the opening chunk per choice when
// there is one, one chunk per word (choices taking turns), a finish chunk per choice,
// the usage chunk when asked, then [DONE].
func (x *exchange) streamChoices(g generation, includeUsage bool, c choiceChunks) error {
	if err := x.startStream(); err != nil {
		return err
	}
	if c.role != nil {
		for i := range g.texts {
			c.role(i)
			if err := x.event("", c.chunk); err != nil {
				return err
			}
		}
	}
	templates := make([]wordTemplate, len(g.texts))
	for i := range templates {
		c.word(i)
		templates[i] = newWordTemplate(c.chunk)
	}
	for k := range g.texts[0].n {
		for i, t := range g.texts {
			if err := x.wordEvent(templates[i], t.delta(k)); err != nil {
				return err
			}
		}
	}
	for i := range g.texts {
		c.finish(i, &g.finish)
		if err := x.event("", c.chunk); err != nil {
			return err
		}
	}
	if u := g.usageField(x, includeUsage); u != nil {
		c.usage(u)
		if err := x.event("", c.chunk); err != nil {
			return err
		}
	}
	return x.done()
}

// inputSeed hashes a prompt, text or tokens, to seed its reply.
func inputSeed(in input) uint64 {
	h := fnv(fnvOffset, in.text)
	for _, t := range in.tokens {
		h = (h ^ uint64(t)) * 1099511628211
	}
	return h
}

func valueOr(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}
