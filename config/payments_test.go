package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/money"
)

const (
	testStripeKey    = "sk_test_51Hcreditgatetestkey000000000000"
	testStripeSecret = "whsec_creditgatetestsigningsecret00000"
)

// stripeOn sets up a complete Stripe configuration.
func stripeOn(c *Config) {
	c.Payments.Provider = ProviderStripe
	c.Payments.Stripe.SecretKey = testStripeKey
	c.Payments.Stripe.WebhookSecret = testStripeSecret
	c.Portal.PublicURL = "https://credit.example.com"
}

// One row per rule of payments.*, portal.* and billing.auto_recharge.charger:
// the mutation breaks exactly that rule, and the problem names exactly its key.
func TestValidatePaymentRules(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"defaults: no payments", func(c *Config) {}, nil},
		{"stripe complete", stripeOn, nil},
		{"demo", func(c *Config) { c.Payments.Provider = ProviderDemo }, nil},
		{"unknown provider", func(c *Config) { c.Payments.Provider = "paypal" }, []string{"payments.provider"}},
		{"zero-decimal currency", func(c *Config) { c.Payments.Currency = "jpy" }, []string{"payments.currency"}},
		{"not a currency", func(c *Config) { c.Payments.Currency = "dollars" }, []string{"payments.currency"}},
		{"currency in capitals", func(c *Config) { c.Payments.Currency = "EUR" }, nil},
		{"stripe without keys", func(c *Config) { c.Payments.Provider = ProviderStripe },
			[]string{"payments.stripe.secret_key", "payments.stripe.webhook_secret"}},
		{"publishable key", func(c *Config) { stripeOn(c); c.Payments.Stripe.SecretKey = "pk_test_abc" }, []string{"payments.stripe.secret_key"}},
		{"restricted key", func(c *Config) { stripeOn(c); c.Payments.Stripe.SecretKey = "rk_live_abc" }, nil},
		{"webhook secret not whsec_", func(c *Config) { stripeOn(c); c.Payments.Stripe.WebhookSecret = "secret" }, []string{"payments.stripe.webhook_secret"}},
		{"api_base with a path", func(c *Config) { c.Payments.Stripe.APIBase = "https://api.stripe.com/v1" }, []string{"payments.stripe.api_base"}},
		{"api_base plain http remote", func(c *Config) { c.Payments.Stripe.APIBase = "http://stripe.example" }, []string{"payments.stripe.api_base"}},
		{"api_base plain http loopback", func(c *Config) { c.Payments.Stripe.APIBase = "http://127.0.0.1:12111" }, nil},
		{"api_base relative", func(c *Config) { c.Payments.Stripe.APIBase = "api.stripe.com" }, []string{"payments.stripe.api_base"}},
		{"empty product name", func(c *Config) { c.Payments.Stripe.ProductName = "" }, []string{"payments.stripe.product_name"}},
		{"product name with a newline", func(c *Config) { c.Payments.Stripe.ProductName = "a\nb" }, []string{"payments.stripe.product_name"}},
		{"public_url relative", func(c *Config) { c.Portal.PublicURL = "/billing" }, []string{"portal.public_url"}},
		{"public_url with query", func(c *Config) { c.Portal.PublicURL = "https://x.example/?a=1" }, []string{"portal.public_url"}},
		{"public_url with a path", func(c *Config) { c.Portal.PublicURL = "https://x.example/credit/" }, nil},
		{"link_ttl zero", func(c *Config) { c.Portal.LinkTTL = 0 }, []string{"portal.link_ttl"}},
		{"link_ttl two days", func(c *Config) { c.Portal.LinkTTL = 48 * time.Hour }, []string{"portal.link_ttl"}},
		{"session_ttl negative", func(c *Config) { c.Portal.SessionTTL = -time.Minute }, []string{"portal.session_ttl"}},
		{"charger unknown", func(c *Config) { c.Billing.AutoRecharge.Charger = "paypal" }, []string{"billing.auto_recharge.charger"}},
		{"charger webhook without url", func(c *Config) { c.Billing.AutoRecharge.Charger = ChargerWebhook }, []string{"billing.auto_recharge.charger"}},
		{"charger stripe without the provider", func(c *Config) { c.Billing.AutoRecharge.Charger = ChargerStripe }, []string{"billing.auto_recharge.charger"}},
		{"charger demo with stripe", func(c *Config) { stripeOn(c); c.Billing.AutoRecharge.Charger = ChargerDemo }, []string{"billing.auto_recharge.charger"}},
		{"charger stripe and a webhook url", func(c *Config) {
			stripeOn(c)
			c.Billing.AutoRecharge.Charger = ChargerStripe
			c.Billing.AutoRecharge.Webhook = Webhook{URL: "https://charger.example/pay", Secret: testWhsec, Timeout: time.Second}
		}, []string{"billing.auto_recharge.charger"}},
		{"charger stripe", func(c *Config) { stripeOn(c); c.Billing.AutoRecharge.Charger = ChargerStripe }, nil},
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

// Every payment problem of a file comes back at once, each naming its key, and
// none repeats a secret.
func TestPaymentProblemsAtOnce(t *testing.T) {
	doc := `
payments:
  provider: stripe
  currency: kwd
  stripe: { secret_key: "pk_live_leaked_publishable", webhook_secret: "hunter2hunter2", api_base: "http://evil.example" }
portal: { public_url: "ftp://x", link_ttl: 0s, session_ttl: 0s }
billing:
  auto_recharge: { charger: demo }
`
	_, err := LoadBytes([]byte(doc), tokenEnv)
	var ps *Problems
	if !errors.As(err, &ps) {
		t.Fatalf("LoadBytes = %v, want *Problems", err)
	}
	want := []string{"billing.auto_recharge.charger", "payments.currency", "payments.stripe.api_base", "payments.stripe.secret_key",
		"payments.stripe.webhook_secret", "portal.link_ttl", "portal.public_url", "portal.session_ttl"}
	if got := keysOf(*ps); !slices.Equal(got, want) {
		t.Errorf("problem keys %v, want %v\n%v", got, want, err)
	}
	for _, secret := range []string{"pk_live_leaked_publishable", "hunter2hunter2"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("a problem repeats a secret:\n%v", err)
		}
	}
}

// The keys load from the environment as every key does; the Stripe keys never
// need to be in the file.
func TestPaymentEnvOverrides(t *testing.T) {
	env := map[string]string{
		"CREDITGATE_ADMIN_TOKENS":                   testToken,
		"CREDITGATE_PAYMENTS_PROVIDER":              "stripe",
		"CREDITGATE_PAYMENTS_STRIPE_SECRET_KEY":     testStripeKey,
		"CREDITGATE_PAYMENTS_STRIPE_WEBHOOK_SECRET": testStripeSecret,
		"CREDITGATE_PAYMENTS_STRIPE_API_BASE":       "http://localhost:12111",
		"CREDITGATE_PAYMENTS_CURRENCY":              "eur",
		"CREDITGATE_PORTAL_PUBLIC_URL":              "https://credit.example.com/",
		"CREDITGATE_PORTAL_LINK_TTL":                "5m",
		"CREDITGATE_PORTAL_SESSION_TTL":             "2h",
		"CREDITGATE_BILLING_AUTO_RECHARGE_CHARGER":  "stripe",
	}
	c := mustLoad(t, "", env)
	p := c.Payments
	if p.Provider != "stripe" || p.Stripe.SecretKey != testStripeKey || p.Stripe.WebhookSecret != testStripeSecret ||
		p.Stripe.APIBase != "http://localhost:12111" || p.Currency != "eur" || p.Stripe.ProductName != "creditgate credit" {
		t.Fatalf("payments %+v", p)
	}
	if c.Portal.LinkTTL != 5*time.Minute || c.Portal.SessionTTL != 2*time.Hour || c.PortalURL() != "https://credit.example.com" || c.Charger() != ChargerStripe {
		t.Fatalf("portal %+v, portal URL %q, charger %q", c.Portal, c.PortalURL(), c.Charger())
	}
	_, err := LoadBytes(nil, map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_PAYMENTS_PROVIDER": "stripe", "CREDITGATE_PAYMENTS_STRIPE_SECRET_KEY": "sk_nope_x", "CREDITGATE_PAYMENTS_STRIPE_WEBHOOK_SECRET": "nope"})
	if err == nil || !strings.Contains(err.Error(), "payments.stripe.webhook_secret: not a webhook signing secret") ||
		!strings.Contains(err.Error(), "(from CREDITGATE_PAYMENTS_STRIPE_WEBHOOK_SECRET)") {
		t.Fatalf("env problems: %v", err)
	}
}

func TestChargerAndPortalURL(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(c *Config)
		charger   string
		portalURL string
	}{
		{"defaults", func(c *Config) {}, "", "http://localhost:8080"},
		{"webhook url", func(c *Config) { c.Billing.AutoRecharge.Webhook.URL = "https://charger.example" }, ChargerWebhook, "http://localhost:8080"},
		{"stripe provider", stripeOn, ChargerStripe, "https://credit.example.com"},
		{"demo provider on a host", func(c *Config) { c.Payments.Provider = ProviderDemo; c.Listen = "127.0.0.1:9000" }, ChargerDemo, "http://127.0.0.1:9000"},
		{"explicit webhook beside stripe", func(c *Config) {
			stripeOn(c)
			c.Billing.AutoRecharge.Webhook.URL = "https://charger.example"
		}, ChargerWebhook, "https://credit.example.com"},
		{"tls on 443", func(c *Config) { c.Listen = "0.0.0.0:443"; c.TLS.CertFile = "x" }, "", "https://localhost"},
		{"ipv6 any", func(c *Config) { c.Listen = "[::]:8080" }, "", "http://localhost:8080"},
		{"trailing slash", func(c *Config) { c.Portal.PublicURL = "https://x.example/credit/" }, "", "https://x.example/credit"},
	}
	for _, tt := range tests {
		c := Default()
		tt.mutate(c)
		if got := c.Charger(); got != tt.charger {
			t.Errorf("%s: Charger() = %q, want %q", tt.name, got, tt.charger)
		}
		if got := c.PortalURL(); got != tt.portalURL {
			t.Errorf("%s: PortalURL() = %q, want %q", tt.name, got, tt.portalURL)
		}
	}
}

func TestPaymentDefaults(t *testing.T) {
	d := Default()
	want := Payments{Provider: "none", Currency: "usd", Stripe: Stripe{APIBase: "https://api.stripe.com", ProductName: "creditgate credit"}}
	if d.Payments != want || d.Portal != (Portal{LinkTTL: 10 * time.Minute, SessionTTL: time.Hour}) || d.Billing.AutoRecharge.Charger != "" {
		t.Fatalf("defaults %+v %+v charger %q", d.Payments, d.Portal, d.Billing.AutoRecharge.Charger)
	}
}

func TestPaymentWarnings(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string
	}{
		{"stripe complete", stripeOn, nil},
		{"stripe without public_url", func(c *Config) { stripeOn(c); c.Portal.PublicURL = "" }, []string{"portal.public_url"}},
		{"stripe over plain http", func(c *Config) { stripeOn(c); c.Portal.PublicURL = "http://credit.example.com" }, []string{"portal.public_url"}},
		{"demo", func(c *Config) { c.Payments.Provider = ProviderDemo; c.Portal.PublicURL = "http://localhost:8080" }, []string{"payments.provider"}},
		{"stripe keys without stripe", func(c *Config) { c.Payments.Stripe.SecretKey = testStripeKey }, []string{"payments.stripe"}},
		{"minimum below Stripe's", func(c *Config) {
			stripeOn(c)
			c.Billing.MinPurchase = 25 * money.Cent
			c.Billing.AutoRecharge.MinAmount = 25 * money.Cent
			c.Billing.Tiers["tier-1"] = Tier{}
		}, []string{"billing.auto_recharge.min_amount", "billing.min_purchase"}},
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
				if strings.Contains(w, testStripeKey) || strings.Contains(w, testStripeSecret) {
					t.Errorf("a warning repeats a secret: %s", w)
				}
			}
			if !slices.Equal(keys, tt.wantKeys) {
				t.Errorf("warnings %q, want keys %v", c.Warnings(), tt.wantKeys)
			}
		})
	}
}
