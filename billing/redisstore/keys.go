package redisstore

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
)

// API keys live in two places: the account's `keys` hash (key id → metadata and the
// secret's hash, for listing and revocation) and a lookup hash per key
// `key:<sha256 hex>` (for authentication). They sit in different cluster slots, so
// they are written in an order that fails safe: creation writes the account's entry
// first (a crash leaves a listed key that does not work and can be revoked); revocation
// deletes the lookup first (the key stops working before it disappears from the list).

// keyEntry is the account-side record: "v2 <hash hex> <created ms> <hint>
// <attrs> <name…>", attrs the key's settings as comma-separated name=value
// pairs ("rpm=60,tpm=100000"), or "-" for none. Entries written before keys had
// settings, "<hash hex> <created ms> <hint> <name…>", still parse (no limits).
func keyEntry(h billing.KeyHash, k billing.APIKey) string {
	return "v2 " + h.Hex() + " " + ms(k.CreatedAt) + " " + k.Hint + " " + keyAttrs(k) + " " + k.Name
}

// keyAttrs are a key's settings as keyEntry writes them.
func keyAttrs(k billing.APIKey) string {
	var attrs []string
	if k.RPM > 0 {
		attrs = append(attrs, "rpm="+strconv.FormatInt(k.RPM, 10))
	}
	if k.TPM > 0 {
		attrs = append(attrs, "tpm="+strconv.FormatInt(k.TPM, 10))
	}
	if len(attrs) == 0 {
		return "-"
	}
	return strings.Join(attrs, ",")
}

// parseKeyEntry reads a keyEntry; it returns the key and its hash's hex.
func parseKeyEntry(account, id, raw string) (billing.APIKey, string, error) {
	d := record{where: fmt.Sprintf("key entry %q of account %q", id, account)}
	v2 := strings.HasPrefix(raw, "v2 ")
	want := 4
	if v2 {
		raw, want = raw[len("v2 "):], 5
	}
	p := strings.SplitN(raw, " ", want)
	if len(p) != want {
		d.fail("%d fields, want %d", len(p), want)
		return billing.APIKey{}, "", d.err
	}
	k := billing.APIKey{ID: id, Account: account, CreatedAt: d.ms("created", p[1]), Hint: p[2], Name: p[want-1]}
	if v2 && p[3] != "-" {
		for _, attr := range strings.Split(p[3], ",") {
			name, value, _ := strings.Cut(attr, "=")
			switch name {
			case "rpm":
				k.RPM = d.rateLimit(name, value)
			case "tpm":
				k.TPM = d.rateLimit(name, value)
			default:
				d.fail("unknown setting %s", show(attr))
			}
		}
	}
	if d.err != nil {
		return billing.APIKey{}, "", d.err
	}
	return k, p[0], nil
}

// rateLimit reads an RPM or TPM of a key's records: 1 to MaxRateLimit (0, none,
// is not written).
func (d *record) rateLimit(field, s string) int64 {
	n := d.int(field, s, "a rate limit")
	if d.err == nil && (n <= 0 || n > billing.MaxRateLimit) {
		d.fail("%s is %d, want a rate limit (1 to %d)", field, n, int64(billing.MaxRateLimit))
	}
	return n
}

// CreateKey makes a new key for an existing account, without limits.
func (s *Store) CreateKey(ctx context.Context, account, name string) (billing.APIKey, string, error) {
	return s.CreateKeyWith(ctx, account, billing.KeySpec{Name: name})
}

// CreateKeyWith makes a new key for an existing account.
func (s *Store) CreateKeyWith(ctx context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.APIKey{}, "", notFound(account)
	}
	name := spec.Name
	if len(name) > 200 || strings.ContainsAny(name, "\r\n") {
		return billing.APIKey{}, "", fmt.Errorf("%w: key name must be one line of at most 200 characters", billing.ErrInvalid)
	}
	if err := billing.ValidRateLimit(spec.RPM); err != nil {
		return billing.APIKey{}, "", fmt.Errorf("rpm: %w", err)
	}
	if err := billing.ValidRateLimit(spec.TPM); err != nil {
		return billing.APIKey{}, "", fmt.Errorf("tpm: %w", err)
	}
	secret := billing.NewKeySecret()
	h := billing.HashKey(secret)
	k := billing.APIKey{
		ID:        billing.NewID("key_"),
		Account:   account,
		Name:      name,
		CreatedAt: time.UnixMilli(s.now().UnixMilli()).UTC(),
		Hint:      billing.KeyHint(secret),
		RPM:       spec.RPM,
		TPM:       spec.TPM,
	}
	r, err := s.run(ctx, addKeyScript, []string{s.acctKey(account), s.keysKey(account)}, k.ID, keyEntry(h, k))
	if err != nil {
		return billing.APIKey{}, "", err
	}
	if err := decodeExists(r, account); err != nil {
		return billing.APIKey{}, "", err
	}
	fields := []any{"account", account, "key_id", k.ID, "name", name, "created_at", ms(k.CreatedAt), "hash", h.Hex()}
	if k.RPM > 0 {
		fields = append(fields, "rpm", k.RPM)
	}
	if k.TPM > 0 {
		fields = append(fields, "tpm", k.TPM)
	}
	if err := s.c.HSet(ctx, s.lookupKey(h), fields...).Err(); err != nil {
		return billing.APIKey{}, "", wrap(err)
	}
	return k, secret, nil
}

var addKeyScript = newScript("add_key.lua")

// ListKeys returns the account's keys, oldest first, without secrets.
func (s *Store) ListKeys(ctx context.Context, account string) ([]billing.APIKey, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return nil, notFound(account)
	}
	exists, err := s.c.HGet(ctx, s.acctKey(account), "tier").Result()
	if errors.Is(err, redis.Nil) || (err == nil && exists == "") {
		return nil, notFound(account)
	}
	if err != nil {
		return nil, wrap(err)
	}
	entries, err := s.c.HGetAll(ctx, s.keysKey(account)).Result()
	if err != nil {
		return nil, wrap(err)
	}
	keys := make([]billing.APIKey, 0, len(entries))
	for id, raw := range entries {
		k, _, err := parseKeyEntry(account, id, raw)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].CreatedAt.Equal(keys[j].CreatedAt) {
			return keys[i].CreatedAt.Before(keys[j].CreatedAt)
		}
		return keys[i].ID < keys[j].ID
	})
	return keys, nil
}

// RevokeKey deletes a key: first its lookup (it stops authenticating), then its entry.
func (s *Store) RevokeKey(ctx context.Context, account, keyID string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return fmt.Errorf("%w: %q", billing.ErrKeyNotFound, keyID)
	}
	raw, err := s.c.HGet(ctx, s.keysKey(account), keyID).Result()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %q", billing.ErrKeyNotFound, keyID)
	}
	if err != nil {
		return wrap(err)
	}
	_, hashHex, err := parseKeyEntry(account, keyID, raw)
	if err != nil {
		return err
	}
	var h billing.KeyHash
	if b, err := hex.DecodeString(hashHex); err != nil || len(b) != len(h) {
		return fmt.Errorf("redisstore: malformed key hash for %q", keyID)
	} else {
		copy(h[:], b)
	}
	if err := s.c.Del(ctx, s.lookupKey(h)).Err(); err != nil {
		return wrap(err)
	}
	return wrap(s.c.HDel(ctx, s.keysKey(account), keyID).Err())
}

// LookupKey finds the key whose secret hashes to h.
func (s *Store) LookupKey(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	f, err := s.c.HGetAll(ctx, s.lookupKey(h)).Result()
	if err != nil {
		return billing.APIKey{}, wrap(err)
	}
	// The stored hash is compared in constant time as well: the lookup by name is a
	// hash-table probe, this makes sure the record is the one asked for.
	if len(f) == 0 || subtle.ConstantTimeCompare([]byte(f["hash"]), []byte(h.Hex())) != 1 {
		return billing.APIKey{}, billing.ErrKeyNotFound
	}
	d := record{where: fmt.Sprintf("lookup record of key %q", f["key_id"])}
	k := billing.APIKey{ID: f["key_id"], Account: f["account"], Name: f["name"], CreatedAt: d.msOf(f, "created_at")}
	// Limits are absent from lookups written before keys had them, and for none.
	if v, ok := f["rpm"]; ok {
		k.RPM = d.rateLimit("rpm", v)
	}
	if v, ok := f["tpm"]; ok {
		k.TPM = d.rateLimit("tpm", v)
	}
	if d.err != nil {
		return billing.APIKey{}, d.err
	}
	return k, nil
}
