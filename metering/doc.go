// Package metering turns OpenAI-compatible requests and responses into priced token
// counts: it parses request bodies per endpoint, counts tokens locally with tiktoken
// encodings (the estimate before a request is forwarded, and the fallback when the
// upstream reports no usage), reads the upstream's usage from plain and streamed
// (SSE) responses, and prices tokens by class in micro-USD.
package metering
