package admin_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// TestAgainstRealRedis runs the admin API over HTTP on the Redis ledger: the
// handlers' fakes elsewhere check shapes; this checks the two fit.
func TestAgainstRealRedis(t *testing.T) {
	const token = "integration-admin-token-123456"
	store := newRedisLedger(t, nil)
	srv := serveAdmin(t, store, token, nil)
	c := &client.Client{BaseURL: srv.URL, Token: token}
	ctx := context.Background()

	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	var apiErr *client.APIError
	if _, err := c.CreateAccount(ctx, "acme", ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("duplicate account: %v", err)
	}
	first, err := c.AddCredits(ctx, "acme", "25.00", nil, "order-1")
	if err != nil || first.Replayed {
		t.Fatalf("top-up: %+v %v", first, err)
	}
	replay, err := c.AddCredits(ctx, "acme", "25", nil, "order-1")
	if err != nil || !replay.Replayed || replay.Grant.ID != first.Grant.ID {
		t.Fatalf("replay: %+v %v", replay, err)
	}
	if _, err := c.AddCredits(ctx, "acme", "30.00", nil, "order-1"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("changed body: %v", err)
	}
	for _, tc := range []struct{ amount, code string }{{"4.99", "below_minimum_purchase"}, {"100.01", "above_max_topup"}, {"1e3", "invalid_amount"}} {
		if _, err := c.AddCredits(ctx, "acme", tc.amount, nil, ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Code != tc.code {
			t.Fatalf("amount %s: %v", tc.amount, err)
		}
	}
	promoEnd := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	if _, err := c.AddCredits(ctx, "acme", "5.00", &promoEnd, ""); err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	if found, err := store.LookupKey(ctx, billing.HashKey(key.Key)); err != nil || found.Account != "acme" {
		t.Fatalf("the issued key does not authenticate: %+v %v", found, err)
	}
	if err := c.RevokeKey(ctx, "acme", key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LookupKey(ctx, billing.HashKey(key.Key)); !errors.Is(err, billing.ErrKeyNotFound) {
		t.Fatalf("revoked key still authenticates: %v", err)
	}
	a, err := c.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance.String() != "30.000000" || len(a.Grants) != 2 || a.Grants[0].Source != billing.SourcePromo || !a.Grants[0].ExpiresAt.Equal(promoEnd) {
		t.Fatalf("account %+v", a)
	}
	ledger, err := c.Ledger(ctx, "acme", "", 1)
	if err != nil || len(ledger.Data) != 1 || !ledger.HasMore || ledger.Next == "" {
		t.Fatalf("ledger page: %+v %v", ledger, err)
	}
	rest, err := c.Ledger(ctx, "acme", ledger.Next, 10)
	if err != nil || len(rest.Data) != 1 || rest.HasMore {
		t.Fatalf("second page: %+v %v", rest, err)
	}
	if err := c.Readyz(ctx); err != nil {
		t.Fatal(err)
	}
}

// testPolicy is the billing policy of the admin tests on real Redis.
var testPolicy = billing.Policy{Grace: money.MustParse("0.50"), MinPurchase: money.MustParse("5.00"),
	CreditTTL: 365 * 24 * time.Hour, HoldTTL: 15 * time.Minute, DefaultTier: "tier-1",
	Tiers:           map[string]billing.Tier{"tier-1": {MaxTopUp: money.MustParse("100.00"), MaxBalance: money.MustParse("1000.00")}},
	AutoRechargeMin: money.MustParse("5.00")}

// newRedisLedger is a ledger on the test's Redis, under its own key prefix
// (removed at cleanup); now nil is the wall clock.
func newRedisLedger(t testing.TB, now func() time.Time) *redisstore.Store {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// serveAdmin serves the admin API on store over HTTP, with testPolicy and one
// admin token; now nil is the wall clock.
func serveAdmin(t testing.TB, store *redisstore.Store, token string, now func() time.Time) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping, Now: now}).Handler())
	t.Cleanup(srv.Close)
	return srv
}
