package portal

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/payments"
)

// env is a Handler on the test's Redis ledger with in-memory sessions (or the
// Redis ones once they exist), purchases and cards.
type env struct {
	t         *testing.T
	store     *redisstore.Store
	sessions  billing.PortalStore
	purchases *fakePurchases
	cards     *fakeCards
	h         *Handler
	keys      map[string]billing.APIKey // by name
}

func newEnv(t *testing.T) *env {
	t.Helper()
	store := newRedisLedger(t, nil)
	e := &env{t: t, store: store, sessions: portalStoreFor(store), cards: &fakeCards{cards: map[string]*payments.Card{}}, keys: map[string]billing.APIKey{}}
	e.purchases = &fakePurchases{
		CheckFunc: limitsOf(store, testPolicy),
		StartFunc: func(_ context.Context, p billing.Purchase, r StartPurchase) (string, string, error) {
			return "cs_test_" + p.ID, "https://checkout.example.test/pay/" + p.ID, nil
		},
	}
	e.h = &Handler{
		Sessions: e.sessions, Ledger: store, Keys: store, Purchases: e.purchases, History: e.purchases, Cards: e.cards,
		Receipts: &fakeReceipts{ReceiptURLFunc: func(_ context.Context, ref string) (string, error) {
			return "https://receipts.example.test/" + ref, nil
		}},
		Provider: "stripe", CheckoutOrigin: "https://checkout.example.test", Policy: func() billing.Policy { return testPolicy },
		SessionTTL: time.Hour,
	}
	return e
}

// limitsOf checks a purchase as the purchase service does (CreatePurchase's
// rules: min_purchase, the tier's max_topup and max_balance).
func limitsOf(store billing.Ledger, p billing.Policy) func(context.Context, StartPurchase) error {
	return func(ctx context.Context, r StartPurchase) error {
		a, err := store.GetAccount(ctx, r.Account)
		if err != nil {
			return err
		}
		tier := p.Tiers[a.Tier]
		switch {
		case r.Amount < p.MinPurchase:
			return &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: p.MinPurchase, Amount: r.Amount}
		case tier.MaxTopUp > 0 && r.Amount > tier.MaxTopUp:
			return &billing.LimitError{Err: billing.ErrAboveMaxTopUp, Limit: tier.MaxTopUp, Amount: r.Amount}
		case tier.MaxBalance > 0 && a.Credit+r.Amount > tier.MaxBalance:
			return &billing.LimitError{Err: billing.ErrAboveMaxBalance, Limit: tier.MaxBalance, Amount: a.Credit + r.Amount}
		}
		return nil
	}
}

// account creates an account with a grant, two named keys and some usage.
func (e *env) account(id string, models ...string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.CreateAccount(ctx, id, "tier-1"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: "grant_" + id, Amount: money.MustParse("50.00"), Source: billing.SourcePurchase}); err != nil {
		e.t.Fatal(err)
	}
	for _, name := range []string{id + "-backend", id + "-batch"} {
		k, _, err := e.store.CreateKey(ctx, id, name)
		if err != nil {
			e.t.Fatal(err)
		}
		e.keys[name] = k
	}
	for i, m := range models {
		e.spend(id, e.keys[id+"-backend"].ID, m, money.Micros(1_234_567*(i+1)))
	}
}

var holds int

// spend settles one request of cost on account.
func (e *env) spend(account, keyID, model string, cost money.Micros) billing.Settlement {
	e.t.Helper()
	ctx := context.Background()
	holds++
	hold := fmt.Sprintf("req_%s_%d_%d", account, holds, time.Now().UnixNano())
	res, err := e.store.Reserve(ctx, billing.ReserveRequest{Account: account, HoldID: hold, Estimate: cost, Minimum: cost, Grace: testPolicy.Grace, TTL: time.Minute})
	if err != nil || !res.Admitted {
		e.t.Fatalf("reserve %s on %s: %+v %v", cost, account, res, err)
	}
	st, err := e.store.Settle(ctx, billing.SettleRequest{Account: account, HoldID: hold, Cost: cost, Usage: billing.Usage{
		RequestID: hold, KeyID: keyID, Model: model, Endpoint: "/v1/chat/completions", PromptTokens: 100, CompletionTokens: 50,
		TokenSource: billing.TokenSourceUpstream}})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// link mints a portal link for account (as the admin endpoint will) and
// returns its token.
func (e *env) link(account string, ttl time.Duration) string {
	e.t.Helper()
	token := randomToken()
	if err := e.sessions.CreatePortalLink(context.Background(), billing.HashKey(token),
		billing.PortalLink{Account: account, ReturnURL: "https://app.example.test/settings", ExpiresAt: time.Now().Add(ttl), Actor: "test"}); err != nil {
		e.t.Fatal(err)
	}
	return token
}

// client is a signed-in browser: its cookie and the page's CSRF token.
type client struct {
	cookie *http.Cookie
	csrf   string
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// login opens a fresh link for account and reads the page's CSRF token.
func (e *env) login(account string) *client {
	e.t.Helper()
	rec := e.do(http.MethodGet, "/billing/login?token="+url.QueryEscape(e.link(account, 10*time.Minute)), nil, nil, nil)
	if rec.Code != http.StatusSeeOther {
		e.t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	c := &client{}
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == CookieName {
			c.cookie = ck
		}
	}
	if c.cookie == nil {
		e.t.Fatal("login set no session cookie")
	}
	page := e.do(http.MethodGet, "/billing/", c, nil, nil)
	m := csrfMeta.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		e.t.Fatalf("page after login: %d, csrf %v", page.Code, m)
	}
	c.csrf = m[1]
	return c
}

// do sends a request to the handler: form is the body of a POST, hdr extra headers.
func (e *env) do(method, target string, c *client, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c != nil && c.cookie != nil {
		r.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if hdr["tls"] != "" {
		r.TLS = &tls.ConnectionState{}
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

// jsonHeaders ask for JSON and carry c's CSRF token.
func (c *client) jsonHeaders() map[string]string {
	return map[string]string{"Accept": "application/json", CSRFHeader: c.csrf}
}
