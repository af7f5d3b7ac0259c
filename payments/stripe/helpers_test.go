package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/stripe"
)

var usd = money.MustParse

// newProvider is a Provider talking to the stand-in s.
func newProvider(t *testing.T, s *stripestub.Server, change ...func(*stripe.Config)) *stripe.Provider {
	t.Helper()
	cfg := stripe.Config{SecretKey: s.SecretKey, WebhookSecret: s.WebhookSecret, APIBase: s.URL}
	for _, f := range change {
		f(&cfg)
	}
	p, err := stripe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func noRetries(c *stripe.Config) { c.NetworkRetries = -1 }

// freshConnections opens a connection per request. Otherwise net/http itself
// resends a request carrying an Idempotency-Key when a reused connection dies
// without an answer, and a lost-reply test would not see which layer retried.
func freshConnections(c *stripe.Config) {
	c.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// parseAll parses the stand-in's events as the webhook handler would, now, and
// returns the ones creditgate acts on (not Ignored).
func parseAll(t *testing.T, p *stripe.Provider, events []stripestub.Event) []payments.Event {
	t.Helper()
	var out []payments.Event
	for _, e := range events {
		ev, err := p.ParseWebhook(e.Header(), e.Payload, time.Now())
		if err != nil {
			t.Fatalf("%s %s: %v", e.Type, e.ID, err)
		}
		if ev.ID != e.ID || ev.Type != e.Type {
			t.Errorf("%s %s parsed as %s %s", e.Type, e.ID, ev.Type, ev.ID)
		}
		if ev.Kind != payments.Ignored {
			out = append(out, ev)
		}
	}
	return out
}

// checkout starts a $10 purchase for acme.
func checkout(t *testing.T, p *stripe.Provider, purchase string, saveCard bool) payments.CheckoutSession {
	t.Helper()
	cs, err := p.StartCheckout(context.Background(), payments.Checkout{
		PurchaseID: purchase, Account: "acme", Amount: usd("10.00"), SaveCard: saveCard,
		SuccessURL: "https://shop.example/billing/?paid={CHECKOUT_SESSION_ID}", CancelURL: "https://shop.example/billing/",
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// paidCheckout is a completed $10 purchase whose card was saved.
func paidCheckout(t *testing.T, s *stripestub.Server, p *stripe.Provider, purchase string) (payments.CheckoutSession, []payments.Event) {
	t.Helper()
	cs := checkout(t, p, purchase, true)
	events, err := s.CompleteCheckout(cs.ID, stripestub.Pay{})
	if err != nil {
		t.Fatal(err)
	}
	return cs, parseAll(t, p, events)
}

func isRejected(err error) bool { return errors.Is(err, payments.ErrRejected) }
