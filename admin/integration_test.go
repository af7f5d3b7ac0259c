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
	"github.com/creditgate/creditgate/internal/testredis"
	"github.com/creditgate/creditgate/money"
)

// TestAgainstRealRedis runs the admin API over HTTP on the Redis ledger: the
// handlers' fakes elsewhere check shapes; this checks the two fit.
func TestAgainstRealRedis(t *testing.T) {
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	usd := money.MustParse
	policy := billing.Policy{Grace: usd("0.50"), MinPurchase: usd("5.00"), CreditTTL: 365 * 24 * time.Hour, HoldTTL: 15 * time.Minute,
		DefaultTier: "tier-1", Tiers: map[string]billing.Tier{"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00")}}, AutoRechargeMin: usd("5.00")}
	const token = "integration-admin-token-123456"
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return policy },
		Tokens: func() []string { return []string{token} }, Ready: store.Ping}).Handler())
	t.Cleanup(srv.Close)
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
