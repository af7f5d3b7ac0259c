package main

import (
	"bytes"
	"hash/maphash"
	"io"
	"net/http"
	"strings"
	"sync"
)

// replayUpstream puts a cache of answers in front of the mock upstream. The first
// request of each distinct body (after canonicalizeNonces, so the nonces do not make
// bodies distinct) is answered by the mock and its answer recorded: status, headers,
// and the body cut where the mock flushed (a stream's events). Later requests with
// the same body get that answer replayed, byte for byte and flush for flush. The
// proxies see exactly the mock's answers — exact usage included, since a count does
// not depend on the nonce's digits — while the upstream costs little more than the
// writes: the mock's JSON decoding and encoding would otherwise make it, and not the
// proxy under test, the bottleneck. Requests with X-Mock-* headers (fault and delay
// injection) always go to the mock.
type replayUpstream struct {
	mock   http.Handler
	record bool // false: every request goes to the mock (-upstream live)
	seed   maphash.Seed
	bufs   sync.Pool

	mu      sync.RWMutex
	answers map[replayKey]*recordedAnswer
}

type replayKey struct {
	hash uint64
	size int
}

// recordedAnswer is one answer of the mock.
type recordedAnswer struct {
	status   int
	header   http.Header
	segments [][]byte // the body, cut where the mock flushed
	flushed  bool     // the mock flushed: replay flushes after every segment
}

// maxRecordedAnswers bounds the cache; beyond it answers are not recorded.
const maxRecordedAnswers = 4096

func newReplayUpstream(mock http.Handler, record bool) *replayUpstream {
	return &replayUpstream{mock: mock, record: record, seed: maphash.MakeSeed(), answers: map[replayKey]*recordedAnswer{},
		bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

func (u *replayUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		u.mock.ServeHTTP(w, r)
		return
	}
	buf := u.bufs.Get().(*bytes.Buffer)
	defer u.bufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return
	}
	body := buf.Bytes()
	canonicalizeNonces(body)
	r.Body = io.NopCloser(bytes.NewReader(body)) // the mock copies what it reads
	if !u.record || hasMockHeader(r.Header) {
		u.mock.ServeHTTP(w, r)
		return
	}
	var h maphash.Hash
	h.SetSeed(u.seed)
	h.WriteString(r.URL.Path)
	h.Write(body)
	key := replayKey{h.Sum64(), len(body)}
	u.mu.RLock()
	a := u.answers[key]
	u.mu.RUnlock()
	if a == nil {
		rec := &answerRecorder{header: http.Header{}}
		u.mock.ServeHTTP(rec, r)
		a = rec.answer()
		if a.status == http.StatusOK {
			u.mu.Lock()
			if len(u.answers) < maxRecordedAnswers {
				u.answers[key] = a
			}
			u.mu.Unlock()
		}
	}
	a.replay(w)
}

func hasMockHeader(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, "X-Mock-") {
			return true
		}
	}
	return false
}

func (a *recordedAnswer) replay(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	rc := http.NewResponseController(w)
	for _, seg := range a.segments {
		if len(seg) > 0 {
			if _, err := w.Write(seg); err != nil {
				return
			}
		}
		if a.flushed {
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// answerRecorder is the http.ResponseWriter the mock answers into when its answer is
// recorded.
type answerRecorder struct {
	header   http.Header
	status   int
	segments [][]byte
	cur      []byte
	flushed  bool
}

func (r *answerRecorder) Header() http.Header { return r.header }

func (r *answerRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *answerRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.cur = append(r.cur, p...)
	return len(p), nil
}

// FlushError ends a segment (http.ResponseController.Flush calls it).
func (r *answerRecorder) FlushError() error {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.flushed = true
	r.segments = append(r.segments, r.cur)
	r.cur = nil
	return nil
}

func (r *answerRecorder) answer() *recordedAnswer {
	segs := r.segments
	if len(r.cur) > 0 || len(segs) == 0 {
		segs = append(segs, r.cur)
	}
	return &recordedAnswer{status: r.status, header: r.header.Clone(), segments: segs, flushed: r.flushed}
}
