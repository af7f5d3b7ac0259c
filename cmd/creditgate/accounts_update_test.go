package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// accounts update and whoami against the real ledger, with scoped tokens: the
// change is booked with the token's name, a token without the admin scope is
// refused, every bad flag is named at once.
func TestAccountsUpdateCommand(t *testing.T) {
	isolateEnv(t)
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateAccount(context.Background(), "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	p := testPolicy()
	p.Tiers["tier-2"] = billing.Tier{}
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return p },
		ScopedTokens: func() []admin.Token {
			return []admin.Token{
				{Secret: "ops-token-0123456789", Name: "ops", Scopes: []admin.Scope{admin.ScopeAdmin}},
				{Secret: "support-token-0123456789", Name: "support", Scopes: []admin.Scope{admin.ScopeRead, admin.ScopeKeys}},
			}
		}}).Handler())
	t.Cleanup(srv.Close)
	as := func(token string, args ...string) (string, string, error) {
		return runReportsCLI(t, append(args, "--admin-url", srv.URL, "--admin-token", token)...)
	}

	out, stderr, err := as("ops-token-0123456789", "accounts", "update", "acme", "--tier", "tier-2", "--tier-pinned",
		"--status", "suspended", "--spend-limit", "100", "--alert-at", "80", "--name", "Acme Corp")
	if err != nil {
		t.Fatalf("update: %v (%s)", err, stderr)
	}
	for _, want := range []string{"TIER           tier-2", "STATUS         suspended", "TIER-PINNED    yes", "NAME           Acme Corp",
		"SPEND-LIMIT    100.000000 a month, alert at 80.000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "ledger records it in") {
		t.Errorf("stderr %q", stderr)
	}
	evs, err := store.Events(context.Background(), "acme", "", 10)
	if err != nil || len(evs.Events) != 2 {
		t.Fatalf("events %+v %v", evs, err)
	}
	for _, ev := range evs.Events {
		if ev.Actor != "ops" {
			t.Errorf("event %s %s by %q, want ops", ev.ID, ev.Type, ev.Actor)
		}
	}
	if evs.Events[0].Type != billing.EventTierChange || evs.Events[1].Type != billing.EventAccountUpdate {
		t.Fatalf("events %+v", evs.Events)
	}
	_, stderr, _ = as("ops-token-0123456789", "accounts", "update", "acme", "--status", "suspended")
	if !strings.Contains(stderr, "Nothing changed") {
		t.Errorf("the same change again: stderr %q", stderr)
	}

	if _, _, err := as("support-token-0123456789", "accounts", "update", "acme", "--status", "active"); err == nil ||
		!strings.Contains(err.Error(), "insufficient_scope") || !strings.Contains(err.Error(), `"admin" scope`) {
		t.Fatalf("support token: %v; want insufficient_scope", err)
	}
	if _, _, err := as("ops-token-0123456789", "accounts", "update", "acme", "--status", "paused", "--email", "x", "--tier", "gold"); err == nil ||
		!strings.Contains(err.Error(), "status") || !strings.Contains(err.Error(), "email") || !strings.Contains(err.Error(), "gold") {
		t.Fatalf("bad flags: %v; want each named", err)
	}
	if _, _, err := as("ops-token-0123456789", "accounts", "update", "acme", "--alert-at", "5"); err == nil || !strings.Contains(err.Error(), "--spend-limit") {
		t.Fatalf("--alert-at alone: %v", err)
	}

	out, _, err = as("support-token-0123456789", "whoami")
	if err != nil || !strings.Contains(out, "NAME     support") || !strings.Contains(out, "SCOPES   read, keys") ||
		!strings.Contains(out, "BILLING  no") || !strings.Contains(out, "KEYS     yes") {
		t.Fatalf("whoami: %v\n%s", err, out)
	}
	out, _, err = as("ops-token-0123456789", "whoami", "-o", "json")
	var me admin.WhoAmI
	if err != nil || json.Unmarshal([]byte(out), &me) != nil || me.Name != "ops" || !me.Can["billing"] {
		t.Fatalf("whoami json: %v %s", err, out)
	}
}
