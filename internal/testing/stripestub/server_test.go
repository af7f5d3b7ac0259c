package stripestub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	stripego "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/creditgate/creditgate/internal/testing/stripestub"
)

// client is stripe-go pointed at the stand-in.
func client(s *stripestub.Server, retries int64) *stripego.Client {
	backends := stripego.NewBackendsWithConfig(&stripego.BackendConfig{
		URL:               stripego.String(s.URL),
		MaxNetworkRetries: stripego.Int64(retries),
		LeveledLogger:     &stripego.LeveledLogger{Level: stripego.LevelNull},
	})
	return stripego.NewClient(s.SecretKey, stripego.WithBackends(backends))
}

// post sends a raw form request and returns the status, the body and the headers.
func post(t *testing.T, s *stripestub.Server, key, path, idemKey string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("POST %s: not JSON: %s", path, raw)
	}
	return resp.StatusCode, body, resp.Header
}

func errField(body map[string]any, field string) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e[field].(string)
	return s
}

// The wire protocol's errors: authentication, unknown URLs and parameters, and
// what Stripe says about each, in its error shape.
func TestWireErrors(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	tests := []struct {
		name, key, path string
		form            url.Values
		status          int
		typ, code, msg  string
	}{
		{"no key", "", "/v1/customers", nil, 401, "invalid_request_error", "", "You did not provide an API key."},
		{"wrong key", "sk_test_wrong1234", "/v1/customers", nil, 401, "invalid_request_error", "", "Invalid API Key provided: sk_test_****1234"},
		{"unknown URL", s.SecretKey, "/v1/nothing", nil, 404, "invalid_request_error", "", "Unrecognized request URL (POST: /v1/nothing)."},
		{"unknown parameter", s.SecretKey, "/v1/customers", url.Values{"emial": {"a@b.c"}}, 400, "invalid_request_error", "parameter_unknown", "Received unknown parameter: emial"},
		{"missing customer", s.SecretKey, "/v1/checkout/sessions", url.Values{
			"mode": {"payment"}, "success_url": {"https://x.example/"}, "customer": {"cus_nobody"},
			"line_items[0][quantity]": {"1"}, "line_items[0][price_data][currency]": {"usd"},
			"line_items[0][price_data][unit_amount]": {"1000"}, "line_items[0][price_data][product_data][name]": {"credit"},
		}, 404, "invalid_request_error", "resource_missing", "No such customer: 'cus_nobody'"},
		{"below the minimum", s.SecretKey, "/v1/payment_intents", url.Values{"amount": {"49"}, "currency": {"usd"}}, 400, "invalid_request_error", "amount_too_small", "Amount must be at least $0.50 usd"},
		{"not an integer", s.SecretKey, "/v1/payment_intents", url.Values{"amount": {"10.5"}, "currency": {"usd"}}, 400, "invalid_request_error", "parameter_invalid_integer", "Invalid integer: 10.5"},
		{"confirm without return_url", s.SecretKey, "/v1/payment_intents", url.Values{"amount": {"500"}, "currency": {"usd"}, "confirm": {"true"}}, 400, "invalid_request_error", "", "you must provide a `return_url`"},
	}
	for _, tt := range tests {
		status, body, _ := post(t, s, tt.key, tt.path, "", tt.form)
		if status != tt.status || errField(body, "type") != tt.typ || errField(body, "code") != tt.code || !strings.Contains(errField(body, "message"), tt.msg) {
			t.Errorf("%s: %d %v; want %d %s %s %q", tt.name, status, body, tt.status, tt.typ, tt.code, tt.msg)
		}
	}
	if got := len(s.Requests()); got != len(tests) {
		t.Errorf("%d requests recorded, sent %d", got, len(tests))
	}
}

// Idempotency-Key: the same key and parameters replay the first answer (marked
// Idempotent-Replayed), other parameters are a 400 idempotency_error, an answer
// that failed validation is not saved, and a key in flight is a 409.
func TestIdempotencyKeys(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{Latency: 100 * time.Millisecond})
	form := url.Values{"email": {"a@example.com"}, "metadata[creditgate_account]": {"acme"}}

	status, first, _ := post(t, s, s.SecretKey, "/v1/customers", "key-1", form)
	if status != 200 {
		t.Fatalf("create: %d %v", status, first)
	}
	reordered := url.Values{"metadata[creditgate_account]": {"acme"}, "email": {"a@example.com"}}
	status, again, h := post(t, s, s.SecretKey, "/v1/customers", "key-1", reordered)
	if status != 200 || again["id"] != first["id"] || h.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %d %v (replayed %q), want the first customer %v", status, again["id"], h.Get("Idempotent-Replayed"), first["id"])
	}
	status, body, _ := post(t, s, s.SecretKey, "/v1/customers", "key-1", url.Values{"email": {"b@example.com"}})
	if status != 400 || errField(body, "type") != "idempotency_error" {
		t.Errorf("other parameters: %d %v, want 400 idempotency_error", status, body)
	}
	if n := len(s.Customers()); n != 1 {
		t.Errorf("%d customers, want 1", n)
	}

	// A validation failure is not saved: the same key with fixed parameters runs.
	if status, body, _ := post(t, s, s.SecretKey, "/v1/customers", "key-2", url.Values{"emial": {"x"}}); status != 400 {
		t.Fatalf("bad parameter: %d %v", status, body)
	}
	if status, body, _ := post(t, s, s.SecretKey, "/v1/customers", "key-2", url.Values{"email": {"x@example.com"}}); status != 200 {
		t.Errorf("same key after a validation failure: %d %v, want 200", status, body)
	}

	// Two at once: one runs, the other is told the key is in use.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	codes := make([]string, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body map[string]any
			statuses[i], body, _ = post(t, s, s.SecretKey, "/v1/customers", "key-3", form)
			codes[i] = errField(body, "code")
		}()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if statuses[0] != 200 || statuses[1] != 409 || codes[1] != "idempotency_key_in_use" {
		t.Errorf("concurrent: %v %v, want 200 and 409 idempotency_key_in_use", statuses, codes)
	}
	if n := len(s.Customers()); n != 3 {
		t.Errorf("%d customers, want 3", n)
	}
}

// A dropped reply: the request ran, the client saw the connection close, and
// stripe-go's automatic retry (same Idempotency-Key) got the saved answer, so one
// PaymentIntent exists.
func TestDroppedReplyRetriedOnce(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	ctx := context.Background()
	sc := client(s, 2)
	cus, pm := customerWithCard(t, s, sc)

	s.DropReplies(http.MethodPost, "/v1/payment_intents", 1)
	pi, err := sc.V1PaymentIntents.Create(ctx, offSession(cus, pm, "rc_lost"))
	if err != nil {
		t.Fatalf("create after a lost reply: %v", err)
	}
	if pi.Status != stripego.PaymentIntentStatusSucceeded {
		t.Errorf("status %s", pi.Status)
	}
	reqs := s.RequestsTo(http.MethodPost, "/v1/payment_intents")
	if len(reqs) != 2 || reqs[0].Status != 0 || !reqs[1].Replayed || reqs[0].IdempotencyKey != "rc_lost" || reqs[1].IdempotencyKey != "rc_lost" {
		t.Errorf("requests %+v, want a dropped one and a replayed retry with key rc_lost", reqs)
	}
	if n := len(s.PaymentIntents()); n != 1 {
		t.Errorf("%d PaymentIntents, want 1", n)
	}
	if n := len(s.Charges()); n != 1 {
		t.Errorf("%d charges, want 1", n)
	}
}

// Off-session outcomes as stripe-go sees them: success, declines and
// authentication_required are 402 card errors carrying the PaymentIntent.
func TestChargeOutcomes(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	ctx := context.Background()
	sc := client(s, 0)
	cus, pm := customerWithCard(t, s, sc)
	tests := []struct {
		outcome     stripestub.ChargeOutcome
		code        stripego.ErrorCode
		declineCode stripego.DeclineCode
		status      stripego.PaymentIntentStatus
	}{
		{stripestub.Succeed, "", "", stripego.PaymentIntentStatusSucceeded},
		{stripestub.DeclineGeneric, stripego.ErrorCodeCardDeclined, "generic_decline", stripego.PaymentIntentStatusRequiresPaymentMethod},
		{stripestub.DeclineInsufficient, stripego.ErrorCodeCardDeclined, stripego.DeclineCodeInsufficientFunds, stripego.PaymentIntentStatusRequiresPaymentMethod},
		{stripestub.RequiresAuthentication, stripego.ErrorCodeAuthenticationRequired, "authentication_required", stripego.PaymentIntentStatusRequiresPaymentMethod},
		{stripestub.Processing, "", "", stripego.PaymentIntentStatusProcessing},
	}
	for i, tt := range tests {
		s.NextCharges(tt.outcome)
		pi, err := sc.V1PaymentIntents.Create(ctx, offSession(cus, pm, "rc_"+string(rune('a'+i))))
		if tt.code == "" {
			if err != nil || pi.Status != tt.status {
				t.Errorf("%+v: %v %v", tt.outcome, pi, err)
			}
			continue
		}
		var se *stripego.Error
		if !errors.As(err, &se) || se.HTTPStatusCode != 402 || se.Type != stripego.ErrorTypeCard || se.Code != tt.code ||
			se.DeclineCode != tt.declineCode || se.PaymentIntent == nil || se.PaymentIntent.Status != tt.status || se.Msg == "" {
			t.Errorf("%+v: error %v, want a 402 card_error %s/%s with the PaymentIntent %s", tt.outcome, err, tt.code, tt.declineCode, tt.status)
		}
	}
}

// A checkout from creation to the signed events, verified with stripe-go's own
// webhook check and delivered in order to a receiver.
func TestCheckoutEventsSignedAndDelivered(t *testing.T) {
	var mu sync.Mutex
	var received []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		received = append(received, r.Header.Get("Stripe-Signature")+"\n"+string(body))
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()
	s := stripestub.New(t, stripestub.Options{WebhookURL: receiver.URL})
	ctx := context.Background()
	sc := client(s, 0)

	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripego.CheckoutSessionCreateParams{
		Mode:              stripego.String("payment"),
		ClientReferenceID: stripego.String("acme"),
		SuccessURL:        stripego.String("https://shop.example/ok"),
		LineItems: []*stripego.CheckoutSessionCreateLineItemParams{{
			Quantity: stripego.Int64(1),
			PriceData: &stripego.CheckoutSessionCreateLineItemPriceDataParams{
				Currency: stripego.String("usd"), UnitAmount: stripego.Int64(1000),
				ProductData: &stripego.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripego.String("credit")},
			},
		}},
		PaymentIntentData: &stripego.CheckoutSessionCreatePaymentIntentDataParams{SetupFutureUsage: stripego.String("off_session")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs.Status != "open" || cs.AmountTotal != 1000 || !strings.HasPrefix(cs.URL, s.URL+"/pay/") {
		t.Fatalf("session %+v", cs)
	}
	events, err := s.CompleteCheckout(cs.ID, stripestub.Pay{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		ev, err := webhook.ConstructEvent(e.Payload, e.Signature, s.WebhookSecret)
		if err != nil {
			t.Fatalf("%s: stripe-go refuses the signature: %v", e.Type, err)
		}
		types = append(types, string(ev.Type))
	}
	want := "customer.created payment_method.attached charge.succeeded payment_intent.succeeded checkout.session.completed"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	mu.Lock()
	n := len(received)
	mu.Unlock()
	if n != len(events) {
		t.Errorf("receiver got %d deliveries, want %d (Flush before returning)", n, len(events))
	}
	for i, d := range s.Deliveries() {
		if d.Status != 200 || d.EventID != events[i].ID {
			t.Errorf("delivery %d: %v", i, d)
		}
	}
	done, _ := s.CheckoutSession(cs.ID)
	if done.Status != "complete" || done.PaymentStatus != "paid" || done.Customer == nil || done.PaymentIntent == nil {
		t.Errorf("completed session %+v", done)
	}
	if _, err := s.CompleteCheckout(cs.ID, stripestub.Pay{}); err == nil {
		t.Error("a second completion succeeded")
	}
}

// Refunds accumulate on the charge; disputes carry the PaymentIntent.
func TestRefundsAndDisputes(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	ctx := context.Background()
	sc := client(s, 0)
	cus, pm := customerWithCard(t, s, sc)
	pi, err := sc.V1PaymentIntents.Create(ctx, offSession(cus, pm, "rc_1"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{300, 1000} {
		amount := []int64{300, 0}[i]
		events, err := s.Refund(pi.ID, amount)
		if err != nil {
			t.Fatal(err)
		}
		var ch stripego.Charge
		for _, e := range events {
			if e.Type == "charge.refunded" {
				ev, _ := webhook.ConstructEvent(e.Payload, e.Signature, s.WebhookSecret)
				_ = json.Unmarshal(ev.Data.Raw, &ch)
			}
		}
		if ch.AmountRefunded != want || ch.Refunded != (want == 1000) || ch.PaymentIntent == nil || ch.PaymentIntent.ID != pi.ID ||
			ch.Metadata["creditgate_recharge"] != "rc_1" {
			t.Errorf("refund %d: charge %+v, want amount_refunded %d of %s", i, ch, want, pi.ID)
		}
	}
	if _, err := s.Refund(pi.ID, 1); err == nil {
		t.Error("refunded more than the charge")
	}
	events, err := s.Dispute(pi.ID, 0, "fraudulent")
	if err != nil || len(events) != 1 || events[0].Type != "charge.dispute.created" {
		t.Fatalf("dispute: %v %v", events, err)
	}
	var dp stripego.Dispute
	ev, _ := webhook.ConstructEvent(events[0].Payload, events[0].Signature, s.WebhookSecret)
	_ = json.Unmarshal(ev.Data.Raw, &dp)
	if dp.Amount != 1000 || dp.Reason != "fraudulent" || dp.PaymentIntent == nil || dp.PaymentIntent.ID != pi.ID {
		t.Errorf("dispute %+v", dp)
	}
}

// Search lags writes by Options.SearchLag.
func TestSearchLag(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := stripestub.New(t, stripestub.Options{SearchLag: time.Minute, Now: clock})
	ctx := context.Background()
	sc := client(s, 0)
	if _, err := sc.V1Customers.Create(ctx, &stripego.CustomerCreateParams{Params: stripego.Params{Metadata: map[string]string{"creditgate_account": "acme"}}}); err != nil {
		t.Fatal(err)
	}
	search := func() int {
		res := sc.V1Customers.Search(ctx, &stripego.CustomerSearchParams{SearchParams: stripego.SearchParams{Query: "metadata['creditgate_account']:'acme'"}})
		n := 0
		for _, err := range res.All(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if n := search(); n != 0 {
		t.Errorf("search right after the write found %d", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if n := search(); n != 1 {
		t.Errorf("search after the lag found %d, want 1", n)
	}
}

// The hosted page completes the session and redirects to success_url.
func TestHostedPage(t *testing.T) {
	s := stripestub.New(t, stripestub.Options{})
	sc := client(s, 0)
	cs, err := sc.V1CheckoutSessions.Create(context.Background(), &stripego.CheckoutSessionCreateParams{
		Mode: stripego.String("payment"), SuccessURL: stripego.String("https://shop.example/ok?s={CHECKOUT_SESSION_ID}"),
		LineItems: []*stripego.CheckoutSessionCreateLineItemParams{{Quantity: stripego.Int64(1), PriceData: &stripego.CheckoutSessionCreateLineItemPriceDataParams{
			Currency: stripego.String("usd"), UnitAmount: stripego.Int64(2500),
			ProductData: &stripego.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripego.String("credit")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	page, err := http.Get(cs.URL)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(html), "25.00 USD") {
		t.Errorf("page does not show the amount: %s", html)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(cs.URL, url.Values{"how": {"card"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://shop.example/ok?s="+cs.ID {
		t.Errorf("pay: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if done, _ := s.CheckoutSession(cs.ID); done.PaymentStatus != "paid" {
		t.Errorf("session %s/%s after paying", done.Status, done.PaymentStatus)
	}
}

// customerWithCard makes a customer with a saved card.
func customerWithCard(t *testing.T, s *stripestub.Server, sc *stripego.Client) (string, string) {
	t.Helper()
	cus, err := sc.V1Customers.Create(context.Background(), &stripego.CustomerCreateParams{})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := s.AttachCard(cus.ID, stripestub.CardDetails{Brand: "visa", Last4: "4242", ExpMonth: 1, ExpYear: 2035})
	if err != nil {
		t.Fatal(err)
	}
	return cus.ID, pm
}

func offSession(customer, pm, rechargeID string) *stripego.PaymentIntentCreateParams {
	p := &stripego.PaymentIntentCreateParams{
		Amount: stripego.Int64(1000), Currency: stripego.String("usd"),
		Customer: stripego.String(customer), PaymentMethod: stripego.String(pm),
		Confirm: stripego.Bool(true), OffSession: stripego.Bool(true),
		AutomaticPaymentMethods: &stripego.PaymentIntentCreateAutomaticPaymentMethodsParams{
			Enabled: stripego.Bool(true), AllowRedirects: stripego.String("never")},
	}
	p.Metadata = map[string]string{"creditgate_recharge": rechargeID}
	p.SetIdempotencyKey(rechargeID)
	return p
}
