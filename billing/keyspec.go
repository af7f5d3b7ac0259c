package billing

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Bounds of a key's settings.
const (
	// MaxKeyNameLen bounds a key's name (bytes), as the store has always kept it.
	MaxKeyNameLen = 200
	// MaxKeyModels bounds a key's model allowlist. The list lives in the key's
	// entry, which every key-cache miss reads and every request of the key
	// scans; a hundred covers every model a price table names today, and a
	// longer list is better written as no allowlist.
	MaxKeyModels = 100
	// MaxModelNameLen bounds one allowlist entry (bytes); OpenAI's longest
	// model names are under 50.
	MaxModelNameLen = 128
)

// ValidLimitReset reports whether s is a key limit period ("" reads as never).
func ValidLimitReset(s string) bool {
	switch s {
	case "", LimitNever, LimitDaily, LimitWeekly, LimitMonthly:
		return true
	}
	return false
}

// KeyUpdate is a change of a key's settings (KeyStore.UpdateKey); a nil field
// is left as it is.
type KeyUpdate struct {
	Name       *string
	Limit      *money.Micros // 0 removes the limit
	LimitReset *string
	ExpiresAt  *time.Time // the zero time removes the expiry
	Models     *[]string  // an empty list removes the allowlist
	RPM        *int64     // 0 removes the key's rate limit
	TPM        *int64
	Disabled   *bool
	// Actor names who made the change (the admin token's name). Key changes
	// book no ledger event (they move no money, as key creation books none);
	// the store logs nothing either: the admin request log carries it.
	Actor string
}

// Empty reports whether u changes nothing.
func (u KeyUpdate) Empty() bool {
	return u.Name == nil && u.Limit == nil && u.LimitReset == nil && u.ExpiresAt == nil && u.Models == nil &&
		u.RPM == nil && u.TPM == nil && u.Disabled == nil
}

// Apply sets u's fields on k.
func (u KeyUpdate) Apply(k *APIKey) {
	if u.Name != nil {
		k.Name = *u.Name
	}
	if u.Limit != nil {
		k.Limit = *u.Limit
	}
	if u.LimitReset != nil {
		k.LimitReset = *u.LimitReset
	}
	if u.ExpiresAt != nil {
		k.ExpiresAt = *u.ExpiresAt
	}
	if u.Models != nil {
		k.Models = slices.Clone(*u.Models)
		if len(k.Models) == 0 {
			k.Models = nil
		}
	}
	if u.RPM != nil {
		k.RPM = *u.RPM
	}
	if u.TPM != nil {
		k.TPM = *u.TPM
	}
	if u.Disabled != nil {
		k.Disabled = *u.Disabled
	}
}

// Validate checks every field of s and returns every problem at once (nil when
// s is valid), each naming its field as the admin API does. An expiry must lie
// after now.
func (s KeySpec) Validate(now time.Time) []FieldProblem {
	u := KeyUpdate{Name: &s.Name, Limit: &s.Limit, LimitReset: &s.LimitReset, RPM: &s.RPM, TPM: &s.TPM}
	if !s.ExpiresAt.IsZero() {
		u.ExpiresAt = &s.ExpiresAt
	}
	if s.Models != nil {
		u.Models = &s.Models
	}
	return u.Validate(now)
}

// Validate checks every field of u (see KeySpec.Validate). An expiry in the
// past is refused here too: it is more likely a mistyped year than a wish to
// end the key, which disabled (or revoking) says plainly.
func (u KeyUpdate) Validate(now time.Time) []FieldProblem {
	var ps []FieldProblem
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if u.Name != nil && *u.Name != "" {
		if err := validText("name", *u.Name, MaxKeyNameLen); err != nil {
			add("name", "%s", trimInvalid(err))
		}
	}
	if u.Limit != nil && (*u.Limit < 0 || *u.Limit > money.MaxAmount) {
		add("limit", "must be from 0 (no limit) to %s, got %s", money.Micros(money.MaxAmount), *u.Limit)
	}
	if u.LimitReset != nil && !ValidLimitReset(*u.LimitReset) {
		add("limit_reset", "%q is not one of %s, %s, %s, %s", *u.LimitReset, LimitDaily, LimitWeekly, LimitMonthly, LimitNever)
	}
	if u.ExpiresAt != nil && !u.ExpiresAt.IsZero() && !u.ExpiresAt.After(now) {
		add("expires_at", "%s is not in the future (now %s)", u.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if u.Models != nil {
		if p := modelsProblem(*u.Models); p != "" {
			add("models", "%s", p)
		}
	}
	for _, f := range []struct {
		field string
		v     *int64
	}{{"rpm", u.RPM}, {"tpm", u.TPM}} {
		if f.v != nil && ValidRateLimit(*f.v) != nil {
			add(f.field, "must be 0 (no limit) to %d, got %d", int64(MaxRateLimit), *f.v)
		}
	}
	return ps
}

// modelsProblem says what is wrong with an allowlist, or "".
func modelsProblem(models []string) string {
	if len(models) > MaxKeyModels {
		return fmt.Sprintf("%d models, at most %d", len(models), MaxKeyModels)
	}
	for i, m := range models {
		if strings.TrimSpace(m) != m || m == "" {
			return fmt.Sprintf("model %d (%q) is empty or has spaces around it", i+1, m)
		}
		if err := validText("model name", m, MaxModelNameLen); err != nil {
			return fmt.Sprintf("model %d: %s", i+1, trimInvalid(err))
		}
	}
	return ""
}

// ProblemsError is the ErrInvalid error of a Validate's problems (nil for none).
func ProblemsError(ps []FieldProblem) error {
	if len(ps) == 0 {
		return nil
	}
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Field + ": " + p.Message
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(msgs, "; "))
}

// Expired reports whether k has expired at now.
func (k APIKey) Expired(now time.Time) bool { return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) }

// AccountSuspended reports whether k's account was suspended when k was looked up.
func (k APIKey) AccountSuspended() bool { return k.AccountStatus == StatusSuspended }

// ErrNoKeyChange (an ErrInvalid) answers a KeyUpdate that changes nothing.
var ErrNoKeyChange = fmt.Errorf("%w: nothing to change", ErrInvalid)
