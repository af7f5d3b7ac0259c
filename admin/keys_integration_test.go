package admin_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
)

// TestKeySettingsAgainstRealRedis: through the client and the Redis store, a
// key made with every setting lists with them, a PATCH changes them (null
// clears the expiry), the proxy's lookup sees the change, and another
// account's key is 404.
func TestKeySettingsAgainstRealRedis(t *testing.T) {
	const token = "integration-admin-token-123456"
	store := newRedisLedger(t, nil)
	c := &client.Client{BaseURL: serveAdmin(t, store, token, nil).URL, Token: token}
	ctx := context.Background()
	for _, id := range []string{"acme", "other"} {
		if _, err := c.CreateAccount(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	created, err := c.CreateKeyWith(ctx, "acme", admin.CreateKeyRequest{Name: "app", Limit: "20.00", LimitReset: billing.LimitMonthly,
		ExpiresAt: &exp, Models: []string{"gpt-4o", "gpt-4o-mini"}, RPM: 60})
	if err != nil {
		t.Fatal(err)
	}
	if created.Limit == nil || *created.Limit != 20_000_000 || !created.ExpiresAt.Equal(exp) || len(created.Models) != 2 || created.LimitReset != "monthly" {
		t.Fatalf("created %+v", created)
	}
	disabled := true
	updated, err := c.UpdateKey(ctx, "acme", created.ID, admin.UpdateKeyRequest{Disabled: &disabled, ClearExpiresAt: true, Models: &[]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if !updated.Disabled || updated.ExpiresAt != nil || updated.Models != nil || updated.RPM != 60 || *updated.Limit != 20_000_000 {
		t.Fatalf("updated %+v", updated)
	}
	list, err := c.ListKeys(ctx, "acme")
	if err != nil || len(list.Data) != 1 || !reflect.DeepEqual(list.Data[0], updated) {
		t.Fatalf("list %+v, %v; want %+v", list, err, updated)
	}
	found, err := store.LookupKey(ctx, billing.HashKey(created.Key))
	if err != nil || !found.Disabled || !found.ExpiresAt.IsZero() || found.Models != nil {
		t.Fatalf("lookup %+v, %v", found, err)
	}
	var apiErr *client.APIError
	if _, err := c.UpdateKey(ctx, "other", created.ID, admin.UpdateKeyRequest{Disabled: &disabled}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("another account's key: %v", err)
	}
}
