package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (standardwebhooks.com) header names. Go canonicalises them on
// the wire (Webhook-Id…); HTTP header names are case-insensitive.
const (
	IDHeader        = "webhook-id"
	TimestampHeader = "webhook-timestamp"
	SignatureHeader = "webhook-signature"
)

// SecretPrefix starts a Standard Webhooks secret: "whsec_" and the base64 of the
// HMAC key.
const SecretPrefix = "whsec_"

// MinSecretBytes is the shortest HMAC key a "whsec_" secret may hold, as the
// specification requires (192 bits).
const MinSecretBytes = 24

// Tolerance is how far a webhook-timestamp may be from the receiver's clock, in
// either direction, before Verify rejects the message: the window in which a
// captured message can be replayed at all.
const Tolerance = 5 * time.Minute

// Errors of Verify and ParseSecret; match them with errors.Is.
var (
	ErrInvalidSecret    = errors.New("notify: invalid webhook secret")
	ErrMissingHeader    = errors.New("notify: missing webhook header")
	ErrInvalidHeader    = errors.New("notify: malformed webhook header")
	ErrNoValidSignature = errors.New("notify: no valid webhook signature")
	ErrTimestampTooOld  = errors.New("notify: webhook timestamp too old")
	ErrTimestampTooNew  = errors.New("notify: webhook timestamp too far in the future")
)

// ParseSecret returns the HMAC key of a configured webhook secret. A Standard
// Webhooks secret, "whsec_<base64>", gives the decoded bytes (at least
// MinSecretBytes) and legacy false. Any other non-empty string is a legacy secret,
// as configurations held before Standard Webhooks: its raw bytes are the key and
// legacy is true, which callers should warn about, since this fallback goes away
// in the next release. An empty secret, or a "whsec_" one that is not standard
// base64 or too short, is an ErrInvalidSecret.
func ParseSecret(s string) (key []byte, legacy bool, err error) {
	if s == "" {
		return nil, false, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return []byte(s), true, nil
	}
	key, err = base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// The error names an offset, never the secret's bytes.
		return nil, false, fmt.Errorf("%w: the part after %q is not standard base64 (%v)", ErrInvalidSecret, SecretPrefix, err)
	}
	if len(key) < MinSecretBytes {
		return nil, false, fmt.Errorf("%w: %d bytes after %q; Standard Webhooks needs at least %d", ErrInvalidSecret, len(key), SecretPrefix, MinSecretBytes)
	}
	return key, false, nil
}

// GenerateSecret returns a new random Standard Webhooks secret (32 bytes of key).
func GenerateSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails: since Go 1.24 crypto/rand crashes the program instead
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// parseSecrets parses every secret; at least one is needed.
func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, _, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys[i] = k
	}
	return keys, nil
}

// mac is the HMAC-SHA256 of "<id>.<timestamp>.<body>" under key.
func mac(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// signature is the webhook-signature value: one "v1,<base64>" per key, space
// separated, so a receiver holding any one of the keys can verify.
func signature(keys [][]byte, id, timestamp string, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, timestamp, body)))
	}
	return b.String()
}

// Sign returns the webhook-signature header value of a message with id, sent at
// timestamp (Unix seconds), under every secret (see ParseSecret).
func Sign(secrets []string, id string, timestamp time.Time, body []byte) (string, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return "", err
	}
	return signature(keys, id, strconv.FormatInt(timestamp.Unix(), 10), body), nil
}

// Verify checks a delivery the way a receiver must before trusting its body:
// webhook-id, webhook-timestamp and webhook-signature are present and well
// formed, one of the "v1,…" signatures is the HMAC-SHA256 of
// "<id>.<timestamp>.<body>" under one of secrets (compared in constant time;
// several secrets let a receiver rotate), and the timestamp is within Tolerance
// of now, so a captured message cannot be replayed later. Signatures of other
// versions are ignored, as the specification says. body must be the raw bytes
// received. The error says what failed; it is nil only for an authentic, fresh
// message. A receiver should then drop a webhook-id it has already processed.
func Verify(secrets []string, h http.Header, body []byte, now time.Time) error {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return err
	}
	id, ts, sigs := header(h, IDHeader), header(h, TimestampHeader), header(h, SignatureHeader)
	switch {
	case id == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, IDHeader)
	case ts == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, TimestampHeader)
	case sigs == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, SignatureHeader)
	case strings.Contains(id, "."):
		// The specification forbids '.' in ids: it would let the signed content be
		// split differently between id, timestamp and body.
		return fmt.Errorf("%w: %s contains '.'", ErrInvalidHeader, IDHeader)
	}
	sent, ok := unixSeconds(ts)
	if !ok {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidHeader, TimestampHeader)
	}
	// The signature is checked before the timestamp, so that a timestamp error
	// always means an authentic message that came late (a replay or a skewed
	// clock), never a forgery.
	if !anyValid(keys, id, ts, body, sigs) {
		return ErrNoValidSignature
	}
	switch age := now.Unix() - sent; {
	case age > int64(Tolerance/time.Second):
		return fmt.Errorf("%w: sent %ds ago (tolerance %s)", ErrTimestampTooOld, age, Tolerance)
	case -age > int64(Tolerance/time.Second):
		return fmt.Errorf("%w: sent %ds ahead (tolerance %s)", ErrTimestampTooNew, -age, Tolerance)
	}
	return nil
}

// anyValid reports whether one "v1,<base64>" entry of sigs is the message's MAC
// under one of keys. Entries of other versions, and undecodable ones, match nothing.
func anyValid(keys [][]byte, id, ts string, body []byte, sigs string) bool {
	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, ts, body)
	}
	for _, entry := range strings.Fields(sigs) {
		version, enc, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return true
			}
		}
	}
	return false
}

// header reads a header whether h was canonicalised (as net/http does) or built
// by hand with lowercase names; several signature headers are joined, as their
// entries are a space-separated list anyway.
func header(h http.Header, name string) string {
	v := h.Values(name)
	if len(v) == 0 {
		v = h[name]
	}
	if name == SignatureHeader {
		return strings.TrimSpace(strings.Join(v, " "))
	}
	if len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(v[0])
}

// unixSeconds parses a webhook-timestamp: decimal digits only (no sign, no
// fraction), as the specification's "integer unix timestamp".
func unixSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// MessageID derives a webhook-id from the parts that identify a message for
// good, such as the kind of message, the account, the notice or recharge id and
// when it was created, none of which changes between attempts. The same parts
// always give the same id, so every retry and every redelivery of a message
// carries one webhook-id receivers can deduplicate on, while different parts give
// different ids. The id is "msg_" and 32 hex digits: it never contains '.', which
// the specification forbids, whatever the parts contain.
func MessageID(parts ...string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, p := range parts {
		// Length-prefixed, so ("ab","c") and ("a","bc") differ.
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write([]byte(p))
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// validID reports whether id can be a webhook-id: non-empty, at most 256 bytes of
// printable ASCII without '.' or spaces.
func validID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '.' {
			return false
		}
	}
	return true
}
