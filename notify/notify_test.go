package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/notify/notifytest"
)

func noSleep(context.Context, time.Duration) error { return nil }

// TestSendRetries runs each server behaviour against Send with 3 attempts.
func TestSendRetries(t *testing.T) {
	tests := []struct {
		name      string
		statuses  []int // answered in turn; the last repeats
		wantCalls int32
		wantErr   bool
		answered  bool
		status    int
	}{
		{"ok", []int{200}, 1, false, false, 0},
		{"created counts as paid", []int{201}, 1, false, false, 0},
		{"5xx then ok", []int{503, 200}, 2, false, false, 0},
		{"429 retried", []int{429, 429, 204}, 3, false, false, 0},
		{"always 500", []int{500}, 3, true, true, 500},
		{"402 not retried", []int{402}, 1, true, true, 402},
		{"redirect not followed", []int{307}, 1, true, true, 307},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				body, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.Header.Get(EventHeader) != "balance.low" || Verify([]string{"k"}, r.Header, body, time.Now()) != nil ||
					!VerifyLegacy("k", body, r.Header.Get(LegacySignatureHeader)) || r.Header.Get("Content-Type") != "application/json" {
					t.Errorf("bad delivery: %s %v", r.Method, r.Header)
				}
				st := tc.statuses[min(n, len(tc.statuses))-1]
				if st == 307 {
					w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
				}
				w.WriteHeader(st)
			}))
			defer srv.Close()
			w, err := New(Options{URL: srv.URL, Secret: "k", Attempts: 3, Sleep: noSleep})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Send(context.Background(), Message{ID: "msg_1", Event: "balance.low", Body: []byte(`{"type":"balance.low"}`)})
			if calls.Load() != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, error %v", calls.Load(), err, tc.wantCalls, tc.wantErr)
			}
			var de *DeliveryError
			if tc.wantErr && (!errors.As(err, &de) || de.Answered() != tc.answered || de.Status != tc.status || de.Attempts != int(tc.wantCalls) || de.MessageID != "msg_1") {
				t.Fatalf("error %#v", err)
			}
		})
	}
}

func TestSendTimeoutIsUnanswered(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var waits []time.Duration
	w, err := New(Options{URL: srv.URL + "/hook?token=secret-in-query", Secret: "k", Timeout: 30 * time.Millisecond, Attempts: 3, Backoff: time.Second, MaxBackoff: 1500 * time.Millisecond,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Send(context.Background(), Message{ID: "msg_1", Event: "auto_recharge", Body: []byte(`{}`)})
	var de *DeliveryError
	if !errors.As(err, &de) || de.Answered() || de.Attempts != 3 || de.Err == nil {
		t.Fatalf("error %#v", err)
	}
	if strings.Contains(err.Error(), "secret-in-query") {
		t.Fatalf("error leaks the URL's query: %v", err)
	}
	if len(waits) != 2 || waits[0] != time.Second || waits[1] != 1500*time.Millisecond {
		t.Fatalf("back-off waits %v, want [1s 1.5s] (doubling, capped)", waits)
	}
	if got, want := w.MaxDuration(), 3*30*time.Millisecond+time.Second+1500*time.Millisecond; got != want {
		t.Fatalf("MaxDuration %s, want %s", got, want)
	}
}

func TestSendStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	w, _ := New(Options{URL: srv.URL, Secret: "k", Attempts: 5, Sleep: func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }})
	if err := w.Send(ctx, Message{ID: "msg_1", Event: "x", Body: []byte(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no url", Options{Secret: "k"}, "not an absolute http(s) URL"},
		{"relative", Options{URL: "/hook", Secret: "k"}, "not an absolute http(s) URL"},
		{"ftp", Options{URL: "ftp://x/hook", Secret: "k"}, "not an absolute http(s) URL"},
		{"no secret", Options{URL: "https://x/hook"}, "secret is empty"},
		{"bad whsec secret", Options{URL: "https://x/hook", Secret: "whsec_%%%"}, "invalid webhook secret"},
		{"bad rotated secret", Options{URL: "https://x/hook", Secret: GenerateSecret(), Secrets: []string{"whsec_c2hvcnQ="}}, "secret 2: notify: invalid webhook secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	w, err := New(Options{URL: "https://x/hook", Secret: "k"})
	if err != nil || w.o.Timeout != DefaultTimeout || w.o.Attempts != DefaultAttempts || w.o.Backoff != DefaultBackoff || w.o.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("defaults: %+v %v", w.o, err)
	}
	if _, err := New(Options{URL: "https://x/hook", Secrets: []string{GenerateSecret()}}); err != nil {
		t.Fatalf("Secrets alone: %v", err)
	}
}

func TestSendRejectsBadMessages(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	w, err := New(Options{URL: srv.URL, Secret: GenerateSecret(), Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{ID: "", Event: "balance.low"},
		{ID: "ntc_acme.eu_1", Event: "balance.low"}, // '.' is forbidden in ids
		{ID: "msg 1", Event: "balance.low"},
		{ID: strings.Repeat("m", 257), Event: "balance.low"},
		{ID: "msg_1", Event: ""},
	} {
		if err := w.Send(context.Background(), m); err == nil {
			t.Errorf("Send(%.40q, %q) succeeded", m.ID, m.Event)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("%d requests for invalid messages", calls.Load())
	}
}

// fakeClock is a settable clock for webhook-timestamp.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestDeliveryHeaders: a delivery carries the Standard Webhooks headers, one
// signature per secret (each verifiable alone), the event and the deprecated
// body-only signature keyed with the first secret as written.
func TestDeliveryHeaders(t *testing.T) {
	current, previous := GenerateSecret(), GenerateSecret()
	var got http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r.Header.Clone(), must(io.ReadAll(r.Body))
	}))
	defer srv.Close()
	clock := &fakeClock{t: time.Unix(1_770_000_123, 0)}
	w, err := New(Options{URL: srv.URL, Secret: current, Secrets: []string{previous}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m := Message{ID: "msg_0123", Event: "credits.expiring", Body: []byte(`{"type":"credits.expiring","account":"acme"}`)}
	if err := w.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got.Get("webhook-id") != m.ID || got.Get("webhook-timestamp") != "1770000123" || got.Get(EventHeader) != m.Event ||
		got.Get("Content-Type") != "application/json" || string(body) != string(m.Body) {
		t.Fatalf("headers %v body %s", got, body)
	}
	if sigs := strings.Fields(got.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("webhook-signature %q: want one signature per secret", got.Get("webhook-signature"))
	}
	for _, s := range []string{current, previous} {
		if err := Verify([]string{s}, got, body, clock.Now()); err != nil {
			t.Fatalf("Verify with one of the secrets: %v", err)
		}
		if err := notifytest.Check([]string{s}, got, body, clock.Now()); err != nil {
			t.Fatalf("the spec receiver with one of the secrets: %v", err)
		}
	}
	if err := Verify([]string{GenerateSecret()}, got, body, clock.Now()); !errors.Is(err, ErrNoValidSignature) {
		t.Fatalf("Verify with another secret: %v", err)
	}
	if got.Get(LegacySignatureHeader) != LegacySignature(current, body) {
		t.Fatalf("legacy header %q, want the body-only HMAC keyed with the first secret", got.Get(LegacySignatureHeader))
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRetriesKeepWebhookID: every attempt of a delivery carries the same
// webhook-id, and its own timestamp and signature, so a retry minutes later still
// verifies, and the receiver can drop the duplicates.
func TestRetriesKeepWebhookID(t *testing.T) {
	secret := GenerateSecret()
	clock := &fakeClock{t: time.Unix(1_770_000_000, 0)}
	rc := &notifytest.Receiver{Secrets: []string{secret}, Now: clock.Now, Answer: func(_ notifytest.Delivery, n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	// Each wait moves the clock: the third attempt is 8 minutes after the first,
	// past the replay window of the first attempt's timestamp.
	w, err := New(Options{URL: srv.URL, Secret: secret, Attempts: 3, Now: clock.Now,
		Sleep: func(context.Context, time.Duration) error { clock.Advance(4 * time.Minute); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	id := MessageID("notice", "acme", "ntc_acme_1", "1770000000000")
	if err := w.Send(context.Background(), Message{ID: id, Event: "balance.low", Body: []byte(`{"type":"balance.low"}`)}); err != nil {
		t.Fatal(err)
	}
	ds := rc.Deliveries()
	if len(ds) != 3 {
		t.Fatalf("%d deliveries, want 3", len(ds))
	}
	for i, d := range ds {
		wantTS := strconv.FormatInt(1_770_000_000+int64(i)*240, 10)
		if d.ID != id || d.Timestamp != wantTS || d.Err != nil || d.Duplicate != (i > 0) {
			t.Fatalf("attempt %d: id %s ts %s err %v duplicate %v; want id %s, ts %s, accepted, duplicate after the first", i+1, d.ID, d.Timestamp, d.Err, d.Duplicate, id, wantTS)
		}
	}
	if ds[0].Header.Get("webhook-signature") == ds[2].Header.Get("webhook-signature") {
		t.Fatal("the retry reused the first attempt's signature")
	}
}

// TestObserver: the observer hears every attempt and every delivery outcome; a
// nil observer (every other test) is fine.
func TestObserver(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int // 0: no answer (the handler hangs past the timeout)
		attempts []string
		status   []int
		done     string
	}{
		{"ok", []int{200}, []string{OutcomeOK}, []int{200}, OutcomeOK},
		{"retried then ok", []int{500, 200}, []string{OutcomeRefused, OutcomeOK}, []int{500, 200}, OutcomeOK},
		{"refused", []int{402}, []string{OutcomeRefused}, []int{402}, OutcomeRefused},
		{"exhausted", []int{503, 503, 503}, []string{OutcomeRefused, OutcomeRefused, OutcomeRefused}, []int{503, 503, 503}, OutcomeRefused},
		{"no answer", []int{0, 0, 0}, []string{OutcomeNoAnswer, OutcomeNoAnswer, OutcomeNoAnswer}, []int{0, 0, 0}, OutcomeNoAnswer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				st := tc.statuses[calls.Add(1)-1]
				if st == 0 {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				w.WriteHeader(st)
			}))
			defer srv.Close()
			defer close(release)
			var attempts []Attempt
			var done []Delivery
			obs := &Observer{Attempt: func(a Attempt) { attempts = append(attempts, a) }, Done: func(d Delivery) { done = append(done, d) }}
			w, err := New(Options{URL: srv.URL, Secret: "k", Attempts: 3, Timeout: 50 * time.Millisecond, Sleep: noSleep, Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			_ = w.Send(context.Background(), Message{ID: "msg_7", Event: "balance.exhausted", Body: []byte(`{}`)})
			if len(attempts) != len(tc.attempts) {
				t.Fatalf("%d attempts observed, want %d: %+v", len(attempts), len(tc.attempts), attempts)
			}
			for i, a := range attempts {
				last := i == len(attempts)-1
				if a.Event != "balance.exhausted" || a.MessageID != "msg_7" || a.N != i+1 || a.Outcome != tc.attempts[i] || a.Status != tc.status[i] ||
					a.Last != last || a.OK() != (a.Outcome == OutcomeOK) || (a.Outcome == OutcomeNoAnswer) != (a.Err != nil) {
					t.Fatalf("attempt %d observed as %+v", i+1, a)
				}
			}
			if len(done) != 1 || done[0].Outcome != tc.done || done[0].Attempts != len(tc.attempts) || done[0].MessageID != "msg_7" || done[0].OK() != (tc.done == OutcomeOK) {
				t.Fatalf("deliveries observed %+v, want one %s", done, tc.done)
			}
		})
	}
	t.Run("canceled", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var done []Delivery
		w, _ := New(Options{URL: srv.URL, Secret: "k", Attempts: 5, Observer: &Observer{Done: func(d Delivery) { done = append(done, d) }},
			Sleep: func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }})
		if err := w.Send(ctx, Message{ID: "msg_1", Event: "x", Body: []byte(`{}`)}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		if len(done) != 1 || done[0].Outcome != OutcomeCanceled || done[0].Attempts != 1 {
			t.Fatalf("deliveries observed %+v, want one canceled", done)
		}
	})
	var nilObs *Observer
	nilObs.attempt(Attempt{})
	nilObs.done(Delivery{})
	(&Observer{}).attempt(Attempt{})
}

// TestSpecReceiver: a receiver written from the specification (notifytest, which
// shares no code with this package) accepts real deliveries over HTTP, with
// Standard Webhooks secrets and with legacy ones; a captured delivery replayed
// more than 5 minutes later is refused by it and by Verify, and one replayed
// within the window is recognised as a duplicate by its webhook-id.
func TestSpecReceiver(t *testing.T) {
	for _, secret := range []string{GenerateSecret(), "a-legacy-secret-0123456789"} {
		clock := &fakeClock{t: time.Now()}
		rc := &notifytest.Receiver{Secrets: []string{secret}, Now: clock.Now}
		srv := httptest.NewServer(rc)
		w, err := New(Options{URL: srv.URL, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		for i, typ := range []string{"balance.low", "balance.exhausted", "credits.expiring"} {
			m := Message{ID: MessageID("notice", "acme", strconv.Itoa(i)), Event: typ, Body: []byte(`{"type":"` + typ + `","account":"acme","balance":"0.000000"}`)}
			if err := w.Send(context.Background(), m); err != nil {
				t.Fatalf("delivery %s refused: %v (%+v)", typ, err, rc.Deliveries())
			}
		}
		got := rc.Accepted()
		if len(got) != 3 || len(rc.Refused()) != 0 || got[2].Event != "credits.expiring" {
			t.Fatalf("accepted %d, refused %+v", len(got), rc.Refused())
		}
		captured := got[0]

		clock.Advance(2 * time.Minute) // inside the window: authentic, but a duplicate
		if st, err := notifytest.Replay(srv.Client(), srv.URL, captured); err != nil || st != http.StatusOK {
			t.Fatalf("replay within the window: %d %v", st, err)
		}
		if d := rc.Deliveries()[3]; d.Err != nil || !d.Duplicate {
			t.Fatalf("replay within the window: %+v; want accepted and flagged duplicate by webhook-id", d)
		}

		clock.Advance(3*time.Minute + time.Second) // 5m1s after sending
		if st, err := notifytest.Replay(srv.Client(), srv.URL, captured); err != nil || st != http.StatusUnauthorized {
			t.Fatalf("replay 5m1s later answered %d %v; want 401", st, err)
		}
		if d := rc.Deliveries()[4]; d.Err == nil || !strings.Contains(d.Err.Error(), "timestamp") {
			t.Fatalf("replay 5m1s later: %+v", d)
		}
		if err := Verify([]string{secret}, captured.Header, captured.Body, clock.Now()); !errors.Is(err, ErrTimestampTooOld) {
			t.Fatalf("Verify of the replay: %v, want ErrTimestampTooOld", err)
		}
		srv.Close()
	}
}
