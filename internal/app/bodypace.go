package app

import (
	"io"
	"net/http"
	"time"
)

// unreadBodyGrace is how long the server may go on reading a request body the
// handler did not read to its end (a 401 answered before the body, a 404):
// net/http reads up to 256 KiB of what is left, to keep the connection. An
// honest client's body is already in flight and arrives within it, and the
// connection is kept; a trickle is cut when it ends, and the connection closed.
const unreadBodyGrace = time.Second

// deadlineStep is the smallest move of a body's read deadline worth telling the
// connection about: each Read may earn a few microseconds, and the deadline in
// force is then at most this much earlier than the one earned.
const deadlineStep = 100 * time.Millisecond

// bodyPace bounds how slowly a request body may arrive, with a read deadline on
// the connection that moves as the body's bytes do (http.ResponseController):
// a body must keep up with minRate bytes a second, and may pause or fall behind
// that rate by at most idle. It is a token bucket of idle seconds: each byte
// earns 1/minRate s of deadline, and the deadline is never more than idle
// ahead. So a body at or above the rate is never cut however long it takes; a
// trickle far below it (1 byte/s) is cut about idle after it began; a body at
// a fraction f of the rate after idle/(1−f). Once the body is read to its end
// the deadline is cleared (net/http does so too on HTTP/1, when it starts the
// background read that notices an app hanging up): the answer, a stream
// however long, is not bounded by it.
type bodyPace struct {
	idle    time.Duration
	minRate int64 // bytes a second; 0: only pauses are bounded
	now     func() time.Time
}

// wrap paces the body of every request to h that has one.
func (bp bodyPace) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		orig := r.Body
		b := &pacedBody{ReadCloser: orig, pace: bp, rc: http.NewResponseController(w)}
		r.Body = b
		defer func() {
			b.handlerDone()
			// r is the server's own request: after the handler, net/http decides
			// by the body's type how to finish it (a 100-continue never sent, a
			// remainder too large to read) and must see its own.
			r.Body = orig
		}()
		h.ServeHTTP(w, r)
	})
}

// pacedBody is a request body that moves the connection's read deadline as its
// bytes arrive. It is read by one goroutine, the handler's.
type pacedBody struct {
	io.ReadCloser
	pace bodyPace
	rc   *http.ResponseController

	earned time.Time // the deadline the bytes so far have earned; zero before the first Read
	set    time.Time // the deadline in force on the connection
	ended  bool      // read to EOF or failed: no more pacing
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	if b.earned.IsZero() { // before the first read can block
		b.earned = b.pace.now().Add(b.pace.idle)
		if !b.setDeadline(b.earned) {
			b.ended = true // the connection cannot pace (a test's recorder): read unpaced
			return b.ReadCloser.Read(p)
		}
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
		b.setDeadline(time.Time{}) // the whole body is in: nothing bounds the answer
	case err != nil:
		b.ended = true // a timeout (the body fell too far behind) or a broken connection
	case n > 0:
		b.earn(n)
	}
	return n, err
}

// earn moves the deadline by what n more bytes pay for, at most idle ahead.
func (b *pacedBody) earn(n int) {
	now := b.pace.now()
	next := now.Add(b.pace.idle)
	if b.pace.minRate > 0 {
		paid := b.earned.Add(time.Duration(int64(n) * int64(time.Second) / b.pace.minRate))
		if paid.Before(next) {
			next = paid
		}
	}
	if !next.After(b.earned) {
		return
	}
	b.earned = next
	if b.earned.Sub(b.set) >= deadlineStep {
		b.setDeadline(b.earned)
	}
}

// handlerDone bounds what the server still reads of a body the handler left
// unread: at most unreadBodyGrace more, and never past what the body earned.
func (b *pacedBody) handlerDone() {
	if b.ended {
		return
	}
	d := b.pace.now().Add(unreadBodyGrace)
	if !b.earned.IsZero() && b.earned.Before(d) {
		d = b.earned
	}
	b.setDeadline(d)
}

func (b *pacedBody) setDeadline(d time.Time) bool {
	if err := b.rc.SetReadDeadline(d); err != nil {
		return false
	}
	b.set = d
	return true
}
