package proxy

import (
	"context"
	"io"
	"regexp"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// A metered request whose answer the upstream stores (a Responses request
// unless store is false, a chat completion with store: true;
// metering.Request.Stores) creates an object only its account may read back.
// Its id is the first "id" of the answer — the response's, or the first
// chunk's — so the answer's first bytes are held back until it is found and
// recorded: the app cannot ask for the object before its record exists.

// maxIDSniff bounds how much of an answer is held back looking for its id.
const maxIDSniff = 16 << 10

var firstID = regexp.MustCompile(`"id"\s*:\s*"([A-Za-z0-9._-]{1,128})"`)

// storedObjectBody wraps the 2xx body of a metered request the upstream stores
// with the id sniffer; other bodies are returned as they are.
func (p *Proxy) storedObjectBody(x *exchange, body io.ReadCloser) io.ReadCloser {
	if p.opts.Objects == nil || x.req == nil || !x.req.Stores() {
		return body
	}
	kind := billing.ObjectResponse
	if x.req.Endpoint == metering.ChatCompletions {
		kind = billing.ObjectChatCompletion
	}
	account := x.key.Account
	ctx := context.WithoutCancel(x.in.Context())
	return &idSniffer{rc: body, found: func(id string) { _ = p.record(ctx, account, kind, id) }}
}

// idSniffer passes a body on once it has seen (and reported) its first id, or
// maxIDSniff bytes, or its end.
type idSniffer struct {
	rc      io.ReadCloser
	found   func(id string)
	buf     []byte
	pending []byte
	done    bool
	err     error
}

func (s *idSniffer) Read(p []byte) (int, error) {
	for !s.done {
		chunk := make([]byte, 4<<10)
		n, err := s.rc.Read(chunk)
		s.buf = append(s.buf, chunk[:n]...)
		if m := firstID.FindSubmatch(s.buf); m != nil {
			s.found(string(m[1]))
			s.done = true
		} else if err != nil || len(s.buf) >= maxIDSniff {
			s.done = true
		}
		if err != nil {
			s.err = err
		}
		if s.done {
			s.pending = s.buf
		}
	}
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.rc.Read(p)
}

func (s *idSniffer) Close() error { return s.rc.Close() }
