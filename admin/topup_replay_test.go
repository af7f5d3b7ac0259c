package admin_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestTopUpReplayIsTheOriginalAnswer: a keyed top-up replayed after its grant was
// spent answers 200 with the very body of the original 201, byte for byte (the
// SPEC: same key and same body → the same result).
func TestTopUpReplayIsTheOriginalAnswer(t *testing.T) {
	const token = "integration-admin-token-123456"
	store := newRedisLedger(t, nil)
	srv := serveAdmin(t, store, token, nil)
	usd := money.MustParse
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	// Debt first, so the original answer also repays some.
	if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: "h0", Estimate: usd("0.20"), Grace: usd("0.50"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: "h0", Cost: usd("0.20")}); err != nil {
		t.Fatal(err)
	}

	topUp := func(body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/v1/accounts/acme/credits", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", "order-7")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	status, original := topUp(`{"amount":"25.00"}`)
	if status != http.StatusCreated {
		t.Fatalf("top-up: %d %s", status, original)
	}
	if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: "h1", Estimate: usd("3.00"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: "h1", Cost: usd("3.00")}); err != nil {
		t.Fatal(err)
	}
	status, replay := topUp(`{"amount": "25"}`)
	if status != http.StatusOK || !bytes.Equal(replay, original) {
		t.Fatalf("replay after spending: %d\n%s\nwant 200 with the original body\n%s", status, replay, original)
	}
	if !bytes.Contains(original, []byte(`"remaining":"24.800000"`)) {
		t.Fatalf("the original answer should show the grant after repaying 0.20 of debt: %s", original)
	}
}
