package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// Every 503 of a request that moves money says to retry with the same
// Idempotency-Key (the change may have been applied), and says more when the
// request carried none; a change made but not confirmed by replicas
// (billing.ErrNotDurable) has its own code. Other endpoints keep the plain 503.
func TestMoneyMoving503sSayRetryWithTheSameKey(t *testing.T) {
	unavailable := fmt.Errorf("%w: dial tcp: connection refused", billing.ErrUnavailable)
	notDurable := fmt.Errorf("%w: event 5-0 of account \"acme\": 0 of 1 replicas confirmed within 1s", billing.ErrNotDurable)
	requests := []struct {
		name, path, body string
	}{
		{"top-up", "/admin/v1/accounts/acme/credits", `{"amount":"10"}`},
		{"adjustment", "/admin/v1/accounts/acme/adjustments", `{"amount":"-1.50","reason":"refund"}`},
	}
	errs := []struct {
		name        string
		err         error
		code        string
		wantMessage string
	}{
		{"unavailable", unavailable, CodeStoreUnavailable, "may or may not have been applied; retry with the same Idempotency-Key"},
		{"timed out", context.DeadlineExceeded, CodeStoreUnavailable, "retry with the same Idempotency-Key"},
		{"not durable", notDurable, CodeNotDurable, "not confirmed by enough replicas in time, so a failover could still lose it; retry with the same Idempotency-Key"},
	}
	for _, rq := range requests {
		for _, e := range errs {
			for _, keyed := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s %s keyed=%v", rq.name, e.name, keyed), func(t *testing.T) {
					l := &fakeLedger{
						TopUpFunc: func(context.Context, billing.Policy, billing.TopUpRequest) (billing.TopUpResult, error) {
							return billing.TopUpResult{}, e.err
						},
						AdjustFunc: func(context.Context, billing.Policy, string, billing.AdjustRequest) (billing.AdjustResult, error) {
							return billing.AdjustResult{}, e.err
						},
					}
					key := "<none>"
					if keyed {
						key = "order-1"
					}
					rec := call(t, newTestServer(l, nil).Handler(), "POST", rq.path, rq.body, "Idempotency-Key", key)
					checkError(t, rec, errorCase{503, TypeUnavailable, e.code, ""})
					msg := errorMessage(t, rec.Body.Bytes())
					if !strings.Contains(msg, e.wantMessage) {
						t.Errorf("message %q does not say %q", msg, e.wantMessage)
					}
					if none := strings.Contains(msg, "this request had none"); none == keyed {
						t.Errorf("message %q: says the request had no key = %v, want %v", msg, none, !keyed)
					}
					if strings.Contains(msg, "connection refused") || strings.Contains(msg, "5-0") {
						t.Errorf("message %q shows the store's error", msg)
					}
				})
			}
		}
	}
	// A read is not ambiguous: its 503 stays "try again".
	l := &fakeLedger{GetAccountFunc: func(context.Context, string) (billing.Account, error) { return billing.Account{}, unavailable }}
	rec := call(t, newTestServer(l, nil).Handler(), "GET", "/admin/v1/accounts/acme", "")
	checkError(t, rec, errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""})
	if msg := errorMessage(t, rec.Body.Bytes()); strings.Contains(msg, "Idempotency-Key") {
		t.Errorf("a read's 503 %q speaks of an Idempotency-Key", msg)
	}
}

func errorMessage(t *testing.T, body []byte) string {
	t.Helper()
	var e ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	return e.Error.Message
}
