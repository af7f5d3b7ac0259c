package admin_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// observerFunc is an admin.Observer of function fields, recording what it is told.
type observerFunc struct {
	toppedUp func(source string, amount money.Micros)
	adjusted func(amount money.Micros)
}

func (o observerFunc) ToppedUp(source string, amount money.Micros) { o.toppedUp(source, amount) }
func (o observerFunc) Adjusted(amount money.Micros)                { o.adjusted(amount) }

// TestObserverCountsBookingsOnce: every top-up and adjustment booked is
// reported once, with its source or sign; replays and refusals are not.
func TestObserverCountsBookingsOnce(t *testing.T) {
	const token = "integration-admin-token-123456"
	store := newRedisLedger(t, nil)
	var got []string
	obs := observerFunc{
		toppedUp: func(source string, amount money.Micros) { got = append(got, "topup "+source+" "+amount.String()) },
		adjusted: func(amount money.Micros) { got = append(got, "adjust "+amount.String()) },
	}
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return testPolicy },
		Tokens: func() []string { return []string{token} }, Observer: obs}).Handler())
	t.Cleanup(srv.Close)
	c := &client.Client{BaseURL: srv.URL, Token: token}
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"top-up", func() error { _, err := c.AddCredits(ctx, "acme", "25.00", nil, "order-1"); return err }},
		{"its replay", func() error { _, err := c.AddCredits(ctx, "acme", "25", nil, "order-1"); return err }},
		{"a promo", func() error {
			end := time.Now().Add(48 * time.Hour)
			_, err := c.AddCredits(ctx, "acme", "5.00", &end, "")
			return err
		}},
		{"a refused top-up", func() error {
			if _, err := c.AddCredits(ctx, "acme", "1.00", nil, ""); err == nil {
				t.Error("a top-up below the minimum was accepted")
			}
			return nil
		}},
		{"take back", func() error { _, err := c.Adjust(ctx, "acme", "-1.50", "refund", nil, "adj-1"); return err }},
		{"its replay", func() error { _, err := c.Adjust(ctx, "acme", "-1.50", "refund", nil, "adj-1"); return err }},
		{"credit", func() error { _, err := c.Adjust(ctx, "acme", "2.00", "goodwill", nil, ""); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	want := []string{"topup purchase 25.000000", "topup promo 5.000000", "adjust -1.500000", "adjust 2.000000"}
	if !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}
