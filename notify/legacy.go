package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// LegacySignatureHeader carries the signature creditgate sent before Standard
// Webhooks: "sha256=" and the lowercase hex HMAC-SHA256 of the body alone, keyed
// with the configured secret string as it is written. Deliveries still carry it,
// for one release, so receivers can move to Verify.
//
// Deprecated: it signs the body only, so anyone who captured one message can
// replay it forever. Verify webhook-signature instead (Verify).
const LegacySignatureHeader = "X-Creditgate-Signature"

// LegacySignature returns the LegacySignatureHeader value of body.
//
// Deprecated: see LegacySignatureHeader.
func LegacySignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyLegacy reports whether signature (a LegacySignatureHeader value) is
// body's signature under secret, compared in constant time. It cannot tell a
// replay from a fresh message.
//
// Deprecated: use Verify.
func VerifyLegacy(secret string, body []byte, signature string) bool {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
