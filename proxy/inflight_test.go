package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
	"github.com/creditgate/creditgate/money"
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

// A transcription has an in-flight record too: begun once admitted (a
// per-second model with its cost, so a restart bills it as the settle would; a
// token-billed one with its input bound), told when the 2xx answer arrives, and
// ended once settled or released.
func TestTranscriptionInFlightRecord(t *testing.T) {
	log := &recordingInFlight{}
	h := transcribeHarness(t, func(o *Options) { o.InFlight = log })
	key := h.account("acme", "10.00")
	wav := audiotest.WAV(16000, 1, 16000*61+8000) // 61.5 s: 62 s billed
	for _, tc := range []struct {
		name, model string
		fail        bool // the upstream answers 500
		status      int
		cost        money.Micros // the record's Cost
		progress    bool
	}{
		{"whisper-1", "whisper-1", false, http.StatusOK, 6200, true}, // 62 s × 0.006/60 USD
		{"gpt-4o-transcribe", "gpt-4o-transcribe", false, http.StatusOK, 0, true},
		{"upstream error", "whisper-1", true, http.StatusInternalServerError, 6200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log.mu.Lock()
			log.calls, log.begun = nil, nil
			log.mu.Unlock()
			if tc.fail {
				h.mock.Behavior = func(*http.Request, []byte) mockupstream.Behavior {
					return mockupstream.Behavior{Status: http.StatusInternalServerError}
				}
				defer func() { h.mock.Behavior = nil }()
			}
			ct, body := audioForm("a.wav", wav, "model", tc.model)
			status, answer := h.do(http.MethodPost, "/v1/audio/transcriptions", key, bytes.NewReader(body), "Content-Type", ct)
			if status != tc.status {
				t.Fatalf("status %d: %s", status, answer)
			}
			h.inflight.Wait()
			log.mu.Lock()
			defer log.mu.Unlock()
			if len(log.begun) != 1 {
				t.Fatalf("calls %v: want one record", log.calls)
			}
			b, id := log.begun[0], log.begun[0].HoldID
			if b.Account != "acme" || b.Model != tc.model || b.Cost != tc.cost || b.Held < tc.cost || b.Endpoint != "/v1/audio/transcriptions" {
				t.Fatalf("begun %+v: want %s's record with cost %s", b, tc.model, tc.cost)
			}
			if tc.cost == 0 && (b.Prompt.AudioInput <= 0 || b.Price.AudioInput == 0) {
				t.Fatalf("begun %+v: a token-billed transcription's record wants its input bound and price", b)
			}
			want := []string{"begin " + id, "end " + id}
			if tc.progress {
				want = []string{"begin " + id, "progress " + id + " 0", "end " + id}
			}
			if strings.Join(log.calls, "|") != strings.Join(want, "|") {
				t.Fatalf("calls %v, want %v", log.calls, want)
			}
		})
	}
}
