package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestLegacySignAndVerify(t *testing.T) {
	body := []byte(`{"type":"auto_recharge","recharge_id":"rc_1","account":"a","amount":"10.000000","month_total":"0.000000"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := LegacySignature("s3cret", body); got != want {
		t.Fatalf("LegacySignature = %s, want %s", got, want)
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
			if got := VerifyLegacy(tc.secret, tc.body, tc.sig); got != tc.ok {
				t.Fatalf("VerifyLegacy = %v, want %v", got, tc.ok)
			}
		})
	}
}

// FuzzLegacySignVerify: a legacy signature verifies for its body and secret only.
//
//	go test -run '^$' -fuzz FuzzLegacySignVerify ./notify
func FuzzLegacySignVerify(f *testing.F) {
	f.Add("secret", []byte(`{"type":"balance.low"}`), 0)
	f.Fuzz(func(t *testing.T, secret string, body []byte, flip int) {
		sig := LegacySignature(secret, body)
		if !VerifyLegacy(secret, body, sig) {
			t.Fatal("a signature does not verify its own body")
		}
		if len(body) > 0 {
			i := (flip%len(body) + len(body)) % len(body)
			changed := append([]byte(nil), body...)
			changed[i] ^= 0x01
			if VerifyLegacy(secret, changed, sig) {
				t.Fatal("a changed body verifies")
			}
		}
		if VerifyLegacy(secret+"x", body, sig) {
			t.Fatal("another secret verifies")
		}
	})
}
