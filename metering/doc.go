// Package metering turns OpenAI-compatible requests and responses into priced token
// counts. Each metered endpoint has its own file (chat.go; prompt.go for completions
// and embeddings; responses.go) declaring how its requests are parsed and capped and
// how its responses are metered. ParseRequest validates a request body with a small
// JSON scanner (internal/jsonscan) that bounds its work and records where each
// field's bytes are, so that InputTokens can count the input locally with tiktoken
// encodings (TokenizerFor, EncodingForModel; count.go, tools.go) and Rewrite can
// clamp the output cap and ask for stream usage while leaving every other byte
// alone. A ResponseMeter reads the upstream's usage object — authoritative when
// present, including cached and reasoning tokens — from a plain body or from the
// events of an SSE stream, which NewStreamFilter frames and forwards event by event,
// hiding the usage chunk from clients that did not ask for it; it also counts the
// output text it sees, the fallback when usage is missing and a cross-check
// (DriftExceeds) when it is not. Price and Pricing price Tokens per class in integer
// micro-USD, rounding up once per request.
package metering
