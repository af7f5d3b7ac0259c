package metering

import "strings"

// Endpoint names a metered API endpoint. Each endpoint has its own file, which
// declares its Endpoint constant, its endpointSpec and its request parser.
type Endpoint string

// An endpointSpec is what metering knows of one endpoint: how its requests are
// parsed and capped, and how its responses are metered.
type endpointSpec struct {
	name Endpoint
	path string // the request path it is served at, e.g. "/v1/chat/completions"
	// parse reads the endpoint's own members of a request, after ParseRequest has
	// read the common ones (model, stream, stream_options and the output caps).
	parse func(r *Request, f *topFields) error
	// streams says whether the endpoint reads stream and stream_options.
	streams bool
	// usageOnRequest says whether its streams report usage only when asked to
	// (stream_options.include_usage); see NeedsStreamUsage.
	usageOnRequest bool
	// caps are the output-cap parameters the endpoint reads; Rewrite adds the first
	// when the client set none. An endpoint without caps generates no output.
	caps []string
	// minCap is the smallest output cap the upstream accepts: a clamp below it would
	// turn a 429 into the upstream's 400.
	minCap int64
	// body meters a complete 2xx response body; event meters one SSE event's data
	// (white space trimmed) and reports whether it is forwarded to the client.
	body  func(m *ResponseMeter, body []byte)
	event func(m *ResponseMeter, data []byte) (forward bool)
	// stop is how a stream cut at its output cap ends (cut.go).
	stop stopStyle
	// The media endpoints (media.go): defaultModel is the model of a request that
	// names none; multipart says the body is multipart/form-data
	// (ParseMultipartRequest); unitPrice turns the model's price into the one the
	// request is billed at (per image, per character or per token) and sets its
	// output bound; raw says a 2xx body is not JSON but bytes relayed as they come
	// (speech audio), never read by the meter.
	defaultModel string
	multipart    bool
	unitPrice    func(r *Request, p Price) (Price, error)
	parseForm    func(r *Request, form *Multipart) error
	raw          bool
}

// stopStyle is how a stream cut at its output cap ends.
type stopStyle int

const (
	stopNone        stopStyle = iota // no output, no stream (embeddings)
	stopChat                         // chat.completion.chunk per choice, finish_reason "length"
	stopCompletions                  // text_completion chunk per choice, finish_reason "length"
	stopResponse                     // response.incomplete, for the whole response
)

// endpoints are the metered endpoints.
var endpoints = [...]*endpointSpec{&chatEndpoint, &completionsEndpoint, &embeddingsEndpoint, &responsesEndpoint,
	&moderationsEndpoint, &imageGenerationsEndpoint, &imageEditsEndpoint, &imageVariationsEndpoint, &speechEndpoint}

// specOf returns the spec of ep, or nil for an endpoint that is not metered.
func specOf(ep Endpoint) *endpointSpec {
	for _, s := range endpoints {
		if s.name == ep {
			return s
		}
	}
	return nil
}

// hasOutput reports whether the endpoint generates output (it has an output cap).
func (s *endpointSpec) hasOutput() bool { return len(s.caps) > 0 }

// EndpointForPath maps a request path to its endpoint: "/v1/chat/completions" →
// ChatCompletions, "/v1/completions" → Completions, "/v1/embeddings" → Embeddings,
// "/v1/responses" → Responses. A trailing slash is tolerated; anything else (including
// sub-paths such as "/v1/responses/{id}") is not metered.
func EndpointForPath(path string) (Endpoint, bool) {
	path = strings.TrimSuffix(path, "/")
	for _, s := range endpoints {
		if s.path == path {
			return s.name, true
		}
	}
	return "", false
}
