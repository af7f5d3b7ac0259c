package purchase

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/internal/testing/stripestub"
)

// The whole flow against Stripe's stand-in: every event reaches the service
// through its webhook endpoint over real HTTP, signed by the library's test
// helper as Stripe signs them.

// TestPurchaseCreditedOnce: a purchase, its checkout paid on Stripe's page, the
// completed event through the webhook: the grant is credited once, with the
// PaymentIntent as its payment reference.
func TestPurchaseCreditedOnce(t *testing.T) {
	e := newStripeEnv(t)
	e.account(t, "acme")
	p := e.buy(t, "acme", "", "10.00", false)
	if got := e.seen.list(); len(got) != 1 || got[0] != "started stripe 10.000000" {
		t.Fatalf("observer after Start: %q", got)
	}
	sessions := e.stub.CheckoutSessions()
	if len(sessions) != 1 || sessions[0].Metadata["creditgate_purchase"] != p.ID || *sessions[0].ClientReferenceID != "acme" ||
		sessions[0].AmountTotal != 1000 || sessions[0].SuccessURL != "http://localhost:8080/billing/?purchase="+p.ID {
		t.Fatalf("checkout sessions %+v", sessions)
	}
	if customers := e.stub.Customers(); len(customers) != 1 || *sessions[0].Customer != customers[0].ID {
		t.Fatalf("customers %+v: want one, the session's", customers)
	}

	e.pay(t, p, stripestub.Pay{})
	a := e.get(t, "acme")
	if n, total := grants(a, billing.SourcePurchase); n != 1 || total != usd("10.00") || a.Balance() != usd("10.00") {
		t.Fatalf("after paying: %d grants of %s, balance %s", n, total, a.Balance())
	}
	got := e.purchase(t, "acme", p.ID)
	pi := e.stub.PaymentIntents()
	if got.Status != billing.PurchasePaid || got.PaidAmount != usd("10.00") || len(pi) != 1 || got.PaymentRef != pi[0].ID {
		t.Fatalf("purchase %+v, payment intents %+v", got, pi)
	}
	if e.seen.outcomes(Credited) != 1 {
		t.Fatalf("credited outcomes %d", e.seen.outcomes(Credited))
	}
	logged := e.logs.FilterMessage("payment event").FilterField(zap.String("outcome", "credited")).All()
	if len(logged) != 1 || logged[0].ContextMap()["purchase_id"] != p.ID || logged[0].ContextMap()["amount"] != "10.000000" {
		t.Fatalf("credit log lines %+v", logged)
	}
	e.audit(t, "acme")
}

// TestDuplicateAndOutOfOrderEvents: the same event twice (and re-signed, as
// Stripe's retries are), a second CheckoutPaid under another event id, and
// events that end a purchase arriving after it was paid: one grant, every
// delivery answered 2xx.
func TestDuplicateAndOutOfOrderEvents(t *testing.T) {
	e := newStripeEnv(t)
	e.account(t, "dup")
	p := e.buy(t, "dup", "", "25.00", false)
	events := e.pay(t, p, stripestub.Pay{})
	completed := event(t, events, "checkout.session.completed")

	again := e.stub.Resign(completed, time.Now())
	other := completed
	var body map[string]any
	if err := json.Unmarshal(completed.Payload, &body); err != nil {
		t.Fatal(err)
	}
	body["id"] = "evt_second_delivery_of_paid"
	other.Payload, _ = json.Marshal(body)
	other.Signature = e.stub.Sign(other.Payload, time.Now())
	expired := body
	expired["id"], expired["type"] = "evt_late_expiry", "checkout.session.expired"
	late, _ := json.Marshal(expired)

	for i, d := range []struct {
		name      string
		payload   []byte
		signature string
	}{
		{"the same event", completed.Payload, completed.Signature},
		{"re-signed", again.Payload, again.Signature},
		{"another event id", other.Payload, other.Signature},
		{"expired after paid", late, e.stub.Sign(late, time.Now())},
	} {
		if st := e.post(t, d.payload, d.signature); st != http.StatusOK {
			t.Fatalf("%d %s: HTTP %d, want 200", i, d.name, st)
		}
	}
	a := e.get(t, "dup")
	if n, total := grants(a, billing.SourcePurchase); n != 1 || total != usd("25.00") || a.Balance() != usd("25.00") {
		t.Fatalf("%d grants of %s, balance %s; want one of 25.00", n, total, a.Balance())
	}
	if got := e.purchase(t, "dup", p.ID); got.Status != billing.PurchasePaid {
		t.Fatalf("purchase %s after a late expiry", got.Status)
	}
	if n := e.seen.outcomes(Replayed); n != 4 {
		t.Fatalf("%d replayed outcomes, want 4", n)
	}
	e.audit(t, "dup")
}

// TestBadSignaturesCreditNothing: missing, wrong, tampered, stale and future
// signatures are answered 400 and credit nothing; the genuine event then credits.
func TestBadSignaturesCreditNothing(t *testing.T) {
	e := newStripeEnv(t, manualDelivery)
	e.account(t, "sig")
	p := e.buy(t, "sig", "", "10.00", false)
	events, err := e.stub.CompleteCheckout(p.CheckoutID, stripestub.Pay{})
	if err != nil {
		t.Fatal(err)
	}
	completed := event(t, events, "checkout.session.completed")
	tampered := []byte(strings.Replace(string(completed.Payload), `"amount_total": 1000`, `"amount_total": 100000`, 1))
	if string(tampered) == string(completed.Payload) {
		t.Fatal("the test did not tamper with the payload")
	}
	wrongSecret := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: completed.Payload, Secret: "whsec_someone_else", Timestamp: time.Now()}).Header
	tests := []struct {
		name      string
		payload   []byte
		signature string
	}{
		{"missing", completed.Payload, ""},
		{"malformed", completed.Payload, "v1=deadbeef"},
		{"wrong secret", completed.Payload, wrongSecret},
		{"tampered body", tampered, completed.Signature},
		{"stale (6 minutes old)", completed.Payload, e.stub.Sign(completed.Payload, time.Now().Add(-6*time.Minute))},
		{"from the future (6 minutes ahead)", completed.Payload, e.stub.Sign(completed.Payload, time.Now().Add(6*time.Minute))},
	}
	for _, tt := range tests {
		if st := e.post(t, tt.payload, tt.signature); st != http.StatusBadRequest {
			t.Errorf("%s signature: HTTP %d, want 400", tt.name, st)
		}
	}
	if a := e.get(t, "sig"); a.Balance() != 0 || len(a.Grants) != 0 {
		t.Fatalf("bad signatures credited: balance %s, grants %+v", a.Balance(), a.Grants)
	}
	if n := e.seen.outcomes(BadSig); n != len(tests) {
		t.Fatalf("%d bad_signature outcomes, want %d", n, len(tests))
	}
	if n := len(e.logs.FilterMessage("payment webhook: bad signature refused; nothing credited").All()); n != len(tests) {
		t.Fatalf("%d bad-signature log lines, want %d", n, len(tests))
	}
	for _, ev := range events {
		if st := e.deliver(t, ev); st != http.StatusOK {
			t.Fatalf("%s: HTTP %d", ev.Type, st)
		}
	}
	if a := e.get(t, "sig"); a.Balance() != usd("10.00") {
		t.Fatalf("the genuine event credited %s", a.Balance())
	}
}

// TestAsyncPayment: a checkout paid by a bank debit completes unpaid (nothing
// credited yet), then succeeds (credited once) or fails (the purchase fails).
func TestAsyncPayment(t *testing.T) {
	for _, succeeded := range []bool{true, false} {
		t.Run(map[bool]string{true: "succeeded", false: "failed"}[succeeded], func(t *testing.T) {
			e := newStripeEnv(t)
			e.account(t, "bank")
			p := e.buy(t, "bank", "", "50.00", false)
			e.pay(t, p, stripestub.Pay{Async: true})
			if a, got := e.get(t, "bank"), e.purchase(t, "bank", p.ID); a.Balance() != 0 || got.Status != billing.PurchasePending {
				t.Fatalf("before the debit settles: balance %s, purchase %s", a.Balance(), got.Status)
			}
			if e.seen.outcomes(Waiting) != 1 {
				t.Fatalf("waiting outcomes %d", e.seen.outcomes(Waiting))
			}
			if _, err := e.stub.SettleCheckout(p.CheckoutID, succeeded); err != nil {
				t.Fatal(err)
			}
			e.allDelivered(t)
			a, got := e.get(t, "bank"), e.purchase(t, "bank", p.ID)
			if succeeded {
				if a.Balance() != usd("50.00") || got.Status != billing.PurchasePaid {
					t.Fatalf("after success: balance %s, purchase %s", a.Balance(), got.Status)
				}
			} else if a.Balance() != 0 || got.Status != billing.PurchaseFailed || got.Reason == "" {
				t.Fatalf("after failure: balance %s, purchase %+v", a.Balance(), got)
			}
			e.audit(t, "bank")
		})
	}
}

// TestCheckoutExpired: an abandoned checkout expires the purchase.
func TestCheckoutExpired(t *testing.T) {
	e := newStripeEnv(t)
	e.account(t, "gone")
	p := e.buy(t, "gone", "", "10.00", false)
	if _, err := e.stub.ExpireCheckout(p.CheckoutID); err != nil {
		t.Fatal(err)
	}
	e.allDelivered(t)
	if got := e.purchase(t, "gone", p.ID); got.Status != billing.PurchaseExpired {
		t.Fatalf("purchase %s, want expired", got.Status)
	}
	if got := e.seen.list(); got[len(got)-1] != "ended stripe expired 0.000000" {
		t.Fatalf("observer %q", got)
	}
}

// TestStartIdempotentAndLimited: starting the same purchase id again returns
// the same checkout (one session, one customer at Stripe); other details under
// the same id conflict; the ledger's limits refuse before Stripe is called.
func TestStartIdempotentAndLimited(t *testing.T) {
	e := newStripeEnv(t)
	e.account(t, "idem")
	first := e.buy(t, "idem", "pur_fixed", "10.00", true)
	st, err := e.svc.Start(e.ctx, StartRequest{Account: "idem", ID: "pur_fixed", Amount: usd("10.00"), SaveCard: true, Actor: "test"})
	if err != nil || !st.Replayed || st.Purchase.CheckoutURL != first.CheckoutURL || st.Purchase.CheckoutID != first.CheckoutID {
		t.Fatalf("second start: %+v %v; want the first checkout, replayed", st, err)
	}
	if n, c := len(e.stub.CheckoutSessions()), len(e.stub.Customers()); n != 1 || c != 1 {
		t.Fatalf("%d sessions and %d customers at Stripe, want 1 and 1", n, c)
	}
	if _, err := e.svc.Start(e.ctx, StartRequest{Account: "idem", ID: "pur_fixed", Amount: usd("20.00"), SaveCard: true, Actor: "test"}); !errors.Is(err, billing.ErrIdempotencyConflict) {
		t.Fatalf("same id, other amount: %v, want ErrIdempotencyConflict", err)
	}
	// A second purchase reuses the account's customer.
	e.buy(t, "idem", "", "5.00", false)
	if c := len(e.stub.Customers()); c != 1 {
		t.Fatalf("%d customers after a second purchase", c)
	}

	before := len(e.stub.Requests())
	for _, tt := range []struct {
		amount string
		want   error
	}{
		{"4.99", billing.ErrBelowMinimum},
		{"100.01", billing.ErrAboveMaxTopUp},
	} {
		_, err := e.svc.Start(e.ctx, StartRequest{Account: "idem", Amount: usd(tt.amount)})
		var limit *billing.LimitError
		if !errors.As(err, &limit) || !errors.Is(err, tt.want) {
			t.Errorf("Start(%s) = %v, want a LimitError for %v", tt.amount, err, tt.want)
		}
	}
	for _, amount := range []string{"10.005", "0"} {
		if _, err := e.svc.Start(e.ctx, StartRequest{Account: "idem", Amount: usd(amount)}); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("Start(%s) = %v, want ErrInvalid", amount, err)
		}
	}
	if after := len(e.stub.Requests()); after != before {
		t.Fatalf("refused starts sent %d requests to Stripe", after-before)
	}
}

// savedCard makes account's first purchase with the card saved, so that
// auto-recharge can charge it, and turns auto-recharge on (below 5.00 buy
// 10.00, 100.00 a month).
func (e *stripeEnv) savedCard(t *testing.T, account string) {
	t.Helper()
	e.account(t, account)
	p := e.buy(t, account, "", "6.00", true)
	e.pay(t, p, stripestub.Pay{})
	profile, err := e.purchases.GetPaymentProfile(e.ctx, account)
	methods := e.stub.PaymentMethods()
	if err != nil || profile.Provider != "stripe" || len(methods) != 1 || profile.PaymentMethodID != methods[0].ID || profile.CustomerID != *methods[0].Customer {
		t.Fatalf("payment profile %+v %v; stand-in's methods %+v", profile, err, methods)
	}
	if err := e.store.SetAutoRecharge(e.ctx, account, billing.AutoRecharge{Enabled: true, Threshold: usd("5.00"), Amount: usd("10.00"), MonthlyLimit: usd("100.00")}); err != nil {
		t.Fatal(err)
	}
}

// recharge spends 2.00 of the 6.00, which starts a recharge, and performs it.
func (e *stripeEnv) recharge(t *testing.T, account string) string {
	t.Helper()
	s := e.spend(t, account, "h-"+account, usd("2.00"))
	if s.RechargeID == "" {
		t.Fatal("no recharge started")
	}
	e.worker.PerformRecharge(e.ctx, account, s.RechargeID)
	e.allDelivered(t)
	return s.RechargeID
}

// TestAutoRechargeWithSavedCard: the card saved at the first purchase pays
// auto-recharges off-session; each outcome of Stripe's answer does what it says.
func TestAutoRechargeWithSavedCard(t *testing.T) {
	t.Run("succeeds", func(t *testing.T) {
		e := newStripeEnv(t)
		e.savedCard(t, "ok")
		id := e.recharge(t, "ok")
		a := e.get(t, "ok")
		if n, total := grants(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || a.Balance() != usd("14.00") || a.Recharge.Pending != "" {
			t.Fatalf("%d recharge grants of %s, balance %s, %+v", n, total, a.Balance(), a.Recharge)
		}
		reqs := e.stub.RequestsTo(http.MethodPost, "/v1/payment_intents")
		if len(reqs) != 1 || reqs[0].IdempotencyKey != id || reqs[0].Form.Get("off_session") != "true" || reqs[0].Form.Get("amount") != "1000" ||
			reqs[0].Form.Get("metadata[creditgate_recharge]") != id {
			t.Fatalf("PaymentIntent requests %+v", reqs)
		}
		// payment_intent.succeeded came through the webhook too: a replay.
		if got := e.seen.list(); !contains(got, "recharge stripe paid") {
			t.Fatalf("observer %q", got)
		}
		e.audit(t, "ok")
	})
	for _, tt := range []struct {
		name    string
		outcome stripestub.ChargeOutcome
		reason  string
	}{
		{"declined", stripestub.DeclineInsufficient, "Your card has insufficient funds. (insufficient_funds)"},
		{"requires action", stripestub.RequiresAuthentication, "authenticat"}, // the worker's words or the event's, whichever is first
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newStripeEnv(t)
			e.savedCard(t, "no")
			e.stub.NextCharges(tt.outcome)
			id := e.recharge(t, "no")
			a := e.get(t, "no")
			if n, _ := grants(a, billing.SourceAutoRecharge); n != 0 || a.Balance() != usd("4.00") || a.Recharge.Pending != "" || a.Recharge.Failures != 1 {
				t.Fatalf("%d recharge grants, balance %s, %+v", n, a.Balance(), a.Recharge)
			}
			page, err := e.store.Events(e.ctx, "no", "", 100)
			if err != nil {
				t.Fatal(err)
			}
			last := page.Events[len(page.Events)-1]
			if last.Type != billing.EventAutoRechargeFailed || last.GrantID != id || !strings.Contains(last.Note, tt.reason) {
				t.Fatalf("last event %+v, want auto_recharge_failed saying %q", last, tt.reason)
			}
			if bodies := e.notices.bodies(); len(bodies) != 1 || !strings.Contains(bodies[0], billing.NoticeAutoRechargeFailed) {
				t.Fatalf("notices %q", bodies)
			}
			// The payment_intent.payment_failed event that followed changed nothing more.
			if a := e.get(t, "no"); a.Recharge.Failures != 1 {
				t.Fatalf("failures %d after the event", a.Recharge.Failures)
			}
			e.audit(t, "no")
		})
	}
	t.Run("lost answer retried with the same key", func(t *testing.T) {
		// The test holds Stripe's events back, so that the sweep's retry, not the
		// payment_intent.succeeded event, is what credits the recharge first.
		e := newStripeEnv(t, noNetworkRetries, manualDelivery)
		e.savedCard(t, "lost")
		before := len(e.stub.Events())
		e.stub.DropReplies(http.MethodPost, "/v1/payment_intents", 1)
		id := e.recharge(t, "lost")
		if a := e.get(t, "lost"); a.Recharge.Pending != id || a.Balance() != usd("4.00") {
			t.Fatalf("after the lost answer: %+v, balance %s", a.Recharge, a.Balance())
		}
		// The worker did not hear back; after the lease, the sweep sends the same
		// request again and Stripe answers from its idempotency store.
		e.clock.Advance(recharge.DefaultProviderTimeout + time.Minute)
		if _, err := e.worker.SweepOnce(e.ctx, false); err != nil {
			t.Fatal(err)
		}
		reqs := e.stub.RequestsTo(http.MethodPost, "/v1/payment_intents")
		if len(reqs) != 2 || reqs[0].IdempotencyKey != id || reqs[1].IdempotencyKey != id || !reqs[1].Replayed {
			t.Fatalf("PaymentIntent requests %+v: want two with key %s, the second replayed", reqs, id)
		}
		// Now Stripe's events of the charge arrive: nothing more is credited.
		for _, ev := range e.stub.Events()[before:] {
			if st := e.deliver(t, ev); st != http.StatusOK {
				t.Fatalf("%s: HTTP %d", ev.Type, st)
			}
		}
		a := e.get(t, "lost")
		if n, total := grants(a, billing.SourceAutoRecharge); n != 1 || total != usd("10.00") || len(e.stub.PaymentIntents()) != 2 || a.Recharge.Pending != "" {
			t.Fatalf("%d recharge grants of %s, %d PaymentIntents (purchase + recharge), %+v", n, total, len(e.stub.PaymentIntents()), a.Recharge)
		}
		if e.seen.outcomes(Replayed) == 0 {
			t.Fatal("the held payment_intent.succeeded was not a replay")
		}
		e.audit(t, "lost")
	})
	t.Run("processing, then settled by event", func(t *testing.T) {
		e := newStripeEnv(t)
		e.savedCard(t, "slow")
		e.stub.NextCharges(stripestub.Processing)
		id := e.recharge(t, "slow")
		if a := e.get(t, "slow"); a.Recharge.Pending != id || a.Balance() != usd("4.00") {
			t.Fatalf("while processing: %+v, balance %s", a.Recharge, a.Balance())
		}
		pis := e.stub.PaymentIntents()
		if _, err := e.stub.SettlePaymentIntent(pis[len(pis)-1].ID, true); err != nil {
			t.Fatal(err)
		}
		e.allDelivered(t)
		a := e.get(t, "slow")
		if n, _ := grants(a, billing.SourceAutoRecharge); n != 1 || a.Balance() != usd("14.00") || a.Recharge.Pending != "" {
			t.Fatalf("after the event: %d grants, balance %s, %+v", n, a.Balance(), a.Recharge)
		}
		e.audit(t, "slow")
	})
	t.Run("no card on file", func(t *testing.T) {
		e := newStripeEnv(t)
		e.account(t, "nocard")
		p := e.buy(t, "nocard", "", "6.00", false) // no consent: no card saved
		e.pay(t, p, stripestub.Pay{})
		if err := e.store.SetAutoRecharge(e.ctx, "nocard", billing.AutoRecharge{Enabled: true, Threshold: usd("5.00"), Amount: usd("10.00"), MonthlyLimit: usd("100.00")}); err != nil {
			t.Fatal(err)
		}
		e.recharge(t, "nocard")
		if n := len(e.stub.RequestsTo(http.MethodPost, "/v1/payment_intents")); n != 0 {
			t.Fatalf("%d charges without a saved card", n)
		}
		if a := e.get(t, "nocard"); a.Recharge.Failures != 1 {
			t.Fatalf("%+v", a.Recharge)
		}
		if bodies := e.notices.bodies(); len(bodies) != 1 || !strings.Contains(bodies[0], "no card on file") {
			t.Fatalf("notices %q", bodies)
		}
	})
}

// TestRefundAndDisputeTakeBackWhatIsLeft: after part of a purchase's credit was
// spent, a refund or a dispute takes back only the rest, never more, and a
// replayed refund event takes nothing.
func TestRefundAndDisputeTakeBackWhatIsLeft(t *testing.T) {
	tests := []struct {
		name string
		// do reverses the payment at the stand-in (amounts in cents).
		do        func(s *stripestub.Server, pi string) ([]stripestub.Event, error)
		wantTaken string
		wantShort string
	}{
		{"full refund", func(s *stripestub.Server, pi string) ([]stripestub.Event, error) { return s.Refund(pi, 0) }, "6.00", "4.00"},
		{"partial then full refund", func(s *stripestub.Server, pi string) ([]stripestub.Event, error) {
			if _, err := s.Refund(pi, 300); err != nil {
				return nil, err
			}
			return s.Refund(pi, 0)
		}, "6.00", "4.00"},
		{"small refund", func(s *stripestub.Server, pi string) ([]stripestub.Event, error) { return s.Refund(pi, 250) }, "2.50", "0.00"},
		{"dispute", func(s *stripestub.Server, pi string) ([]stripestub.Event, error) {
			return s.Dispute(pi, 0, "fraudulent")
		}, "6.00", "4.00"},
		{"refund then dispute", func(s *stripestub.Server, pi string) ([]stripestub.Event, error) {
			if _, err := s.Refund(pi, 500); err != nil {
				return nil, err
			}
			return s.Dispute(pi, 0, "fraudulent")
		}, "6.00", "4.00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newStripeEnv(t)
			e.account(t, "rf")
			p := e.buy(t, "rf", "", "10.00", false)
			e.pay(t, p, stripestub.Pay{})
			e.spend(t, "rf", "h1", usd("4.00"))
			pi := e.purchase(t, "rf", p.ID).PaymentRef
			events, err := tt.do(e.stub, pi)
			if err != nil {
				t.Fatal(err)
			}
			e.allDelivered(t)
			a := e.get(t, "rf")
			want := usd("6.00") - usd(tt.wantTaken)
			if a.Balance() != want || a.Debt != 0 {
				t.Fatalf("balance %s, debt %s; want %s taken back, no debt", a.Balance(), a.Debt, tt.wantTaken)
			}
			got := e.purchase(t, "rf", p.ID)
			if got.Status != billing.PurchaseRefunded || got.TakenBack != usd(tt.wantTaken) {
				t.Fatalf("purchase %+v", got)
			}
			// The last reversal delivered again: nothing more.
			last := events[len(events)-1]
			if st := e.deliver(t, e.stub.Resign(last, time.Now())); st != http.StatusOK {
				t.Fatalf("redelivery: HTTP %d", st)
			}
			if again := e.get(t, "rf"); again.Balance() != want {
				t.Fatalf("a replayed %s took more: balance %s", last.Type, again.Balance())
			}
			var taken, short int
			for _, c := range e.seen.list() {
				if strings.HasPrefix(c, "taken ") {
					taken++
					if strings.HasSuffix(c, "short 0.000000") {
						continue
					}
					short++
				}
			}
			if taken == 0 || (tt.wantShort != "0.00") != (short > 0) {
				t.Fatalf("taken-back reports %q", e.seen.list())
			}
			e.audit(t, "rf")
		})
	}
}

// TestUnknownPaymentEvents: events about payments creditgate never credited
// (another integration's) are answered 2xx and change nothing.
func TestUnknownPaymentEvents(t *testing.T) {
	e := newStripeEnv(t, manualDelivery)
	e.account(t, "other")
	p := e.buy(t, "other", "", "10.00", false)
	events, err := e.stub.CompleteCheckout(p.CheckoutID, stripestub.Pay{})
	if err != nil {
		t.Fatal(err)
	}
	// The refund of a payment the ledger never heard of (its events were lost).
	pi := e.stub.PaymentIntents()[0].ID
	refund, err := e.stub.Refund(pi, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.deliver(t, event(t, refund, "charge.refunded")); st != http.StatusOK {
		t.Fatalf("unknown refund: HTTP %d", st)
	}
	if e.seen.outcomes(Unknown) != 1 {
		t.Fatalf("unknown outcomes %d", e.seen.outcomes(Unknown))
	}
	_ = events
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
