package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// fakeLedger implements billing.Ledger with one function field per method; a
// method whose field is nil fails with errNotSet, which the server answers 500.
type fakeLedger struct {
	CreateAccountFunc   func(ctx context.Context, id, tier string) (billing.Account, error)
	GetAccountFunc      func(ctx context.Context, id string) (billing.Account, error)
	ListAccountsFunc    func(ctx context.Context) ([]billing.Account, error)
	SetTierFunc         func(ctx context.Context, id, tier string) error
	SetAutoRechargeFunc func(ctx context.Context, id string, ar billing.AutoRecharge) error
	ReserveFunc         func(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error)
	SettleFunc          func(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error)
	ReleaseFunc         func(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error)
	TopUpFunc           func(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error)
	EventsFunc          func(ctx context.Context, account, after string, limit int) (billing.EventPage, error)
}

var errNotSet = errors.New("fake: method not set by this test")

func (f *fakeLedger) CreateAccount(ctx context.Context, id, tier string) (billing.Account, error) {
	if f.CreateAccountFunc == nil {
		return billing.Account{}, errNotSet
	}
	return f.CreateAccountFunc(ctx, id, tier)
}

func (f *fakeLedger) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	if f.GetAccountFunc == nil {
		return billing.Account{}, errNotSet
	}
	return f.GetAccountFunc(ctx, id)
}

func (f *fakeLedger) ListAccounts(ctx context.Context) ([]billing.Account, error) {
	if f.ListAccountsFunc == nil {
		return nil, errNotSet
	}
	return f.ListAccountsFunc(ctx)
}

func (f *fakeLedger) SetTier(ctx context.Context, id, tier string) error {
	if f.SetTierFunc == nil {
		return errNotSet
	}
	return f.SetTierFunc(ctx, id, tier)
}

func (f *fakeLedger) SetAutoRecharge(ctx context.Context, id string, ar billing.AutoRecharge) error {
	if f.SetAutoRechargeFunc == nil {
		return errNotSet
	}
	return f.SetAutoRechargeFunc(ctx, id, ar)
}

func (f *fakeLedger) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
	if f.ReserveFunc == nil {
		return billing.Reservation{}, errNotSet
	}
	return f.ReserveFunc(ctx, r)
}

func (f *fakeLedger) Settle(ctx context.Context, s billing.SettleRequest) (billing.Settlement, error) {
	if f.SettleFunc == nil {
		return billing.Settlement{}, errNotSet
	}
	return f.SettleFunc(ctx, s)
}

func (f *fakeLedger) Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
	if f.ReleaseFunc == nil {
		return billing.Settlement{}, errNotSet
	}
	return f.ReleaseFunc(ctx, account, holdID, u)
}

func (f *fakeLedger) TopUp(ctx context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
	if f.TopUpFunc == nil {
		return billing.TopUpResult{}, errNotSet
	}
	return f.TopUpFunc(ctx, p, r)
}

func (f *fakeLedger) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if f.EventsFunc == nil {
		return billing.EventPage{}, errNotSet
	}
	return f.EventsFunc(ctx, account, after, limit)
}

// fakeKeys implements billing.KeyStore the same way.
type fakeKeys struct {
	CreateKeyFunc func(ctx context.Context, account, name string) (billing.APIKey, string, error)
	ListKeysFunc  func(ctx context.Context, account string) ([]billing.APIKey, error)
	RevokeKeyFunc func(ctx context.Context, account, keyID string) error
	LookupKeyFunc func(ctx context.Context, h billing.KeyHash) (billing.APIKey, error)
}

func (f *fakeKeys) CreateKey(ctx context.Context, account, name string) (billing.APIKey, string, error) {
	if f.CreateKeyFunc == nil {
		return billing.APIKey{}, "", errNotSet
	}
	return f.CreateKeyFunc(ctx, account, name)
}

func (f *fakeKeys) ListKeys(ctx context.Context, account string) ([]billing.APIKey, error) {
	if f.ListKeysFunc == nil {
		return nil, errNotSet
	}
	return f.ListKeysFunc(ctx, account)
}

func (f *fakeKeys) RevokeKey(ctx context.Context, account, keyID string) error {
	if f.RevokeKeyFunc == nil {
		return errNotSet
	}
	return f.RevokeKeyFunc(ctx, account, keyID)
}

func (f *fakeKeys) LookupKey(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	if f.LookupKeyFunc == nil {
		return billing.APIKey{}, errNotSet
	}
	return f.LookupKeyFunc(ctx, h)
}

// Test fixtures.

const testToken = "adm-0123456789abcdef"

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() billing.Policy {
	return billing.Policy{
		Grace:       money.MustParse("0.50"),
		MinPurchase: money.MustParse("5.00"),
		CreditTTL:   365 * 24 * time.Hour,
		HoldTTL:     15 * time.Minute,
		DefaultTier: "tier-1",
		Tiers: map[string]billing.Tier{
			"tier-1": {MaxTopUp: money.MustParse("100"), MaxBalance: money.MustParse("1000")},
			"tier-2": {MaxTopUp: money.MustParse("1000")},
		},
		AutoRechargeMin: money.MustParse("10.00"),
	}
}

func newTestServer(l *fakeLedger, k *fakeKeys) *Server {
	if l == nil {
		l = &fakeLedger{}
	}
	if k == nil {
		k = &fakeKeys{}
	}
	return &Server{
		Ledger: l,
		Keys:   k,
		Policy: testPolicy,
		Tokens: func() []string { return []string{"other-token", testToken} },
		Now:    func() time.Time { return testNow },
	}
}

// call sends one request to h with the test admin token (unless headers set
// Authorization) and returns the recorded answer. headers are name, value pairs.
func call(t *testing.T, h http.Handler, method, target, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "<none>" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorCase is the expected error answer of a table case.
type errorCase struct {
	status int
	typ    string
	code   string
	param  string
}

// checkError asserts that rec is the error answer want, in the documented shape.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, want errorCase) {
	t.Helper()
	if rec.Code != want.status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want.status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error map[string]any `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body does not decode: %v", err)
	}
	e := body.Error
	if e["type"] != want.typ || e["code"] != want.code {
		t.Errorf("error type/code = %v/%v, want %s/%s (message %q)", e["type"], e["code"], want.typ, want.code, e["message"])
	}
	gotParam, _ := e["param"].(string)
	if gotParam != want.param {
		t.Errorf("error param = %q, want %q (message %q)", gotParam, want.param, e["message"])
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error message is empty")
	}
	for k := range e {
		switch k {
		case "message", "type", "code", "param":
		default:
			t.Errorf("unexpected error field %q", k)
		}
	}
}

// checkJSON asserts that rec has status and exactly the JSON body want (spacing aside).
func checkJSON(t *testing.T, rec *httptest.ResponseRecorder, status int, want string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(want)); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != compact.String() {
		t.Errorf("body:\n got %s\nwant %s", got, compact.String())
	}
}
