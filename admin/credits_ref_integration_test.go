package admin_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
)

// On the Redis ledger: a top-up's external id and note come back on its ledger
// event; the same Idempotency-Key replays with them and conflicts without.
func TestCreditsExternalIDAgainstRealRedis(t *testing.T) {
	const token = "integration-admin-token-123456"
	srv := serveAdmin(t, newRedisLedger(t, nil), token, nil)
	c := &client.Client{BaseURL: srv.URL, Token: token}
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	req := admin.AddCreditsRequest{Amount: "25.00", ExternalID: "inv-2025-001", Note: "wire transfer, March"}
	first, err := c.AddCreditsWith(ctx, "acme", req, "order-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.AddCreditsWith(ctx, "acme", req, "order-1")
	if err != nil || !again.Replayed || again.EventID != first.EventID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	var apiErr *client.APIError
	for _, other := range []admin.AddCreditsRequest{{Amount: "25.00"}, {Amount: "25.00", ExternalID: "inv-2025-002", Note: req.Note}} {
		if _, err := c.AddCreditsWith(ctx, "acme", other, "order-1"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
			t.Fatalf("order-1 with %+v: %v, want 409", other, err)
		}
	}
	page, err := c.Ledger(ctx, "acme", "", 10)
	if err != nil || len(page.Data) != 1 {
		t.Fatalf("ledger %+v %v", page, err)
	}
	if ev := page.Data[0]; ev.ID != first.EventID || ev.PaymentRef != "inv-2025-001" || ev.Note != "wire transfer, March" {
		t.Fatalf("top-up event %+v; want payment_ref and note", ev)
	}
}
