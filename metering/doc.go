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
// (DriftExceeds) when it is not. A Limit (Request.Limit) bounds a response whatever
// its upstream does: under ResponseMeter.SetLimit the stream filter cuts a stream at
// the output cap the request was sent, ending it as OpenAI ends one at max_tokens
// (cut.go), and Limit.Bill charges at most what the request could cost, reporting
// what the upstream claimed beyond it as excess; a plain body that broke off is
// metered from what was relayed (PartialBody). Price and Pricing price Tokens per
// class in integer micro-USD, rounding up once per request. Transcriptions and
// translations (transcribe.go) are multipart uploads (Multipart), priced per
// second of the audio's own duration (audiodur) for a per-minute price, else by
// the tokens their answer reports.
package metering
