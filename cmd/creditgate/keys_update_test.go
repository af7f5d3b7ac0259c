package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// keys create and keys update with every setting, against the real store
// through the admin API: what the flags say is stored, only the flags given
// change, "" clears, and the list shows the settings.
func TestKeysCreateAndUpdateCommands(t *testing.T) {
	isolateEnv(t)
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	p := testPolicy()
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return p },
		Tokens: func() []string { return []string{testToken} }}).Handler())
	t.Cleanup(srv.Close)
	cli := func(args ...string) (string, string, error) {
		return runCLI(t, append(args, "--admin-url", srv.URL, "--admin-token", testToken)...)
	}
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	out, stderr, err := cli("keys", "create", "acme", "--name", "app", "--limit", "20", "--limit-reset", "monthly",
		"--expires-at", exp, "--models", "gpt-4o, gpt-4o-mini", "--disabled", "--rpm", "60")
	if err != nil {
		t.Fatalf("create: %v (%s)", err, stderr)
	}
	for _, want := range []string{"20.000000 monthly", exp[:10], "gpt-4o,gpt-4o-mini", "disabled"} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %q:\n%s", want, out)
		}
	}
	keys, err := store.ListKeys(ctx, "acme")
	if err != nil || len(keys) != 1 {
		t.Fatal(keys, err)
	}
	k := keys[0]
	if k.Limit != 20_000_000 || k.LimitReset != billing.LimitMonthly || k.ExpiresAt.Format(time.RFC3339) != exp || len(k.Models) != 2 || !k.Disabled || k.RPM != 60 {
		t.Fatalf("stored %+v", k)
	}

	if _, stderr, err := cli("keys", "update", "acme", k.ID, "--disabled=false", "--expires-at", "", "--models", "", "--tpm", "5000"); err != nil {
		t.Fatalf("update: %v (%s)", err, stderr)
	}
	keys, _ = store.ListKeys(ctx, "acme")
	if u := keys[0]; u.Disabled || !u.ExpiresAt.IsZero() || u.Models != nil || u.TPM != 5000 || u.RPM != 60 || u.Limit != 20_000_000 || u.Name != "app" {
		t.Fatalf("updated %+v", u)
	}
	out, _, err = cli("keys", "list", "acme")
	if err != nil || !strings.Contains(out, "20.000000 monthly") || !strings.Contains(out, "never") || !strings.Contains(out, "60/5000") || !strings.Contains(out, "enabled") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, _, err := cli("keys", "update", "acme", k.ID); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("no flags: %v", err)
	}
	if _, _, err := cli("keys", "update", "acme", k.ID, "--limit", "-1", "--limit-reset", "yearly"); err == nil ||
		!strings.Contains(err.Error(), "limit") || !strings.Contains(err.Error(), "yearly") {
		t.Fatalf("bad flags: %v; want each named", err)
	}
	if _, _, err := cli("keys", "update", "acme", "key_nope", "--disabled"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown key: %v", err)
	}
}
