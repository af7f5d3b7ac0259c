package billing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// KeyPrefix starts every creditgate API key.
const KeyPrefix = "sk-cg-"

// keyAlphabet is base62: keys survive copy-paste, URLs and shells unquoted.
const keyAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// keySecretLen random base62 characters carry ~262 bits of entropy.
const keySecretLen = 44

// APIKey describes an app key. The secret itself is never stored: only its SHA-256.
type APIKey struct {
	ID        string
	Account   string
	Name      string
	CreatedAt time.Time
	// Hint is a recognisable, non-secret form of the key: "sk-cg-Ab3…x9Qz".
	Hint string
	// RPM and TPM are the key's own rate limits, requests and tokens per
	// minute (0: none). A key limit applies when lower than its account's tier's
	// (the account's limit counts every key; see RateLimiter).
	RPM int64
	TPM int64
	// Limit is what the key may spend per LimitReset period (calendar periods
	// in UTC, weeks from Monday; LimitNever: in all), checked and charged in
	// the same reserve and settle scripts as the balance; 0: no limit.
	Limit      money.Micros
	LimitReset string
	// ExpiresAt ends the key (401 after it); zero: never.
	ExpiresAt time.Time
	// Models is the key's model allowlist (aliases resolve first; 403
	// model_not_allowed outside it); empty: every model.
	Models []string
	// Disabled keys answer 401 until enabled again.
	Disabled bool
	// AccountStatus is the key's account's Status when LookupKey read the key
	// ("" from the other KeyStore methods), so a proxy's cached key carries it.
	AccountStatus string
}

// Key limit periods (APIKey.LimitReset).
const (
	LimitNever   = "never" // the limit bounds the key's whole life ("" reads as never)
	LimitDaily   = "daily"
	LimitWeekly  = "weekly" // weeks start on Monday, 00:00 UTC
	LimitMonthly = "monthly"
)

// KeySpec describes a key to create.
type KeySpec struct {
	Name string
	// RPM and TPM are the key's rate limits (APIKey.RPM, TPM): 0 to MaxRateLimit.
	RPM int64
	TPM int64
	// Limit, LimitReset, ExpiresAt, Models and Disabled are APIKey's.
	Limit      money.Micros
	LimitReset string
	ExpiresAt  time.Time
	Models     []string
	Disabled   bool
}

// KeyUsage is what a key spent in the current calendar periods (UTC) and in all.
type KeyUsage struct {
	Daily, Weekly, Monthly, Total money.Micros
}

// KeyHash is the SHA-256 of a key's secret.
type KeyHash [sha256.Size]byte

// HashKey hashes a presented key for lookup.
func HashKey(secret string) KeyHash { return sha256.Sum256([]byte(secret)) }

// Hex is the hash in lowercase hex, as stored.
func (h KeyHash) Hex() string { return hex.EncodeToString(h[:]) }

// NewKeySecret returns a fresh random key "sk-cg-<44 base62 chars>".
func NewKeySecret() string {
	var b strings.Builder
	b.Grow(len(KeyPrefix) + keySecretLen)
	b.WriteString(KeyPrefix)
	buf := make([]byte, keySecretLen*2)
	for n := 0; n < keySecretLen; {
		rand.Read(buf) // never fails (see NewID)
		for _, c := range buf {
			// 62*4 = 248: reject 248..255 so every character is equally likely.
			if c >= 248 {
				continue
			}
			b.WriteByte(keyAlphabet[c%62])
			if n++; n == keySecretLen {
				break
			}
		}
	}
	return b.String()
}

// KeyHint is the displayable form of a secret: prefix, first 3 and last 4 characters.
func KeyHint(secret string) string {
	body := strings.TrimPrefix(secret, KeyPrefix)
	if len(body) < 8 {
		return KeyPrefix + "…"
	}
	return KeyPrefix + body[:3] + "…" + body[len(body)-4:]
}

// NewID returns prefix + 24 random hex characters, e.g. "key_3f2a…".
func NewID(prefix string) string {
	var b [12]byte
	rand.Read(b[:]) // never fails: since Go 1.24 crypto/rand crashes the program instead
	return prefix + hex.EncodeToString(b[:])
}

// KeyStore keeps app keys. Lookups by hash are what the proxy does on every request.
type KeyStore interface {
	// CreateKey makes a key for an existing account and returns it with its secret;
	// the secret is never retrievable again.
	CreateKey(ctx context.Context, account, name string) (APIKey, string, error)
	// CreateKeyWith is CreateKey for a key with limits (ErrInvalid for a limit
	// out of range).
	CreateKeyWith(ctx context.Context, account string, spec KeySpec) (APIKey, string, error)
	ListKeys(ctx context.Context, account string) ([]APIKey, error)
	// RevokeKey deletes the key; it stops authenticating at once (see the proxy's
	// key cache for how long a cached key may live on).
	RevokeKey(ctx context.Context, account, keyID string) error
	// UpdateKey changes a key's settings atomically and returns the key as it
	// now is: ErrKeyNotFound for a key that is not account's, ErrInvalid (naming
	// each field) for invalid settings or an update without fields.
	UpdateKey(ctx context.Context, account, keyID string, u KeyUpdate) (APIKey, error)
	// LookupKey finds the key whose secret hashes to h: ErrKeyNotFound if none.
	LookupKey(ctx context.Context, h KeyHash) (APIKey, error)
}

// ErrKeyNotFound is returned for unknown and revoked keys alike.
var ErrKeyNotFound = errors.New("api key not found")
