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

// validConfig is the defaults plus an admin token: valid, with no warnings.
// validConfig is the defaults with what an operator must add: an admin token
// and the upstream's API key.
func validConfig(t *testing.T) *Config {
	t.Helper()
	return mustLoad(t, "", map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_UPSTREAM_API_KEY": "sk-upstream-test"})
}

func micros(s string) *money.Micros {
	m := money.MustParse(s)
	return &m
}

// One row per rule: the mutation breaks exactly that rule, and the problem
// names exactly that key.
func TestValidateRules(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"listen not host:port", func(c *Config) { c.Listen = "8080" }, []string{"listen"}},
		{"listen port not numeric", func(c *Config) { c.Listen = ":http" }, []string{"listen"}},
		{"listen port out of range", func(c *Config) { c.Listen = ":65536" }, []string{"listen"}},
		{"admin.listen not host:port", func(c *Config) { c.Admin.Listen = "localhost" }, []string{"admin.listen"}},
		{"admin.listen same as listen", func(c *Config) { c.Admin.Listen = c.Listen }, []string{"admin.listen"}},
		{"admin.tokens empty", func(c *Config) { c.Admin.Tokens = nil }, []string{"admin.tokens"}},
		{"admin token too short", func(c *Config) { c.Admin.Tokens = BareTokens(testToken, "short-token") }, []string{"admin.tokens[1]"}},
		{"admin token is the example", func(c *Config) { c.Admin.Tokens = BareTokens("change-me") }, []string{"admin.tokens[0]"}},
		{"admin token padded", func(c *Config) { c.Admin.Tokens = BareTokens(" " + testToken) }, []string{"admin.tokens[0]"}},
		{"base_url relative", func(c *Config) { c.Upstream.BaseURL = "/v1" }, []string{"upstream.base_url"}},
		{"base_url not http", func(c *Config) { c.Upstream.BaseURL = "ftp://example.com/v1" }, []string{"upstream.base_url"}},
		{"base_url with query", func(c *Config) { c.Upstream.BaseURL = "https://example.com/v1?x=1" }, []string{"upstream.base_url"}},
		{"base_url unparsable", func(c *Config) { c.Upstream.BaseURL = "https://[::1" }, []string{"upstream.base_url"}},
		{"upstream.timeout zero", func(c *Config) { c.Upstream.Timeout = 0 }, []string{"upstream.timeout"}},
		{"redis url and cluster", func(c *Config) { c.Redis.ClusterAddrs = []string{"a:7000"} }, []string{"redis.url"}},
		{"redis neither", func(c *Config) { c.Redis.URL = "" }, []string{"redis.url"}},
		{"redis url scheme", func(c *Config) { c.Redis.URL = "http://127.0.0.1:6379" }, []string{"redis.url"}},
		{"redis url database", func(c *Config) { c.Redis.URL = "redis://127.0.0.1:6379/x" }, []string{"redis.url"}},
		{"redis memory with path", func(c *Config) { c.Redis.URL = "memory://x" }, []string{"redis.url"}},
		{"cluster addr without port", func(c *Config) { c.Redis.URL = ""; c.Redis.ClusterAddrs = []string{"a:7000", "b"} }, []string{"redis.cluster_addrs[1]"}},
		{"cluster addr without host", func(c *Config) { c.Redis.URL = ""; c.Redis.ClusterAddrs = []string{":7000"} }, []string{"redis.cluster_addrs[0]"}},
		{"sentinel without sentinels", func(c *Config) { c.Redis.SentinelMaster = "mymaster" }, []string{"redis.sentinel_master"}},
		{"key_prefix with hash tag", func(c *Config) { c.Redis.KeyPrefix = "{cg}:" }, []string{"redis.key_prefix"}},
		{"redis.timeout zero", func(c *Config) { c.Redis.Timeout = 0 }, []string{"redis.timeout"}},
		{"credit_ttl zero", func(c *Config) { c.Billing.CreditTTL = 0 }, []string{"billing.credit_ttl"}},
		{"hold_ttl negative", func(c *Config) { c.Billing.HoldTTL = -time.Minute }, []string{"billing.hold_ttl"}},
		{"grace negative", func(c *Config) { c.Billing.Grace = -1 }, []string{"billing.grace"}},
		{"min_purchase above max", func(c *Config) { c.Billing.MinPurchase = money.MaxAmount + 1 }, []string{"billing.auto_recharge.min_amount", "billing.min_purchase",
			"billing.tiers.tier-1.max_balance", "billing.tiers.tier-1.max_topup", "billing.tiers.tier-2.max_balance", "billing.tiers.tier-2.max_topup",
			"billing.tiers.tier-3.max_balance", "billing.tiers.tier-3.max_topup", "billing.tiers.tier-4.max_balance", "billing.tiers.tier-4.max_topup",
			"billing.tiers.tier-5.max_balance", "billing.tiers.tier-5.max_topup"}},
		{"default_tier unknown", func(c *Config) { c.Billing.DefaultTier = "gold" }, []string{"billing.default_tier"}},
		{"no tiers", func(c *Config) { c.Billing.Tiers = nil }, []string{"billing.tiers"}},
		{"max_topup below min_purchase", func(c *Config) { c.Billing.Tiers["tier-1"] = Tier{MaxTopUp: money.MustParse("4.99")} }, []string{"billing.tiers.tier-1.max_topup"}},
		{"max_balance below min_purchase", func(c *Config) { c.Billing.Tiers["tier-1"] = Tier{MaxBalance: money.MustParse("1")} }, []string{"billing.tiers.tier-1.max_balance"}},
		{"tier without limits", func(c *Config) { c.Billing.Tiers["tier-1"] = Tier{} }, nil},
		{"auto-recharge min below min_purchase", func(c *Config) { c.Billing.AutoRecharge.MinAmount = money.MustParse("1") }, []string{"billing.auto_recharge.min_amount"}},
		{"charger url not absolute", func(c *Config) {
			c.Billing.AutoRecharge.Webhook = Webhook{URL: "charger.example/pay", Secret: "s", Timeout: time.Second}
		}, []string{"billing.auto_recharge.webhook.url"}},
		{"charger url without secret", func(c *Config) { c.Billing.AutoRecharge.Webhook.URL = "https://charger.example/pay" }, []string{"billing.auto_recharge.webhook.secret"}},
		{"charger timeout zero", func(c *Config) { c.Billing.AutoRecharge.Webhook.Timeout = 0 }, []string{"billing.auto_recharge.webhook.timeout"}},
		{"charger complete", func(c *Config) {
			c.Billing.AutoRecharge.Webhook = Webhook{URL: "https://charger.example/pay", Secret: "s", Timeout: time.Second}
		}, nil},
		{"notice url not http", func(c *Config) {
			c.Notify.Webhook = Webhook{URL: "mailto:ops@example.com", Secret: "s", Timeout: time.Second}
		}, []string{"notify.webhook.url"}},
		{"notice url without secret", func(c *Config) { c.Notify.Webhook.URL = "https://hooks.example/cg" }, []string{"notify.webhook.secret"}},
		{"charger whsec secret not base64", func(c *Config) {
			c.Billing.AutoRecharge.Webhook = Webhook{URL: "https://charger.example/pay", Secret: "whsec_not*base64", Timeout: time.Second}
		}, []string{"billing.auto_recharge.webhook.secret"}},
		{"notice rotation secret too short", func(c *Config) {
			c.Notify.Webhook = Webhook{URL: "https://hooks.example/cg", Secret: testWhsec, Secrets: []string{"whsec_c2hvcnQ="}, Timeout: time.Second}
		}, []string{"notify.webhook.secrets[0]"}},
		{"notice with a rotation list only", func(c *Config) {
			c.Notify.Webhook = Webhook{URL: "https://hooks.example/cg", Secrets: []string{testWhsec}, Timeout: time.Second}
		}, nil},
		{"notify.expiring_within zero", func(c *Config) { c.Notify.ExpiringWithin = 0 }, []string{"notify.expiring_within"}},
		{"notify.low_balance negative", func(c *Config) { c.Notify.LowBalance = -5 }, []string{"notify.low_balance"}},
		{"no prices at all", func(c *Config) { c.Prices.Builtin = false; c.Prices.Models = nil }, []string{"pricing.models"}},
		{"only a default price", func(c *Config) {
			c.Prices.Builtin, c.Prices.Models, c.Prices.Default = false, nil, &ModelPrice{Input: micros("1")}
		}, nil},
		{"only the built-in table", func(c *Config) { c.Prices.Models = nil }, nil},
		{"model without input", func(c *Config) { c.Prices.Models["x"] = ModelPrice{Output: micros("1")} }, []string{"pricing.models.x.input"}},
		{"model price negative", func(c *Config) {
			c.Prices.Models["x"] = ModelPrice{Input: micros("1"), Reasoning: new(money.Micros(-1))}
		}, []string{"pricing.models.x.reasoning"}},
		{"max_output_tokens negative", func(c *Config) { c.Prices.Models["x"] = ModelPrice{Input: micros("1"), MaxOutputTokens: -1} }, []string{"pricing.models.x.max_output_tokens"}},
		{"unknown encoding", func(c *Config) { c.Prices.Models["x"] = ModelPrice{Input: micros("1"), Encoding: "p50k_base"} }, []string{"pricing.models.x.encoding"}},
		{"alias to unpriced model", func(c *Config) { c.Prices.Aliases = map[string]string{"fast": "gpt-9"} }, []string{"pricing.aliases.fast"}},
		{"alias shadowed by a price", func(c *Config) {
			c.Prices.Models["fast"] = ModelPrice{Input: micros("1")}
			c.Prices.Aliases = map[string]string{"fast": "gpt-4o-mini"}
		}, []string{"pricing.aliases.fast"}},
		{"alias replacing a built-in model", func(c *Config) { c.Prices.Aliases = map[string]string{"gpt-4o": "gpt-4o-mini"} }, nil},
		{"alias to an alias", func(c *Config) { c.Prices.Aliases = map[string]string{"a": "b", "b": "gpt-4o"} }, []string{"pricing.aliases.a"}},
		{"alias to a built-in model without the built-in table", func(c *Config) {
			c.Prices.Builtin = false
			c.Prices.Models["x"] = ModelPrice{Input: micros("1")}
			c.Prices.Aliases = map[string]string{"fast": "gpt-4o-mini"}
		}, []string{"pricing.aliases.fast"}},
		{"alias fine", func(c *Config) { c.Prices.Aliases = map[string]string{"fast": "gpt-4o-mini"} }, nil},
		{"default price without input", func(c *Config) { c.Prices.Default = &ModelPrice{} }, []string{"pricing.default.input"}},
		{"drift_tolerance negative", func(c *Config) { c.Metering.DriftTolerance = -0.1 }, []string{"metering.drift_tolerance"}},
		{"count_prompts unknown", func(c *Config) { c.Metering.CountPrompts = "sometimes" }, []string{"metering.count_prompts"}},
		{"logging.level", func(c *Config) { c.Logging.Level = "verbose" }, []string{"logging.level"}},
		{"logging.format", func(c *Config) { c.Logging.Format = "xml" }, []string{"logging.format"}},
		{"max_body_bytes zero", func(c *Config) { c.Limits.MaxBodyBytes = 0 }, []string{"limits.max_body_bytes"}},
		{"key_cache_ttl negative", func(c *Config) { c.Auth.KeyCacheTTL = -time.Second }, []string{"auth.key_cache_ttl"}},
		{"key_cache_ttl zero disables", func(c *Config) { c.Auth.KeyCacheTTL = 0 }, nil},
		{"metrics.listen off", func(c *Config) { c.Metrics.Listen = "" }, nil},
		{"metrics.listen on its own port", func(c *Config) { c.Metrics.Listen = ":9090" }, nil},
		{"metrics.listen not host:port", func(c *Config) { c.Metrics.Listen = "9090" }, []string{"metrics.listen"}},
		{"metrics.listen same as listen", func(c *Config) { c.Metrics.Listen = c.Listen }, []string{"metrics.listen"}},
		{"metrics.listen same as admin.listen", func(c *Config) { c.Metrics.Listen = c.Admin.Listen }, []string{"metrics.listen"}},
		{"metrics.listen on a kernel-picked port", func(c *Config) { c.Listen, c.Metrics.Listen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			err := c.Validate()
			if tt.wantKeys == nil {
				if err != nil {
					t.Fatalf("unexpected problems:\n%v", err)
				}
				if c.Pricing() == nil {
					t.Fatal("valid config without Pricing")
				}
				return
			}
			var ps *Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Validate() = %v, want *Problems", err)
			}
			if got := keysOf(*ps); !slices.Equal(got, tt.wantKeys) {
				t.Errorf("problem keys %v, want %v\n%v", got, tt.wantKeys, err)
			}
		})
	}
}

// Each top-level key of Config is validated by exactly one function in
// sections, so a new section cannot be left unchecked.
func TestSectionsCoverEveryKey(t *testing.T) {
	owner := map[string]int{}
	for i, s := range sections {
		if s.validate == nil || len(s.keys) == 0 {
			t.Errorf("sections[%d] has no keys or no function", i)
		}
		for _, k := range s.keys {
			if j, dup := owner[k]; dup {
				t.Errorf("key %q is validated by sections[%d] and sections[%d]", k, j, i)
			}
			owner[k] = i
		}
	}
	typ := reflect.TypeFor[Config]()
	keys := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" {
			continue
		}
		keys[key] = true
		if _, ok := owner[key]; !ok {
			t.Errorf("config key %q (Config.%s) is validated by no function in sections", key, f.Name)
		}
	}
	for k := range owner {
		if !keys[k] {
			t.Errorf("sections names %q, which is no key of Config", k)
		}
	}
	if len(keys) < 10 {
		t.Fatalf("found only %d keys in Config: %v", len(keys), keys)
	}
}

// One broken rule in every section: every problem comes back in one call.
func TestValidateReportsEverySectionAtOnce(t *testing.T) {
	c := validConfig(t)
	c.ShutdownTimeout = 0
	c.Upstream.Timeout = 0
	c.Redis.Timeout = 0
	c.Spool.ReplayInterval = 0
	c.Billing.Grace = -1
	c.Notify.ExpiringWithin = 0
	c.Prices.Models["x"] = ModelPrice{}
	c.Metering.DriftTolerance = -1
	c.Logging.Level = "loud"
	c.Limits.MaxMessages = 0
	c.Auth.KeyCacheTTL = -1
	c.Metrics.Listen = "nine-thousand"
	var ps *Problems
	if err := c.Validate(); !errors.As(err, &ps) {
		t.Fatalf("Validate() = %v, want *Problems", err)
	}
	want := []string{"auth.key_cache_ttl", "billing.grace", "limits.max_messages", "logging.level", "metering.drift_tolerance",
		"metrics.listen", "notify.expiring_within", "pricing.models.x.input", "redis.timeout", "shutdown_timeout", "spool.replay_interval", "upstream.timeout"}
	if got := keysOf(*ps); !slices.Equal(got, want) {
		t.Errorf("problem keys %v, want %v\n%v", got, want, ps)
	}
	if c.pricing != nil {
		t.Error("Validate kept a price table built from an unsound pricing section")
	}
}

// Messages never repeat secrets: tokens, passwords in URLs.
func TestProblemsHideSecrets(t *testing.T) {
	const secret = "hunter2hunter2"
	c := validConfig(t)
	c.Admin.Tokens = BareTokens(secret)
	c.Upstream.BaseURL = "ftp://user:" + secret + "@example.com/v1"
	c.Redis.URL = "redis://user:" + secret + "@127.0.0.1:6379/abc"
	c.Notify.Webhook = Webhook{URL: "https://user:" + secret + "@[::1", Secret: "x", Timeout: time.Second}
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	if n := len(*err.(*Problems)); n != 4 {
		t.Errorf("%d problems, want 4:\n%v", n, err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("a problem repeats a secret:\n%v", err)
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{Key: "pricing.models.gpt-4o.input", Message: "required"},
		{Key: "billing.grace", Message: `invalid amount "-1": negative amounts are not allowed`},
		{Key: "", Message: "invalid YAML: line 3: mapping values are not allowed here"},
	}
	want := "invalid YAML: line 3: mapping values are not allowed here\n" +
		"billing.grace: invalid amount \"-1\": negative amounts are not allowed\n" +
		"pricing.models.gpt-4o.input: required"
	if got := ps.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if ps[0].Key != "pricing.models.gpt-4o.input" {
		t.Error("Error() reordered the receiver")
	}
}

// testWhsec is a valid Standard Webhooks secret (the spec's example key).
const testWhsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestWarnings(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string
	}{
		{"defaults", func(c *Config) {}, nil},
		{"admin on all interfaces", func(c *Config) { c.Admin.Listen = "0.0.0.0:8081" }, []string{"admin.listen"}},
		{"admin on empty host", func(c *Config) { c.Admin.Listen = ":8081" }, []string{"admin.listen"}},
		{"admin on a LAN address", func(c *Config) { c.Admin.Listen = "10.1.2.3:8081" }, []string{"admin.listen"}},
		{"admin on localhost", func(c *Config) { c.Admin.Listen = "localhost:8081" }, nil},
		{"admin on ::1", func(c *Config) { c.Admin.Listen = "[::1]:8081" }, nil},
		{"memory store", func(c *Config) { c.Redis.URL = "memory://" }, []string{"redis.url"}},
		{"no clamping", func(c *Config) { c.Billing.ClampMaxTokens = false }, []string{"billing.clamp_max_tokens"}},
		{"plain http upstream", func(c *Config) { c.Upstream.BaseURL = "http://llm.internal:8000/v1" }, []string{"upstream.base_url"}},
		{"plain http to loopback", func(c *Config) { c.Upstream.BaseURL = "http://127.0.0.1:9000/v1" }, nil},
		{"hold_ttl equal to upstream timeout", func(c *Config) { c.Billing.HoldTTL = c.Upstream.Timeout }, []string{"billing.hold_ttl"}},
		{"no upstream key for OpenAI", func(c *Config) { c.Upstream.APIKey = "" }, []string{"upstream.api_key"}},
		{"no upstream key for a remote upstream", func(c *Config) {
			c.Upstream.APIKey, c.Upstream.BaseURL = "", "https://llm.example.com/v1"
		}, []string{"upstream.api_key"}},
		{"no upstream key for a loopback upstream", func(c *Config) {
			c.Upstream.APIKey, c.Upstream.BaseURL = "", "http://127.0.0.1:9000/v1"
		}, nil},
		{"no upstream key for localhost", func(c *Config) {
			c.Upstream.APIKey, c.Upstream.BaseURL = "", "http://localhost:11434/v1"
		}, nil},
		{"chat model without output price", func(c *Config) { c.Prices.Models["my-chat"] = ModelPrice{Input: micros("1")} }, []string{"pricing.models.my-chat.output"}},
		{"embeddings model without output price", func(c *Config) { c.Prices.Models["my-embedding"] = ModelPrice{Input: micros("1")} }, nil},
		{"chat model without max_output_tokens", func(c *Config) {
			c.Prices.Models["my-reasoner"] = ModelPrice{Input: micros("1"), Output: micros("4")}
		}, []string{"pricing.models.my-reasoner.max_output_tokens"}},
		{"chat model with max_output_tokens", func(c *Config) {
			c.Prices.Models["my-reasoner"] = ModelPrice{Input: micros("1"), Output: micros("4"), MaxOutputTokens: 100000}
		}, nil},
		{"legacy charger secret", func(c *Config) {
			c.Billing.AutoRecharge.Webhook = Webhook{URL: "https://charger.example/pay", Secret: "an-old-plain-secret", Timeout: time.Second}
		}, []string{"billing.auto_recharge.webhook.secret"}},
		{"legacy rotation secret", func(c *Config) {
			c.Notify.Webhook = Webhook{URL: "https://hooks.example/cg", Secret: testWhsec, Secrets: []string{"old-plain"}, Timeout: time.Second}
		}, []string{"notify.webhook.secrets[0]"}},
		{"standard webhooks secret", func(c *Config) {
			c.Notify.Webhook = Webhook{URL: "https://hooks.example/cg", Secret: testWhsec, Timeout: time.Second}
		}, nil},
		{"default price without max_output_tokens", func(c *Config) {
			c.Prices.Default = &ModelPrice{Input: micros("1"), Output: micros("4")}
		}, []string{"pricing.default.max_output_tokens"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Fatalf("warning case is invalid: %v", err)
			}
			var keys []string
			for _, w := range c.Warnings() {
				key, _, _ := strings.Cut(w, ": ")
				keys = append(keys, key)
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("warnings %q, want keys %v", c.Warnings(), tt.wantKeys)
			}
		})
	}
}

func TestMemoryStoreWarningSaysNotDurable(t *testing.T) {
	cfg := mustLoad(t, "redis: {url: 'memory://'}\nupstream: {api_key: sk-test}\n", tokenEnv)
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "NOT DURABLE") {
		t.Errorf("Warnings() = %q", w)
	}
}
