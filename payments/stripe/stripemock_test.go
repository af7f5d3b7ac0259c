package stripe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/creditgate/creditgate/internal/testing/stripemock"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/stripe"
)

// Every API call the provider makes, against stripe-mock: Stripe's OpenAPI
// validation accepts each request's parameters (a 400 would fail the call), and
// the library decodes its answers.
func TestAgainstStripeMock(t *testing.T) {
	m := stripemock.Start(t)
	p, err := stripe.New(stripe.Config{SecretKey: m.SecretKey, WebhookSecret: "whsec_mock", APIBase: m.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Search, create with metadata and an idempotency key, update the email.
	customer, err := p.EnsureCustomer(ctx, "acme", "ops@acme.example")
	if err != nil || customer == "" {
		t.Fatalf("EnsureCustomer: %q %v", customer, err)
	}
	for _, save := range []bool{true, false} {
		for _, known := range []string{customer, ""} {
			cs, err := p.StartCheckout(ctx, payments.Checkout{
				PurchaseID: fmt.Sprintf("pur_mock_%v_%v", save, known != ""), Account: "acme", Amount: usd("10.00"), SaveCard: save,
				CustomerID: known, Email: "ops@acme.example",
				SuccessURL: "https://shop.example/billing/?paid={CHECKOUT_SESSION_ID}", CancelURL: "https://shop.example/billing/",
			})
			if err != nil || cs.ID == "" {
				t.Errorf("StartCheckout(save %v, customer %q): %+v %v", save, known, cs, err)
			}
		}
	}
	res, err := p.ChargeSaved(ctx, payments.Charge{ID: "rc_mock", Account: "acme", CustomerID: customer, PaymentMethodID: "pm_card_visa", Amount: usd("5.00")})
	switch {
	case err != nil:
		t.Errorf("ChargeSaved: %v", err)
	case res.PaymentRef == "" || res.Status == "":
		t.Errorf("ChargeSaved: %+v", res) // stripe-mock's fixture PaymentIntent decides the status
	}
	if _, err := p.PaymentMethod(ctx, customer); err != nil {
		t.Errorf("PaymentMethod: %v", err)
	}
	if _, err := p.ReceiptURL(ctx, "pi_mock"); err != nil {
		t.Errorf("ReceiptURL: %v", err)
	}
}

// The events creditgate reads decode from Stripe's own fixture objects (every
// field the spec has, shaped as the API sends it), with the fields that matter
// set as a real event would carry them.
func TestStripeMockFixturesAsEvents(t *testing.T) {
	m := stripemock.Start(t)
	p, err := stripe.New(stripe.Config{SecretKey: m.SecretKey, WebhookSecret: "whsec_mock", APIBase: m.URL})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"creditgate_account": "acme", "creditgate_purchase": "pur_1"}
	tests := []struct {
		typ, path string
		set       map[string]any
		check     func(payments.Event) bool
	}{
		{"checkout.session.completed", "/v1/checkout/sessions/cs_1",
			map[string]any{"metadata": meta, "client_reference_id": "acme", "amount_total": 1000, "currency": "usd", "payment_status": "paid", "status": "complete"},
			func(e payments.Event) bool {
				return e.Kind == payments.CheckoutPaid && e.Amount == usd("10.00") && e.PurchaseID == "pur_1" && e.PaymentRef != ""
			}},
		{"payment_intent.succeeded", "/v1/payment_intents/pi_1",
			map[string]any{"metadata": map[string]any{"creditgate_account": "acme", "creditgate_recharge": "rc_1"}, "status": "succeeded", "amount": 500},
			func(e payments.Event) bool {
				return e.Kind == payments.RechargeSucceeded && e.RechargeID == "rc_1" && e.Amount == usd("5.00")
			}},
		{"payment_intent.payment_failed", "/v1/payment_intents/pi_1",
			map[string]any{"metadata": map[string]any{"creditgate_account": "acme", "creditgate_recharge": "rc_1"}, "amount": 500,
				"last_payment_error": map[string]any{"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}},
			func(e payments.Event) bool {
				return e.Kind == payments.RechargeFailed && e.DeclineCode == "insufficient_funds" && e.Reason == "Your card has insufficient funds."
			}},
		{"charge.refunded", "/v1/charges/ch_1",
			map[string]any{"metadata": meta, "payment_intent": "pi_1", "amount": 1000, "amount_refunded": 400, "currency": "usd"},
			func(e payments.Event) bool {
				return e.Kind == payments.Refunded && e.Amount == usd("4.00") && e.Total == usd("10.00") && e.PaymentRef == "pi_1"
			}},
		{"charge.dispute.created", "/v1/disputes/dp_1",
			map[string]any{"payment_intent": "pi_1", "amount": 1000, "currency": "usd", "reason": "fraudulent"},
			func(e payments.Event) bool {
				return e.Kind == payments.Disputed && e.Amount == usd("10.00") && e.Reason == "fraudulent" && e.PaymentRef == "pi_1"
			}},
	}
	now := time.Now()
	for _, tt := range tests {
		obj := fixture(t, m, tt.path)
		for k, v := range tt.set {
			obj[k] = v
		}
		body, _ := json.Marshal(map[string]any{
			"id": "evt_mock", "object": "event", "api_version": stripe.APIVersion, "created": now.Unix(),
			"type": tt.typ, "livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": obj},
		})
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_mock", Timestamp: now}).Header
		ev, err := p.ParseWebhook(http.Header{"Stripe-Signature": {sig}}, body, now)
		if err != nil || !tt.check(ev) {
			t.Errorf("%s from stripe-mock's fixture: %+v %v", tt.typ, ev, err)
		}
	}
}

// fixture is stripe-mock's object at path, as JSON fields.
func fixture(t *testing.T, m *stripemock.Server, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, m.URL+path, nil)
	req.SetBasicAuth(m.SecretKey, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var obj map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &obj) != nil {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	return obj
}
