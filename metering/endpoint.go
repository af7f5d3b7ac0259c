package metering

import "strings"

// Endpoint names a metered API endpoint.
type Endpoint string

// The metered endpoints.
const (
	ChatCompletions Endpoint = "chat.completions"
	Completions     Endpoint = "completions"
	Embeddings      Endpoint = "embeddings"
	Responses       Endpoint = "responses"
)

// EndpointForPath maps a request path to its endpoint: "/v1/chat/completions" →
// ChatCompletions, "/v1/completions" → Completions, "/v1/embeddings" → Embeddings,
// "/v1/responses" → Responses. A trailing slash is tolerated; anything else (including
// sub-paths such as "/v1/responses/{id}") is not metered.
func EndpointForPath(path string) (Endpoint, bool) {
	switch strings.TrimSuffix(path, "/") {
	case "/v1/chat/completions":
		return ChatCompletions, true
	case "/v1/completions":
		return Completions, true
	case "/v1/embeddings":
		return Embeddings, true
	case "/v1/responses":
		return Responses, true
	}
	return "", false
}

// EncodingForModel returns the tiktoken encoding of a model: o200k_base for the
// gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, gpt-5 and o-series families; cl100k_base for
// gpt-4 (not 4o), gpt-3.5, the text-embedding models and davinci-002/babbage-002;
// o200k_base for anything else. A fine-tuned model ("ft:gpt-4o-mini:org::id") uses
// its base model's encoding.
func EncodingForModel(model string) string {
	m := strings.ToLower(strings.TrimPrefix(model, "ft:"))
	for _, p := range [...]string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(m, p) {
			return O200kBase
		}
	}
	switch {
	case m == "gpt-4" || strings.HasPrefix(m, "gpt-4-"),
		strings.HasPrefix(m, "gpt-3.5"),
		strings.HasPrefix(m, "text-embedding-"),
		strings.HasPrefix(m, "davinci-002"), strings.HasPrefix(m, "babbage-002"):
		return CL100kBase
	}
	return O200kBase
}
