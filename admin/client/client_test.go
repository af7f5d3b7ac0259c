package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

const testToken = "adm-0123456789abcdef"

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() billing.Policy {
	return billing.Policy{
		Grace: money.MustParse("0.50"), MinPurchase: money.MustParse("5"), DefaultTier: "tier-1",
		Tiers:           map[string]billing.Tier{"tier-1": {MaxTopUp: money.MustParse("100")}},
		AutoRechargeMin: money.MustParse("5"),
	}
}

// newServer serves admin.Server over fakes and returns a client of it, and the
// number of requests that reached the server.
func newServer(t *testing.T, l *fakeLedger, k *fakeKeys) (*Client, *atomic.Int64) {
	t.Helper()
	s := &admin.Server{
		Ledger: l, Keys: k, Policy: testPolicy,
		Tokens: func() []string { return []string{testToken} },
		Now:    func() time.Time { return testNow },
	}
	var requests atomic.Int64
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL + "/", Token: testToken, HTTP: srv.Client()}, &requests
}

func sampleAccount() billing.Account {
	return billing.Account{
		ID: "acme", Tier: "tier-1", CreatedAt: testNow, Credit: money.MustParse("4.998731"), Debt: 0, Reserved: money.MustParse("5.2"),
		Grants: []billing.Grant{{ID: "grant_a", Amount: money.MustParse("5"), Remaining: money.MustParse("4.998731"),
			GrantedAt: testNow, ExpiresAt: testNow.AddDate(1, 0, 0), Source: billing.SourcePurchase}},
		AutoRecharge: billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("1"), Amount: money.MustParse("5"), MonthlyLimit: money.MustParse("50")},
	}
}

var sampleAccountWire = admin.Account{
	ID: "acme", Tier: "tier-1", CreatedAt: testNow,
	Balance: 4_998_731, Credit: 4_998_731, Debt: 0, Reserved: 5_200_000, Available: -201_269, Grace: 500_000,
	Grants:          []admin.Grant{{ID: "grant_a", Amount: 5_000_000, Remaining: 4_998_731, GrantedAt: testNow, ExpiresAt: testNow.AddDate(1, 0, 0), Source: "purchase"}},
	AutoRecharge:    admin.AutoRecharge{Enabled: true, Threshold: 1_000_000, Amount: 5_000_000, MonthlyLimit: 50_000_000},
	AccountSettings: admin.AccountSettings{Status: "active"},
}

// sameJSON compares values by their JSON, which is what the wire promises.
func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	usage := billing.Event{ID: "2-0", Type: billing.EventUsage, At: testNow, Amount: 1234, BalanceAfter: -1234, DebtAfter: 1234,
		Model: "gpt-4o-mini", PromptTokens: 10, CompletionTokens: 5, TokenSource: "local", Cost: 1234, ToDebt: 1234}
	tests := []struct {
		name string
		l    *fakeLedger
		k    *fakeKeys
		call func(c *Client) (any, error)
		want any
	}{
		{
			name: "CreateAccount",
			l: &fakeLedger{CreateAccountFunc: func(_ context.Context, id, tier string) (billing.Account, error) {
				if id != "acme" || tier != "tier-1" {
					return billing.Account{}, fmt.Errorf("got %s %s", id, tier)
				}
				return sampleAccount(), nil
			}},
			call: func(c *Client) (any, error) { return c.CreateAccount(ctx, "acme", "") },
			want: sampleAccountWire,
		},
		{
			name: "ListAccounts",
			l: &fakeLedger{ListAccountsFunc: func(context.Context) ([]billing.Account, error) {
				return []billing.Account{sampleAccount()}, nil
			}},
			call: func(c *Client) (any, error) { return c.ListAccounts(ctx) },
			want: admin.AccountList{Object: "list", Data: []admin.AccountSummary{{ID: "acme", Tier: "tier-1", CreatedAt: testNow,
				Balance: 4_998_731, Credit: 4_998_731, Reserved: 5_200_000, Available: -201_269,
				AccountSettings: admin.AccountSettings{Status: "active"}}}},
		},
		{
			name: "GetAccount",
			l: &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
				return sampleAccount(), nil
			}},
			call: func(c *Client) (any, error) { return c.GetAccount(ctx, "acme") },
			want: sampleAccountWire,
		},
		{
			name: "CreateKey",
			k: &fakeKeys{CreateKeyFunc: func(_ context.Context, account, name string) (billing.APIKey, string, error) {
				return billing.APIKey{ID: "key_1", Account: account, Name: name, CreatedAt: testNow, Hint: "sk-cg-abc…wxyz"}, "sk-cg-abcSECRETwxyz", nil
			}},
			call: func(c *Client) (any, error) { return c.CreateKey(ctx, "acme", "ci") },
			want: admin.CreatedKey{ID: "key_1", Key: "sk-cg-abcSECRETwxyz", Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz",
				KeySettings: admin.KeySettings{LimitReset: billing.LimitNever}},
		},
		{
			name: "ListKeys",
			k: &fakeKeys{ListKeysFunc: func(context.Context, string) ([]billing.APIKey, error) {
				return []billing.APIKey{{ID: "key_1", Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz"}}, nil
			}},
			call: func(c *Client) (any, error) { return c.ListKeys(ctx, "acme") },
			want: admin.KeyList{Object: "list", Data: []admin.Key{{ID: "key_1", Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz",
				KeySettings: admin.KeySettings{LimitReset: billing.LimitNever}}}},
		},
		{
			name: "UpdateKey",
			k: &fakeKeys{UpdateKeyFunc: func(_ context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error) {
				k := billing.APIKey{ID: keyID, Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz", ExpiresAt: testNow.Add(time.Hour)}
				if u.ExpiresAt == nil || !u.ExpiresAt.IsZero() || u.Limit == nil || u.Disabled == nil {
					return billing.APIKey{}, billing.ErrInvalid // the client did not send what it was given
				}
				u.Apply(&k)
				return k, nil
			}},
			call: func(c *Client) (any, error) {
				return c.UpdateKey(ctx, "acme", "key_1", admin.UpdateKeyRequest{Limit: ptr("5.00"), ClearExpiresAt: true, Disabled: ptr(true)})
			},
			want: admin.Key{ID: "key_1", Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz",
				KeySettings: admin.KeySettings{Limit: ptr[money.Micros](5_000_000), LimitReset: billing.LimitNever, Disabled: true}},
		},
		{
			name: "RevokeKey",
			k: &fakeKeys{RevokeKeyFunc: func(_ context.Context, account, keyID string) error {
				if account != "acme" || keyID != "key_1" {
					return fmt.Errorf("got %s %s", account, keyID)
				}
				return nil
			}},
			call: func(c *Client) (any, error) { return nil, c.RevokeKey(ctx, "acme", "key_1") },
			want: nil,
		},
		{
			name: "AddCredits with expiry",
			l: &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
				if r.Amount != 25*money.Dollar || !r.ExpiresAt.Equal(expires) || r.Source != billing.SourcePromo {
					return billing.TopUpResult{}, fmt.Errorf("got %+v", r)
				}
				return billing.TopUpResult{Grant: billing.Grant{ID: "grant_x", Amount: r.Amount, Remaining: r.Amount, GrantedAt: testNow, ExpiresAt: r.ExpiresAt, Source: r.Source},
					DebtRepaid: 300_000, BalanceAfter: r.Amount - 300_000, EventID: "9-0"}, nil
			}},
			call: func(c *Client) (any, error) { return c.AddCredits(ctx, "acme", "25.00", &expires, "") },
			want: admin.CreditResult{Grant: admin.Grant{ID: "grant_x", Amount: 25_000_000, Remaining: 25_000_000, GrantedAt: testNow, ExpiresAt: expires.UTC(), Source: "promo"},
				DebtRepaid: 300_000, BalanceAfter: 24_700_000, EventID: "9-0"},
		},
		{
			name: "SetAutoRecharge",
			l: &fakeLedger{SetAutoRechargeFunc: func(_ context.Context, _ string, ar billing.AutoRecharge) error {
				if !ar.Enabled || ar.Amount != 10*money.Dollar {
					return fmt.Errorf("got %+v", ar)
				}
				return nil
			}},
			call: func(c *Client) (any, error) {
				return c.SetAutoRecharge(ctx, "acme", admin.AutoRechargeRequest{Enabled: true, Threshold: "2", Amount: "10", MonthlyLimit: "100"})
			},
			want: admin.AutoRecharge{Enabled: true, Threshold: 2_000_000, Amount: 10_000_000, MonthlyLimit: 100_000_000},
		},
		{
			name: "Ledger",
			l: &fakeLedger{EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
				if after != "1-0" || limit != 2 {
					return billing.EventPage{}, fmt.Errorf("got after %q limit %d", after, limit)
				}
				return billing.EventPage{Events: []billing.Event{usage}, Next: "2-0"}, nil
			}},
			call: func(c *Client) (any, error) { return c.Ledger(ctx, "acme", "1-0", 2) },
			want: admin.EventList{Object: "list", Next: "2-0", HasMore: true, Data: []admin.Event{{
				ID: "2-0", Type: "usage", At: testNow, Amount: 1234, BalanceAfter: -1234, DebtAfter: 1234,
				Model: "gpt-4o-mini", PromptTokens: ptr[int64](10), CompletionTokens: ptr[int64](5), CachedTokens: ptr[int64](0), ReasoningTokens: ptr[int64](0),
				TokenSource: "local", Cost: ptr[money.Micros](1234), FromCredit: ptr[money.Micros](0), ToDebt: ptr[money.Micros](1234),
			}}},
		},
		{
			name: "Healthz",
			call: func(c *Client) (any, error) { return nil, c.Healthz(ctx) },
		},
		{
			name: "Readyz",
			call: func(c *Client) (any, error) { return nil, c.Readyz(ctx) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, k := tt.l, tt.k
			if l == nil {
				l = &fakeLedger{}
			}
			if k == nil {
				k = &fakeKeys{}
			}
			c, _ := newServer(t, l, k)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			sameJSON(t, got, tt.want)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestAddCreditsReplay(t *testing.T) {
	var keys []string
	first := true
	l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		keys = append(keys, r.IdempotencyKey)
		res := billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount}, BalanceAfter: r.Amount, EventID: "1-0", Replayed: !first}
		first = false
		return res, nil
	}}
	c, _ := newServer(t, l, &fakeKeys{})
	a, err := c.AddCredits(context.Background(), "acme", "10", nil, "order-1")
	if err != nil || a.Replayed {
		t.Fatalf("first call: %+v, %v; want a fresh grant", a, err)
	}
	b, err := c.AddCredits(context.Background(), "acme", "10", nil, "order-1")
	if err != nil || !b.Replayed {
		t.Fatalf("second call: %+v, %v; want Replayed", b, err)
	}
	b.Replayed = false
	sameJSON(t, b, a)
	if len(keys) != 2 || keys[0] != "order-1" || keys[1] != "order-1" {
		t.Errorf("store saw idempotency keys %q, want order-1 twice", keys)
	}
}

func TestAPIErrors(t *testing.T) {
	ctx := context.Background()
	l := &fakeLedger{
		GetAccountFunc: func(context.Context, string) (billing.Account, error) {
			return billing.Account{}, billing.ErrAccountNotFound
		},
		TopUpFunc: func(context.Context, billing.Policy, billing.TopUpRequest) (billing.TopUpResult, error) {
			return billing.TopUpResult{}, billing.ErrIdempotencyConflict
		},
	}
	tests := []struct {
		name  string
		call  func(c *Client) error
		token string
		want  APIError
	}{
		{"invalid amount", func(c *Client) error { _, err := c.AddCredits(ctx, "acme", "1e3", nil, ""); return err }, "",
			APIError{Status: 400, Type: admin.TypeInvalidRequest, Code: admin.CodeInvalidAmount, Param: "amount"}},
		{"negative amount", func(c *Client) error { _, err := c.AddCredits(ctx, "acme", "-5", nil, ""); return err }, "",
			APIError{Status: 400, Type: admin.TypeInvalidRequest, Code: admin.CodeInvalidAmount, Param: "amount"}},
		{"idempotency conflict", func(c *Client) error { _, err := c.AddCredits(ctx, "acme", "5", nil, "k"); return err }, "",
			APIError{Status: 409, Type: admin.TypeConflict, Code: admin.CodeIdempotencyConflict}},
		{"not found", func(c *Client) error { _, err := c.GetAccount(ctx, "nobody"); return err }, "",
			APIError{Status: 404, Type: admin.TypeNotFound, Code: admin.CodeAccountNotFound}},
		{"escaped slash stays in the id", func(c *Client) error { _, err := c.GetAccount(ctx, "a/b"); return err }, "",
			APIError{Status: 400, Type: admin.TypeInvalidRequest, Code: admin.CodeInvalidValue, Param: "id"}},
		{"wrong token", func(c *Client) error { _, err := c.ListAccounts(ctx); return err }, "wrong",
			APIError{Status: 401, Type: admin.TypeAuthentication, Code: admin.CodeInvalidAdminToken}},
		{"ledger limit", func(c *Client) error { _, err := c.Ledger(ctx, "acme", "", 5000); return err }, "",
			APIError{Status: 400, Type: admin.TypeInvalidRequest, Code: admin.CodeInvalidValue, Param: "limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newServer(t, l, &fakeKeys{})
			if tt.token != "" {
				c.Token = tt.token
			}
			err := tt.call(c)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if apiErr.Message == "" {
				t.Errorf("APIError has no message")
			}
			got := *apiErr
			got.Message = ""
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if !strings.Contains(err.Error(), apiErr.Message) || !strings.Contains(err.Error(), fmt.Sprint(tt.want.Status)) {
				t.Errorf("Error() = %q lacks the message or status", err)
			}
		})
	}
}

func TestNonAPIErrorBodies(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantMessage string
		wantCode    string
	}{
		{"proxy text", http.StatusBadGateway, "upstream connect error\n", "Bad Gateway: upstream connect error", ""},
		{"empty", http.StatusInternalServerError, "", "Internal Server Error", ""},
		{"not ready", http.StatusServiceUnavailable, `{"status":"unavailable","reason":"redis down"}`, "not ready: redis down", "unavailable"},
		{"long body is cut", http.StatusBadGateway, strings.Repeat("x", 500), "Bad Gateway: " + strings.Repeat("x", 200) + "…", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			err := (&Client{BaseURL: srv.URL, Token: testToken}).Readyz(context.Background())
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.Message != tt.wantMessage || apiErr.Code != tt.wantCode {
				t.Fatalf("got %#v, want status %d message %q code %q", err, tt.status, tt.wantMessage, tt.wantCode)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	type seen struct {
		method, path, query, auth, contentType, idem, body string
	}
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), string(body)}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: testToken}
	ctx := context.Background()
	expires := time.Date(2030, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		call func() error
		want seen
	}{
		{"credits", func() error { _, err := c.AddCredits(ctx, "acme", "25.00", &expires, "order-1"); return err },
			seen{"POST", "/admin/v1/accounts/acme/credits", "", "Bearer " + testToken, "application/json", "order-1", `{"amount":"25.00","expires_at":"2030-01-01T00:00:00Z"}`}},
		// Without a key from the caller, the client generates one (checked below).
		{"credits without key", func() error { _, err := c.AddCredits(ctx, "acme", "25", nil, ""); return err },
			seen{"POST", "/admin/v1/accounts/acme/credits", "", "Bearer " + testToken, "application/json", generatedKey, `{"amount":"25"}`}},
		{"ledger default limit", func() error { _, err := c.Ledger(ctx, "acme", "", 0); return err },
			seen{"GET", "/admin/v1/accounts/acme/ledger", "", "Bearer " + testToken, "", "", ""}},
		{"ledger cursor", func() error { _, err := c.Ledger(ctx, "acme", "5-1", 10); return err },
			seen{"GET", "/admin/v1/accounts/acme/ledger", "after=5-1&limit=10", "Bearer " + testToken, "", "", ""}},
		{"escaped account", func() error { _, err := c.GetAccount(ctx, "a b/c"); return err },
			seen{"GET", "/admin/v1/accounts/a%20b%2Fc", "", "Bearer " + testToken, "", "", ""}},
		{"auto-recharge off", func() error { _, err := c.SetAutoRecharge(ctx, "acme", admin.AutoRechargeRequest{}); return err },
			seen{"PUT", "/admin/v1/accounts/acme/auto-recharge", "", "Bearer " + testToken, "application/json", "", `{"enabled":false}`}},
		{"key name", func() error { _, err := c.CreateKey(ctx, "acme", ""); return err },
			seen{"POST", "/admin/v1/accounts/acme/keys", "", "Bearer " + testToken, "application/json", "", `{}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = seen{}
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			if tt.want.idem == generatedKey {
				if !generatedKeyPattern.MatchString(got.idem) {
					t.Errorf("Idempotency-Key %q, want a generated key", got.idem)
				}
				got.idem = generatedKey
			}
			if got != tt.want {
				t.Errorf("server saw %+v\nwant          %+v", got, tt.want)
			}
		})
	}
}

func TestLocalErrors(t *testing.T) {
	c, requests := newServer(t, &fakeLedger{}, &fakeKeys{})
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"empty account": func() error { _, err := c.GetAccount(ctx, ""); return err },
		"dot account":   func() error { _, err := c.ListKeys(ctx, ".."); return err },
		"dot key":       func() error { return c.RevokeKey(ctx, "acme", ".") },
		"no base URL":   func() error { _, err := (&Client{Token: testToken}).ListAccounts(ctx); return err },
	} {
		err := call()
		var apiErr *APIError
		if err == nil || errors.As(err, &apiErr) {
			t.Errorf("%s: error %v, want a local error", name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}
}

func TestTransportErrorHidesToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	_, err := (&Client{BaseURL: url, Token: testToken}).ListAccounts(context.Background())
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error %q contains the token", err)
	}
}

// generatedKey stands in a table for a key the client generated, which
// generatedKeyPattern matches.
const generatedKey = "<generated>"

var generatedKeyPattern = regexp.MustCompile(`^cgk_[0-9a-f]{32}$`)
