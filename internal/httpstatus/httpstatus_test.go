package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriterRecordsTheFirstStatus(t *testing.T) {
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  int
	}{
		{"nothing written", func(w http.ResponseWriter) {}, 0},
		{"body first is 200", func(w http.ResponseWriter) { w.Write([]byte("x")) }, http.StatusOK},
		{"explicit status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot},
		{"the first status wins", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("x"))
		}, http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := New(rec)
			tc.serve(w)
			if w.Status() != tc.want {
				t.Fatalf("Status() = %d, want %d", w.Status(), tc.want)
			}
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Fatalf("flush through Unwrap: %v", err)
			}
			if !rec.Flushed {
				t.Fatal("the flush did not reach the underlying writer")
			}
		})
	}
}
