// Package stripestub is a Stripe stand-in for tests: an HTTP server that speaks the
// part of Stripe's API creditgate uses (customers and their search, Checkout
// Sessions, off-session PaymentIntents, payment methods) with Stripe's wire
// protocol: form-encoded requests with bracketed keys, JSON objects, Stripe's error
// shape and codes, and Idempotency-Key semantics (the same key and parameters
// replay the first answer, the same key with other parameters is a 400
// idempotency_error, a key still in flight is a 409). Unlike stripe-mock, which
// validates parameters against Stripe's OpenAPI spec and answers fixtures, it keeps
// state, so a test can play the customer and the bank: complete a checkout (paid
// now, or pending then settled), expire it, decline or challenge the next
// off-session charge, drop a reply after doing the work, refund or dispute a
// charge. Every change produces the events Stripe would send, signed with the
// library's test helper (webhook.GenerateTestSignedPayload) for Options.
// WebhookSecret, returned to the test and, when Options.WebhookURL is set, POSTed
// there in order. Every request is recorded for assertions.
package stripestub

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a Server; every field is optional.
type Options struct {
	// SecretKey is the API key the server accepts (default a random sk_test_…).
	SecretKey string
	// WebhookSecret signs the events (default a random whsec_…).
	WebhookSecret string
	// WebhookURL, when set, receives every event as Stripe would send it.
	WebhookURL string
	// Now is the server's clock: objects' created times and signature timestamps.
	Now func() time.Time
	// SearchLag hides customers younger than this from search, as Stripe's search
	// index lags writes (up to a minute; longer during outages).
	SearchLag time.Duration
	// Latency delays every API request before it runs (outside any lock), so that
	// concurrent requests overlap.
	Latency time.Duration
	// Card is the card a customer pays checkouts with (default Visa 4242, 12/2034).
	Card CardDetails
	// EventAPIVersion is the api_version of the events (default stripe-go's
	// APIVersion, as a webhook endpoint created with that version receives).
	EventAPIVersion string
}

// Server is a running Stripe stand-in. Its methods are safe for concurrent use.
// Objects are copy-on-write under mu: a change replaces a map or a pointer
// rather than writing through it, so snapshots handed out stay unchanged.
type Server struct {
	// URL is the API base (payments.stripe.api_base), e.g. "http://127.0.0.1:41234".
	URL           string
	SecretKey     string
	WebhookSecret string

	opts Options
	http *httptest.Server

	mu        sync.Mutex
	requests  []Request
	idem      map[string]*idemEntry
	drops     []*drop
	failures  []*drop
	outcomes  []ChargeOutcome
	customers map[string]*Customer
	methods   map[string]*PaymentMethod
	sessions  map[string]*CheckoutSession
	intents   map[string]*PaymentIntent
	charges   map[string]*Charge
	refunds   map[string]*Refund
	disputes  map[string]*Dispute
	order     []string // object ids in creation order (listings are newest first)
	events    []Event

	delivery deliveryQueue
}

// Request is one recorded API request.
type Request struct {
	Method, Path   string
	Form           url.Values // the POST body or the GET query
	IdempotencyKey string
	StripeVersion  string
	// Status is the answer's status; 0 when the reply was dropped.
	Status int
	// Replayed is true when the answer came from the idempotency store.
	Replayed bool
}

// New starts a Server for t; it stops when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := newServer(opts)
	s.http = httptest.NewServer(s)
	s.URL = s.http.URL
	t.Cleanup(s.Close)
	return s
}

func newServer(opts Options) *Server {
	if opts.SecretKey == "" {
		opts.SecretKey = "sk_test_stub_" + randomHex(12)
	}
	if opts.WebhookSecret == "" {
		opts.WebhookSecret = "whsec_stub_" + randomHex(16)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Card == (CardDetails{}) {
		opts.Card = CardDetails{Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: 2034, Funding: "credit", Country: "US"}
	}
	s := &Server{
		SecretKey: opts.SecretKey, WebhookSecret: opts.WebhookSecret, opts: opts,
		idem:      map[string]*idemEntry{},
		customers: map[string]*Customer{}, methods: map[string]*PaymentMethod{},
		sessions: map[string]*CheckoutSession{}, intents: map[string]*PaymentIntent{},
		charges: map[string]*Charge{}, refunds: map[string]*Refund{}, disputes: map[string]*Dispute{},
	}
	s.delivery.init(s)
	return s
}

// Close stops the server after delivering the queued events.
func (s *Server) Close() {
	s.delivery.close()
	if s.http != nil {
		s.http.Close()
	}
}

// Requests returns every API request so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsTo returns the recorded requests of one method and exact path.
func (s *Server) RequestsTo(method, path string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// drop is an armed fault: the next n requests matching method and path prefix.
type drop struct {
	method, prefix string
	n              int
	status         int // failures: the status answered instead of running
}

func (d *drop) matches(method, path string) bool {
	return d.n > 0 && d.method == method && strings.HasPrefix(path, d.prefix)
}

// DropReplies makes the next n requests of method to a path starting with prefix
// run (and change state, and save their idempotent answer) and then lose their
// reply: the connection closes with no answer, as when a network fails after
// Stripe did the work. A client's retry with the same Idempotency-Key gets the
// saved answer.
func (s *Server) DropReplies(method, prefix string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = append(s.drops, &drop{method: method, prefix: prefix, n: n})
}

// FailRequests makes the next n matching requests answer status (a 5xx: Stripe's
// api_error) without running. Such an answer is not saved for idempotency.
func (s *Server) FailRequests(method, prefix string, n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &drop{method: method, prefix: prefix, n: n, status: status})
}

// ForgetIdempotencyKeys drops every saved idempotent answer, as Stripe prunes
// keys older than 24 hours.
func (s *Server) ForgetIdempotencyKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.idem {
		if !e.inFlight {
			delete(s.idem, k)
		}
	}
}

// idemEntry is a saved idempotent answer (or a request still running).
type idemEntry struct {
	fingerprint string
	inFlight    bool
	status      int
	body        []byte
}

// result is a handler's answer. validation answers are not saved under an
// Idempotency-Key (Stripe saves answers only once the endpoint began running).
type result struct {
	status     int
	body       any
	validation bool
}

func ok(v any) *result { return &result{status: http.StatusOK, body: v} }

// ServeHTTP routes API requests (/v1/…) and the hosted checkout page (/pay/…).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/pay/") {
		s.servePage(w, r)
		return
	}
	s.serveAPI(w, r)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(r)
	rec := Request{Method: r.Method, Path: r.URL.Path, Form: form,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), StripeVersion: r.Header.Get("Stripe-Version")}
	answer := func(res *result, replayed bool) {
		rec.Status, rec.Replayed = res.status, replayed
		s.record(rec)
		writeJSON(w, res.status, res.body, replayed)
	}
	if err != nil {
		answer(paramError("", "Invalid request body: %v", err), false)
		return
	}
	if res := s.authenticate(r); res != nil {
		answer(res, false)
		return
	}
	route, vars := s.route(r.Method, r.URL.Path)
	if route == nil {
		answer(&result{status: http.StatusNotFound, body: apiError{Error: errorBody{Type: "invalid_request_error",
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path)}}}, false)
		return
	}
	if f := s.takeFault(&s.failures, r.Method, r.URL.Path); f != nil {
		answer(&result{status: f.status, body: apiError{Error: errorBody{Type: "api_error",
			Message: "An unknown error occurred (stripestub.FailRequests)."}}}, false)
		return
	}

	key := rec.IdempotencyKey
	fp := fingerprint(r.Method, r.URL.Path, form)
	if key != "" && r.Method == http.MethodPost {
		if res, replay, done := s.claimKey(key, fp); done {
			if replay != nil {
				rec.Status, rec.Replayed = replay.status, true
				s.record(rec)
				writeRaw(w, replay.status, replay.body, true)
				return
			}
			answer(res, false)
			return
		}
	}
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}

	s.mu.Lock()
	res := route(s, params{form}, vars)
	body, _ := json.Marshal(res.body)
	if key != "" && r.Method == http.MethodPost {
		if res.validation {
			delete(s.idem, key)
		} else {
			s.idem[key] = &idemEntry{fingerprint: fp, status: res.status, body: body}
		}
	}
	s.mu.Unlock()

	if s.takeFault(&s.drops, r.Method, r.URL.Path) != nil {
		rec.Status = 0
		s.record(rec)
		hangUp(w)
		return
	}
	rec.Status = res.status
	s.record(rec)
	writeRaw(w, res.status, body, false)
}

// claimKey applies an Idempotency-Key: a saved answer to replay, a conflict to
// answer, or (done false) the key is now this request's, in flight.
func (s *Server) claimKey(key, fp string) (conflict *result, replay *idemEntry, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, found := s.idem[key]
	switch {
	case !found:
		s.idem[key] = &idemEntry{fingerprint: fp, inFlight: true}
		return nil, nil, false
	case e.inFlight:
		return withCode(&result{status: http.StatusConflict, validation: true, body: apiError{Error: errorBody{
			Type: "invalid_request_error",
			Message: "There is currently another in-progress request using this Stripe API Key (that probably means you submitted twice, and that's fine), " +
				"but only one request can be processed at a time. Please try this request again later.",
		}}}, "idempotency_key_in_use"), nil, true
	case e.fingerprint != fp:
		return &result{status: http.StatusBadRequest, validation: true, body: apiError{Error: errorBody{
			Type: "idempotency_error",
			Message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were first used with. "+
				"Try using a key other than '%s' if you meant to execute a different request.", key),
		}}}, nil, true
	default:
		return nil, e, true
	}
}

func (s *Server) takeFault(list *[]*drop, method, path string) *drop {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range *list {
		if d.matches(method, path) {
			d.n--
			return d
		}
	}
	return nil
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// authenticate accepts the secret key as a bearer token (stripe-go) or a basic
// user (curl -u).
func (s *Server) authenticate(r *http.Request) *result {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if user, _, ok := r.BasicAuth(); ok {
		key = user
	}
	if key == s.SecretKey {
		return nil
	}
	msg := "You did not provide an API key."
	if key != "" {
		masked := key
		if len(masked) > 4 {
			masked = masked[len(masked)-4:]
		}
		msg = "Invalid API Key provided: sk_test_****" + masked
	}
	return &result{status: http.StatusUnauthorized, validation: true, body: apiError{Error: errorBody{Type: "invalid_request_error", Message: msg}}}
}

func readForm(r *http.Request) (url.Values, error) {
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		return r.URL.Query(), nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(string(body))
}

func writeJSON(w http.ResponseWriter, status int, v any, replayed bool) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, body, replayed)
}

func writeRaw(w http.ResponseWriter, status int, body []byte, replayed bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_"+randomHex(7))
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSpace(body))
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("stripestub: the response writer cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// newID is a Stripe-looking id with prefix ("cus_", "pi_", …).
func newID(prefix string) string { return prefix + "stub" + randomHex(10) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
