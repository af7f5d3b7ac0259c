package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// waitLimit only keeps a broken test from hanging; nothing is timed.
const waitLimit = 10 * time.Second

func configWithGrace(grace string) string {
	return "admin: {tokens: [" + testToken + "]}\nbilling: {grace: \"" + grace + "\"}\n"
}

type watchRecorder struct {
	reloads chan *Config
	errs    chan error
}

func startWatch(t *testing.T, path string) *watchRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &watchRecorder{reloads: make(chan *Config, 16), errs: make(chan error, 16)}
	if err := Watch(ctx, path, func(c *Config) { r.reloads <- c }, func(err error) { r.errs <- err }); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *watchRecorder) nextReload(t *testing.T) *Config {
	t.Helper()
	select {
	case c := <-r.reloads:
		return c
	case err := <-r.errs:
		t.Fatalf("onError(%v), want a reload", err)
	case <-time.After(waitLimit):
		t.Fatal("no reload")
	}
	return nil
}

func (r *watchRecorder) nextError(t *testing.T) error {
	t.Helper()
	select {
	case c := <-r.reloads:
		t.Fatalf("reload with grace %s, want onError", c.Billing.Grace)
	case err := <-r.errs:
		return err
	case <-time.After(waitLimit):
		t.Fatal("no onError")
	}
	return nil
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "creditgate.yaml")
	writeFile(t, path, configWithGrace("0.50"))
	r := startWatch(t, path)

	// Events that leave the file's content as it was reload nothing: the next
	// callback is the one for the real edit below.
	writeFile(t, filepath.Join(dir, "unrelated.txt"), "x")
	writeFile(t, path, configWithGrace("0.50"))

	// An edit in place.
	writeFile(t, path, configWithGrace("0.75"))
	if c := r.nextReload(t); c.Billing.Grace != 750_000 {
		t.Errorf("reloaded grace %s, want 0.75", c.Billing.Grace)
	}

	// A bad edit: onError names the key; the caller keeps its config.
	writeFile(t, path, configWithGrace("0.80")+"billing_typo: 1\n")
	err := r.nextError(t)
	var ps *Problems
	if !errors.As(err, &ps) || !slices.Equal(keysOf(*ps), []string{"billing_typo"}) {
		t.Errorf("onError(%v), want a problem at billing_typo", err)
	}

	// An editor's save: write a temporary file, rename it over the original.
	tmp := filepath.Join(dir, ".creditgate.yaml.swp")
	writeFile(t, tmp, configWithGrace("0.90"))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if c := r.nextReload(t); c.Billing.Grace != 900_000 {
		t.Errorf("reloaded grace %s after rename, want 0.90", c.Billing.Grace)
	}
}

func TestWatchSetupErrors(t *testing.T) {
	ctx := t.Context()
	nop := func(*Config) {}
	for _, path := range []string{"", filepath.Join(t.TempDir(), "no-such-dir", "creditgate.yaml")} {
		if err := Watch(ctx, path, nop, func(error) {}); err == nil {
			t.Errorf("Watch(%q) = nil, want an error", path)
		}
	}
}

func TestReloadDiff(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{"nothing", func(c *Config) {}, nil},
		{"grace", func(c *Config) { c.Billing.Grace = 1 }, nil},
		{"clamp", func(c *Config) { c.Billing.ClampMaxTokens = false }, nil},
		{"min_purchase", func(c *Config) { c.Billing.MinPurchase = 1 }, nil},
		{"tiers and default tier", func(c *Config) {
			c.Billing.Tiers = map[string]Tier{"gold": {}}
			c.Billing.DefaultTier = "gold"
		}, nil},
		{"prices", func(c *Config) {
			c.Prices.Models = map[string]ModelPrice{"m": {Input: micros("1")}}
			c.Prices.Aliases = map[string]string{"a": "m"}
			c.Prices.Default = &ModelPrice{Input: micros("1")}
		}, nil},
		{"logging.level", func(c *Config) { c.Logging.Level = "debug" }, nil},
		{"notice thresholds", func(c *Config) { c.Notify.LowBalance = 3; c.Notify.ExpiringWithin = time.Hour }, nil},
		{"policy durations and drift", func(c *Config) {
			c.Billing.CreditTTL = time.Hour
			c.Billing.HoldTTL = time.Hour
			c.Billing.AutoRecharge.MinAmount = 9
			c.Metering.DriftTolerance = 0.5
		}, nil},
		{"webhooks wait for a restart", func(c *Config) {
			c.Notify.Webhook.URL = "https://x"
			c.Billing.AutoRecharge.Webhook.Secret = "another-secret-0123456789"
		}, []string{"billing.auto_recharge.webhook.secret", "notify.webhook.url"}},
		{"listen", func(c *Config) { c.Listen = ":9999" }, []string{"listen"}},
		{"several", func(c *Config) {
			c.Redis.URL = "memory://"
			c.Admin.Tokens = append(c.Admin.Tokens, AdminToken{Token: "another-token-0123456789"})
			c.Logging.Format = "console"
			c.Billing.HoldTTL = time.Hour
		}, []string{"admin.tokens", "logging.format", "redis.url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := validConfig(t), validConfig(t)
			tt.mutate(cur)
			if got := ReloadDiff(old, cur); !slices.Equal(got, tt.want) {
				t.Errorf("ReloadDiff = %v, want %v", got, tt.want)
			}
		})
	}
}
