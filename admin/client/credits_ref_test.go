package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
)

// AddCreditsWith sends the external id and the note; the ledger's top-up event
// shows them back through Ledger; the same key with another reference conflicts.
func TestAddCreditsWithReference(t *testing.T) {
	ctx := context.Background()
	var got []billing.TopUpRequest
	fps := map[string]string{} // idempotency key → fingerprint first seen
	l := &fakeLedger{
		TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
			got = append(got, r)
			if fp, ok := fps[r.IdempotencyKey]; ok && r.IdempotencyKey != "" && fp != r.Fingerprint {
				return billing.TopUpResult{}, billing.ErrIdempotencyConflict
			}
			fps[r.IdempotencyKey] = r.Fingerprint
			return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount}, EventID: "1-0"}, nil
		},
		EventsFunc: func(context.Context, string, string, int) (billing.EventPage, error) {
			return billing.EventPage{Events: []billing.Event{{ID: "1-0", Type: billing.EventTopUp, At: testNow, Amount: 25_000_000, GrantID: "g",
				PaymentRef: "inv-2025-001", Note: "wire"}}}, nil
		},
	}
	c, _ := newServer(t, l, &fakeKeys{})
	exp := testNow.Add(48 * time.Hour)
	if _, err := c.AddCreditsWith(ctx, "acme", admin.AddCreditsRequest{Amount: "25", ExpiresAt: &exp, ExternalID: "inv-2025-001", Note: "wire"}, "order-1"); err != nil {
		t.Fatal(err)
	}
	if r := got[0]; r.PaymentRef != "inv-2025-001" || r.Note != "wire" || !r.ExpiresAt.Equal(exp) || r.Amount != 25_000_000 {
		t.Fatalf("ledger got %+v", r)
	}
	_, err := c.AddCreditsWith(ctx, "acme", admin.AddCreditsRequest{Amount: "25", ExpiresAt: &exp, ExternalID: "inv-2025-002", Note: "wire"}, "order-1")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("the same key with another external id: %v, want 409", err)
	}
	page, err := c.Ledger(ctx, "acme", "", 10)
	if err != nil || len(page.Data) != 1 || page.Data[0].PaymentRef != "inv-2025-001" || page.Data[0].Note != "wire" {
		t.Fatalf("ledger page %+v %v", page, err)
	}
}
