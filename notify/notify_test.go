package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSignAndVerify(t *testing.T) {
	body := []byte(`{"type":"auto_recharge","recharge_id":"rc_1","account":"a","amount":"10.000000","month_total":"0.000000"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign("s3cret", body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	tests := []struct {
		name, secret, sig string
		body              []byte
		ok                bool
	}{
		{"valid", "s3cret", want, body, true},
		{"wrong secret", "other", want, body, false},
		{"body changed", "s3cret", want, append([]byte(" "), body...), false},
		{"no prefix", "s3cret", strings.TrimPrefix(want, "sha256="), body, false},
		{"not hex", "s3cret", "sha256=zz", body, false},
		{"empty", "s3cret", "", body, false},
		{"uppercase hex", "s3cret", "sha256=" + strings.ToUpper(strings.TrimPrefix(want, "sha256=")), body, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Verify(tc.secret, tc.body, tc.sig); got != tc.ok {
				t.Fatalf("Verify = %v, want %v", got, tc.ok)
			}
		})
	}
}

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
				if r.Method != http.MethodPost || r.Header.Get(EventHeader) != "balance.low" || !Verify("k", body, r.Header.Get(SignatureHeader)) ||
					r.Header.Get("Content-Type") != "application/json" {
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
			err = w.Send(context.Background(), "balance.low", []byte(`{"type":"balance.low"}`))
			if calls.Load() != tc.wantCalls || (err != nil) != tc.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, error %v", calls.Load(), err, tc.wantCalls, tc.wantErr)
			}
			var de *DeliveryError
			if tc.wantErr && (!errors.As(err, &de) || de.Answered() != tc.answered || de.Status != tc.status || de.Attempts != int(tc.wantCalls)) {
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
	err = w.Send(context.Background(), "auto_recharge", []byte(`{}`))
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
	if err := w.Send(ctx, "x", []byte(`{}`)); !errors.Is(err, context.Canceled) {
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
}

// FuzzSignVerify: a signature verifies for its body and secret only.
//
//	go test -run '^$' -fuzz FuzzSignVerify ./notify
func FuzzSignVerify(f *testing.F) {
	f.Add("secret", []byte(`{"type":"balance.low"}`), 0)
	f.Fuzz(func(t *testing.T, secret string, body []byte, flip int) {
		sig := Sign(secret, body)
		if !Verify(secret, body, sig) {
			t.Fatal("a signature does not verify its own body")
		}
		if len(body) > 0 {
			i := (flip%len(body) + len(body)) % len(body)
			changed := append([]byte(nil), body...)
			changed[i] ^= 0x01
			if Verify(secret, changed, sig) {
				t.Fatal("a changed body verifies")
			}
		}
		if Verify(secret+"x", body, sig) {
			t.Fatal("another secret verifies")
		}
	})
}
