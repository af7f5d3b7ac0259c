// Package httpstatus records the status an http.Handler answered with, for the
// one log line every request gets (the data plane's and the admin API's).
package httpstatus

import "net/http"

// Writer wraps an http.ResponseWriter and remembers the first status written:
// the one WriteHeader was given, or 200 when the body came first.
type Writer struct {
	http.ResponseWriter
	code int
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

func (w *Writer) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Writer) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Status is the status written so far; 0 when nothing was written.
func (w *Writer) Status() int { return w.code }

// Unwrap lets http.ResponseController reach the underlying writer (flushes,
// deadlines).
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
