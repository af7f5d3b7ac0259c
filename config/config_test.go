package config

import (
	"errors"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// testToken is a valid admin token for tests.
const testToken = "test-admin-token-0123456789"

// tokenEnv supplies the admin token the way an operator would.
var tokenEnv = map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken}

// mustLoad loads yaml with env and fails the test on any problem.
func mustLoad(t *testing.T, yaml string, env map[string]string) *Config {
	t.Helper()
	cfg, err := LoadBytes([]byte(yaml), env)
	if err != nil {
		t.Fatalf("LoadBytes: unexpected problems:\n%v", err)
	}
	return cfg
}

// problemsOf loads yaml with env and returns its problems (failing if none).
func problemsOf(t *testing.T, yaml string, env map[string]string) Problems {
	t.Helper()
	_, err := LoadBytes([]byte(yaml), env)
	if err == nil {
		t.Fatalf("LoadBytes accepted:\n%s", yaml)
	}
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want *Problems: %v", err, err)
	}
	return *ps
}

func keysOf(ps Problems) []string {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.Key
	}
	return keys
}

func TestDefault(t *testing.T) {
	d := Default()
	tests := []struct {
		name      string
		got, want any
	}{
		{"listen", d.Listen, ":8080"},
		{"admin.listen", d.Admin.Listen, "127.0.0.1:8081"},
		{"admin.tokens", d.Admin.Tokens, BareTokens("change-me")},
		{"metrics.listen", d.Metrics.Listen, ""},
		{"upstream.base_url", d.Upstream.BaseURL, "https://api.openai.com/v1"},
		{"upstream.api_key", d.Upstream.APIKey, ""},
		{"upstream.timeout", d.Upstream.Timeout, 10 * time.Minute},
		{"redis.url", d.Redis.URL, "redis://127.0.0.1:6379/0"},
		{"redis.cluster_addrs", len(d.Redis.ClusterAddrs), 0},
		{"redis.key_prefix", d.Redis.KeyPrefix, "cg:"},
		{"redis.timeout", d.Redis.Timeout, 2 * time.Second},
		{"billing.credit_ttl", d.Billing.CreditTTL, 8760 * time.Hour},
		{"billing.min_purchase", d.Billing.MinPurchase, money.MustParse("5.00")},
		{"billing.grace", d.Billing.Grace, money.MustParse("0.50")},
		{"billing.hold_ttl", d.Billing.HoldTTL, 15 * time.Minute},
		{"billing.clamp_max_tokens", d.Billing.ClampMaxTokens, true},
		{"billing.default_tier", d.Billing.DefaultTier, "tier-1"},
		{"billing.tiers", d.Billing.Tiers, map[string]Tier{ // OpenAI's usage tiers 1 to 5 (tiers_builtin.go)
			"tier-1": {MaxTopUp: money.MustParse("100"), MaxBalance: money.MustParse("1000"), RPM: 500, TPM: 500_000,
				MonthlyUsageLimit: money.MustParse("100"), Qualify: &Qualify{Paid: money.MustParse("5")}},
			"tier-2": {MaxTopUp: money.MustParse("500"), MaxBalance: money.MustParse("5000"), RPM: 5_000, TPM: 1_000_000,
				MonthlyUsageLimit: money.MustParse("500"), Qualify: &Qualify{Paid: money.MustParse("50"), Days: 7}},
			"tier-3": {MaxTopUp: money.MustParse("1000"), MaxBalance: money.MustParse("10000"), RPM: 5_000, TPM: 2_000_000,
				MonthlyUsageLimit: money.MustParse("1000"), Qualify: &Qualify{Paid: money.MustParse("100"), Days: 7}},
			"tier-4": {MaxTopUp: money.MustParse("5000"), MaxBalance: money.MustParse("50000"), RPM: 10_000, TPM: 4_000_000,
				MonthlyUsageLimit: money.MustParse("5000"), Qualify: &Qualify{Paid: money.MustParse("250"), Days: 14}},
			"tier-5": {MaxTopUp: money.MustParse("200000"), MaxBalance: money.MustParse("2000000"), RPM: 15_000, TPM: 40_000_000,
				MonthlyUsageLimit: money.MustParse("200000"), Qualify: &Qualify{Paid: money.MustParse("1000"), Days: 30}},
		}},
		{"billing.auto_recharge.min_amount", d.Billing.AutoRecharge.MinAmount, money.MustParse("5")},
		{"billing.auto_recharge.webhook.timeout", d.Billing.AutoRecharge.Webhook.Timeout, 10 * time.Second},
		{"notify.low_balance", d.Notify.LowBalance, money.MustParse("1.00")},
		{"notify.expiring_within", d.Notify.ExpiringWithin, 168 * time.Hour},
		{"pricing.aliases", len(d.Prices.Aliases), 0},
		{"pricing.default", d.Prices.Default == nil, true},
		{"metering.drift_tolerance", d.Metering.DriftTolerance, 0.10},
		{"metering.count_prompts", d.Metering.CountPrompts, "when_needed"},
		{"logging.level", d.Logging.Level, "info"},
		{"logging.format", d.Logging.Format, "json"},
		{"limits.max_body_bytes", d.Limits.MaxBodyBytes, ByteSize(16 << 20)},
		{"auth.key_cache_ttl", d.Auth.KeyCacheTTL, 5 * time.Second},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Default %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// An empty file with no environment is exactly Default(): defaults take the same
// parse path as file values, so this also checks that every default parses back.
func TestEmptyFileIsDefault(t *testing.T) {
	for _, doc := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		cfg := mustLoad(t, doc, tokenEnv)
		want := Default()
		want.Admin.Tokens = BareTokens(testToken)
		assertSameConfig(t, cfg, want)
	}
}

// assertSameConfig compares every exported field.
func assertSameConfig(t *testing.T, got, want *Config) {
	t.Helper()
	g, w := *got, *want
	g.pricing, w.pricing = nil, nil
	g.strayEnv, w.strayEnv = nil, nil
	if !reflect.DeepEqual(g, w) {
		for _, f := range schema() {
			gv := reflect.ValueOf(g).FieldByIndex(f.index).Interface()
			wv := reflect.ValueOf(w).FieldByIndex(f.index).Interface()
			if !reflect.DeepEqual(gv, wv) {
				t.Errorf("%s = %#v, want %#v", f.key, gv, wv)
			}
		}
	}
}

func TestDefaultNeedsOnlyAnAdminToken(t *testing.T) {
	cfg := Default()
	err := cfg.Validate()
	var ps *Problems
	if !errors.As(err, &ps) || !slices.Equal(keysOf(*ps), []string{"admin.tokens[0]"}) {
		t.Fatalf("Default().Validate() = %v, want exactly the change-me problem", err)
	}
	if !strings.Contains(err.Error(), "CREDITGATE_ADMIN_TOKENS") {
		t.Errorf("change-me problem does not tell how to fix it: %v", err)
	}
	cfg.Admin.Tokens = BareTokens(testToken)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Default() with a token: %v", err)
	}
	if cfg.Pricing() == nil {
		t.Fatal("Pricing() is nil on a validated config")
	}
	// The defaults send requests to OpenAI without a key: that, and only that, is warned.
	if w := cfg.Warnings(); len(w) != 1 || !strings.HasPrefix(w[0], "upstream.api_key: ") || !strings.Contains(w[0], "CREDITGATE_UPSTREAM_API_KEY") {
		t.Errorf("defaults warn: %q, want exactly the empty upstream.api_key", w)
	}
	cfg.Upstream.APIKey = "sk-upstream-test"
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("defaults with an upstream key warn: %q", w)
	}
}

func readExample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The example file loads without error once the admin token it asks for is set,
// and states exactly the defaults, price table included: the built-in table and
// the documented one cannot drift apart.
func TestExampleFile(t *testing.T) {
	data := readExample(t)
	cfg, err := LoadBytes(data, tokenEnv)
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	want := Default()
	want.Admin.Tokens = BareTokens(testToken)
	assertSameConfig(t, cfg, want)
	if got, want := cfg.Pricing().Models(), slices.Sorted(maps.Keys(DefaultPricingModels())); !slices.Equal(got, want) {
		t.Errorf("example models %v, want %v", got, want)
	}

	// Without the token, the example fails on exactly that, telling what to set.
	ps := problemsOf(t, string(data), nil)
	if !slices.Equal(keysOf(ps), []string{"admin.tokens[0]"}) || !strings.Contains(ps.Error(), "CREDITGATE_ADMIN_TOKENS") {
		t.Errorf("example without token: %v", ps)
	}
}

// Every key of the schema appears in the example (so each is documented there).
func TestExampleHasEveryKey(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(readExample(t), &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind == yaml.DocumentNode {
			walk(n.Content[0], prefix)
			return
		}
		if n.Kind != yaml.MappingNode || prefix == "pricing.models" || prefix == "billing.tiers" {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := joinKey(prefix, n.Content[i].Value)
			present[key] = true
			walk(n.Content[i+1], key)
		}
	}
	walk(&doc, "")
	for _, f := range schema() {
		if !present[f.key] && f.key != "pricing.default" { // commented out: absent is its default
			t.Errorf("config.example.yaml lacks %s", f.key)
		}
	}
}

func TestDefaultPricingModels(t *testing.T) {
	models := DefaultPricingModels()
	tests := []struct {
		model string
		want  metering.Price
	}{
		{"gpt-4o-mini", metering.Price{Input: 150000, CachedInput: 75000, AudioInput: 150000, Output: 600000, Reasoning: 600000, AudioOutput: 600000, MaxOutputTokens: 16384, Encoding: "o200k_base"}},
		{"gpt-4", metering.Price{Input: 30000000, CachedInput: 30000000, AudioInput: 30000000, Output: 60000000, Reasoning: 60000000, AudioOutput: 60000000, MaxOutputTokens: 8192, Encoding: "cl100k_base"}},
		{"text-embedding-3-small", metering.Price{Input: 20000, CachedInput: 20000, AudioInput: 20000, Encoding: "cl100k_base"}},
	}
	for _, tt := range tests {
		if got := models[tt.model]; got != tt.want {
			t.Errorf("%s = %+v, want %+v", tt.model, got, tt.want)
		}
	}
	for _, name := range []string{"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini", "o4-mini",
		"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-3.5-turbo", "gpt-4", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} {
		p, ok := models[name]
		if !ok || p.Input <= 0 {
			t.Errorf("default table lacks a price for %s", name)
		}
	}
	// The map is a copy: changing it changes nothing for the next caller.
	delete(models, "gpt-4o")
	if _, ok := DefaultPricingModels()["gpt-4o"]; !ok {
		t.Error("DefaultPricingModels shares its map")
	}
}

func TestModelPriceDefaultsToParentClass(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    m: { input: 2, output: 8, cached_input: 0.5, reasoning: 9, audio_output: 20 }
`, tokenEnv)
	_, got, ok := cfg.Pricing().Resolve("m")
	want := metering.Price{Input: 2_000_000, CachedInput: 500_000, AudioInput: 2_000_000, Output: 8_000_000, Reasoning: 9_000_000, AudioOutput: 20_000_000}
	if !ok || got != want {
		t.Errorf("Resolve(m) = %+v, %v; want %+v", got, ok, want)
	}
}

func TestPolicy(t *testing.T) {
	cfg := mustLoad(t, `
billing:
  credit_ttl: 30d
  min_purchase: 10
  grace: "0.25"
  hold_ttl: 20m
  default_tier: gold
  tiers:
    gold: { max_topup: 500, max_balance: "5000.00" }
    free: {}
`, tokenEnv)
	got := cfg.Policy()
	want := billing.Policy{
		Grace: 250_000, MinPurchase: 10_000_000, CreditTTL: 30 * 24 * time.Hour, HoldTTL: 20 * time.Minute,
		DefaultTier: "gold",
		Tiers: map[string]billing.Tier{
			"gold": {MaxTopUp: 500_000_000, MaxBalance: 5_000_000_000},
			"free": {},
		},
		AutoRechargeMin: 10_000_000, // defaults to min_purchase
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Policy() = %+v\nwant %+v", got, want)
	}
	// Policy's map is the caller's to keep: a later edit of the config does not reach it.
	cfg.Billing.Tiers["gold"] = Tier{}
	if got.Tiers["gold"].MaxTopUp != 500_000_000 {
		t.Error("Policy shares the tiers map")
	}
}

func TestTokens(t *testing.T) {
	cfg := mustLoad(t, "", map[string]string{"CREDITGATE_ADMIN_TOKENS": "first-token-0123456789, second-token-0123456789,"})
	got := cfg.Tokens()
	if want := []string{"first-token-0123456789", "second-token-0123456789"}; !slices.Equal(got, want) {
		t.Fatalf("Tokens() = %q, want %q", got, want)
	}
	got[0] = "x"
	if cfg.Tokens()[0] != "first-token-0123456789" {
		t.Error("Tokens shares its slice")
	}
}
