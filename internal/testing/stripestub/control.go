package stripestub

import (
	"fmt"
	"strings"
)

// The test's side: what the customer, the bank and the cardholder do. Each
// method returns the events it produced (already delivered to Options.WebhookURL
// when one is set).

// Pay is how the customer pays a checkout.
type Pay struct {
	// Async: the payment method settles later (a bank debit): the session
	// completes unpaid now and SettleCheckout decides.
	Async bool
	// Card overrides Options.Card for this payment.
	Card *CardDetails
}

// CompleteCheckout plays the customer paying checkout session id on Stripe's page.
// The card is saved to the customer when the session asked for it
// (payment_intent_data[setup_future_usage]); a session without a customer then
// gets a new one, as Checkout creates it.
func (s *Server) CompleteCheckout(id string, pay Pay) ([]Event, error) {
	return s.change(func() error {
		cs, err := s.openSession(id)
		if err != nil {
			return err
		}
		card := s.opts.Card
		if pay.Card != nil {
			card = *pay.Card
		}
		pm := &PaymentMethod{ID: newID("pm_"), Object: "payment_method", Type: "card", Card: card,
			Created: s.now().Unix(), Metadata: map[string]string{}}
		s.methods[pm.ID] = pm
		s.add(pm.ID)
		sfu := cs.PaymentIntentData.SetupFutureUsage
		if cs.Customer == nil && sfu != "" {
			c := &Customer{ID: newID("cus_"), Object: "customer", Created: s.now().Unix(), Email: cs.CustomerEmail, Metadata: map[string]string{}}
			s.customers[c.ID] = c
			s.add(c.ID)
			s.emit("customer.created", *c)
			cs.Customer = ptr(c.ID)
		}
		if sfu != "" {
			pm.Customer = ptr(*cs.Customer)
			s.emit("payment_method.attached", *pm)
		}
		pi := &PaymentIntent{ID: newID("pi_"), Object: "payment_intent", Amount: cs.AmountTotal, Currency: cs.Currency,
			Customer: cs.Customer, PaymentMethod: ptr(pm.ID), Metadata: copyMeta(cs.PaymentIntentData.Metadata), Created: s.now().Unix()}
		pi.ClientSecret = pi.ID + "_secret_" + randomHex(8)
		if sfu != "" {
			pi.SetupFutureUsage = ptr(sfu)
		}
		if d := cs.PaymentIntentData.Description; d != "" {
			pi.Description = ptr(d)
		}
		s.intents[pi.ID] = pi
		s.add(pi.ID)
		cs.Status, cs.URL, cs.PaymentIntent = "complete", nil, ptr(pi.ID)
		if pay.Async {
			pi.Status = "processing"
			s.emit("payment_intent.processing", *pi)
		} else {
			s.succeed(pi)
			cs.PaymentStatus = "paid"
		}
		s.emit("checkout.session.completed", *cs)
		return nil
	})
}

// SettleCheckout ends the delayed payment of a completed, unpaid session:
// checkout.session.async_payment_succeeded or …_failed.
func (s *Server) SettleCheckout(id string, succeeded bool) ([]Event, error) {
	return s.change(func() error {
		cs, found := s.sessions[id]
		if !found {
			return fmt.Errorf("stripestub: no checkout session %s", id)
		}
		if cs.Status != "complete" || cs.PaymentStatus != "unpaid" || cs.PaymentIntent == nil {
			return fmt.Errorf("stripestub: checkout session %s is %s/%s, not complete and awaiting payment", id, cs.Status, cs.PaymentStatus)
		}
		pi := s.intents[*cs.PaymentIntent]
		if succeeded {
			s.succeed(pi)
			cs.PaymentStatus = "paid"
			s.emit("checkout.session.async_payment_succeeded", *cs)
			return nil
		}
		s.fail(pi, "payment_intent_payment_attempt_failed", "", "The payment failed.")
		s.emit("checkout.session.async_payment_failed", *cs)
		return nil
	})
}

// ExpireCheckout ends an open session unpaid (checkout.session.expired), as
// Stripe does at expires_at or when the API expires it.
func (s *Server) ExpireCheckout(id string) ([]Event, error) {
	return s.change(func() error {
		cs, err := s.openSession(id)
		if err != nil {
			return err
		}
		s.expire(cs)
		return nil
	})
}

func (s *Server) expire(cs *CheckoutSession) {
	cs.Status, cs.URL = "expired", nil
	s.emit("checkout.session.expired", *cs)
}

func (s *Server) openSession(id string) (*CheckoutSession, error) {
	cs, found := s.sessions[id]
	if !found {
		return nil, fmt.Errorf("stripestub: no checkout session %s", id)
	}
	if cs.Status != "open" {
		return nil, fmt.Errorf("stripestub: checkout session %s is %s, not open", id, cs.Status)
	}
	return cs, nil
}

// SettlePaymentIntent ends a processing PaymentIntent (Processing outcome).
func (s *Server) SettlePaymentIntent(id string, succeeded bool) ([]Event, error) {
	return s.change(func() error {
		pi, found := s.intents[id]
		if !found {
			return fmt.Errorf("stripestub: no payment intent %s", id)
		}
		if pi.Status != "processing" {
			return fmt.Errorf("stripestub: payment intent %s is %s, not processing", id, pi.Status)
		}
		if succeeded {
			s.succeed(pi)
			return nil
		}
		s.fail(pi, DeclineInsufficient.Code, DeclineInsufficient.DeclineCode, DeclineInsufficient.Message)
		return nil
	})
}

// fail sends a PaymentIntent back to requires_payment_method with an error.
func (s *Server) fail(pi *PaymentIntent, code, declineCode, msg string) {
	pi.Status = "requires_payment_method"
	pi.LastPaymentError = &PaymentError{Type: "card_error", Code: code, DeclineCode: declineCode, Message: msg}
	s.emit("payment_intent.payment_failed", *pi)
}

// Refund gives back amount (minor units; 0: all that is left) of the succeeded
// charge of payment, a PaymentIntent or charge id: charge.refunded, whose charge
// carries the cumulative amount_refunded, and refund.created.
func (s *Server) Refund(payment string, amount int64) ([]Event, error) {
	return s.change(func() error {
		ch, err := s.chargeOf(payment)
		if err != nil {
			return err
		}
		left := ch.Amount - ch.AmountRefunded
		if amount == 0 {
			amount = left
		}
		if amount <= 0 || amount > left {
			return fmt.Errorf("stripestub: cannot refund %d of charge %s: %d left", amount, ch.ID, left)
		}
		re := &Refund{ID: newID("re_"), Object: "refund", Amount: amount, Charge: ch.ID, PaymentIntent: ch.PaymentIntent,
			Currency: ch.Currency, Status: "succeeded", Metadata: map[string]string{}, Created: s.now().Unix()}
		s.refunds[re.ID] = re
		s.add(re.ID)
		ch.AmountRefunded += amount
		ch.Refunded = ch.AmountRefunded == ch.Amount
		s.emit("refund.created", *re)
		s.emit("charge.refunded", *ch)
		return nil
	})
}

// Dispute opens a chargeback of amount (minor units; 0: the whole charge) of
// payment's charge for reason ("fraudulent", "product_not_received", …):
// charge.dispute.created.
func (s *Server) Dispute(payment string, amount int64, reason string) ([]Event, error) {
	return s.change(func() error {
		ch, err := s.chargeOf(payment)
		if err != nil {
			return err
		}
		if amount == 0 {
			amount = ch.Amount
		}
		if amount <= 0 || amount > ch.Amount {
			return fmt.Errorf("stripestub: cannot dispute %d of charge %s of %d", amount, ch.ID, ch.Amount)
		}
		dp := &Dispute{ID: newID("dp_"), Object: "dispute", Amount: amount, Charge: ch.ID, PaymentIntent: ch.PaymentIntent,
			Currency: ch.Currency, Reason: reason, Status: "needs_response", Metadata: map[string]string{}, Created: s.now().Unix()}
		s.disputes[dp.ID] = dp
		s.add(dp.ID)
		ch.Disputed = true
		s.emit("charge.dispute.created", *dp)
		return nil
	})
}

// chargeOf finds the succeeded charge of a PaymentIntent or charge id.
func (s *Server) chargeOf(payment string) (*Charge, error) {
	if strings.HasPrefix(payment, "pi_") {
		pi, found := s.intents[payment]
		if !found || pi.LatestCharge == nil {
			return nil, fmt.Errorf("stripestub: payment intent %s has no charge", payment)
		}
		payment = *pi.LatestCharge
	}
	ch, found := s.charges[payment]
	if !found || ch.Status != "succeeded" {
		return nil, fmt.Errorf("stripestub: no succeeded charge %s", payment)
	}
	return ch, nil
}

// SetDefaultPaymentMethod sets a customer's invoice_settings.default_payment_method,
// as the operator may in Stripe's dashboard.
func (s *Server) SetDefaultPaymentMethod(customer, pm string) error {
	_, err := s.change(func() error {
		c, found := s.customers[customer]
		if !found {
			return fmt.Errorf("stripestub: no customer %s", customer)
		}
		if m, found := s.methods[pm]; !found || m.Customer == nil || *m.Customer != customer {
			return fmt.Errorf("stripestub: customer %s has no payment method %s", customer, pm)
		}
		c.InvoiceSettings.DefaultPaymentMethod = pm
		return nil
	})
	return err
}

// AttachCard saves a new card to a customer (as a customer would on a setup page)
// and returns its payment-method id.
func (s *Server) AttachCard(customer string, card CardDetails) (string, error) {
	var id string
	_, err := s.change(func() error {
		if _, found := s.customers[customer]; !found {
			return fmt.Errorf("stripestub: no customer %s", customer)
		}
		pm := &PaymentMethod{ID: newID("pm_"), Object: "payment_method", Type: "card", Card: card,
			Customer: ptr(customer), Created: s.now().Unix(), Metadata: map[string]string{}}
		s.methods[pm.ID] = pm
		s.add(pm.ID)
		s.emit("payment_method.attached", *pm)
		id = pm.ID
		return nil
	})
	return id, err
}

// change runs f with s.mu held and returns the events it emitted, once delivered.
func (s *Server) change(f func() error) ([]Event, error) {
	s.mu.Lock()
	before := len(s.events)
	err := f()
	s.mu.Unlock()
	events := s.eventsSince(before)
	s.Flush()
	return events, err
}

// Snapshots of the state, for assertions.

// Customers returns every customer, oldest first.
func (s *Server) Customers() []Customer { return snapshot(s, s.customers) }

// CheckoutSessions returns every checkout session, oldest first.
func (s *Server) CheckoutSessions() []CheckoutSession { return snapshot(s, s.sessions) }

// PaymentIntents returns every PaymentIntent, oldest first.
func (s *Server) PaymentIntents() []PaymentIntent { return snapshot(s, s.intents) }

// Charges returns every charge, oldest first.
func (s *Server) Charges() []Charge { return snapshot(s, s.charges) }

// PaymentMethods returns every payment method, oldest first.
func (s *Server) PaymentMethods() []PaymentMethod { return snapshot(s, s.methods) }

// CheckoutSession returns one session.
func (s *Server) CheckoutSession(id string) (CheckoutSession, bool) { return one(s, s.sessions, id) }

// PaymentIntent returns one PaymentIntent.
func (s *Server) PaymentIntent(id string) (PaymentIntent, bool) { return one(s, s.intents, id) }

// Customer returns one customer.
func (s *Server) Customer(id string) (Customer, bool) { return one(s, s.customers, id) }

func snapshot[T any](s *Server, m map[string]*T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []T
	for _, id := range s.order {
		if v, found := m[id]; found {
			out = append(out, *v)
		}
	}
	return out
}

func one[T any](s *Server, m map[string]*T, id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, found := m[id]
	if !found {
		var zero T
		return zero, false
	}
	return *v, true
}
