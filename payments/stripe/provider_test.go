package stripe_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/testing/stripestub"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/stripe"
)

// New names the config key of each problem, all at once, and never echoes a secret.
func TestNewRefusesBadConfig(t *testing.T) {
	good := stripe.Config{SecretKey: "sk_test_abc", WebhookSecret: "whsec_abc"}
	if _, err := stripe.New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name   string
		change func(*stripe.Config)
		want   []string
	}{
		{"publishable key", func(c *stripe.Config) { c.SecretKey = "pk_test_SECRETVALUE" }, []string{"payments.stripe.secret_key"}},
		{"no webhook secret", func(c *stripe.Config) { c.WebhookSecret = "" }, []string{"payments.stripe.webhook_secret"}},
		{"http to a remote host", func(c *stripe.Config) { c.APIBase = "http://api.stripe.com" }, []string{"payments.stripe.api_base", "loopback"}},
		{"a path", func(c *stripe.Config) { c.APIBase = "https://api.stripe.com/v1" }, []string{"payments.stripe.api_base", "without a path"}},
		{"zero-decimal currency", func(c *stripe.Config) { c.Currency = "jpy" }, []string{"payments.currency", "zero-decimal"}},
		{"everything", func(c *stripe.Config) {
			*c = stripe.Config{SecretKey: "SECRETVALUE", WebhookSecret: "SECRETVALUE", APIBase: "ftp://x", Currency: "kwd"}
		},
			[]string{"secret_key", "webhook_secret", "api_base", "currency"}},
	}
	for _, tt := range tests {
		cfg := good
		tt.change(&cfg)
		_, err := stripe.New(cfg)
		if !errors.Is(err, payments.ErrInvalid) {
			t.Errorf("%s: New = %v, want ErrInvalid", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not mention %q", tt.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("%s: the error shows the secret: %v", tt.name, err)
		}
	}
	for _, base := range []string{"http://127.0.0.1:12111", "http://localhost:8080", "http://[::1]:9/", "https://stripe.internal.example"} {
		c := good
		c.APIBase = base
		if _, err := stripe.New(c); err != nil {
			t.Errorf("api_base %s: %v", base, err)
		}
	}
}

// The Checkout Session request carries what the SPEC says: mode payment, the
// account as client_reference_id and in metadata with the purchase (on the
// session and its PaymentIntent), one line item of the amount in cents, the
// customer, and setup_future_usage only with the customer's consent.
func TestStartCheckoutRequest(t *testing.T) {
	for _, consent := range []bool{true, false} {
		s := stripestub.New(t, stripestub.Options{})
		p := newProvider(t, s)
		purchase := "pur_consent"
		if !consent {
			purchase = "pur_no_consent"
		}
		cs := checkout(t, p, purchase, consent)

		customers := s.Customers()
		if len(customers) != 1 || customers[0].Metadata["creditgate_account"] != "acme" || cs.CustomerID != customers[0].ID {
			t.Fatalf("customers %+v, session customer %q", customers, cs.CustomerID)
		}
		reqs := s.RequestsTo(http.MethodPost, "/v1/checkout/sessions")
		if len(reqs) != 1 {
			t.Fatalf("%d session requests", len(reqs))
		}
		r := reqs[0]
		want := map[string]string{
			"mode":                          "payment",
			"client_reference_id":           "acme",
			"customer":                      cs.CustomerID,
			"metadata[creditgate_account]":  "acme",
			"metadata[creditgate_purchase]": purchase,
			"payment_intent_data[metadata][creditgate_account]":  "acme",
			"payment_intent_data[metadata][creditgate_purchase]": purchase,
			"line_items[0][quantity]":                            "1",
			"line_items[0][price_data][currency]":                "usd",
			"line_items[0][price_data][unit_amount]":             "1000",
			"line_items[0][price_data][product_data][name]":      "creditgate credit",
			"success_url": "https://shop.example/billing/?paid={CHECKOUT_SESSION_ID}",
			"cancel_url":  "https://shop.example/billing/",
		}
		if consent {
			want["payment_intent_data[setup_future_usage]"] = "off_session"
		}
		for k, v := range want {
			if got := r.Form.Get(k); got != v {
				t.Errorf("consent=%v: %s = %q, want %q", consent, k, got, v)
			}
		}
		if !consent && r.Form.Has("payment_intent_data[setup_future_usage]") {
			t.Errorf("setup_future_usage sent without consent: %q", r.Form.Get("payment_intent_data[setup_future_usage]"))
		}
		if r.Form.Has("ui_mode") {
			t.Errorf("ui_mode sent (%q): dahlia renamed its values; the default hosted page is what we want", r.Form.Get("ui_mode"))
		}
		if r.IdempotencyKey != "creditgate-checkout-"+purchase || r.StripeVersion != stripe.APIVersion {
			t.Errorf("Idempotency-Key %q, Stripe-Version %q", r.IdempotencyKey, r.StripeVersion)
		}
		session, _ := s.CheckoutSession(cs.ID)
		if cs.URL == "" || cs.URL != *session.URL || cs.ExpiresAt.Unix() != session.ExpiresAt || time.Until(cs.ExpiresAt) < 23*time.Hour {
			t.Errorf("session %+v, stand-in has %+v", cs, session)
		}

		// Starting the same purchase again returns the same session.
		again := checkout(t, p, purchase, consent)
		if again.ID != cs.ID || len(s.CheckoutSessions()) != 1 || len(s.Customers()) != 1 {
			t.Errorf("second start: %s (first %s), %d sessions, %d customers", again.ID, cs.ID, len(s.CheckoutSessions()), len(s.Customers()))
		}
	}
}

// What is wrong with the request is refused before anything is sent.
func TestStartCheckoutRefusesBadRequests(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	ctx := context.Background()
	for _, c := range []payments.Checkout{
		{PurchaseID: "pur_1", Account: "acme", Amount: usd("10.001"), SuccessURL: "https://x.example/", CancelURL: "https://x.example/"},
		{PurchaseID: "pur_1", Account: "acme", Amount: 0, SuccessURL: "https://x.example/", CancelURL: "https://x.example/"},
		{PurchaseID: "", Account: "acme", Amount: usd("10"), SuccessURL: "https://x.example/", CancelURL: "https://x.example/"},
		{PurchaseID: "pur_1", Account: "ac'me", Amount: usd("10"), SuccessURL: "https://x.example/", CancelURL: "https://x.example/"},
	} {
		if _, err := p.StartCheckout(ctx, c); !errors.Is(err, payments.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", c, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// A checkout's life, as the webhook handler sees it: paid at once (with or
// without saving the card), pending then paid or failed, or expired.
func TestCheckoutEvents(t *testing.T) {
	tests := []struct {
		name    string
		save    bool
		play    func(s *stripestub.Server, id string) ([]stripestub.Event, error)
		want    []payments.EventKind
		settled func(s *stripestub.Server, id string) ([]stripestub.Event, error)
		later   []payments.EventKind
	}{
		{name: "paid, card saved", save: true,
			play: func(s *stripestub.Server, id string) ([]stripestub.Event, error) {
				return s.CompleteCheckout(id, stripestub.Pay{})
			},
			want: []payments.EventKind{payments.CardSaved, payments.CheckoutPaid}},
		{name: "paid, card not saved",
			play: func(s *stripestub.Server, id string) ([]stripestub.Event, error) {
				return s.CompleteCheckout(id, stripestub.Pay{})
			},
			want: []payments.EventKind{payments.CheckoutPaid}},
		{name: "async, succeeded", save: true,
			play: func(s *stripestub.Server, id string) ([]stripestub.Event, error) {
				return s.CompleteCheckout(id, stripestub.Pay{Async: true})
			},
			want:    []payments.EventKind{payments.CheckoutPending},
			settled: func(s *stripestub.Server, id string) ([]stripestub.Event, error) { return s.SettleCheckout(id, true) },
			later:   []payments.EventKind{payments.CardSaved, payments.CheckoutPaid}},
		{name: "async, failed",
			play: func(s *stripestub.Server, id string) ([]stripestub.Event, error) {
				return s.CompleteCheckout(id, stripestub.Pay{Async: true})
			},
			want:    []payments.EventKind{payments.CheckoutPending},
			settled: func(s *stripestub.Server, id string) ([]stripestub.Event, error) { return s.SettleCheckout(id, false) },
			later:   []payments.EventKind{payments.CheckoutFailed}},
		{name: "expired",
			play: func(s *stripestub.Server, id string) ([]stripestub.Event, error) { return s.ExpireCheckout(id) },
			want: []payments.EventKind{payments.CheckoutExpired}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stripestub.New(t, stripestub.Options{})
			p := newProvider(t, s)
			cs := checkout(t, p, "pur_"+strings.NewReplacer(" ", "", ",", "_").Replace(tt.name), tt.save)
			raw, err := tt.play(s, cs.ID)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s, p, cs, parseAll(t, p, raw), tt.want)
			if tt.settled != nil {
				raw, err := tt.settled(s, cs.ID)
				if err != nil {
					t.Fatal(err)
				}
				check(t, s, p, cs, parseAll(t, p, raw), tt.later)
			}
		})
	}
}

// check compares the parsed events of one checkout with the stand-in's objects.
func check(t *testing.T, s *stripestub.Server, p *stripe.Provider, cs payments.CheckoutSession, got []payments.Event, want []payments.EventKind) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events %+v, want kinds %v", got, want)
	}
	session, _ := s.CheckoutSession(cs.ID)
	for i, ev := range got {
		if ev.Kind != want[i] {
			t.Errorf("event %d is %s, want %s", i, ev.Kind, want[i])
		}
		if ev.Account != "acme" || !strings.HasPrefix(ev.PurchaseID, "pur_") || ev.CustomerID != cs.CustomerID || ev.ID == "" || ev.Created.IsZero() || ev.Livemode {
			t.Errorf("%s: ids %+v", ev.Kind, ev)
		}
		switch ev.Kind {
		case payments.CheckoutPaid, payments.CheckoutPending, payments.CheckoutFailed:
			if ev.Amount != usd("10.00") || ev.CheckoutID != cs.ID || session.PaymentIntent == nil || ev.PaymentRef != *session.PaymentIntent {
				t.Errorf("%s: %+v (session %+v)", ev.Kind, ev, session)
			}
		case payments.CheckoutExpired:
			if ev.CheckoutID != cs.ID || ev.PaymentRef != cs.ID {
				t.Errorf("expired: %+v", ev)
			}
		case payments.CardSaved:
			pm := s.PaymentMethods()[0]
			if ev.PaymentMethodID != pm.ID || pm.Customer == nil || *pm.Customer != cs.CustomerID || ev.PaymentRef != *session.PaymentIntent {
				t.Errorf("card saved: %+v, payment method %+v", ev, pm)
			}
		}
	}
}

// One customer per account, whatever the retries and races: the creation's
// idempotency key covers the time search cannot see a new customer yet, and
// search covers the time after the key is forgotten.
func TestEnsureCustomerOnce(t *testing.T) {
	ctx := context.Background()
	t.Run("retries", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{SearchLag: time.Hour})
		p := newProvider(t, s)
		first, err := p.EnsureCustomer(ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if id, err := p.EnsureCustomer(ctx, "acme", ""); err != nil || id != first {
				t.Errorf("again: %q %v, want %q", id, err, first)
			}
		}
		if n := len(s.Customers()); n != 1 {
			t.Errorf("%d customers", n)
		}
		creates := s.RequestsTo(http.MethodPost, "/v1/customers")
		if len(creates) != 4 || creates[0].IdempotencyKey != "creditgate-customer-acme" || !creates[3].Replayed {
			t.Errorf("creation requests %+v", creates)
		}
		other, err := p.EnsureCustomer(ctx, "globex", "")
		if err != nil || other == first || len(s.Customers()) != 2 {
			t.Errorf("second account: %q %v", other, err)
		}
	})
	t.Run("races", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{SearchLag: time.Hour, Latency: 30 * time.Millisecond})
		p := newProvider(t, s)
		ids := make([]string, 8)
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i], errs[i] = p.EnsureCustomer(ctx, "acme", "")
			}()
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Errorf("caller %d: %q %v, caller 0 got %q", i, ids[i], errs[i], ids[0])
			}
		}
		if n := len(s.Customers()); n != 1 {
			t.Errorf("%d customers after a race", n)
		}
		inUse := 0
		for _, r := range s.RequestsTo(http.MethodPost, "/v1/customers") {
			if r.Status == http.StatusConflict {
				inUse++
			}
		}
		if inUse == 0 {
			t.Error("no request met a key in use: the race did not happen")
		}
	})
	t.Run("after the key is forgotten", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{})
		p := newProvider(t, s)
		first, err := p.EnsureCustomer(ctx, "acme", "")
		if err != nil {
			t.Fatal(err)
		}
		s.ForgetIdempotencyKeys()
		if id, err := p.EnsureCustomer(ctx, "acme", ""); err != nil || id != first || len(s.Customers()) != 1 {
			t.Errorf("after 24 h: %q %v, %d customers", id, err, len(s.Customers()))
		}
	})
	t.Run("email", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{})
		p := newProvider(t, s)
		id, err := p.EnsureCustomer(ctx, "acme", "ops@acme.example")
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Customer(id); c.Email == nil || *c.Email != "ops@acme.example" {
			t.Errorf("customer %+v", c)
		}
		if _, err := p.EnsureCustomer(ctx, "acme", "ops@acme.example"); err != nil {
			t.Fatal(err)
		}
		if n := len(s.RequestsTo(http.MethodPost, "/v1/customers/"+id)); n != 1 {
			t.Errorf("%d email updates, want 1 (the second call has nothing to change)", n)
		}
	})
}

// Off-session charges: success, declines and authentication as results; the
// request as the SPEC says; and the matching webhook events.
func TestChargeSaved(t *testing.T) {
	tests := []struct {
		outcome     stripestub.ChargeOutcome
		status      payments.ChargeStatus
		declineCode string
		reason      string
		event       payments.EventKind
	}{
		{stripestub.Succeed, payments.ChargeSucceeded, "", "", payments.RechargeSucceeded},
		{stripestub.DeclineGeneric, payments.ChargeDeclined, "generic_decline", "Your card was declined.", payments.RechargeFailed},
		{stripestub.DeclineInsufficient, payments.ChargeDeclined, "insufficient_funds", "Your card has insufficient funds.", payments.RechargeFailed},
		{stripestub.RequiresAuthentication, payments.ChargeRequiresAction, "authentication_required", "Your card was declined. This transaction requires authentication.", payments.RechargeFailed},
	}
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	ctx := context.Background()
	cs, _ := paidCheckout(t, s, p, "pur_card")
	card, err := p.PaymentMethod(ctx, cs.CustomerID)
	if err != nil || card == nil {
		t.Fatalf("saved card: %v %v", card, err)
	}
	for i, tt := range tests {
		s.NextCharges(tt.outcome)
		before := len(s.Events())
		c := payments.Charge{ID: "rc_" + string(rune('a'+i)), Account: "acme", CustomerID: cs.CustomerID, PaymentMethodID: card.ID, Amount: usd("5.00")}
		res, err := p.ChargeSaved(ctx, c)
		if err != nil {
			t.Fatalf("%+v: %v", tt.outcome, err)
		}
		if res.Status != tt.status || res.DeclineCode != tt.declineCode || res.Reason != tt.reason || !strings.HasPrefix(res.PaymentRef, "pi_") {
			t.Errorf("%+v: %+v", tt.outcome, res)
		}
		r := s.RequestsTo(http.MethodPost, "/v1/payment_intents")[i]
		for k, v := range map[string]string{
			"amount": "500", "currency": "usd", "customer": cs.CustomerID, "payment_method": card.ID,
			"confirm": "true", "off_session": "true", "metadata[creditgate_account]": "acme", "metadata[creditgate_recharge]": c.ID,
			"automatic_payment_methods[allow_redirects]": "never",
		} {
			if got := r.Form.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", c.ID, k, got, v)
			}
		}
		if r.IdempotencyKey != c.ID {
			t.Errorf("Idempotency-Key %q, want the recharge id %q", r.IdempotencyKey, c.ID)
		}
		events := parseAll(t, p, s.Events()[before:])
		if len(events) != 1 || events[0].Kind != tt.event || events[0].RechargeID != c.ID || events[0].Account != "acme" ||
			events[0].Amount != usd("5.00") || events[0].PaymentRef != res.PaymentRef || events[0].DeclineCode != tt.declineCode {
			t.Errorf("%s: events %+v, want one %s", c.ID, events, tt.event)
		}
	}

	// Processing: the answer says so, and the webhook settles it.
	s.NextCharges(stripestub.Processing)
	res, err := p.ChargeSaved(ctx, payments.Charge{ID: "rc_slow", Account: "acme", CustomerID: cs.CustomerID, PaymentMethodID: card.ID, Amount: usd("5.00")})
	if err != nil || res.Status != payments.ChargeProcessing {
		t.Fatalf("processing: %+v %v", res, err)
	}
	raw, err := s.SettlePaymentIntent(res.PaymentRef, true)
	if err != nil {
		t.Fatal(err)
	}
	if events := parseAll(t, p, raw); len(events) != 1 || events[0].Kind != payments.RechargeSucceeded || events[0].RechargeID != "rc_slow" {
		t.Errorf("settled: %+v", events)
	}

	// A request Stripe refuses is ErrRejected, not a decline.
	_, err = p.ChargeSaved(ctx, payments.Charge{ID: "rc_nocard", Account: "acme", CustomerID: cs.CustomerID, PaymentMethodID: "pm_gone", Amount: usd("5.00")})
	if !isRejected(err) || !strings.Contains(err.Error(), "resource_missing") {
		t.Errorf("missing payment method: %v, want ErrRejected resource_missing", err)
	}
}

// A lost answer: the charge ran, the reply never came. Resent with the same
// recharge id (by the library's own retry, or by the caller after an error), it
// is one PaymentIntent and one charge, and the same result, declines included.
func TestChargeSavedLostReply(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		outcome stripestub.ChargeOutcome
		status  payments.ChargeStatus
	}{
		{"succeeded", stripestub.Succeed, payments.ChargeSucceeded},
		{"declined", stripestub.DeclineInsufficient, payments.ChargeDeclined},
	} {
		t.Run(tt.name+", library retry", func(t *testing.T) {
			s := stripestub.New(t, stripestub.Options{})
			p := newProvider(t, s, freshConnections)
			c := savedCharge(t, s, p, "rc_lost")
			s.NextCharges(tt.outcome)
			s.DropReplies(http.MethodPost, "/v1/payment_intents", 1)
			res, err := p.ChargeSaved(ctx, c)
			if err != nil || res.Status != tt.status {
				t.Fatalf("%+v %v", res, err)
			}
			onePaymentIntent(t, s, res.PaymentRef, 2)
		})
		t.Run(tt.name+", caller retry", func(t *testing.T) {
			s := stripestub.New(t, stripestub.Options{})
			p := newProvider(t, s, noRetries, freshConnections)
			c := savedCharge(t, s, p, "rc_lost")
			s.NextCharges(tt.outcome)
			s.DropReplies(http.MethodPost, "/v1/payment_intents", 1)
			if res, err := p.ChargeSaved(ctx, c); err == nil || isRejected(err) {
				t.Fatalf("lost reply: %+v %v, want a transient error", res, err)
			}
			res, err := p.ChargeSaved(ctx, c)
			if err != nil || res.Status != tt.status {
				t.Fatalf("retry: %+v %v", res, err)
			}
			onePaymentIntent(t, s, res.PaymentRef, 2)
		})
	}
	t.Run("same id, other amount", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{})
		p := newProvider(t, s)
		c := savedCharge(t, s, p, "rc_1")
		if _, err := p.ChargeSaved(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.Amount = usd("6.00")
		if _, err := p.ChargeSaved(ctx, c); !isRejected(err) || !strings.Contains(err.Error(), "idempotency_error") {
			t.Errorf("reused id: %v, want ErrRejected idempotency_error", err)
		}
		if n := len(rechargeIntents(s)); n != 1 {
			t.Errorf("%d off-session PaymentIntents", n)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		s := stripestub.New(t, stripestub.Options{})
		p := newProvider(t, s, noRetries)
		c := savedCharge(t, s, p, "rc_1")
		s.FailRequests(http.MethodPost, "/v1/payment_intents", 1, http.StatusInternalServerError)
		if _, err := p.ChargeSaved(ctx, c); err == nil || isRejected(err) || !strings.Contains(err.Error(), "api_error") {
			t.Fatalf("500: %v, want a transient api_error", err)
		}
		if res, err := p.ChargeSaved(ctx, c); err != nil || res.Status != payments.ChargeSucceeded {
			t.Fatalf("retry after a 500: %+v %v", res, err)
		}
		if n := len(rechargeIntents(s)); n != 1 {
			t.Errorf("%d off-session PaymentIntents", n)
		}
	})
}

// savedCharge is a $5 charge of a card saved by a paid checkout.
func savedCharge(t *testing.T, s *stripestub.Server, p *stripe.Provider, id string) payments.Charge {
	t.Helper()
	cs, _ := paidCheckout(t, s, p, "pur_for_"+id)
	card, err := p.PaymentMethod(context.Background(), cs.CustomerID)
	if err != nil || card == nil {
		t.Fatalf("card: %v %v", card, err)
	}
	return payments.Charge{ID: id, Account: "acme", CustomerID: cs.CustomerID, PaymentMethodID: card.ID, Amount: usd("5.00")}
}

// onePaymentIntent checks that the charge made one PaymentIntent (besides the
// checkout's) in requests requests.
func onePaymentIntent(t *testing.T, s *stripestub.Server, ref string, requests int) {
	t.Helper()
	offSession := rechargeIntents(s)
	if len(offSession) != 1 || offSession[0].ID != ref {
		t.Errorf("off-session PaymentIntents %+v, want one (%s)", offSession, ref)
	}
	reqs := s.RequestsTo(http.MethodPost, "/v1/payment_intents")
	if len(reqs) != requests || reqs[0].Status != 0 || !reqs[len(reqs)-1].Replayed {
		t.Errorf("requests %+v, want %d: a dropped one, then a replay", reqs, requests)
	}
	charges := 0
	for _, ch := range s.Charges() {
		if ch.PaymentIntent == ref {
			charges++
		}
	}
	if charges > 1 {
		t.Errorf("%d charges of %s", charges, ref)
	}
}

// rechargeIntents are the off-session PaymentIntents (not the checkouts').
func rechargeIntents(s *stripestub.Server) []stripestub.PaymentIntent {
	var out []stripestub.PaymentIntent
	for _, pi := range s.PaymentIntents() {
		if pi.Metadata["creditgate_recharge"] != "" {
			out = append(out, pi)
		}
	}
	return out
}

// Refunds give the cumulative amount refunded; disputes the disputed amount and
// reason; both name the payment (and, for refunds, the purchase or recharge).
func TestRefundsAndDisputes(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	ctx := context.Background()
	cs, events := paidCheckout(t, s, p, "pur_refund")
	paid := events[len(events)-1]
	if paid.Kind != payments.CheckoutPaid {
		t.Fatalf("events %+v", events)
	}
	for _, step := range []struct {
		cents int64
		want  string
	}{{300, "3.00"}, {0, "10.00"}} {
		raw, err := s.Refund(paid.PaymentRef, step.cents)
		if err != nil {
			t.Fatal(err)
		}
		got := parseAll(t, p, raw)
		if len(got) != 1 || got[0].Kind != payments.Refunded || got[0].Amount != usd(step.want) || got[0].Total != usd("10.00") ||
			got[0].PaymentRef != paid.PaymentRef || got[0].PurchaseID != "pur_refund" || got[0].Account != "acme" || got[0].CustomerID != cs.CustomerID ||
			!strings.HasPrefix(got[0].ChargeID, "ch_") {
			t.Errorf("refund to %s: %+v", step.want, got)
		}
	}

	card, _ := p.PaymentMethod(ctx, cs.CustomerID)
	res, err := p.ChargeSaved(ctx, payments.Charge{ID: "rc_disputed", Account: "acme", CustomerID: cs.CustomerID, PaymentMethodID: card.ID, Amount: usd("25.00")})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Refund(res.PaymentRef, 500)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseAll(t, p, raw); len(got) != 1 || got[0].RechargeID != "rc_disputed" || got[0].Amount != usd("5.00") || got[0].Total != usd("25.00") {
		t.Errorf("recharge refund: %+v", got)
	}
	raw, err = s.Dispute(res.PaymentRef, 2000, "fraudulent")
	if err != nil {
		t.Fatal(err)
	}
	got := parseAll(t, p, raw)
	if len(got) != 1 || got[0].Kind != payments.Disputed || got[0].Amount != usd("20.00") || got[0].Reason != "fraudulent" ||
		got[0].PaymentRef != res.PaymentRef || !strings.HasPrefix(got[0].ChargeID, "ch_") {
		t.Errorf("dispute: %+v", got)
	}
}

// The card on file, for display: none before a saved card, the saved card after,
// and the customer's default payment method when one is set.
func TestPaymentMethodDisplay(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	ctx := context.Background()
	noCard := checkout(t, p, "pur_nocard", false)
	if _, err := s.CompleteCheckout(noCard.ID, stripestub.Pay{}); err != nil {
		t.Fatal(err)
	}
	if card, err := p.PaymentMethod(ctx, noCard.CustomerID); err != nil || card != nil {
		t.Errorf("without consent: %v %v, want no card", card, err)
	}
	cs, _ := paidCheckout(t, s, p, "pur_card")
	card, err := p.PaymentMethod(ctx, cs.CustomerID)
	if err != nil || card == nil {
		t.Fatalf("saved: %v %v", card, err)
	}
	if card.String() != "Visa •••• 4242" || card.Expiry() != "12/2034" || !strings.HasPrefix(card.ID, "pm_") {
		t.Errorf("card %+v shows as %q %s", card, card.String(), card.Expiry())
	}
	mc, err := s.AttachCard(cs.CustomerID, stripestub.CardDetails{Brand: "mastercard", Last4: "4444", ExpMonth: 2, ExpYear: 2031})
	if err != nil {
		t.Fatal(err)
	}
	if card, _ := p.PaymentMethod(ctx, cs.CustomerID); card == nil || card.ID != mc {
		t.Errorf("newest card: %+v, want %s", card, mc)
	}
	first := s.PaymentMethods()[1].ID // the checkout's Visa
	if err := s.SetDefaultPaymentMethod(cs.CustomerID, first); err != nil {
		t.Fatal(err)
	}
	if card, _ := p.PaymentMethod(ctx, cs.CustomerID); card == nil || card.ID != first || card.String() != "Visa •••• 4242" {
		t.Errorf("default card: %+v, want %s", card, first)
	}
	if _, err := p.PaymentMethod(ctx, "cus_nobody"); !isRejected(err) {
		t.Errorf("unknown customer: %v, want ErrRejected", err)
	}
}

// The receipt of a paid purchase is its charge's receipt_url.
func TestReceiptURL(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	p := newProvider(t, s)
	_, events := paidCheckout(t, s, p, "pur_receipt")
	url, err := p.ReceiptURL(context.Background(), events[len(events)-1].PaymentRef)
	ch := s.Charges()[0]
	if err != nil || ch.ReceiptURL == nil || url != *ch.ReceiptURL {
		t.Errorf("receipt %q %v, charge has %v", url, err, ch.ReceiptURL)
	}
}
