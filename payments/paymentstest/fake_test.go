package paymentstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/payments"
)

func TestFake(t *testing.T) {
	var f Provider
	ctx := context.Background()
	if _, err := f.StartCheckout(ctx, payments.Checkout{}); !errors.Is(err, ErrNotSet) {
		t.Errorf("unset StartCheckout: %v", err)
	}
	if _, err := f.ChargeSaved(ctx, payments.Charge{}); !errors.Is(err, ErrNotSet) {
		t.Errorf("unset ChargeSaved: %v", err)
	}
	if _, err := f.ParseWebhook(nil, nil, time.Time{}); !errors.Is(err, ErrNotSet) {
		t.Errorf("unset ParseWebhook: %v", err)
	}
	if f.Name() != "fake" {
		t.Errorf("Name() = %q", f.Name())
	}
	f.EnsureCustomerFunc = func(_ context.Context, account, _ string) (string, error) { return "cus_" + account, nil }
	if id, err := f.EnsureCustomer(ctx, "acme", ""); err != nil || id != "cus_acme" {
		t.Errorf("EnsureCustomer = %q, %v", id, err)
	}
}
