package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/money"
)

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantKey  string
		wantHint string // part of the message, "" for none expected
	}{
		{"top level", "listn: \":80\"\n", "listn", `did you mean "listen"`},
		{"misplaced key", "grace: 1\n", "grace", "billing.grace"},
		{"depth 2", "billing:\n  gracee: 1\n", "billing.gracee", `did you mean "grace"`},
		{"depth 3", "billing:\n  auto_recharge:\n    min_amout: 5\n", "billing.auto_recharge.min_amout", `did you mean "min_amount"`},
		{"depth 4", "billing:\n  auto_recharge:\n    webhook: {url: '', sekret: x}\n", "billing.auto_recharge.webhook.sekret", `did you mean "secret"`},
		{"in a model", "pricing:\n  models:\n    gpt-4o: {input: 1, inptu: 2}\n", "pricing.models.gpt-4o.inptu", `did you mean "input"`},
		{"model name with dots", "pricing:\n  models:\n    gpt-4.1: {input: 1, outptu: 2}\n", "pricing.models.gpt-4.1.outptu", `did you mean "output"`},
		{"in a tier", "billing:\n  tiers:\n    tier-1: {max_top_up: 100}\n", "billing.tiers.tier-1.max_top_up", `did you mean "max_topup"`},
		{"in pricing.default", "pricing:\n  default: {input: 1, cached: 1}\n", "pricing.default.cached", ""},
		{"unrelated", "telemetry: {}\n", "telemetry", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.yaml, tokenEnv)
			if !slices.Equal(keysOf(ps), []string{tt.wantKey}) {
				t.Fatalf("problems %v, want exactly key %s", ps, tt.wantKey)
			}
			if !strings.Contains(ps[0].Message, "unknown key") || !strings.Contains(ps[0].Message, tt.wantHint) {
				t.Errorf("message %q, want \"unknown key\" and %q", ps[0].Message, tt.wantHint)
			}
		})
	}
}

// A file with five mistakes yields five problems, sorted by key, in one error.
func TestAllProblemsAtOnce(t *testing.T) {
	ps := problemsOf(t, `
listen: "nonsense"
billing:
  gracee: "0.50"
  hold_ttl: 0s
pricing:
  models:
    gpt-4o: { output: "10.00" }
logging: { level: loud }
`, tokenEnv)
	want := []string{"billing.gracee", "billing.hold_ttl", "listen", "logging.level", "pricing.models.gpt-4o.input"}
	if !slices.Equal(keysOf(ps), want) {
		t.Fatalf("problem keys %v, want %v\n%v", keysOf(ps), want, ps)
	}
	if lines := strings.Split(ps.Error(), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "billing.gracee: ") {
		t.Errorf("Error() is not one sorted line per problem:\n%s", ps.Error())
	}
}

func TestExactMoney(t *testing.T) {
	tests := []struct {
		literal string // as written after "grace: "
		want    money.Micros
		wantErr string // part of the problem message; "" = accepted
	}{
		{"0.075", 75_000, ""},
		{`"0.075"`, 75_000, ""},
		{"5", 5_000_000, ""},
		{"5.00", 5_000_000, ""},
		{"0.000001", 1, ""},
		{"0.1", 100_000, ""},
		{"2.675", 2_675_000, ""}, // 2.675 is 2.67499999… as a float64
		{"999999999.999999", 999_999_999_999_999, ""},
		{`'1.10'`, 1_100_000, ""},
		{"1e-3", 0, "exponent"},
		{"1.5E2", 0, "exponent"},
		{"-1", 0, `invalid amount "-1": negative amounts are not allowed`},
		{"0.0000001", 0, "more than 6 decimal places"},
		{".5", 0, "no digits before the decimal point"},
		{".nan", 0, "invalid amount"},
		{".inf", 0, "invalid amount"},
		{"0x10", 0, "invalid amount"},
		{"five", 0, "invalid amount"},
		{`""`, 0, "empty"},
		{"[1]", 0, "expected a single value"},
	}
	for _, tt := range tests {
		t.Run(tt.literal, func(t *testing.T) {
			doc := "billing:\n  grace: " + tt.literal + "\n"
			if tt.wantErr == "" {
				if got := mustLoad(t, doc, tokenEnv).Billing.Grace; got != tt.want {
					t.Errorf("grace %s = %d micro-USD, want %d", tt.literal, got, tt.want)
				}
				return
			}
			ps := problemsOf(t, doc, tokenEnv)
			if len(ps) != 1 || ps[0].Key != "billing.grace" || !strings.Contains(ps[0].Message, tt.wantErr) {
				t.Errorf("problems %v, want billing.grace: …%s…", ps, tt.wantErr)
			}
		})
	}
}

func TestExactPrices(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    a: { input: 0.075, output: 0.3 }
    b: { input: "0.000001", output: 123456.789012 }
`, tokenEnv)
	tests := []struct {
		model      string
		input, out money.Micros
	}{
		{"a", 75_000, 300_000},
		{"b", 1, 123_456_789_012},
	}
	for _, tt := range tests {
		_, p, ok := cfg.Pricing().Resolve(tt.model)
		if !ok || p.Input != tt.input || p.Output != tt.out {
			t.Errorf("%s: %+v, want input %d output %d", tt.model, p, tt.input, tt.out)
		}
	}
	ps := problemsOf(t, "pricing:\n  models:\n    a: { input: 1e-3 }\n", tokenEnv)
	if !slices.Equal(keysOf(ps), []string{"pricing.models.a.input"}) || !strings.Contains(ps[0].Message, "exponent") {
		t.Errorf("1e-3 price: %v", ps)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"CREDITGATE_UPSTREAM_API_KEY":                     "sk-upstream-secret",
		"CREDITGATE_ADMIN_TOKENS":                         "aaaaaaaaaaaaaaaa-1, bbbbbbbbbbbbbbbb-2",
		"CREDITGATE_BILLING_GRACE":                        "0.75",
		"CREDITGATE_REDIS_URL":                            "redis://redis.internal:6380/2",
		"CREDITGATE_LISTEN":                               ":9090",
		"CREDITGATE_BILLING_CLAMP_MAX_TOKENS":             "false",
		"CREDITGATE_BILLING_AUTO_RECHARGE_WEBHOOK_URL":    "https://charger.example/pay",
		"CREDITGATE_BILLING_AUTO_RECHARGE_WEBHOOK_SECRET": "whsec",
		"CREDITGATE_LIMITS_MAX_BODY_BYTES":                "1MiB",
		"CREDITGATE_METERING_DRIFT_TOLERANCE":             "0.25",
		"CREDITGATE_AUTH_KEY_CACHE_TTL":                   "0s",
		"CREDITGATE_NOTIFY_EXPIRING_WITHIN":               "30d",
		"CREDITGATE_LOGGING_LEVEL":                        "", // empty: ignored, as viper does
	}
	// The file says otherwise for some of them: the environment wins.
	cfg := mustLoad(t, `
billing: { grace: "0.10" }
redis: { url: "redis://file:6379/0" }
logging: { level: debug }
`, env)
	tests := []struct {
		key       string
		got, want any
	}{
		{"upstream.api_key", cfg.Upstream.APIKey, "sk-upstream-secret"},
		{"admin.tokens", cfg.Tokens(), []string{"aaaaaaaaaaaaaaaa-1", "bbbbbbbbbbbbbbbb-2"}},
		{"billing.grace", cfg.Billing.Grace, money.Micros(750_000)},
		{"redis.url", cfg.Redis.URL, "redis://redis.internal:6380/2"},
		{"listen", cfg.Listen, ":9090"},
		{"billing.clamp_max_tokens", cfg.Billing.ClampMaxTokens, false},
		{"billing.auto_recharge.webhook.url", cfg.Billing.AutoRecharge.Webhook.URL, "https://charger.example/pay"},
		{"limits.max_body_bytes", cfg.Limits.MaxBodyBytes, MiB},
		{"metering.drift_tolerance", cfg.Metering.DriftTolerance, 0.25},
		{"auth.key_cache_ttl", cfg.Auth.KeyCacheTTL, time.Duration(0)},
		{"notify.expiring_within", cfg.Notify.ExpiringWithin, 30 * 24 * time.Hour},
		{"logging.level", cfg.Logging.Level, "debug"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
}

// Every plain key has an override named after it, nested keys included.
func TestEveryPlainKeyHasAnEnvOverride(t *testing.T) {
	samples := map[reflect.Type]struct {
		env  string
		want any
	}{
		reflect.TypeFor[string]():   {"from-env", "from-env"},
		reflect.TypeFor[[]string](): {"a:1, b:2", []string{"a:1", "b:2"}},
		reflect.TypeFor[bool]():     {"false", false},
		durationType:                {"77s", 77 * time.Second},
		microsType:                  {"7.77", money.Micros(7_770_000)},
		reflect.TypeFor[float64]():  {"0.77", 0.77},
		byteSizeType:                {"777", ByteSize(777)},
		adminTokensType:             {"tok-777-aaaaaaaaaaaa,tok-778-bbbbbbbbbbbb", BareTokens("tok-777-aaaaaaaaaaaa", "tok-778-bbbbbbbbbbbb")},
		reflect.TypeFor[int64]():    {"7", int64(7)},
		fractionType:                {"0.77", Fraction(770_000)},
	}
	for _, f := range schema() {
		if f.section {
			continue
		}
		name := EnvName(f.key)
		cfg, _, _ := decode(nil, map[string]string{name: "placeholder"})
		typ := reflect.ValueOf(cfg).Elem().FieldByIndex(f.index).Type()
		sample, ok := samples[typ]
		if !ok {
			t.Fatalf("%s: no sample value for %s", f.key, typ)
		}
		cfg, ps, fromEnv := decode(nil, map[string]string{name: sample.env})
		if len(ps) > 0 {
			t.Errorf("%s=%q: %v", name, sample.env, ps)
			continue
		}
		if got := reflect.ValueOf(cfg).Elem().FieldByIndex(f.index).Interface(); !reflect.DeepEqual(got, sample.want) {
			t.Errorf("%s=%q: %s = %#v, want %#v", name, sample.env, f.key, got, sample.want)
		}
		if fromEnv[f.key] != name {
			t.Errorf("%s not recorded as set by %s", f.key, name)
		}
	}
}

func TestEnvProblemNamesVariable(t *testing.T) {
	ps := problemsOf(t, "", map[string]string{"CREDITGATE_ADMIN_TOKENS": "short", "CREDITGATE_BILLING_GRACE": "-1"})
	want := `admin.tokens[0]: too short (5 characters): use at least 16 random characters, e.g. from ` + "`openssl rand -hex 32`" + ` (from CREDITGATE_ADMIN_TOKENS)
billing.grace: invalid amount "-1": negative amounts are not allowed (from CREDITGATE_BILLING_GRACE)`
	if ps.Error() != want {
		t.Errorf("got:\n%s\nwant:\n%s", ps.Error(), want)
	}
}

func TestStrayEnvIsWarned(t *testing.T) {
	cfg := mustLoad(t, "", map[string]string{
		"CREDITGATE_ADMIN_TOKENS":     testToken,
		"CREDITGATE_UPSTREAM_API_KEY": "sk-upstream-test",
		"CREDITGATE_BILLING_GRACEE":   "1",
		"CREDITGATE_TEST_REDIS_URL":   "redis://x", // the test helpers' own
		"OTHER_PROGRAM_BILLING_GRACE": "1",
	})
	w := cfg.Warnings()
	if len(w) != 1 || !strings.HasPrefix(w[0], "CREDITGATE_BILLING_GRACEE: ") {
		t.Errorf("Warnings() = %q, want one about CREDITGATE_BILLING_GRACEE", w)
	}
}

func TestValueShapes(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantKey string
		wantMsg string
	}{
		{"section as value", "billing: 5\n", "billing", "expected a mapping"},
		{"list as string", "listen: [a, b]\n", "listen", "expected a single value, got a list"},
		{"mapping as duration", "upstream: {timeout: {m: 1}}\n", "upstream.timeout", "expected a single value, got a mapping"},
		{"list item not a string", "admin: {tokens: [[x]]}\n", "admin.tokens[0]", "expected a string"},
		{"null list item", "admin: {tokens: [~]}\n", "admin.tokens[0]", "expected a string"},
		{"bad bool", "billing: {clamp_max_tokens: yes}\n", "billing.clamp_max_tokens", `invalid boolean "yes"`},
		{"bad int", "pricing: {models: {m: {input: 1, max_output_tokens: 1.5}}}\n", "pricing.models.m.max_output_tokens", "invalid integer"},
		{"bad float", "metering: {drift_tolerance: ten}\n", "metering.drift_tolerance", "invalid number"},
		{"duration without unit", "upstream: {timeout: 30}\n", "upstream.timeout", "invalid duration"},
		{"bad size", "limits: {max_body_bytes: 16 parsecs}\n", "limits.max_body_bytes", "invalid size"},
		{"models as list", "pricing: {models: [gpt-4o]}\n", "pricing.models", "expected a mapping"},
		{"duplicate key", "listen: ':1'\nlisten: ':2'\n", "listen", "duplicate key"},
		{"empty tier name", "billing: {tiers: {'': {}}}\n", "billing.tiers", "empty name"},
		{"yaml syntax", "billing: {grace: [}\n", "", "invalid YAML"},
		{"not a mapping", "- a\n- b\n", "", "must be a mapping"},
		{"two documents", "listen: ':1'\n---\nlisten: ':2'\n", "", "single YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.yaml, tokenEnv)
			if len(ps) != 1 || ps[0].Key != tt.wantKey || !strings.Contains(ps[0].Message, tt.wantMsg) {
				t.Errorf("problems %v, want one at %q containing %q", ps, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestNullKeepsDefault(t *testing.T) {
	cfg := mustLoad(t, "billing:\n  grace:\nnotify: ~\npricing: {models: null}\n", tokenEnv)
	if cfg.Billing.Grace != Default().Billing.Grace || len(cfg.Pricing().Models()) != len(DefaultPricingModels()) {
		t.Errorf("null did not keep defaults: grace %s, %d models", cfg.Billing.Grace, len(cfg.Pricing().Models()))
	}
}

func TestSectionsReplaceDefaults(t *testing.T) {
	cfg := mustLoad(t, `
billing:
  default_tier: Gold
  tiers: { Gold: { max_topup: 50 } }
pricing:
  builtin: false
  models:
    Meta-Llama/Llama-3.1-70B: { input: 0.88, output: 0.88 }
  aliases: { llama: Meta-Llama/Llama-3.1-70B }
`, tokenEnv)
	if len(cfg.Billing.Tiers) != 1 || cfg.Billing.Tiers["Gold"].MaxTopUp != 50*money.Dollar {
		t.Errorf("tiers = %v, want only Gold (names keep their case)", cfg.Billing.Tiers)
	}
	p := cfg.Pricing()
	if got := p.Models(); !slices.Equal(got, []string{"Meta-Llama/Llama-3.1-70B"}) {
		t.Errorf("models = %v, want only the file's (builtin: false; case and dots kept)", got)
	}
	if name, _, ok := p.Resolve("llama"); !ok || name != "Meta-Llama/Llama-3.1-70B" {
		t.Errorf("alias resolves to %q %v", name, ok)
	}
}

func TestYAMLAnchorsAndMergeKeys(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    base: &base { input: "1.00", output: "2.00", max_output_tokens: 100 }
    same: *base
    cheaper: { <<: *base, input: "0.50" }
`, tokenEnv)
	p := cfg.Pricing()
	for _, tt := range []struct {
		model string
		input money.Micros
	}{{"base", 1_000_000}, {"same", 1_000_000}, {"cheaper", 500_000}} {
		_, pr, ok := p.Resolve(tt.model)
		if !ok || pr.Input != tt.input || pr.Output != 2_000_000 || pr.MaxOutputTokens != 100 {
			t.Errorf("%s = %+v, want input %d, output 2.00, max 100", tt.model, pr, tt.input)
		}
	}
}

// Nested aliases that would expand to billions of nodes are cut off, not walked.
func TestAliasBomb(t *testing.T) {
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		doc += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	doc += "admin: {tokens: *i}\n"
	_, err := LoadBytes([]byte(doc), nil)
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
}

func TestRedisChoice(t *testing.T) {
	cfg := mustLoad(t, "redis: {cluster_addrs: ['10.0.0.1:7000', '10.0.0.2:7000']}\n", tokenEnv)
	if cfg.Redis.URL != "" || len(cfg.Redis.ClusterAddrs) != 2 {
		t.Errorf("cluster_addrs alone: url %q addrs %v, want the default url dropped", cfg.Redis.URL, cfg.Redis.ClusterAddrs)
	}
	env := map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_REDIS_CLUSTER_ADDRS": "s1:26379,s2:26379", "CREDITGATE_REDIS_SENTINEL_MASTER": "mymaster"}
	cfg = mustLoad(t, "", env)
	if !slices.Equal(cfg.Redis.ClusterAddrs, []string{"s1:26379", "s2:26379"}) || cfg.Redis.SentinelMaster != "mymaster" || cfg.Redis.URL != "" {
		t.Errorf("sentinels from env: %+v", cfg.Redis)
	}
	ps := problemsOf(t, "redis: {url: 'redis://a:6379', cluster_addrs: ['b:7000']}\n", tokenEnv)
	if !slices.Equal(keysOf(ps), []string{"redis.url"}) {
		t.Errorf("url and cluster_addrs both set: %v", ps)
	}
}

func TestMinAmountDefaultsToMinPurchase(t *testing.T) {
	tests := []struct {
		yaml string
		want money.Micros
	}{
		{"billing: {min_purchase: 20}\n", 20 * money.Dollar},
		{"billing: {min_purchase: 20, auto_recharge: {min_amount: 25}}\n", 25 * money.Dollar},
		{"", 5 * money.Dollar},
	}
	for _, tt := range tests {
		if got := mustLoad(t, tt.yaml, tokenEnv).Billing.AutoRecharge.MinAmount; got != tt.want {
			t.Errorf("%q: min_amount %s, want %s", tt.yaml, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"15m", 15 * time.Minute, true},
		{"8760h", 8760 * time.Hour, true},
		{"365d", 365 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0s", 0, true},
		{"-5m", -5 * time.Minute, true}, // parsed; Validate rejects it where it matters
		{"30", 0, false},
		{"d", 0, false},
		{"1d-1h", 0, false},
		{"1.5d", 0, false},
		{"99999999999999d", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"16777216", 16 << 20, true},
		{"16MiB", 16 << 20, true},
		{"16mib", 16 << 20, true},
		{"512 KiB", 512 << 10, true},
		{"1GB", 1_000_000_000, true},
		{"2MB", 2_000_000, true},
		{"100B", 100, true},
		{"16M", 0, false},
		{"-1", 0, false},
		{"1.5MiB", 0, false},
		{"MiB", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// Load reads the process environment; the overrides operators use most land.
func TestLoadReadsProcessEnv(t *testing.T) {
	t.Setenv("CREDITGATE_UPSTREAM_API_KEY", "sk-from-process-env")
	t.Setenv("CREDITGATE_ADMIN_TOKENS", "aaaaaaaaaaaaaaaa-1,bbbbbbbbbbbbbbbb-2")
	t.Setenv("CREDITGATE_BILLING_GRACE", "1.25")
	t.Setenv("CREDITGATE_REDIS_URL", "memory://")
	path := t.TempDir() + "/creditgate.yaml"
	writeFile(t, path, "billing: {grace: 0.10}\nredis: {url: 'redis://file:6379'}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.APIKey != "sk-from-process-env" || cfg.Billing.Grace != 1_250_000 || cfg.Redis.URL != "memory://" ||
		!slices.Equal(cfg.Tokens(), []string{"aaaaaaaaaaaaaaaa-1", "bbbbbbbbbbbbbbbb-2"}) {
		t.Errorf("environment did not override the file: api_key set %v, grace %s, redis %q, tokens %d",
			cfg.Upstream.APIKey != "", cfg.Billing.Grace, cfg.Redis.URL, len(cfg.Tokens()))
	}
	cfg, err = Load("") // no file: defaults and environment
	if err != nil || cfg.Billing.Grace != 1_250_000 {
		t.Errorf("Load(\"\"): err %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/creditgate.yaml"
	writeFile(t, path, "admin: {tokens: ["+testToken+"]}\nbilling: {grace: 0.3}\n")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Billing.Grace != 300_000 {
		t.Errorf("grace %s, want 0.30", cfg.Billing.Grace)
	}
	_, err = Load(dir + "/missing.yaml")
	var ps *Problems
	if err == nil || errors.As(err, &ps) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v, want a plain error naming the file", err)
	}
}

// TestBrokenFileReportsOnlyItself: a file that is not YAML leaves every key at its
// default; the problems of those defaults (the example admin token) are not the
// operator's, so the file's own problem is the only one reported.
func TestBrokenFileReportsOnlyItself(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"yaml syntax", "admin: { tokens: [\"0123456789abcdef0123\"]\nbilling: [\n", "invalid YAML"},
		{"not a mapping", "- a\n", "must be a mapping"},
		{"two documents", "listen: ':1'\n---\nlisten: ':2'\n", "single YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.yaml, nil)
			if len(ps) != 1 || ps[0].Key != "" || !strings.Contains(ps[0].Message, tt.want) {
				t.Errorf("problems %v, want only the file's own, containing %q", ps, tt.want)
			}
		})
	}
}
