package stripe_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/stripe"
)

// completedEvent is a real checkout.session.completed from the stand-in.
func completedEvent(t *testing.T, s *stripestub.Server, p *stripe.Provider) stripestub.Event {
	t.Helper()
	cs := checkout(t, p, "pur_sig", false)
	events, err := s.CompleteCheckout(cs.ID, stripestub.Pay{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Type == "checkout.session.completed" {
			return e
		}
	}
	t.Fatal("no checkout.session.completed")
	return stripestub.Event{}
}

func header(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("Stripe-Signature", sig)
	}
	return h
}

// Every way a signature can be wrong is ErrBadSignature, and only the right one
// within five minutes either way passes.
func TestWebhookSignatures(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	e := completedEvent(t, s, p)
	now := time.Now()
	sign := func(secret string, body []byte, at time.Time) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
	}
	tampered := bytes.Replace(e.Payload, []byte(`"amount_total": 1000`), []byte(`"amount_total": 100000`), 1)
	if bytes.Equal(tampered, e.Payload) {
		t.Fatal("the tampering changed nothing")
	}
	old := sign(s.WebhookSecret, e.Payload, now.Add(-time.Hour))
	oldSig := old[strings.Index(old, "v1="):]

	tests := []struct {
		name string
		sig  string
		body []byte
		ok   bool
	}{
		{"good", sign(s.WebhookSecret, e.Payload, now), e.Payload, true},
		{"4m59s old", sign(s.WebhookSecret, e.Payload, now.Add(-299*time.Second)), e.Payload, true},
		{"4m59s ahead", sign(s.WebhookSecret, e.Payload, now.Add(299*time.Second)), e.Payload, true},
		{"rotating secrets: one good of two", sign("whsec_old", e.Payload, now) + "," + sign(s.WebhookSecret, e.Payload, now)[strings.Index(sign(s.WebhookSecret, e.Payload, now), "v1="):], e.Payload, true},
		{"bad secret", sign("whsec_someone_else", e.Payload, now), e.Payload, false},
		{"tampered body", sign(s.WebhookSecret, e.Payload, now), tampered, false},
		{"missing header", "", e.Payload, false},
		{"stale (6 min)", sign(s.WebhookSecret, e.Payload, now.Add(-6*time.Minute)), e.Payload, false},
		{"future (6 min)", sign(s.WebhookSecret, e.Payload, now.Add(6*time.Minute)), e.Payload, false},
		{"replayed an hour later", old, e.Payload, false},
		{"fresh t with an old signature", fmt.Sprintf("t=%d,t=%d,%s", now.Unix(), now.Add(-time.Hour).Unix(), oldSig), e.Payload, false},
		{"old signature behind a fresh t", fmt.Sprintf("t=%d,%s", now.Unix(), oldSig), e.Payload, false},
		{"no timestamp", oldSig, e.Payload, false},
		{"no v1", fmt.Sprintf("t=%d,v0=abc", now.Unix()), e.Payload, false},
		{"malformed", "t=" + fmt.Sprint(now.Unix()) + ",v1", e.Payload, false},
		{"not a number", "t=soon," + oldSig, e.Payload, false},
		{"negative time", "t=-5," + oldSig, e.Payload, false},
	}
	for _, tt := range tests {
		ev, err := p.ParseWebhook(header(tt.sig), tt.body, now)
		if tt.ok {
			if err != nil || ev.Kind != payments.CheckoutPaid {
				t.Errorf("%s: %+v %v, want CheckoutPaid", tt.name, ev, err)
			}
			continue
		}
		if !errors.Is(err, payments.ErrBadSignature) || errors.Is(err, payments.ErrInvalidEvent) {
			t.Errorf("%s: %+v %v, want ErrBadSignature", tt.name, ev, err)
		}
		if err != nil && strings.Contains(err.Error(), s.WebhookSecret) {
			t.Errorf("%s: the error shows the secret", tt.name)
		}
	}
}

// Correctly signed events creditgate cannot use are ErrInvalidEvent; events of
// other integrations and other types are Ignored.
func TestWebhookEventContents(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	now := time.Now()
	session := func(fields string) string {
		return `{"id":"cs_test_1","object":"checkout.session","mode":"payment","payment_status":"paid","amount_total":1000,` +
			`"currency":"usd","customer":"cus_1","payment_intent":"pi_1",` + fields + `}`
	}
	event := func(version, typ, object string) []byte {
		return []byte(fmt.Sprintf(`{"id":"evt_1","object":"event","api_version":%q,"created":%d,"type":%q,"livemode":false,"data":{"object":%s}}`,
			version, now.Unix(), typ, object))
	}
	ours := `"client_reference_id":"acme","metadata":{"creditgate_account":"acme","creditgate_purchase":"pur_1"}`
	tests := []struct {
		name    string
		body    []byte
		kind    payments.EventKind // when no error
		invalid string             // ErrInvalidEvent mentioning this
	}{
		{"ours", event(stripe.APIVersion, "checkout.session.completed", session(ours)), payments.CheckoutPaid, ""},
		{"same release, later version", event("2026-08-26.dahlia", "checkout.session.completed", session(ours)), payments.CheckoutPaid, ""},
		{"the account from client_reference_id only", event(stripe.APIVersion, "checkout.session.completed",
			session(`"client_reference_id":"acme","metadata":{"creditgate_purchase":"pur_1"}`)), payments.CheckoutPaid, ""},
		{"another integration's checkout", event(stripe.APIVersion, "checkout.session.completed", session(`"metadata":{"order":"7"}`)), payments.Ignored, ""},
		{"a type we do not use", event(stripe.APIVersion, "invoice.paid", `{"id":"in_1","object":"invoice"}`), payments.Ignored, ""},
		{"a refund of someone else's charge in yen", event(stripe.APIVersion, "charge.refunded",
			`{"id":"ch_1","object":"charge","amount":500,"amount_refunded":500,"currency":"jpy","payment_intent":"pi_9","metadata":{}}`), payments.Ignored, ""},
		{"a charge without a PaymentIntent", event(stripe.APIVersion, "charge.refunded",
			`{"id":"ch_1","object":"charge","amount":500,"amount_refunded":500,"currency":"usd","metadata":{}}`), payments.Ignored, ""},
		{"another API release", event("2024-06-20", "checkout.session.completed", session(ours)), "", "API version 2024-06-20"},
		{"another currency", event(stripe.APIVersion, "checkout.session.completed", strings.Replace(session(ours), `"usd"`, `"eur"`, 1)), "", `currency "eur"`},
		{"accounts disagree", event(stripe.APIVersion, "checkout.session.completed",
			session(`"client_reference_id":"globex","metadata":{"creditgate_account":"acme","creditgate_purchase":"pur_1"}`)), "", "disagree"},
		{"a bad account id", event(stripe.APIVersion, "checkout.session.completed",
			session(`"metadata":{"creditgate_account":"a b","creditgate_purchase":"pur_1"}`)), "", "creditgate_account"},
		{"no account", event(stripe.APIVersion, "checkout.session.completed", session(`"metadata":{"creditgate_purchase":"pur_1"}`)), "", "account id is empty"},
		{"our refund in yen", event(stripe.APIVersion, "charge.refunded",
			`{"id":"ch_1","object":"charge","amount":500,"amount_refunded":500,"currency":"jpy","payment_intent":"pi_9","metadata":{"creditgate_account":"acme"}}`), "", `currency "jpy"`},
		{"a recharge without its account", event(stripe.APIVersion, "payment_intent.succeeded",
			`{"id":"pi_1","object":"payment_intent","amount":500,"currency":"usd","metadata":{"creditgate_recharge":"rc_1"}}`), "", "creditgate_account"},
		{"paid for nothing", event(stripe.APIVersion, "checkout.session.completed",
			strings.Replace(session(ours), `"payment_status":"paid"`, `"payment_status":"no_payment_required"`, 1)), "", "no_payment_required"},
		{"a thin event", []byte(`{"id":"evt_1","object":"v2.core.event","type":"x"}`), "", "thin event"},
		{"not JSON", []byte(`nope`), "", "json"},
		{"no id", []byte(fmt.Sprintf(`{"object":"event","api_version":%q,"type":"checkout.session.completed","data":{"object":%s}}`, stripe.APIVersion, session(ours))), "", "no event id"},
	}
	for _, tt := range tests {
		ev, err := p.ParseWebhook(header(s.Sign(tt.body, now)), tt.body, now)
		if tt.invalid != "" {
			if !errors.Is(err, payments.ErrInvalidEvent) || !strings.Contains(err.Error(), tt.invalid) {
				t.Errorf("%s: %+v %v, want ErrInvalidEvent mentioning %q", tt.name, ev, err, tt.invalid)
			}
			continue
		}
		if err != nil || ev.Kind != tt.kind || ev.ID != "evt_1" {
			t.Errorf("%s: %+v %v, want %s", tt.name, ev, err, tt.kind)
		}
		if ev.Kind == payments.CheckoutPaid && (ev.Account != "acme" || ev.PurchaseID != "pur_1" || ev.Amount != 10*money.Dollar ||
			ev.PaymentRef != "pi_1" || ev.CustomerID != "cus_1" || ev.CheckoutID != "cs_test_1") {
			t.Errorf("%s: %+v", tt.name, ev)
		}
	}
}

// FuzzParseWebhook: no input panics; an unsigned (or wrongly signed) input is
// always ErrBadSignature; a correctly signed one is an event or ErrInvalidEvent,
// and an event creditgate acts on names a valid account (or, for refunds and
// disputes, at least the payment) and whole-cent amounts.
func FuzzParseWebhook(f *testing.F) {
	s := stripestub.New(f, stripestub.Options{WebhookSecret: "whsec_fuzz"})
	p, err := stripe.New(stripe.Config{SecretKey: s.SecretKey, WebhookSecret: "whsec_fuzz", APIBase: s.URL})
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: every event a purchase, a recharge, a refund and a dispute produce.
	cs, err := p.StartCheckout(f.Context(), payments.Checkout{PurchaseID: "pur_f", Account: "acme", Amount: 10 * money.Dollar, SaveCard: true,
		SuccessURL: "https://x.example/", CancelURL: "https://x.example/"})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.CompleteCheckout(cs.ID, stripestub.Pay{}); err != nil {
		f.Fatal(err)
	}
	pi := s.PaymentIntents()[0].ID
	_, _ = s.Refund(pi, 100)
	_, _ = s.Dispute(pi, 0, "fraudulent")
	for _, e := range s.Events() {
		f.Add(e.Payload, e.Signature)
	}
	f.Add([]byte(`{}`), "t=1,v1=00")
	now := time.Now()

	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		// As sent: whatever the header, only a valid signature passes.
		ev, err := p.ParseWebhook(header(sig), body, now)
		if err == nil || errors.Is(err, payments.ErrInvalidEvent) {
			if webhook.ValidatePayloadIgnoringTolerance(body, sig, "whsec_fuzz") != nil {
				t.Fatalf("accepted a bad signature %q: %+v %v", sig, ev, err)
			}
		} else if !errors.Is(err, payments.ErrBadSignature) {
			t.Fatalf("unsigned input: %v, want ErrBadSignature", err)
		}
		// Signed now: never a signature error.
		ev, err = p.ParseWebhook(header(s.Sign(body, now)), body, now)
		switch {
		case errors.Is(err, payments.ErrBadSignature):
			t.Fatalf("a correct signature refused: %v", err)
		case err != nil && !errors.Is(err, payments.ErrInvalidEvent):
			t.Fatalf("error %v is neither kind", err)
		case err == nil && ev.Kind != payments.Ignored:
			// Refunds and disputes may lack metadata: they name the payment.
			byPayment := ev.Kind == payments.Refunded || ev.Kind == payments.Disputed
			if ev.ID == "" || (payments.ValidAccount(ev.Account) != nil && !(byPayment && ev.Account == "")) || (byPayment && ev.PaymentRef == "") {
				t.Fatalf("event %+v without a valid account, payment or id", ev)
			}
			if ev.Amount < 0 || ev.Amount%money.Cent != 0 || ev.Total < 0 || ev.Total%money.Cent != 0 {
				t.Fatalf("event %+v with a bad amount", ev)
			}
		}
	})
}
