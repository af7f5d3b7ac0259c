package notifytest

import (
	"net/http"
	"testing"
	"time"
)

// TestCheckPublishedVector holds this independent receiver to the Standard
// Webhooks reference libraries' published vector, so that it and notify cannot
// share one misreading of the specification.
func TestCheckPublishedVector(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	sent := time.Unix(1614265330, 0)
	header := func(sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		h.Set("webhook-timestamp", "1614265330")
		h.Set("webhook-signature", sig)
		return h
	}
	const good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	tests := []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		ok   bool
	}{
		{"vector", header(good), body, sent, true},
		{"vector among others", header("v1a,xyz " + good + " v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), body, sent, true},
		{"tampered body", header(good), []byte(`{"test": 2432232315}`), sent, false},
		{"5m1s later", header(good), body, sent.Add(Tolerance + time.Second), false},
		{"5m1s earlier", header(good), body, sent.Add(-Tolerance - time.Second), false},
		{"no signature", header(""), body, sent, false},
	}
	for _, tc := range tests {
		if err := Check([]string{secret}, tc.h, tc.body, tc.now); (err == nil) != tc.ok {
			t.Errorf("%s: Check = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
