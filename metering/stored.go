package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// Stores reports whether the upstream keeps the answer to r for later reads
// (GET /v1/responses/{id}, GET /v1/chat/completions/{id}): a Responses request
// unless it says "store": false (the API's default is true), a chat completion
// only when it says "store": true, nothing else. The proxy records who owns
// what the upstream keeps.
func (r *Request) Stores() bool {
	var def bool
	switch r.Endpoint {
	case Responses:
		def = true
	case ChatCompletions:
	default:
		return false
	}
	b := r.body
	it := jsonscan.Members(b, jsonscan.SkipSpace(b, 0))
	store := def
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if m.Is("store") {
			switch b[m.Start] {
			case 't':
				store = true
			case 'f':
				store = false
			default: // null or another type: the API's default
				store = def
			}
		}
	}
	return store
}
