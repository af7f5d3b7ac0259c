package stripestub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// handler runs one API call with s.mu held.
type handler func(s *Server, p params, id string) *result

type route struct {
	method string
	path   *regexp.Regexp // one optional capture: the object id
	run    handler
}

// routes are the API calls the stand-in answers; anything else is a 404 as
// Stripe answers an unknown URL.
var routes = []route{
	{"POST", regexp.MustCompile(`^/v1/customers$`), (*Server).createCustomer},
	{"GET", regexp.MustCompile(`^/v1/customers/search$`), (*Server).searchCustomers},
	{"GET", regexp.MustCompile(`^/v1/customers/([^/]+)$`), (*Server).retrieveCustomer},
	{"POST", regexp.MustCompile(`^/v1/customers/([^/]+)$`), (*Server).updateCustomer},
	{"GET", regexp.MustCompile(`^/v1/customers/([^/]+)/payment_methods$`), (*Server).listCustomerPaymentMethods},
	{"GET", regexp.MustCompile(`^/v1/payment_methods/([^/]+)$`), (*Server).retrievePaymentMethod},
	{"POST", regexp.MustCompile(`^/v1/checkout/sessions$`), (*Server).createCheckoutSession},
	{"GET", regexp.MustCompile(`^/v1/checkout/sessions/([^/]+)$`), (*Server).retrieveCheckoutSession},
	{"POST", regexp.MustCompile(`^/v1/checkout/sessions/([^/]+)/expire$`), (*Server).expireCheckoutSession},
	{"POST", regexp.MustCompile(`^/v1/payment_intents$`), (*Server).createPaymentIntent},
	{"GET", regexp.MustCompile(`^/v1/payment_intents/([^/]+)$`), (*Server).retrievePaymentIntent},
}

func (s *Server) route(method, path string) (func(*Server, params, string) *result, string) {
	for _, rt := range routes {
		if rt.method != method {
			continue
		}
		if m := rt.path.FindStringSubmatch(path); m != nil {
			id := ""
			if len(m) > 1 {
				id = m[1]
			}
			return rt.run, id
		}
	}
	return nil, ""
}

// missing is Stripe's 404 resource_missing for an id that does not exist.
func missing(kind, param, id string) *result {
	return withCode(&result{status: http.StatusNotFound, body: apiError{Error: errorBody{
		Type: "invalid_request_error", Param: param, Message: fmt.Sprintf("No such %s: '%s'", kind, id)}}}, "resource_missing")
}

// invalid is a 400 invalid_request_error that ran (it is saved for idempotency).
func invalid(param, format string, args ...any) *result {
	r := paramError(param, format, args...)
	r.validation = false
	return r
}

func (s *Server) now() time.Time { return s.opts.Now() }

// add stores a new object's id in creation order.
func (s *Server) add(id string) { s.order = append(s.order, id) }

// Customers.

var customerParams = allowed("email", "name", "description", "metadata[*]", "expand[*]", "expand[]")

func (s *Server) createCustomer(p params, _ string) *result {
	if bad := p.check(customerParams); bad != nil {
		return bad
	}
	meta, bad := p.metadata("metadata")
	if bad != nil {
		return bad
	}
	c := &Customer{ID: newID("cus_"), Object: "customer", Created: s.now().Unix(), Metadata: meta}
	if p.has("email") {
		c.Email = ptr(p.str("email"))
	}
	if p.has("name") {
		c.Name = ptr(p.str("name"))
	}
	if p.has("description") {
		c.Description = ptr(p.str("description"))
	}
	s.customers[c.ID] = c
	s.add(c.ID)
	s.emit("customer.created", *c)
	return ok(*c)
}

func (s *Server) retrieveCustomer(p params, id string) *result {
	if bad := p.check(allowed("expand[*]", "expand[]")); bad != nil {
		return bad
	}
	c, found := s.customers[id]
	if !found {
		return missing("customer", "id", id)
	}
	out := *c
	for _, e := range p.list("expand") {
		switch e {
		case "invoice_settings.default_payment_method":
			if pmID, isID := c.InvoiceSettings.DefaultPaymentMethod.(string); isID {
				if pm, found := s.methods[pmID]; found {
					out.InvoiceSettings.DefaultPaymentMethod = *pm
				}
			}
		default:
			return paramError("expand", "This property cannot be expanded (%s).", e)
		}
	}
	return ok(out)
}

func (s *Server) updateCustomer(p params, id string) *result {
	if bad := p.check(allowed("email", "name", "description", "metadata[*]", "expand[*]", "expand[]",
		"invoice_settings[default_payment_method]")); bad != nil {
		return bad
	}
	c, found := s.customers[id]
	if !found {
		return missing("customer", "id", id)
	}
	meta, bad := p.metadata("metadata")
	if bad != nil {
		return bad
	}
	if pmID := p.str("invoice_settings[default_payment_method]"); pmID != "" {
		pm, found := s.methods[pmID]
		if !found {
			return missing("PaymentMethod", "invoice_settings[default_payment_method]", pmID)
		}
		if pm.Customer == nil || *pm.Customer != id {
			return invalid("invoice_settings[default_payment_method]", "The customer does not have a payment method with the ID %s.", pmID)
		}
		c.InvoiceSettings.DefaultPaymentMethod = pmID
	}
	if p.has("email") {
		c.Email = ptr(p.str("email"))
	}
	if p.has("name") {
		c.Name = ptr(p.str("name"))
	}
	if p.has("description") {
		c.Description = ptr(p.str("description"))
	}
	// Objects are copy-on-write (snapshots share maps and pointers): a new map.
	merged := copyMeta(c.Metadata)
	for k := range p.Values {
		if strings.HasPrefix(k, "metadata[") && p.Get(k) == "" {
			delete(merged, k[len("metadata["):len(k)-1])
		}
	}
	for k, v := range meta {
		merged[k] = v
	}
	c.Metadata = merged
	s.emit("customer.updated", *c)
	return ok(*c)
}

// searchQuery is the one query form the stand-in understands:
// metadata['key']:'value'.
var searchQuery = regexp.MustCompile(`^metadata\['([^'\\]+)'\]:'((?:[^'\\]|\\.)*)'$`)

func (s *Server) searchCustomers(p params, _ string) *result {
	if bad := p.check(allowed("query", "limit", "page", "expand[*]", "expand[]")); bad != nil {
		return bad
	}
	m := searchQuery.FindStringSubmatch(strings.TrimSpace(p.str("query")))
	if m == nil {
		return paramError("query", "stripestub understands only metadata['key']:'value' queries, not %q", p.str("query"))
	}
	key, value := m[1], strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[2])
	limit, _, bad := p.integer("limit")
	if bad != nil {
		return bad
	}
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	visibleBefore := s.now().Add(-s.opts.SearchLag).Unix()
	var found []Customer
	for i := len(s.order) - 1; i >= 0; i-- {
		c, isCustomer := s.customers[s.order[i]]
		if !isCustomer || c.Metadata[key] != value {
			continue
		}
		if s.opts.SearchLag > 0 && c.Created > visibleBefore {
			continue // not indexed yet
		}
		if int64(len(found)) < limit {
			found = append(found, *c)
		}
	}
	if found == nil {
		found = []Customer{}
	}
	return ok(searchResult{Object: "search_result", Data: found, URL: "/v1/customers/search"})
}

func (s *Server) listCustomerPaymentMethods(p params, id string) *result {
	if bad := p.check(allowed("type", "limit", "starting_after", "ending_before", "allow_redisplay", "expand[*]", "expand[]")); bad != nil {
		return bad
	}
	if _, found := s.customers[id]; !found {
		return missing("customer", "customer", id)
	}
	limit, _, bad := p.integer("limit")
	if bad != nil {
		return bad
	}
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	typ := p.str("type")
	var out []PaymentMethod
	for i := len(s.order) - 1; i >= 0; i-- {
		pm, isPM := s.methods[s.order[i]]
		if !isPM || pm.Customer == nil || *pm.Customer != id || (typ != "" && pm.Type != typ) {
			continue
		}
		out = append(out, *pm)
	}
	more := int64(len(out)) > limit
	if more {
		out = out[:limit]
	}
	if out == nil {
		out = []PaymentMethod{}
	}
	return ok(list{Object: "list", Data: out, HasMore: more, URL: "/v1/customers/" + id + "/payment_methods"})
}

func (s *Server) retrievePaymentMethod(p params, id string) *result {
	if bad := p.check(allowed("expand[*]", "expand[]")); bad != nil {
		return bad
	}
	pm, found := s.methods[id]
	if !found {
		return missing("PaymentMethod", "id", id)
	}
	return ok(*pm)
}

// Checkout Sessions.

var checkoutParams = allowed(
	"mode", "success_url", "cancel_url", "customer", "customer_email", "client_reference_id",
	"metadata[*]", "expires_at", "locale", "submit_type", "expand[*]", "expand[]",
	"line_items[*][quantity]", "line_items[*][price_data][currency]", "line_items[*][price_data][unit_amount]",
	"line_items[*][price_data][product_data][name]", "line_items[*][price_data][product_data][description]",
	"payment_intent_data[setup_future_usage]", "payment_intent_data[metadata][*]", "payment_intent_data[description]",
	"payment_method_types[*]",
)

func (s *Server) createCheckoutSession(p params, _ string) *result {
	if bad := p.check(checkoutParams); bad != nil {
		return bad
	}
	if mode := p.str("mode"); mode != "payment" {
		return paramError("mode", "stripestub supports mode=payment only, got %q", mode)
	}
	if p.str("success_url") == "" {
		return paramError("success_url", "Missing required param: success_url.")
	}
	if p.has("customer") && p.has("customer_email") {
		return paramError("customer_email", "You may only specify one of these parameters: customer, customer_email.")
	}
	if ref := p.str("client_reference_id"); len(ref) > 200 {
		return paramError("client_reference_id", "client_reference_id must be at most 200 characters")
	}
	meta, bad := p.metadata("metadata")
	if bad != nil {
		return bad
	}
	piMeta, bad := p.metadata("payment_intent_data[metadata]")
	if bad != nil {
		return bad
	}
	sfu := p.str("payment_intent_data[setup_future_usage]")
	if sfu != "" && sfu != "off_session" && sfu != "on_session" {
		return paramError("payment_intent_data[setup_future_usage]", "Invalid setup_future_usage: must be one of on_session or off_session")
	}
	items := p.indices("line_items")
	if len(items) == 0 {
		return paramError("line_items", "You must specify line_items in payment mode.")
	}
	var total int64
	currency := ""
	for _, n := range items {
		pre := fmt.Sprintf("line_items[%d]", n)
		cur := p.str(pre + "[price_data][currency]")
		if cur == "" || (currency != "" && cur != currency) {
			return paramError(pre+"[price_data][currency]", "Every line item needs the same currency.")
		}
		currency = cur
		if p.str(pre+"[price_data][product_data][name]") == "" {
			return paramError(pre+"[price_data][product_data][name]", "Missing required param: %s[price_data][product_data][name].", pre)
		}
		unit, present, bad := p.integer(pre + "[price_data][unit_amount]")
		if bad != nil {
			return bad
		}
		if !present || unit < 0 {
			return paramError(pre+"[price_data][unit_amount]", "Missing or negative unit_amount.")
		}
		qty, present, bad := p.integer(pre + "[quantity]")
		if bad != nil {
			return bad
		}
		if !present || qty < 1 {
			return paramError(pre+"[quantity]", "Missing required param: %s[quantity].", pre)
		}
		total += unit * qty
	}
	if total < minimumCharge {
		return withCode(paramError("line_items", "The Checkout Session's total amount due must add up to at least $0.50 usd"), "amount_too_small")
	}
	now := s.now()
	expires := now.Add(24 * time.Hour)
	if at, present, bad := p.integer("expires_at"); bad != nil {
		return bad
	} else if present {
		t := time.Unix(at, 0)
		if t.Before(now.Add(30*time.Minute-time.Second)) || t.After(now.Add(24*time.Hour)) {
			return paramError("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.")
		}
		expires = t
	}
	cs := &CheckoutSession{
		ID: newID("cs_test_"), Object: "checkout.session", Mode: "payment", Status: "open", PaymentStatus: "unpaid",
		AmountSubtotal: total, AmountTotal: total, Currency: currency, Metadata: meta,
		SuccessURL: p.str("success_url"), ExpiresAt: expires.Unix(), Created: now.Unix(),
		PaymentIntentData: PaymentIntentData{SetupFutureUsage: sfu, Metadata: piMeta, Description: p.str("payment_intent_data[description]")},
	}
	if id := p.str("customer"); id != "" {
		if _, found := s.customers[id]; !found {
			return missing("customer", "customer", id)
		}
		cs.Customer = ptr(id)
	}
	if p.has("customer_email") {
		cs.CustomerEmail = ptr(p.str("customer_email"))
	}
	if p.has("client_reference_id") {
		cs.ClientReferenceID = ptr(p.str("client_reference_id"))
	}
	if p.has("cancel_url") {
		cs.CancelURL = ptr(p.str("cancel_url"))
	}
	cs.URL = ptr(s.URL + "/pay/" + cs.ID)
	s.sessions[cs.ID] = cs
	s.add(cs.ID)
	return ok(*cs)
}

// minimumCharge is Stripe's smallest charge in usd cents ($0.50).
const minimumCharge = 50

func (s *Server) retrieveCheckoutSession(p params, id string) *result {
	if bad := p.check(allowed("expand[*]", "expand[]")); bad != nil {
		return bad
	}
	cs, found := s.sessions[id]
	if !found {
		return missing("checkout.session", "session", id)
	}
	return ok(*cs)
}

func (s *Server) expireCheckoutSession(p params, id string) *result {
	if bad := p.check(allowed("expand[*]", "expand[]")); bad != nil {
		return bad
	}
	cs, found := s.sessions[id]
	if !found {
		return missing("checkout.session", "session", id)
	}
	if cs.Status != "open" {
		return invalid("", "Only Checkout Sessions with a status in [\"open\"] can be expired.")
	}
	s.expire(cs)
	return ok(*cs)
}

// PaymentIntents.

var paymentIntentParams = allowed(
	"amount", "currency", "customer", "payment_method", "confirm", "off_session", "metadata[*]",
	"description", "automatic_payment_methods[enabled]", "automatic_payment_methods[allow_redirects]",
	"payment_method_types[*]", "payment_method_types[]", "error_on_requires_action", "return_url",
	"receipt_email", "statement_descriptor_suffix", "expand[*]", "expand[]",
)

func (s *Server) createPaymentIntent(p params, _ string) *result {
	if bad := p.check(paymentIntentParams); bad != nil {
		return bad
	}
	amount, present, bad := p.integer("amount")
	if bad != nil {
		return bad
	}
	if !present {
		return paramError("amount", "Missing required param: amount.")
	}
	if amount < minimumCharge {
		return withCode(paramError("amount", "Amount must be at least $0.50 usd"), "amount_too_small")
	}
	currency := p.str("currency")
	if len(currency) != 3 || strings.ToLower(currency) != currency {
		return paramError("currency", "Invalid currency: %s.", currency)
	}
	meta, bad := p.metadata("metadata")
	if bad != nil {
		return bad
	}
	confirm, _, bad := p.boolean("confirm")
	if bad != nil {
		return bad
	}
	offSession, _, bad := p.boolean("off_session")
	if bad != nil {
		return bad
	}
	if offSession && !confirm {
		return paramError("off_session", "off_session can only be used when confirm=true.")
	}
	redirectsNever := p.str("automatic_payment_methods[allow_redirects]") == "never"
	if confirm && p.str("return_url") == "" && !redirectsNever && len(p.list("payment_method_types")) == 0 {
		return paramError("return_url", "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. "+
			"Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. "+
			"If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and "+
			"`automatic_payment_methods[allow_redirects]` to `never`.")
	}
	var customer *string
	if id := p.str("customer"); id != "" {
		if _, found := s.customers[id]; !found {
			return missing("customer", "customer", id)
		}
		customer = ptr(id)
	}
	var pm *PaymentMethod
	if id := p.str("payment_method"); id != "" {
		found := false
		if pm, found = s.methods[id]; !found {
			return missing("payment_method", "payment_method", id)
		}
		if pm.Customer == nil || customer == nil || *pm.Customer != *customer {
			return invalid("payment_method", "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, "+
				"shared with a connected account without Customer attachment, or was detached from a Customer. It may not be used again. "+
				"To use a PaymentMethod multiple times, you must attach it to a Customer first.")
		}
	}
	if confirm && pm == nil {
		return paramError("payment_method", "You cannot confirm this PaymentIntent because it's missing a payment method.")
	}
	pi := &PaymentIntent{
		ID: newID("pi_"), Object: "payment_intent", Amount: amount, Currency: currency, Customer: customer,
		Metadata: meta, Status: "requires_payment_method", Created: s.now().Unix(),
	}
	pi.ClientSecret = pi.ID + "_secret_" + randomHex(8)
	if d := p.str("description"); d != "" {
		pi.Description = ptr(d)
	}
	if pm != nil {
		pi.PaymentMethod = ptr(pm.ID)
		pi.Status = "requires_confirmation"
	}
	s.intents[pi.ID] = pi
	s.add(pi.ID)
	s.emit("payment_intent.created", *pi)
	if !confirm {
		return ok(*pi)
	}
	return s.confirm(pi, pm, s.nextOutcome())
}

func (s *Server) retrievePaymentIntent(p params, id string) *result {
	if bad := p.check(allowed("expand[*]", "expand[]", "client_secret")); bad != nil {
		return bad
	}
	pi, found := s.intents[id]
	if !found {
		return missing("payment_intent", "intent", id)
	}
	expand := p.list("expand")
	if len(expand) == 0 {
		return ok(*pi)
	}
	raw, _ := json.Marshal(pi)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	for _, e := range expand {
		if e != "latest_charge" {
			return paramError("expand", "This property cannot be expanded (%s).", e)
		}
		if pi.LatestCharge != nil {
			out["latest_charge"] = *s.charges[*pi.LatestCharge]
		}
	}
	return ok(out)
}

// ChargeOutcome is what the bank answers to the next off-session charge.
type ChargeOutcome struct {
	// Code is the error code ("" succeeds): "card_declined", or
	// "authentication_required" (the bank wants 3-D Secure, which an off-session
	// charge cannot do).
	Code string
	// DeclineCode is the bank's reason ("generic_decline", "insufficient_funds").
	DeclineCode string
	// Message is the human message Stripe sends.
	Message string
	// Processing leaves the PaymentIntent processing; SettlePaymentIntent ends it.
	Processing bool
}

// The outcomes tests use most.
var (
	Succeed                = ChargeOutcome{}
	Processing             = ChargeOutcome{Processing: true}
	DeclineGeneric         = ChargeOutcome{Code: "card_declined", DeclineCode: "generic_decline", Message: "Your card was declined."}
	DeclineInsufficient    = ChargeOutcome{Code: "card_declined", DeclineCode: "insufficient_funds", Message: "Your card has insufficient funds."}
	RequiresAuthentication = ChargeOutcome{Code: "authentication_required", DeclineCode: "authentication_required",
		Message: "Your card was declined. This transaction requires authentication."}
)

// NextCharges queues the outcomes of the next off-session charges, in order;
// once they are used up, charges succeed.
func (s *Server) NextCharges(outcomes ...ChargeOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes = append(s.outcomes, outcomes...)
}

func (s *Server) nextOutcome() ChargeOutcome {
	if len(s.outcomes) == 0 {
		return Succeed
	}
	o := s.outcomes[0]
	s.outcomes = s.outcomes[1:]
	return o
}

// confirm runs a confirmed PaymentIntent to the outcome: succeeded (with a
// charge), processing, or a 402 card error with the PaymentIntent back at
// requires_payment_method.
func (s *Server) confirm(pi *PaymentIntent, pm *PaymentMethod, o ChargeOutcome) *result {
	switch {
	case o.Processing:
		pi.Status = "processing"
		s.emit("payment_intent.processing", *pi)
		return ok(*pi)
	case o.Code == "":
		s.succeed(pi)
		return ok(*pi)
	}
	perr := &PaymentError{Type: "card_error", Code: o.Code, DeclineCode: o.DeclineCode, Message: o.Message,
		DocURL: "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(o.Code, "_", "-"), PaymentMethod: pm}
	if o.Code == "card_declined" {
		ch := s.newCharge(pi, "failed")
		ch.FailureCode, ch.FailureMessage = ptr(o.Code), ptr(o.Message)
		perr.Charge = ch.ID
		pi.LatestCharge = ptr(ch.ID)
		s.emit("charge.failed", *ch)
	}
	pi.Status = "requires_payment_method"
	pi.LastPaymentError = perr
	snapshot := *pi
	s.emit("payment_intent.payment_failed", snapshot)
	body := errorBody{Type: perr.Type, Code: perr.Code, DeclineCode: perr.DeclineCode, Message: perr.Message,
		DocURL: perr.DocURL, Charge: perr.Charge, PaymentIntent: &snapshot, PaymentMethod: pm,
		RequestLogURL: "https://dashboard.stripe.com/test/logs/req_stub"}
	return &result{status: http.StatusPaymentRequired, body: apiError{Error: body}}
}

// succeed captures a PaymentIntent's full amount in a new charge.
func (s *Server) succeed(pi *PaymentIntent) {
	ch := s.newCharge(pi, "succeeded")
	pi.Status, pi.AmountReceived, pi.LatestCharge, pi.LastPaymentError = "succeeded", pi.Amount, ptr(ch.ID), nil
	s.emit("charge.succeeded", *ch)
	s.emit("payment_intent.succeeded", *pi)
}

func (s *Server) newCharge(pi *PaymentIntent, status string) *Charge {
	ch := &Charge{ID: newID("ch_"), Object: "charge", Amount: pi.Amount, Status: status, Currency: pi.Currency,
		Customer: pi.Customer, PaymentIntent: pi.ID, Metadata: copyMeta(pi.Metadata), Created: s.now().Unix()}
	if pi.PaymentMethod != nil {
		ch.PaymentMethod = *pi.PaymentMethod
	}
	if status == "succeeded" {
		ch.Paid, ch.Captured, ch.AmountCaptured = true, true, pi.Amount
		ch.ReceiptURL = ptr(s.URL + "/receipts/" + ch.ID)
	}
	s.charges[ch.ID] = ch
	s.add(ch.ID)
	return ch
}
