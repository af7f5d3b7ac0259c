package metering

// Stream usage: chat and completions streams report usage only when the request
// asks for it (stream_options.include_usage), in one extra chunk without choices.
// The proxy needs it to bill, so it asks on the client's behalf (NeedsStreamUsage,
// which Rewrite applies) and hides that chunk from a client that did not ask
// (forwardChunk). Responses streams always report usage; embeddings do not stream.

// NeedsStreamUsage reports whether the upstream must be asked for stream usage the
// client did not ask for: a streamed request of an endpoint whose streams report
// usage only when asked.
func (r *Request) NeedsStreamUsage() bool {
	return r.Stream && r.spec.usageOnRequest && !r.IncludeUsage
}

// forwardChunk reports whether a chunk of a chat or completions stream reaches the
// client: a usage-only chunk only when the client asked for usage itself (otherwise
// the proxy asked for it, see NeedsStreamUsage); every other chunk always.
func (m *ResponseMeter) forwardChunk(usageOnly bool) bool { return !usageOnly || m.includeUsage }
