package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test vector published with the Standard Webhooks reference libraries
// (github.com/standard-webhooks/standard-webhooks, libraries/go/webhook_test.go,
// TestWebhookSign).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardWebhooksVector(t *testing.T) {
	got, err := Sign([]string{vectorSecret}, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorPayload))
	if err != nil || got != vectorSignature {
		t.Fatalf("Sign = %q, %v; want the published %q", got, err, vectorSignature)
	}
	h := http.Header{}
	h.Set(IDHeader, vectorID)
	h.Set(TimestampHeader, strconv.Itoa(vectorTimestamp))
	h.Set(SignatureHeader, vectorSignature)
	if err := Verify([]string{vectorSecret}, h, []byte(vectorPayload), time.Unix(vectorTimestamp, 0)); err != nil {
		t.Fatalf("Verify of the published vector: %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	key24 := bytes.Repeat([]byte{0xa5}, 24)
	tests := []struct {
		name, secret string
		key          []byte
		legacy       bool
		err          bool
	}{
		{"standard", SecretPrefix + base64.StdEncoding.EncodeToString(key24), key24, false, false},
		{"published vector", vectorSecret, mustB64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), false, false},
		{"legacy raw string", "charger-secret-0123456789", []byte("charger-secret-0123456789"), true, false},
		{"legacy that looks base64", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", []byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), true, false},
		{"empty", "", nil, false, true},
		{"prefix only", SecretPrefix, nil, false, true},
		{"not base64", SecretPrefix + "not base64!", nil, false, true},
		{"url-safe base64", SecretPrefix + "____________________________________", nil, false, true},
		{"too short", SecretPrefix + base64.StdEncoding.EncodeToString(key24[:23]), nil, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, legacy, err := ParseSecret(tc.secret)
			if (err != nil) != tc.err || !bytes.Equal(key, tc.key) || legacy != tc.legacy {
				t.Fatalf("ParseSecret = %x, %v, %v; want %x, %v, error %v", key, legacy, err, tc.key, tc.legacy, tc.err)
			}
			if err != nil && (!errors.Is(err, ErrInvalidSecret) || (len(tc.secret) > len(SecretPrefix) && strings.Contains(err.Error(), tc.secret[len(SecretPrefix):]))) {
				t.Fatalf("error %q: want ErrInvalidSecret, without the secret", err)
			}
		})
	}
	s := GenerateSecret()
	if key, legacy, err := ParseSecret(s); err != nil || legacy || len(key) != 32 {
		t.Fatalf("GenerateSecret %q parses as %d bytes, legacy %v, %v", s, len(key), legacy, err)
	}
	if GenerateSecret() == s {
		t.Fatal("GenerateSecret repeats itself")
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedHeader is what a delivery of body with id at ts carries, signed by secrets.
func signedHeader(t *testing.T, secrets []string, id string, ts int64, body []byte) http.Header {
	t.Helper()
	sig, err := Sign(secrets, id, time.Unix(ts, 0), body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(IDHeader, id)
	h.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	h.Set(SignatureHeader, sig)
	return h
}

func TestVerify(t *testing.T) {
	const ts = int64(1_770_000_000)
	sent := time.Unix(ts, 0)
	body := []byte(`{"id":"ntc_acme_1","type":"balance.low","account":"acme","balance":"0.800000"}`)
	oldS, newS := GenerateSecret(), GenerateSecret()
	legacyS := "a-legacy-secret-of-any-shape"
	good := func(t *testing.T) http.Header { return signedHeader(t, []string{newS}, "msg_1", ts, body) }
	tests := []struct {
		name    string
		secrets []string // the receiver's
		header  func(t *testing.T) http.Header
		body    []byte
		now     time.Time
		want    error // nil: accepted
	}{
		{"good", []string{newS}, good, body, sent, nil},
		{"4m59s old", []string{newS}, good, body, sent.Add(4*time.Minute + 59*time.Second), nil},
		{"exactly 5 minutes old", []string{newS}, good, body, sent.Add(Tolerance), nil},
		{"exactly 5 minutes ahead", []string{newS}, good, body, sent.Add(-Tolerance), nil},
		{"stale: 5m1s old", []string{newS}, good, body, sent.Add(Tolerance + time.Second), ErrTimestampTooOld},
		{"replayed an hour later", []string{newS}, good, body, sent.Add(time.Hour), ErrTimestampTooOld},
		{"future: 5m1s ahead", []string{newS}, good, body, sent.Add(-Tolerance - time.Second), ErrTimestampTooNew},
		{"tampered body", []string{newS}, good, append(bytes.Clone(body[:len(body)-2]), `9"}`...), sent, ErrNoValidSignature},
		{"body with a trailing newline", []string{newS}, good, append(bytes.Clone(body), '\n'), sent, ErrNoValidSignature},
		{"tampered timestamp", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(TimestampHeader, strconv.FormatInt(ts+60, 10)) // "refreshing" a captured message
			return h
		}, body, sent.Add(time.Hour), ErrNoValidSignature},
		{"tampered id", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(IDHeader, "msg_2")
			return h
		}, body, sent, ErrNoValidSignature},
		{"wrong secret", []string{oldS}, good, body, sent, ErrNoValidSignature},
		{"missing webhook-id", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Del(IDHeader); return h }, body, sent, ErrMissingHeader},
		{"missing webhook-timestamp", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Del(TimestampHeader); return h }, body, sent, ErrMissingHeader},
		{"missing webhook-signature", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Del(SignatureHeader); return h }, body, sent, ErrMissingHeader},
		{"no headers at all", []string{newS}, func(*testing.T) http.Header { return http.Header{} }, body, sent, ErrMissingHeader},
		{"bad base64", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, "v1,***not-base64***")
			return h
		}, body, sent, ErrNoValidSignature},
		{"right bytes, other version", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, "v1a,"+strings.TrimPrefix(h.Get(SignatureHeader), "v1,"))
			return h
		}, body, sent, ErrNoValidSignature},
		{"no version", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, strings.TrimPrefix(h.Get(SignatureHeader), "v1,"))
			return h
		}, body, sent, ErrNoValidSignature},
		{"several signatures, one valid", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, strings.Join([]string{"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
				"v1,%%%", h.Get(SignatureHeader), "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="}, " "))
			return h
		}, body, sent, nil},
		{"several signatures, none valid", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
			return h
		}, body, sent, ErrNoValidSignature},
		{"sender rotating: signed with new and old, receiver has old", []string{oldS}, func(t *testing.T) http.Header {
			return signedHeader(t, []string{newS, oldS}, "msg_1", ts, body)
		}, body, sent, nil},
		{"receiver rotating: has old and new, signed with new", []string{oldS, newS}, good, body, sent, nil},
		{"legacy secret on both sides", []string{legacyS}, func(t *testing.T) http.Header {
			return signedHeader(t, []string{legacyS}, "msg_1", ts, body)
		}, body, sent, nil},
		{"legacy secret, receiver has another", []string{legacyS + "x"}, func(t *testing.T) http.Header {
			return signedHeader(t, []string{legacyS}, "msg_1", ts, body)
		}, body, sent, ErrNoValidSignature},
		{"timestamp not a number", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Set(TimestampHeader, "yesterday"); return h }, body, sent, ErrInvalidHeader},
		{"timestamp with a sign", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Set(TimestampHeader, "+1770000000"); return h }, body, sent, ErrInvalidHeader},
		{"negative timestamp", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Set(TimestampHeader, "-1"); return h }, body, sent, ErrInvalidHeader},
		{"fractional timestamp", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Set(TimestampHeader, "1770000000.5"); return h }, body, sent, ErrInvalidHeader},
		{"timestamp in milliseconds", []string{newS}, func(t *testing.T) http.Header {
			return signedHeader(t, []string{newS}, "msg_1", ts*1000, body)
		}, body, sent, ErrTimestampTooNew},
		{"huge timestamp", []string{newS}, func(t *testing.T) http.Header { h := good(t); h.Set(TimestampHeader, "99999999999999999999"); return h }, body, sent, ErrInvalidHeader},
		{"id with a dot", []string{newS}, func(t *testing.T) http.Header {
			return signedHeader(t, []string{newS}, "msg.1", ts, body)
		}, body, sent, ErrInvalidHeader},
		{"lowercase header map built by hand", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			return http.Header{IDHeader: {h.Get(IDHeader)}, TimestampHeader: {h.Get(TimestampHeader)}, SignatureHeader: {h.Get(SignatureHeader)}}
		}, body, sent, nil},
		{"signature split over two header lines", []string{newS}, func(t *testing.T) http.Header {
			h := good(t)
			h.Set(SignatureHeader, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
			h.Add(SignatureHeader, good(t).Get(SignatureHeader))
			return h
		}, body, sent, nil},
		{"receiver secret invalid", []string{"whsec_%%%"}, good, body, sent, ErrInvalidSecret},
		{"receiver has no secret", nil, good, body, sent, ErrInvalidSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secrets, tc.header(t), tc.body, tc.now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignWithEverySecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	sig, err := Sign([]string{a, b}, "msg_1", time.Unix(1_770_000_000, 0), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Split(sig, " ")
	if len(entries) != 2 || !strings.HasPrefix(entries[0], "v1,") || !strings.HasPrefix(entries[1], "v1,") || entries[0] == entries[1] {
		t.Fatalf("signature %q: want one v1 entry per secret", sig)
	}
	for _, s := range []string{a, b} {
		h := http.Header{}
		h.Set(IDHeader, "msg_1")
		h.Set(TimestampHeader, "1770000000")
		h.Set(SignatureHeader, sig)
		if err := Verify([]string{s}, h, []byte(`{}`), time.Unix(1_770_000_000, 0)); err != nil {
			t.Fatalf("a receiver holding one of the secrets: %v", err)
		}
	}
	if _, err := Sign(nil, "msg_1", time.Now(), nil); !errors.Is(err, ErrInvalidSecret) {
		t.Fatalf("Sign without secrets: %v", err)
	}
}

func TestMessageID(t *testing.T) {
	a := MessageID("notice", "acme.eu", "ntc_acme.eu_1", "1770000000000")
	tests := []struct {
		name  string
		id    string
		equal bool
	}{
		{"same parts", MessageID("notice", "acme.eu", "ntc_acme.eu_1", "1770000000000"), true},
		{"another notice", MessageID("notice", "acme.eu", "ntc_acme.eu_2", "1770000000000"), false},
		{"same seq, later (a wiped store)", MessageID("notice", "acme.eu", "ntc_acme.eu_1", "1780000000000"), false},
		{"parts split differently", MessageID("notice", "acme.eu", "ntc_acme.eu_", "11770000000000"), false},
		{"another kind", MessageID("auto_recharge", "acme.eu", "ntc_acme.eu_1", "1770000000000"), false},
	}
	for _, tc := range tests {
		if (tc.id == a) != tc.equal {
			t.Errorf("%s: %s vs %s, want equal %v", tc.name, tc.id, a, tc.equal)
		}
	}
	if !strings.HasPrefix(a, "msg_") || len(a) != 36 || strings.Contains(a, ".") || !validID(a) {
		t.Fatalf("MessageID %q: want msg_ and 32 hex digits, no '.'", a)
	}
}

// FuzzVerify feeds Verify arbitrary headers and bodies. It must never panic, and
// it may accept only when the signature header holds the true v1 signature of
// exactly that id, timestamp and body (computed here from the specification),
// with a timestamp within Tolerance. A message signed by Sign verifies, and a
// changed body does not.
//
//	go test -run '^$' -fuzz FuzzVerify ./notify
func FuzzVerify(f *testing.F) {
	f.Add(vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorPayload), uint16(0))
	f.Add("msg_1", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1a,xx v1,", []byte(`{}`), uint16(3))
	f.Add("", "", "", []byte(nil), uint16(0))
	f.Add("a.b", "0001614265330", "v1,,v1 ,", []byte("\x00"), uint16(1))
	key := mustB64(f, strings.TrimPrefix(vectorSecret, SecretPrefix))
	now := time.Unix(vectorTimestamp, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, flip uint16) {
		h := http.Header{}
		h.Set(IDHeader, id)
		h.Set(TimestampHeader, ts)
		h.Set(SignatureHeader, sig)
		if err := Verify([]string{vectorSecret}, h, body, now); err == nil {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(strings.TrimSpace(id) + "." + strings.TrimSpace(ts) + "." + string(body)))
			want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
			sec, perr := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
			if !strings.Contains(sig, want) || perr != nil ||
				sec < now.Unix()-300 || sec > now.Unix()+300 || strings.Contains(id, ".") {
				t.Fatalf("Verify accepted id %q ts %q sig %q body %q", id, ts, sig, body)
			}
		}
		if !validID(id) {
			return
		}
		good := signedHeader(t, []string{vectorSecret}, id, vectorTimestamp, body)
		if err := Verify([]string{vectorSecret}, good, body, now); err != nil {
			t.Fatalf("a signed message does not verify: %v", err)
		}
		if len(body) > 0 {
			changed := bytes.Clone(body)
			changed[int(flip)%len(body)] ^= 0x01
			if err := Verify([]string{vectorSecret}, good, changed, now); !errors.Is(err, ErrNoValidSignature) {
				t.Fatalf("a changed body: %v", err)
			}
		}
	})
}
