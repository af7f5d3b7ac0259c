package redisstore

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// API keys live in two places: the account's `keys` hash (key id → metadata and the
// secret's hash, for listing and revocation) and a lookup hash per key
// `key:<sha256 hex>` (for authentication). They sit in different cluster slots, so
// they are written in an order that fails safe: creation writes the account's entry
// first (a crash leaves a listed key that does not work and can be revoked); revocation
// deletes the lookup first (the key stops working before it disappears from the list).

// keyEntry is the account-side record: "v2 <hash hex> <created ms> <hint>
// <attrs> <name…>", attrs the key's settings as comma-separated name=value
// pairs, or "-" for none: rpm=, tpm= (rate limits), limit= (micros), reset=
// (daily, weekly or monthly; never is not written), exp= (Unix ms), models=
// (each name query-escaped, joined by "|", which escaping never leaves), and
// disabled=1. A setting at its default is not written. Entries written before
// keys had settings, "<hash hex> <created ms> <hint> <name…>", still parse (no
// limits). The entry is the key's one record of its settings: LookupKey reads
// them from it (the lookup record only finds it), so UpdateKey changes one
// record under the account's hash tag.
func keyEntry(h string, k billing.APIKey) string {
	return "v2 " + h + " " + ms(k.CreatedAt) + " " + k.Hint + " " + keyAttrs(k) + " " + k.Name
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
	if k.Limit > 0 {
		attrs = append(attrs, "limit="+strconv.FormatInt(int64(k.Limit), 10))
	}
	if k.LimitReset != "" && k.LimitReset != billing.LimitNever {
		attrs = append(attrs, "reset="+k.LimitReset)
	}
	if !k.ExpiresAt.IsZero() {
		attrs = append(attrs, "exp="+ms(k.ExpiresAt))
	}
	if len(k.Models) > 0 {
		escaped := make([]string, len(k.Models))
		for i, m := range k.Models {
			escaped[i] = url.QueryEscape(m)
		}
		attrs = append(attrs, "models="+strings.Join(escaped, "|"))
	}
	if k.Disabled {
		attrs = append(attrs, "disabled=1")
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
		seen := map[string]bool{}
		for _, attr := range strings.Split(p[3], ",") {
			name, value, _ := strings.Cut(attr, "=")
			if seen[name] {
				d.fail("setting %s given twice", show(name))
			}
			seen[name] = true
			switch name {
			case "rpm":
				k.RPM = d.rateLimit(name, value)
			case "tpm":
				k.TPM = d.rateLimit(name, value)
			case "limit":
				k.Limit = d.micros(name, value)
				if d.err == nil && (k.Limit <= 0 || k.Limit > money.MaxAmount) {
					d.fail("limit is %d, want 1 to %d micros", k.Limit, int64(money.MaxAmount))
				}
			case "reset":
				if value != billing.LimitDaily && value != billing.LimitWeekly && value != billing.LimitMonthly {
					d.fail("reset is %s, want daily, weekly or monthly", show(value))
				}
				k.LimitReset = value
			case "exp":
				if n := d.int(name, value, "a time (decimal Unix ms)"); d.err == nil && n <= 0 {
					d.fail("exp is %d, want a time after 1970", n)
				} else {
					k.ExpiresAt = time.UnixMilli(n).UTC()
				}
			case "models":
				k.Models = d.models(value)
			case "disabled":
				if value != "1" {
					d.fail("disabled is %s, want \"1\"", show(value))
				}
				k.Disabled = true
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

// models reads a key's allowlist as keyAttrs writes it.
func (d *record) models(s string) []string {
	parts := strings.Split(s, "|")
	if len(parts) > billing.MaxKeyModels {
		d.fail("%d models, want at most %d", len(parts), billing.MaxKeyModels)
		return nil
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		m, err := url.QueryUnescape(p)
		if err != nil || m == "" || url.QueryEscape(m) != p || len(m) > billing.MaxModelNameLen {
			d.fail("model %d is %s, want a query-escaped model name", i+1, show(p))
			return nil
		}
		out[i] = m
	}
	return out
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
	now := s.now()
	if err := billing.ProblemsError(spec.Validate(now)); err != nil {
		return billing.APIKey{}, "", err
	}
	secret := billing.NewKeySecret()
	h := billing.HashKey(secret)
	k := billing.APIKey{
		ID:         billing.NewID("key_"),
		Account:    account,
		Name:       spec.Name,
		CreatedAt:  time.UnixMilli(now.UnixMilli()).UTC(),
		Hint:       billing.KeyHint(secret),
		RPM:        spec.RPM,
		TPM:        spec.TPM,
		Limit:      spec.Limit,
		LimitReset: spec.LimitReset,
		Models:     slices.Clone(spec.Models),
		Disabled:   spec.Disabled,
	}
	if !spec.ExpiresAt.IsZero() { // to the millisecond, as every time in the store
		k.ExpiresAt = time.UnixMilli(spec.ExpiresAt.UnixMilli()).UTC()
	}
	if len(k.Models) == 0 {
		k.Models = nil
	}
	if k.LimitReset == billing.LimitNever {
		k.LimitReset = ""
	}
	r, err := s.run(ctx, addKeyScript, []string{s.acctKey(account), s.keysKey(account)}, k.ID, keyEntry(h.Hex(), k))
	if err != nil {
		return billing.APIKey{}, "", err
	}
	if err := decodeExists(r, account); err != nil {
		return billing.APIKey{}, "", err
	}
	// The lookup record only finds the entry: the settings are read from the
	// entry (see keyEntry), so there is one record of them to change.
	fields := []any{"account", account, "key_id", k.ID, "name", k.Name, "created_at", ms(k.CreatedAt), "hash", h.Hex()}
	if err := s.c.HSet(ctx, s.lookupKey(h), fields...).Err(); err != nil {
		return billing.APIKey{}, "", wrap(err)
	}
	return k, secret, nil
}

var (
	updateKeyScript = newScript("update_key.lua")
	keyStateScript  = newScript("key_state.lua")
)

// maxUpdateTries bounds UpdateKey's compare-and-set retries: each retry means
// another update of the same key landed in between, which an operator's hand
// does not do a hundred times a second.
const maxUpdateTries = 8

// UpdateKey changes a key's settings: it reads the entry, merges u, and writes
// it back if unchanged in between (update_key.lua), reading again if not.
func (s *Store) UpdateKey(ctx context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error) {
	if billing.ValidAccountID(account) != nil || billing.ValidAccountID(keyID) != nil {
		return billing.APIKey{}, fmt.Errorf("%w: %q", billing.ErrKeyNotFound, keyID)
	}
	if u.Empty() {
		return billing.APIKey{}, billing.ErrNoKeyChange
	}
	if err := billing.ProblemsError(u.Validate(s.now())); err != nil {
		return billing.APIKey{}, err
	}
	for range maxUpdateTries {
		raw, err := s.c.HGet(ctx, s.keysKey(account), keyID).Result()
		if errors.Is(err, redis.Nil) {
			return billing.APIKey{}, fmt.Errorf("%w: %q", billing.ErrKeyNotFound, keyID)
		}
		if err != nil {
			return billing.APIKey{}, wrap(err)
		}
		k, hashHex, err := parseKeyEntry(account, keyID, raw)
		if err != nil {
			return billing.APIKey{}, err
		}
		u.Apply(&k)
		if !k.ExpiresAt.IsZero() {
			k.ExpiresAt = time.UnixMilli(k.ExpiresAt.UnixMilli()).UTC()
		}
		if k.LimitReset == billing.LimitNever {
			k.LimitReset = ""
		}
		r, err := s.run(ctx, updateKeyScript, []string{s.acctKey(account), s.keysKey(account)}, keyID, raw, keyEntry(hashHex, k))
		if err != nil {
			return billing.APIKey{}, err
		}
		switch err := decodeUpdateKey(r, keyID); {
		case err == nil:
			return k, nil
		case !errors.Is(err, errEntryChanged):
			return billing.APIKey{}, err
		}
	}
	return billing.APIKey{}, fmt.Errorf("%w: key %q changed %d times while being updated", billing.ErrUnavailable, keyID, maxUpdateTries)
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

// errEntryChanged: update_key.lua found another entry than the one read.
var errEntryChanged = errors.New("key entry changed")

// decodeUpdateKey reads update_key.lua's reply: nil when the entry was
// replaced, errEntryChanged when it must be read again.
func decodeUpdateKey(r reply, keyID string) error {
	switch r.status() {
	case "OK":
		return r.done(1)
	case "CHANGED":
		return r.refusal(1, errEntryChanged)
	case "NOKEY", "NOACCOUNT":
		return r.refusal(1, fmt.Errorf("%w: %q", billing.ErrKeyNotFound, keyID))
	}
	return r.unexpected()
}

// LookupKey finds the key whose secret hashes to h: its lookup record names
// the account and key id, and key_state.lua reads the key's entry (its
// settings) and its account's status in one step.
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
	account, keyID := f["account"], f["key_id"]
	if billing.ValidAccountID(account) != nil || billing.ValidAccountID(keyID) != nil {
		return billing.APIKey{}, &malformedError{where: fmt.Sprintf("lookup record of key %q", keyID), detail: fmt.Sprintf("account %s", show(account))}
	}
	r, err := s.run(ctx, keyStateScript, []string{s.acctKey(account), s.keysKey(account)}, keyID)
	if err != nil {
		return billing.APIKey{}, err
	}
	k, err := decodeKeyState(r, account, keyID, h)
	if err != nil {
		return billing.APIKey{}, err
	}
	return k, nil
}

// decodeKeyState reads key_state.lua's reply for the key whose hash is h. A
// key whose entry or account is gone (revoked in between, or outlived its
// account) is ErrKeyNotFound, as an unknown key.
func decodeKeyState(r reply, account, keyID string, h billing.KeyHash) (billing.APIKey, error) {
	switch r.status() {
	case "OK":
		raw, status := r.str(1), r.str(2)
		if err := r.done(3); err != nil {
			return billing.APIKey{}, err
		}
		k, hashHex, err := parseKeyEntry(account, keyID, raw)
		if err != nil {
			return billing.APIKey{}, err
		}
		if hashHex != h.Hex() {
			// Another key's entry under this id: not the key presented.
			return billing.APIKey{}, billing.ErrKeyNotFound
		}
		switch status {
		case "":
			k.AccountStatus = billing.StatusActive
		case billing.StatusSuspended:
			k.AccountStatus = status
		default:
			r.fail("account status is %s, want %q or empty", show(status), billing.StatusSuspended)
			return billing.APIKey{}, r.err
		}
		return k, nil
	case "NOKEY", "NOACCOUNT":
		return billing.APIKey{}, r.refusal(1, billing.ErrKeyNotFound)
	}
	return billing.APIKey{}, r.unexpected()
}
