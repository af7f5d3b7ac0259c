package config

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// One row per rule of cors.* and pricing.batch_discount, as TestValidateRules:
// the mutation breaks exactly that rule and the problem names exactly its key.
func TestValidateCORSAndBatchDiscount(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"no origins", func(c *Config) {}, nil},
		{"exact origins", func(c *Config) {
			c.CORS.AllowedOrigins = []string{"https://app.example.com", "http://localhost:5173", "http://[::1]:3000"}
			c.CORS.AllowCredentials = true
		}, nil},
		{"any origin", func(c *Config) { c.CORS.AllowedOrigins = []string{"*"} }, nil},
		{"any origin with credentials", func(c *Config) { c.CORS.AllowedOrigins = []string{"*"}; c.CORS.AllowCredentials = true }, []string{"cors.allow_credentials"}},
		{"any origin among others", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a.example", "*"} }, []string{"cors.allowed_origins[1]"}},
		{"origin with a path", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a.example/app"} }, []string{"cors.allowed_origins[0]"}},
		{"origin with a trailing slash", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a.example/"} }, []string{"cors.allowed_origins[0]"}},
		{"origin without a scheme", func(c *Config) { c.CORS.AllowedOrigins = []string{"a.example"} }, []string{"cors.allowed_origins[0]"}},
		{"origin not http", func(c *Config) { c.CORS.AllowedOrigins = []string{"ftp://a.example"} }, []string{"cors.allowed_origins[0]"}},
		{"origin in upper case", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://A.example"} }, []string{"cors.allowed_origins[0]"}},
		{"origin with a wildcard", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://*.example.com"} }, []string{"cors.allowed_origins[0]"}},
		{"origin twice", func(c *Config) { c.CORS.AllowedOrigins = []string{"https://a.example", "https://a.example"} }, []string{"cors.allowed_origins[1]"}},
		{"max_age negative", func(c *Config) { c.CORS.MaxAge = -time.Second }, []string{"cors.max_age"}},
		{"max_age over a day", func(c *Config) { c.CORS.MaxAge = 25 * time.Hour }, []string{"cors.max_age"}},
		{"batch discount zero", func(c *Config) { c.Prices.BatchDiscount = 0 }, []string{"pricing.batch_discount"}},
		{"batch discount above 1", func(c *Config) { c.Prices.BatchDiscount = FractionOne + 1 }, []string{"pricing.batch_discount"}},
		{"batch discount 1", func(c *Config) { c.Prices.BatchDiscount = FractionOne }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.mutate(c)
			err := c.Validate()
			var got []string
			var ps *Problems
			if errors.As(err, &ps) {
				for _, p := range *ps {
					got = append(got, p.Key)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.wantKeys) {
				t.Fatalf("problems %v (%v), want keys %v", got, err, tc.wantKeys)
			}
		})
	}
}

// The defaults, and the keys as YAML and environment variables write them.
func TestCORSAndBatchDiscountKeys(t *testing.T) {
	c := validConfig(t)
	if c.Prices.BatchDiscount != FractionOne/2 || len(c.CORS.AllowedOrigins) != 0 || c.CORS.AllowCredentials || c.CORS.MaxAge != 10*time.Minute {
		t.Fatalf("defaults: batch_discount %s, cors %+v", c.Prices.BatchDiscount, c.CORS)
	}
	c = mustLoad(t, "pricing: {batch_discount: 0.25}\ncors: {allowed_origins: [\"https://a.example\"], max_age: 1h}\n",
		map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_UPSTREAM_API_KEY": "sk-upstream-test"})
	if c.Prices.BatchDiscount != 250_000 || !slices.Equal(c.CORS.AllowedOrigins, []string{"https://a.example"}) || c.CORS.MaxAge != time.Hour {
		t.Fatalf("from YAML: batch_discount %s, cors %+v", c.Prices.BatchDiscount, c.CORS)
	}
	c = mustLoad(t, "", map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_UPSTREAM_API_KEY": "sk-upstream-test",
		"CREDITGATE_CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example", "CREDITGATE_PRICING_BATCH_DISCOUNT": "1"})
	if c.Prices.BatchDiscount != FractionOne || !slices.Equal(c.CORS.AllowedOrigins, []string{"https://a.example", "https://b.example"}) {
		t.Fatalf("from the environment: batch_discount %s, cors %+v", c.Prices.BatchDiscount, c.CORS)
	}
	for _, bad := range []string{"0.5000001", "-0.5", "1e-1", "half"} {
		if _, err := LoadBytes([]byte("pricing: {batch_discount: "+bad+"}\n"), map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken}); err == nil {
			t.Errorf("batch_discount %s accepted", bad)
		}
	}
}

func TestFractionString(t *testing.T) {
	for f, want := range map[Fraction]string{FractionOne: "1", FractionOne / 2: "0.5", 1: "0.000001", 250_000: "0.25", 0: "0"} {
		if got := f.String(); got != want {
			t.Errorf("%d: %q, want %q", int64(f), got, want)
		}
		if back, err := parseFraction(want); err != nil || back != f {
			t.Errorf("parse %q: %d %v", want, back, err)
		}
	}
}
