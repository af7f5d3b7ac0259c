package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/creditgate/creditgate/metering"
)

// maxPlainBody is how much of a non-streamed response the meter keeps whole. Larger
// bodies (big embedding batches) keep only their last tailBytes, where OpenAI puts
// the usage object.
const (
	maxPlainBody = 8 << 20
	tailBytes    = 64 << 10
)

// forwardBody is the body sent upstream, part of the exchange (what
// io.NopCloser(bytes.NewReader(body)) does, without its two allocations).
type forwardBody struct{ bytes.Reader }

func (*forwardBody) Close() error { return nil }

// teeBody passes a non-streamed response through while keeping a copy to meter.
type teeBody struct {
	rc       io.ReadCloser
	buf      []byte
	overflow bool
	eof      bool
	// images counts a per-image model's images as they pass, for a body too
	// large to keep whole (nil: not an images response).
	images *metering.ImageCounter
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 {
		if t.images != nil {
			t.images.Write(p[:n])
		}
		t.buf = append(t.buf, p[:n]...)
		if len(t.buf) > maxPlainBody {
			// Keep the tail only; the allocation stays bounded by maxPlainBody + one read.
			t.overflow = true
			copy(t.buf, t.buf[len(t.buf)-tailBytes:])
			t.buf = t.buf[:tailBytes]
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// feed gives the meter what it can use: the whole body, or, for an oversized one,
// the usage object found in its tail. A body that broke off gives the output text
// relayed of it (PartialBody: billed as for a stream cut short), or nothing when
// only its tail was kept.
func (t *teeBody) feed(m *metering.ResponseMeter) {
	if !t.eof {
		if !t.overflow {
			m.PartialBody(t.buf)
		}
		return
	}
	if !t.overflow {
		m.Body(t.buf)
		return
	}
	if t.images != nil {
		m.CountedImages(t.images.Images())
		return
	}
	if usage := usageFromTail(t.buf); usage != nil {
		m.Body(usage)
	}
}

// usageFromTail finds the last `"usage":` member in the tail of a JSON body and
// returns {"usage": <that object>}.
func usageFromTail(tail []byte) []byte {
	i := bytes.LastIndex(tail, []byte(`"usage"`))
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(tail[i+len(`"usage"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(rest[1:]))
	var obj json.RawMessage
	if err := dec.Decode(&obj); err != nil || len(obj) == 0 || obj[0] != '{' {
		return nil
	}
	return append(append([]byte(`{"usage":`), obj...), '}')
}

// recorder notes the status and the time of the first body byte sent to the app
// (time to first token, for streams), on the proxy's clock.
type recorder struct {
	http.ResponseWriter
	now        func() time.Time
	status     int
	firstWrite time.Time
	onWrite    func() // after each write of the body (the in-flight record's progress); nil: none
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.firstWrite.IsZero() && len(b) > 0 {
		r.firstWrite = r.now()
	}
	n, err := r.ResponseWriter.Write(b)
	if r.onWrite != nil {
		r.onWrite()
	}
	return n, err
}

// FlushError lets http.ResponseController (used by ReverseProxy) flush through.
func (r *recorder) FlushError() error { return http.NewResponseController(r.ResponseWriter).Flush() }

// Unwrap exposes the underlying writer to http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
