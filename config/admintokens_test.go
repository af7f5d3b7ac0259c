package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/money"
)

// admin.tokens mixes bare tokens (full admin) and named, scoped entries; the
// environment lists bare tokens.
func TestAdminTokenEntries(t *testing.T) {
	cfg := mustLoad(t, `
admin:
  tokens:
    - "bare-token-0123456789"
    - { token: "ops-token-0123456789", name: ops, scopes: [admin] }
    - token: "support-token-0123456789"
      name: support
      scopes: [read, keys]
`, nil)
	want := []AdminToken{
		{Token: "bare-token-0123456789"},
		{Token: "ops-token-0123456789", Name: "ops", Scopes: []string{"admin"}},
		{Token: "support-token-0123456789", Name: "support", Scopes: []string{"read", "keys"}},
	}
	if got := cfg.AdminTokens(); !reflect.DeepEqual(got, want) {
		t.Fatalf("tokens %+v, want %+v", got, want)
	}
	if !slices.Equal(cfg.Tokens(), []string{"bare-token-0123456789", "ops-token-0123456789", "support-token-0123456789"}) {
		t.Fatalf("Tokens() = %v", cfg.Tokens())
	}
	bare := cfg.AdminTokens()[0]
	if n := bare.ActorName(); !strings.HasPrefix(n, "admin-") || len(n) != len("admin-")+8 || strings.Contains(n, "bare") {
		t.Fatalf("bare token's actor name %q: want admin- and 8 hex digits, nothing of the token", n)
	}
	if !slices.Equal(bare.EffectiveScopes(), []string{"admin"}) || !slices.Equal(want[2].EffectiveScopes(), []string{"read", "keys"}) {
		t.Fatalf("scopes: bare %v, support %v", bare.EffectiveScopes(), want[2].EffectiveScopes())
	}
	env := mustLoad(t, "", map[string]string{"CREDITGATE_ADMIN_TOKENS": "env-token-a-0123456789, env-token-b-0123456789"})
	if got := env.AdminTokens(); !reflect.DeepEqual(got, BareTokens("env-token-a-0123456789", "env-token-b-0123456789")) {
		t.Fatalf("from the environment: %+v", got)
	}
}

func TestAdminTokenProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		keys       []string
	}{
		{"no name", `{ token: "x-token-0123456789abc", scopes: [read] }`, []string{"admin.tokens[0].name"}},
		{"no scopes", `{ token: "x-token-0123456789abc", name: x }`, []string{"admin.tokens[0].scopes"}},
		{"unknown scope", `{ token: "x-token-0123456789abc", name: x, scopes: [read, write] }`, []string{"admin.tokens[0].scopes[1]"}},
		{"no token", `{ name: x, scopes: [read] }`, []string{"admin.tokens[0].token"}},
		{"short token", `{ token: "short", name: x, scopes: [read] }`, []string{"admin.tokens[0]"}},
		{"unknown key", `{ token: "x-token-0123456789abc", name: x, scopes: [read], role: y }`, []string{"admin.tokens[0].role"}},
		{"name with a space", `{ token: "x-token-0123456789abc", name: "a b", scopes: [read] }`, []string{"admin.tokens[0].name"}},
		{"a list in the list", `[x]`, []string{"admin.tokens[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := problemsOf(t, "admin:\n  tokens:\n    - "+tc.yaml+"\n", nil)
			var keys []string
			for _, p := range ps {
				keys = append(keys, p.Key)
			}
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("problems %v; want %v", ps, tc.keys)
			}
			if strings.Contains(ps.Error(), "0123456789abc") {
				t.Fatalf("a problem repeats the token: %v", ps)
			}
		})
	}
	ps := problemsOf(t, `
admin:
  tokens:
    - { token: "a-token-0123456789abc", name: ops, scopes: [read] }
    - { token: "b-token-0123456789abc", name: ops, scopes: [admin] }
`, nil)
	if len(ps) != 1 || ps[0].Key != "admin.tokens[1].name" {
		t.Fatalf("duplicate names: %v", ps)
	}
}

func TestTierQualifyProblems(t *testing.T) {
	tests := []struct {
		name, tiers string
		keys        []string
	}{
		{"valid", `t1: { qualify: { paid: "5.00" } }
    t2: { qualify: { paid: "50.00", days: 7 }, rpm: 60, tpm: 1000, monthly_usage_limit: "100.00" }
    custom: {}`, nil},
		{"negative days", `t1: { qualify: { paid: "5.00", days: -1 } }`, []string{"billing.tiers.t1.qualify.days"}},
		{"too many days", `t1: { qualify: { paid: "5.00", days: 3651 } }`, []string{"billing.tiers.t1.qualify.days"}},
		{"the same rule twice", `t1: { qualify: { paid: "5.00" } }
    t2: { qualify: { paid: "5.00", days: 0 } }`, []string{"billing.tiers.t2.qualify"}},
		{"a ladder name with a space", `t1: {}
    "gold tier": { qualify: { paid: "5.00" } }`, []string{"billing.tiers.gold tier.qualify"}},
		{"negative rpm", `t1: { rpm: -1, tpm: -2 }`, []string{"billing.tiers.t1.rpm", "billing.tiers.t1.tpm"}},
		{"bad paid", `t1: { qualify: { paid: "-5.00" } }`, []string{"billing.tiers.t1.qualify.paid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "billing:\n  default_tier: t1\n  tiers:\n    " + tc.tiers + "\n"
			cfg, err := LoadBytes([]byte(doc), tokenEnv)
			if tc.keys == nil {
				if err != nil {
					t.Fatal(err)
				}
				p := cfg.Policy()
				if l := p.Ladder(); len(l) != 2 || l[1].Tier != "t2" || l[1].Paid != 50*money.Dollar || l[1].Days != 7 {
					t.Fatalf("ladder %+v", l)
				}
				if tier := p.Tiers["t2"]; tier.RPM != 60 || tier.TPM != 1000 || tier.MonthlyUsageLimit != 100*money.Dollar {
					t.Fatalf("tier t2 %+v", tier)
				}
				return
			}
			ps, ok := err.(*Problems)
			if !ok {
				t.Fatalf("err %v; want problems at %v", err, tc.keys)
			}
			var keys []string
			for _, p := range *ps {
				keys = append(keys, p.Key)
			}
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("problems %v; want %v", ps, tc.keys)
			}
		})
	}
}
