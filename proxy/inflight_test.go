package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/creditgate/creditgate/internal/spool"
)

// recordingInFlight is an InFlightLog that keeps what the proxy told it.
type recordingInFlight struct {
	mu    sync.Mutex
	calls []string // "begin <hold>", "progress <hold> <n>", "end <hold>"
	begun []spool.InFlight
}

func (r *recordingInFlight) Begin(f spool.InFlight) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "begin "+f.HoldID)
	r.begun = append(r.begun, f)
	return nil
}

func (r *recordingInFlight) Progress(hold string, n int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("progress %s %d", hold, n))
	return nil
}

func (r *recordingInFlight) End(hold string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "end "+hold)
	return nil
}

// Every admitted request gets an in-flight record opened before it is forwarded,
// told once the response starts (a 2xx), and closed after it is settled or
// released; a refused request gets none.
func TestInFlightRecordBracketsEveryAdmittedRequest(t *testing.T) {
	log := &recordingInFlight{}
	h := newHarness(t, func(o *Options) { o.InFlight = log })
	key := h.account("acme", "10.00")
	tests := []struct {
		name   string
		body   string
		header []string
		want   int
		// progress: a response was relayed, so its start is recorded.
		progress bool
	}{
		{"plain", chatBody("gpt-4o-mini", false, ""), nil, http.StatusOK, true},
		{"stream", chatBody("gpt-4o-mini", true, ""), nil, http.StatusOK, true},
		{"upstream error", chatBody("gpt-4o-mini", false, ""), []string{"X-Mock-Status", "500"}, http.StatusInternalServerError, false},
		{"refused: unpriced model", chatBody("no-such-model", false, ""), nil, http.StatusBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log.mu.Lock()
			log.calls, log.begun = nil, nil
			log.mu.Unlock()
			res := h.post("/v1/chat/completions", key, tt.body, tt.header...)
			readAll(t, res)
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
			h.inflight.Wait()
			id := res.Header.Get(RequestIDHeader)
			log.mu.Lock()
			defer log.mu.Unlock()
			if tt.want == http.StatusBadRequest {
				if len(log.calls) != 0 {
					t.Fatalf("a refused request touched the in-flight log: %v", log.calls)
				}
				return
			}
			if len(log.calls) < 2 || log.calls[0] != "begin "+id || log.calls[len(log.calls)-1] != "end "+id {
				t.Fatalf("calls %v: want begin %s first and end last", log.calls, id)
			}
			b := log.begun[0]
			if b.Account != "acme" || b.RequestID != id || b.Model != "gpt-4o-mini" || b.Held <= 0 || b.Prompt.Input <= 0 || b.Price.Input == 0 {
				t.Fatalf("begun %+v: want the account, request, model, hold, prompt count and price", b)
			}
			started := strings.Contains(strings.Join(log.calls, "\n"), "progress "+id+" 0")
			if started != tt.progress {
				t.Fatalf("calls %v: response start recorded %v, want %v", log.calls, started, tt.progress)
			}
		})
	}
}
