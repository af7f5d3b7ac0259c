package billing

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/money"
)

// TestKeySettingsValidate: each invalid setting is one problem naming its
// field; valid settings, boundaries included, are none.
func TestKeySettingsValidate(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	many := make([]string, MaxKeyModels+1)
	for i := range many {
		many[i] = "m"
	}
	for _, tc := range []struct {
		name string
		spec KeySpec
		want []string // the fields named, in order
	}{
		{"nothing", KeySpec{}, nil},
		{"all valid", KeySpec{Name: "app", Limit: money.MaxAmount, LimitReset: LimitWeekly, ExpiresAt: now.Add(time.Millisecond),
			Models: many[:MaxKeyModels], RPM: MaxRateLimit, TPM: 1, Disabled: true}, nil},
		{"never", KeySpec{Limit: 1, LimitReset: LimitNever}, nil},
		{"negative limit", KeySpec{Limit: -1}, []string{"limit"}},
		{"limit over the bound", KeySpec{Limit: money.MaxAmount + 1}, []string{"limit"}},
		{"unknown reset", KeySpec{LimitReset: "Monthly"}, []string{"limit_reset"}},
		{"expiry now", KeySpec{ExpiresAt: now}, []string{"expires_at"}},
		{"expiry past", KeySpec{ExpiresAt: now.Add(-time.Hour)}, []string{"expires_at"}},
		{"empty model", KeySpec{Models: []string{"gpt-4o", ""}}, []string{"models"}},
		{"spaced model", KeySpec{Models: []string{" gpt-4o"}}, []string{"models"}},
		{"control in model", KeySpec{Models: []string{"gpt\x00"}}, []string{"models"}},
		{"long model", KeySpec{Models: []string{strings.Repeat("m", MaxModelNameLen+1)}}, []string{"models"}},
		{"too many models", KeySpec{Models: many}, []string{"models"}},
		{"name", KeySpec{Name: "a\nb"}, []string{"name"}},
		{"long name", KeySpec{Name: strings.Repeat("n", MaxKeyNameLen+1)}, []string{"name"}},
		{"rates", KeySpec{RPM: -1, TPM: MaxRateLimit + 1}, []string{"rpm", "tpm"}},
		{"everything at once", KeySpec{Name: "\t", Limit: -5, LimitReset: "hourly", ExpiresAt: now.Add(-1), Models: []string{""}, RPM: -1},
			[]string{"name", "limit", "limit_reset", "expires_at", "models", "rpm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.spec.Validate(now)
			var got []string
			for _, p := range ps {
				got = append(got, p.Field)
				if p.Message == "" {
					t.Errorf("%s: no message", p.Field)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems %+v, want fields %v", ps, tc.want)
			}
			if err := ProblemsError(ps); (err != nil) != (len(tc.want) > 0) {
				t.Fatalf("ProblemsError %v", err)
			}
		})
	}
}

// TestKeyUpdateApplyAndEmpty: Apply sets exactly the fields given; an empty
// allowlist and a zero expiry clear.
func TestKeyUpdateApplyAndEmpty(t *testing.T) {
	if !(KeyUpdate{Actor: "ops"}).Empty() || (KeyUpdate{Disabled: new(bool)}).Empty() {
		t.Fatal("Empty")
	}
	k := APIKey{Name: "a", RPM: 5, Models: []string{"x"}, ExpiresAt: time.Unix(100, 0), Limit: 7}
	models, zero, name := []string{}, time.Time{}, "b"
	KeyUpdate{Name: &name, Models: &models, ExpiresAt: &zero}.Apply(&k)
	if k.Name != "b" || k.Models != nil || !k.ExpiresAt.IsZero() || k.RPM != 5 || k.Limit != 7 {
		t.Fatalf("%+v", k)
	}
	now := time.Unix(1000, 0)
	if (APIKey{}).Expired(now) || !(APIKey{ExpiresAt: now}).Expired(now) || (APIKey{ExpiresAt: now.Add(1)}).Expired(now) {
		t.Fatal("Expired")
	}
}
