package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var cet = time.FixedZone("CET", 3600)

func sampleAccount() billing.Account {
	return billing.Account{
		ID:        "acme",
		Tier:      "tier-1",
		CreatedAt: time.Date(2025, 1, 2, 4, 4, 5, 0, cet), // a non-UTC store time comes out in UTC
		Credit:    money.MustParse("24.75"),
		Reserved:  money.MustParse("1.25"),
		Grants: []billing.Grant{{
			ID: "grant_a", Amount: money.MustParse("25"), Remaining: money.MustParse("24.75"),
			GrantedAt: time.Date(2025, 1, 2, 3, 5, 0, 0, time.UTC),
			ExpiresAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
			Source:    billing.SourcePurchase,
		}},
		AutoRecharge: billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("5"), Amount: money.MustParse("20"), MonthlyLimit: money.MustParse("100")},
	}
}

const sampleAccountJSON = `{"id":"acme","tier":"tier-1","created_at":"2025-01-02T03:04:05Z",
	"balance":"24.750000","credit":"24.750000","debt":"0.000000","reserved":"1.250000","available":"23.500000","grace":"0.500000",
	"grants":[{"id":"grant_a","amount":"25.000000","remaining":"24.750000","granted_at":"2025-01-02T03:05:00Z","expires_at":"2026-01-02T03:05:00Z","source":"purchase"}],
	"auto_recharge":{"enabled":true,"threshold":"5.000000","amount":"20.000000","monthly_limit":"100.000000"},"status":"active","tier_pinned":false,"paid_total":"0.000000"}`

func TestAuth(t *testing.T) {
	getAccount := &fakeLedger{GetAccountFunc: func(context.Context, string) (billing.Account, error) { return sampleAccount(), nil }}
	tests := []struct {
		name   string
		tokens func() []string
		header string // "<none>" = no Authorization header
		want   int
	}{
		{"no header", nil, "<none>", http.StatusUnauthorized},
		{"empty header", nil, "", http.StatusUnauthorized},
		{"basic scheme", nil, "Basic " + testToken, http.StatusUnauthorized},
		{"bearer without token", nil, "Bearer ", http.StatusUnauthorized},
		{"bare token", nil, testToken, http.StatusUnauthorized},
		{"wrong token", nil, "Bearer wrong", http.StatusUnauthorized},
		{"token prefix", nil, "Bearer " + testToken[:5], http.StatusUnauthorized},
		{"token with suffix", nil, "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"right token", nil, "Bearer " + testToken, http.StatusOK},
		{"first of the tokens", nil, "Bearer other-token", http.StatusOK},
		{"lowercase scheme", nil, "bearer " + testToken, http.StatusOK},
		{"no tokens configured", func() []string { return nil }, "Bearer " + testToken, http.StatusUnauthorized},
		{"empty configured token never matches", func() []string { return []string{""} }, "Bearer ", http.StatusUnauthorized},
		{"hot-reloaded tokens", func() []string { return []string{"new-token"} }, "Bearer new-token", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(getAccount, nil)
			if tt.tokens != nil {
				s.Tokens = tt.tokens
			}
			rec := call(t, s.Handler(), "GET", "/admin/v1/accounts/acme", "", "Authorization", tt.header)
			if tt.want == http.StatusOK {
				checkJSON(t, rec, http.StatusOK, sampleAccountJSON)
				return
			}
			checkError(t, rec, errorCase{http.StatusUnauthorized, TypeAuthentication, CodeInvalidAdminToken, ""})
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
			}
		})
	}
}

func TestAuthCoversEveryAdminPath(t *testing.T) {
	s := newTestServer(nil, nil)
	s.Tokens = nil // refuse everything
	h := s.Handler()
	for _, target := range []string{
		"POST /admin/v1/accounts", "GET /admin/v1/accounts", "GET /admin/v1/accounts/acme",
		"POST /admin/v1/accounts/acme/keys", "GET /admin/v1/accounts/acme/keys", "DELETE /admin/v1/accounts/acme/keys/key_1",
		"POST /admin/v1/accounts/acme/credits", "POST /admin/v1/accounts/acme/adjustments", "PUT /admin/v1/accounts/acme/auto-recharge", "GET /admin/v1/accounts/acme/ledger",
		"GET /admin/v2/unknown", "PATCH /admin/v1/accounts", "GET /metrics", "GET /",
	} {
		method, path, _ := strings.Cut(target, " ")
		rec := call(t, h, method, path, `{}`)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", target, rec.Code)
		}
	}
}

func TestTokenMatchesComparesEveryToken(t *testing.T) {
	tokens := []string{"a-token", "b-token", "", "c-token"}
	for _, presented := range []string{"a-token", "c-token", "nope", ""} {
		calls := 0
		counting := func(a, b []byte) int {
			calls++
			if len(a) != 32 || len(b) != 32 {
				t.Errorf("compared %d and %d bytes, want two SHA-256 digests", len(a), len(b))
			}
			return subtle.ConstantTimeCompare(a, b)
		}
		got := tokenMatches(presented, tokens, counting)
		want := presented != "" && presented != "nope"
		if got != want {
			t.Errorf("tokenMatches(%q) = %v, want %v", presented, got, want)
		}
		if calls != len(tokens) {
			t.Errorf("tokenMatches(%q) compared %d tokens, want all %d (no early exit)", presented, calls, len(tokens))
		}
	}
}

func TestCreateAccount(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		storeErr error
		wantTier string // tier passed to the store on success
		err      *errorCase
	}{
		{name: "explicit tier", body: `{"id":"acme","tier":"tier-2"}`, wantTier: "tier-2"},
		{name: "default tier", body: `{"id":"acme"}`, wantTier: "tier-1"},
		{name: "empty tier is the default", body: `{"id":"acme","tier":""}`, wantTier: "tier-1"},
		{name: "content type is not checked", body: `{"id":"acme"}`, wantTier: "tier-1"},
		{name: "unknown tier", body: `{"id":"acme","tier":"gold"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownTier, "tier"}},
		{name: "store says unknown tier", body: `{"id":"acme"}`, storeErr: fmt.Errorf("%w: tier-1", billing.ErrUnknownTier), err: &errorCase{400, TypeInvalidRequest, CodeUnknownTier, "tier"}},
		{name: "missing id", body: `{"tier":"tier-1"}`, err: &errorCase{400, TypeInvalidRequest, CodeMissingField, "id"}},
		{name: "empty id", body: `{"id":""}`, err: &errorCase{400, TypeInvalidRequest, CodeMissingField, "id"}},
		{name: "id with braces", body: `{"id":"a{b}"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id with colon", body: `{"id":"acct:x"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id with space", body: `{"id":"a b"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id starting with a dot", body: `{"id":".acme"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id of 65 characters", body: `{"id":"` + strings.Repeat("a", 65) + `"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id as a number", body: `{"id":5}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "unknown field", body: `{"id":"acme","plan":"x"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownField, "plan"}},
		{name: "not JSON", body: `id=acme`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "truncated JSON", body: `{"id":"acme"`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "empty body", body: ``, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "array body", body: `["acme"]`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "two objects", body: `{"id":"acme"}{"id":"b"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "trailing garbage", body: `{"id":"acme"} x`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}},
		{name: "existing id", body: `{"id":"acme"}`, storeErr: fmt.Errorf("%w: acme", billing.ErrAccountExists), err: &errorCase{409, TypeConflict, CodeAccountExists, "id"}},
		{name: "store unavailable", body: `{"id":"acme"}`, storeErr: fmt.Errorf("%w: dial tcp: refused", billing.ErrUnavailable), err: &errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
		{name: "store failure", body: `{"id":"acme"}`, storeErr: errors.New("WRONGTYPE"), err: &errorCase{500, TypeServer, CodeInternal, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotID, gotTier string
			l := &fakeLedger{CreateAccountFunc: func(_ context.Context, id, tier string) (billing.Account, error) {
				gotID, gotTier = id, tier
				if tt.storeErr != nil {
					return billing.Account{}, tt.storeErr
				}
				return billing.Account{ID: id, Tier: tier, CreatedAt: testNow}, nil
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "POST", "/admin/v1/accounts", tt.body, "Content-Type", "text/plain")
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			checkJSON(t, rec, http.StatusCreated, `{"id":"acme","tier":"`+tt.wantTier+`","created_at":"2025-03-01T12:00:00Z",
				"balance":"0.000000","credit":"0.000000","debt":"0.000000","reserved":"0.000000","available":"0.000000","grace":"0.500000",
				"grants":[],"auto_recharge":{"enabled":false,"threshold":"0.000000","amount":"0.000000","monthly_limit":"0.000000"},"status":"active","tier_pinned":false,"paid_total":"0.000000"}`)
			if gotID != "acme" || gotTier != tt.wantTier {
				t.Errorf("store got id %q tier %q, want acme %q", gotID, gotTier, tt.wantTier)
			}
		})
	}
}

func TestCreateAccountWithoutDefaultTier(t *testing.T) {
	s := newTestServer(nil, nil)
	s.Policy = func() billing.Policy { p := testPolicy(); p.DefaultTier = ""; return p }
	checkError(t, call(t, s.Handler(), "POST", "/admin/v1/accounts", `{"id":"acme"}`),
		errorCase{400, TypeInvalidRequest, CodeMissingField, "tier"})
}

func TestListAccounts(t *testing.T) {
	tests := []struct {
		name     string
		accounts []billing.Account
		storeErr error
		want     string
		err      *errorCase
	}{
		{name: "empty", want: `{"object":"list","data":[]}`},
		{
			name: "sorted by id, balances signed",
			accounts: []billing.Account{
				{ID: "zeta", Tier: "tier-2", CreatedAt: testNow, Credit: money.MustParse("1"), Reserved: money.MustParse("1.5")},
				{ID: "alpha", Tier: "tier-1", CreatedAt: testNow, Debt: money.MustParse("0.3")},
			},
			want: `{"object":"list","data":[
				{"id":"alpha","tier":"tier-1","created_at":"2025-03-01T12:00:00Z","balance":"-0.300000","credit":"0.000000","debt":"0.300000","reserved":"0.000000","available":"-0.300000","status":"active","tier_pinned":false,"paid_total":"0.000000"},
				{"id":"zeta","tier":"tier-2","created_at":"2025-03-01T12:00:00Z","balance":"1.000000","credit":"1.000000","debt":"0.000000","reserved":"1.500000","available":"-0.500000","status":"active","tier_pinned":false,"paid_total":"0.000000"}]}`,
		},
		{name: "store unavailable", storeErr: billing.ErrUnavailable, err: &errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &fakeLedger{ListAccountsFunc: func(context.Context) ([]billing.Account, error) { return tt.accounts, tt.storeErr }}
			rec := call(t, newTestServer(l, nil).Handler(), "GET", "/admin/v1/accounts", "")
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			checkJSON(t, rec, http.StatusOK, tt.want)
		})
	}
}

func TestGetAccount(t *testing.T) {
	inDebt := billing.Account{ID: "broke", Tier: "tier-1", CreatedAt: testNow, Debt: money.MustParse("0.3"),
		Grants: []billing.Grant{{ID: "grant_old", Amount: money.MustParse("5"), GrantedAt: testNow.AddDate(-1, 0, 0), ExpiresAt: testNow, Source: billing.SourcePromo}}}
	tests := []struct {
		name    string
		path    string
		account billing.Account
		err     error
		want    string
		wantErr *errorCase
	}{
		{name: "full account", path: "/admin/v1/accounts/acme", account: sampleAccount(), want: sampleAccountJSON},
		{name: "negative balance", path: "/admin/v1/accounts/broke", account: inDebt, want: `{"id":"broke","tier":"tier-1","created_at":"2025-03-01T12:00:00Z",
			"balance":"-0.300000","credit":"0.000000","debt":"0.300000","reserved":"0.000000","available":"-0.300000","grace":"0.500000",
			"grants":[{"id":"grant_old","amount":"5.000000","remaining":"0.000000","granted_at":"2024-03-01T12:00:00Z","expires_at":"2025-03-01T12:00:00Z","source":"promo"}],
			"auto_recharge":{"enabled":false,"threshold":"0.000000","amount":"0.000000","monthly_limit":"0.000000"},"status":"active","tier_pinned":false,"paid_total":"0.000000"}`},
		{name: "unknown account", path: "/admin/v1/accounts/nobody", err: fmt.Errorf("%w: nobody", billing.ErrAccountNotFound), wantErr: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{name: "id with a colon", path: "/admin/v1/accounts/a:b", wantErr: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id with an escaped brace", path: "/admin/v1/accounts/%7Bx%7D", wantErr: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "id with an escaped slash", path: "/admin/v1/accounts/a%2Fb", wantErr: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
		{name: "store timeout", path: "/admin/v1/accounts/acme", err: context.DeadlineExceeded, wantErr: &errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
				if tt.account.ID != "" && id != tt.account.ID {
					t.Errorf("store asked for %q, want %q", id, tt.account.ID)
				}
				return tt.account, tt.err
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "GET", tt.path, "")
			if tt.wantErr != nil {
				checkError(t, rec, *tt.wantErr)
				return
			}
			checkJSON(t, rec, http.StatusOK, tt.want)
		})
	}
}

func TestCreateKey(t *testing.T) {
	created := time.Date(2025, 3, 1, 13, 0, 0, 0, cet)
	tests := []struct {
		name     string
		body     string
		storeErr error
		wantName string
		err      *errorCase
	}{
		{name: "named", body: `{"name":"ci"}`, wantName: "ci"},
		{name: "empty body", body: ``, wantName: ""},
		{name: "empty object", body: `{}`, wantName: ""},
		{name: "unicode name", body: `{"name":"équipe ☕"}`, wantName: "équipe ☕"},
		{name: "longest name", body: `{"name":"` + strings.Repeat("n", billing.MaxKeyNameLen) + `"}`, wantName: strings.Repeat("n", billing.MaxKeyNameLen)},
		{name: "name too long", body: `{"name":"` + strings.Repeat("n", billing.MaxKeyNameLen+1) + `"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"}},
		{name: "name with newline", body: `{"name":"a\nb"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"}},
		{name: "name with tab", body: `{"name":"a\tb"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"}},
		{name: "name not a string", body: `{"name":true}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"}},
		{name: "unknown field", body: `{"name":"ci","scopes":[]}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownField, "scopes"}},
		{name: "unknown account", body: `{}`, storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKeys{CreateKeyFunc: func(_ context.Context, account, name string) (billing.APIKey, string, error) {
				if account != "acme" || name != tt.wantName {
					t.Errorf("store got account %q name %q, want acme %q", account, name, tt.wantName)
				}
				if tt.storeErr != nil {
					return billing.APIKey{}, "", tt.storeErr
				}
				return billing.APIKey{ID: "key_1", Account: account, Name: name, CreatedAt: created, Hint: "sk-cg-abc…wxyz"}, "sk-cg-abcSECRETwxyz", nil
			}}
			rec := call(t, newTestServer(nil, k).Handler(), "POST", "/admin/v1/accounts/acme/keys", tt.body)
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			checkJSON(t, rec, http.StatusCreated, `{"id":"key_1","key":"sk-cg-abcSECRETwxyz","name":`+jsonString(tt.wantName)+`,"created_at":"2025-03-01T12:00:00Z","hint":"sk-cg-abc…wxyz","rpm":0,"tpm":0,"limit":null,"limit_reset":"never","expires_at":null,"models":null,"disabled":false}`)
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store on an answer holding a secret", cc)
			}
		})
	}
}

func jsonString(s string) string { return fmt.Sprintf("%q", s) }

func TestListKeys(t *testing.T) {
	keys := []billing.APIKey{
		{ID: "key_b", Name: "later", CreatedAt: testNow.Add(time.Hour), Hint: "sk-cg-bbb…2222"},
		{ID: "key_a", Name: "", CreatedAt: testNow, Hint: "sk-cg-aaa…1111"},
	}
	tests := []struct {
		name     string
		keys     []billing.APIKey
		storeErr error
		want     string
		err      *errorCase
	}{
		{name: "by creation time, without secrets", keys: keys, want: `{"object":"list","data":[
			{"id":"key_a","name":"","created_at":"2025-03-01T12:00:00Z","hint":"sk-cg-aaa…1111","rpm":0,"tpm":0,"limit":null,"limit_reset":"never","expires_at":null,"models":null,"disabled":false},
			{"id":"key_b","name":"later","created_at":"2025-03-01T13:00:00Z","hint":"sk-cg-bbb…2222","rpm":0,"tpm":0,"limit":null,"limit_reset":"never","expires_at":null,"models":null,"disabled":false}]}`},
		{name: "none", want: `{"object":"list","data":[]}`},
		{name: "unknown account", storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKeys{ListKeysFunc: func(context.Context, string) ([]billing.APIKey, error) { return tt.keys, tt.storeErr }}
			rec := call(t, newTestServer(nil, k).Handler(), "GET", "/admin/v1/accounts/acme/keys", "")
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			checkJSON(t, rec, http.StatusOK, tt.want)
		})
	}
}

func TestRevokeKey(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		storeErr error
		err      *errorCase
	}{
		{name: "revoked", path: "/admin/v1/accounts/acme/keys/key_1"},
		{name: "unknown key", path: "/admin/v1/accounts/acme/keys/key_9", storeErr: billing.ErrKeyNotFound, err: &errorCase{404, TypeNotFound, CodeKeyNotFound, ""}},
		{name: "unknown account", path: "/admin/v1/accounts/nobody/keys/key_1", storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{name: "malformed key id", path: "/admin/v1/accounts/acme/keys/key:1", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "key_id"}},
		{name: "malformed account id", path: "/admin/v1/accounts/a%20b/keys/key_1", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revoked := ""
			k := &fakeKeys{RevokeKeyFunc: func(_ context.Context, account, keyID string) error {
				revoked = account + "/" + keyID
				return tt.storeErr
			}}
			rec := call(t, newTestServer(nil, k).Handler(), "DELETE", tt.path, "")
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
				t.Fatalf("got %d %q, want 204 and no body", rec.Code, rec.Body)
			}
			if revoked != "acme/key_1" {
				t.Errorf("store revoked %q, want acme/key_1", revoked)
			}
		})
	}
}

func TestAddCredits(t *testing.T) {
	future := testNow.Add(30 * 24 * time.Hour)
	limitErr := func(sentinel error, limit, amount string) error {
		return fmt.Errorf("topup: %w", &billing.LimitError{Err: sentinel, Limit: money.MustParse(limit), Amount: money.MustParse(amount)})
	}
	tests := []struct {
		name        string
		body        string
		headers     []string
		storeErr    error
		wantAmount  money.Micros
		wantExpires time.Time
		wantSource  string
		err         *errorCase
		wantMessage string // substring of the error message
	}{
		{name: "decimal string", body: `{"amount":"25.00"}`, wantAmount: 25 * money.Dollar, wantSource: "purchase"},
		{name: "whole dollars", body: `{"amount":"25"}`, wantAmount: 25 * money.Dollar, wantSource: "purchase"},
		{name: "bare number read exactly", body: `{"amount":0.1}`, wantAmount: 100_000, wantSource: "purchase"},
		{name: "six decimals", body: `{"amount":"5.000001"}`, wantAmount: 5_000_001, wantSource: "purchase"},
		{name: "promo with expiry", body: `{"amount":"10","expires_at":"` + future.In(cet).Format(time.RFC3339) + `"}`, wantAmount: 10 * money.Dollar, wantExpires: future, wantSource: "promo"},
		{name: "null expiry is the default", body: `{"amount":"10","expires_at":null}`, wantAmount: 10 * money.Dollar, wantSource: "purchase"},
		{name: "exponent string", body: `{"amount":"1e3"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "exponent"},
		{name: "exponent number", body: `{"amount":1e3}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "exponent"},
		{name: "negative string", body: `{"amount":"-5"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "negative"},
		{name: "negative number", body: `{"amount":-5}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "negative"},
		{name: "seven decimals", body: `{"amount":"1.0000001"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "decimal places"},
		{name: "NaN", body: `{"amount":"NaN"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "empty string", body: `{"amount":""}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "empty"},
		{name: "missing", body: `{}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "required"},
		{name: "null", body: `{"amount":null}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "required"},
		{name: "zero", body: `{"amount":"0.00"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}, wantMessage: "greater than zero"},
		{name: "boolean", body: `{"amount":true}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "above a billion", body: `{"amount":"1000000000.000001"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "expiry in the past", body: `{"amount":"10","expires_at":"2025-02-28T00:00:00Z"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}, wantMessage: "future"},
		{name: "expiry now", body: `{"amount":"10","expires_at":"2025-03-01T12:00:00Z"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}},
		{name: "expiry not RFC 3339", body: `{"amount":"10","expires_at":"2030-01-01"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}, wantMessage: "RFC 3339"},
		{name: "expiry as a number", body: `{"amount":"10","expires_at":1893456000}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}},
		{name: "unknown field", body: `{"amount":"10","currency":"usd"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownField, "currency"}},
		{name: "below minimum", body: `{"amount":"1"}`, storeErr: limitErr(billing.ErrBelowMinimum, "5", "1"), err: &errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"}, wantMessage: "below the minimum purchase of 5.000000"},
		{name: "above max top-up", body: `{"amount":"500"}`, storeErr: limitErr(billing.ErrAboveMaxTopUp, "100", "500"), err: &errorCase{400, TypeInvalidRequest, CodeAboveMaxTopUp, "amount"}, wantMessage: "maximum top-up of 100.000000"},
		{name: "above max balance", body: `{"amount":"90"}`, storeErr: limitErr(billing.ErrAboveMaxBalance, "1000", "1010"), err: &errorCase{400, TypeInvalidRequest, CodeAboveMaxBalance, "amount"}, wantMessage: "maximum balance of 1000.000000"},
		{name: "bare limit sentinel", body: `{"amount":"90"}`, storeErr: billing.ErrAboveMaxBalance, err: &errorCase{400, TypeInvalidRequest, CodeAboveMaxBalance, "amount"}},
		{name: "unknown account", body: `{"amount":"10"}`, storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{name: "store unavailable", body: `{"amount":"10"}`, storeErr: billing.ErrUnavailable, err: &errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
		{name: "idempotency key with a space", body: `{"amount":"10"}`, headers: []string{"Idempotency-Key", "a b"}, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "Idempotency-Key"}},
		{name: "idempotency key too long", body: `{"amount":"10"}`, headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "Idempotency-Key"}},
		{name: "empty idempotency key", body: `{"amount":"10"}`, headers: []string{"Idempotency-Key", ""}, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "Idempotency-Key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got billing.TopUpRequest
			l := &fakeLedger{TopUpFunc: func(_ context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
				got = r
				if p.MinPurchase != testPolicy().MinPurchase {
					t.Errorf("store got policy %+v, want the server's", p)
				}
				if tt.storeErr != nil {
					return billing.TopUpResult{}, tt.storeErr
				}
				return billing.TopUpResult{
					Grant:        billing.Grant{ID: r.GrantID, Amount: r.Amount, Remaining: r.Amount, GrantedAt: testNow, ExpiresAt: future, Source: r.Source},
					BalanceAfter: r.Amount, EventID: "1740830400000-0",
				}, nil
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "POST", "/admin/v1/accounts/acme/credits", tt.body, tt.headers...)
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				if !strings.Contains(rec.Body.String(), tt.wantMessage) {
					t.Errorf("message %s does not mention %q", rec.Body, tt.wantMessage)
				}
				return
			}
			if got.Account != "acme" || got.Amount != tt.wantAmount || !got.ExpiresAt.Equal(tt.wantExpires) || got.Source != tt.wantSource {
				t.Errorf("store got %+v, want amount %d expires %v source %s", got, tt.wantAmount, tt.wantExpires, tt.wantSource)
			}
			if !strings.HasPrefix(got.GrantID, "grant_") || len(got.GrantID) != len("grant_")+24 || got.IdempotencyKey != "" || got.Fingerprint != "" {
				t.Errorf("store got grant id %q, key %q, fingerprint %q; want a fresh grant id and no idempotency", got.GrantID, got.IdempotencyKey, got.Fingerprint)
			}
			amount := tt.wantAmount.String()
			checkJSON(t, rec, http.StatusCreated, `{"grant":{"id":"`+got.GrantID+`","amount":"`+amount+`","remaining":"`+amount+`",
				"granted_at":"2025-03-01T12:00:00Z","expires_at":"2025-03-31T12:00:00Z","source":"`+tt.wantSource+`"},
				"debt_repaid":"0.000000","balance_after":"`+amount+`","event_id":"1740830400000-0"}`)
		})
	}
}

func TestAddCreditsWithoutKeyIsNewGrantEachTime(t *testing.T) {
	ids := map[string]bool{}
	l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		ids[r.GrantID] = true
		return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID}}, nil
	}}
	h := newTestServer(l, nil).Handler()
	for range 3 {
		if rec := call(t, h, "POST", "/admin/v1/accounts/acme/credits", `{"amount":"10"}`); rec.Code != http.StatusCreated {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if len(ids) != 3 {
		t.Errorf("3 requests without Idempotency-Key used %d grant ids, want 3", len(ids))
	}
}

// idempotentLedger is a TopUp that honours IdempotencyKey and Fingerprint the way
// the Redis store does: same key and fingerprint replay, another fingerprint conflicts.
func idempotentLedger() (*fakeLedger, *[]billing.TopUpRequest) {
	type record struct {
		fingerprint string
		result      billing.TopUpResult
	}
	seen := map[string]record{}
	var calls []billing.TopUpRequest
	balance := money.Micros(0)
	return &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		calls = append(calls, r)
		idem := r.Account + "\x00" + r.IdempotencyKey
		if rec, ok := seen[idem]; ok && r.IdempotencyKey != "" {
			if rec.fingerprint != r.Fingerprint {
				return billing.TopUpResult{}, fmt.Errorf("topup %s: %w", r.Account, billing.ErrIdempotencyConflict)
			}
			res := rec.result
			res.Replayed = true
			return res, nil
		}
		balance += r.Amount
		res := billing.TopUpResult{
			Grant:        billing.Grant{ID: r.GrantID, Amount: r.Amount, Remaining: r.Amount, GrantedAt: testNow, ExpiresAt: testNow.AddDate(1, 0, 0), Source: r.Source},
			BalanceAfter: balance, EventID: fmt.Sprintf("ev-%d", len(calls)),
		}
		seen[idem] = record{r.Fingerprint, res}
		return res, nil
	}}, &calls
}

func TestAddCreditsIdempotency(t *testing.T) {
	l, calls := idempotentLedger()
	h := newTestServer(l, nil).Handler()
	post := func(account, body, key string) *httptest.ResponseRecorder {
		return call(t, h, "POST", "/admin/v1/accounts/"+account+"/credits", body, "Idempotency-Key", key)
	}

	first := post("acme", `{"amount":"25.00"}`, "order-17")
	if first.Code != http.StatusCreated || first.Header().Get(replayedHeader) != "" {
		t.Fatalf("first request: %d %s (replayed header %q), want 201", first.Code, first.Body, first.Header().Get(replayedHeader))
	}
	for _, body := range []string{`{"amount":"25.00"}`, `{"amount":"25"}`, `{"amount":25}`, ` { "amount" : "25.000000" } `} {
		replay := post("acme", body, "order-17")
		if replay.Code != http.StatusOK {
			t.Fatalf("replay with %s: status %d, want 200; body %s", body, replay.Code, replay.Body)
		}
		if replay.Body.String() != first.Body.String() {
			t.Errorf("replay with %s:\n got %s\nwant %s", body, replay.Body, first.Body)
		}
		if replay.Header().Get(replayedHeader) != "true" {
			t.Errorf("replay lacks %s: true", replayedHeader)
		}
	}

	for _, body := range []string{`{"amount":"26.00"}`, `{"amount":"25.00","expires_at":"2030-01-01T00:00:00Z"}`} {
		conflict := post("acme", body, "order-17")
		checkError(t, conflict, errorCase{409, TypeConflict, CodeIdempotencyConflict, ""})
	}

	// The same key on another account is another purchase.
	other := post("globex", `{"amount":"25.00"}`, "order-17")
	if other.Code != http.StatusCreated {
		t.Fatalf("same key on another account: status %d, want 201", other.Code)
	}

	grantIDs := map[string]map[string]bool{}
	fingerprints := map[string]bool{}
	for _, c := range *calls {
		if c.IdempotencyKey != "order-17" {
			t.Errorf("store got Idempotency-Key %q, want order-17", c.IdempotencyKey)
		}
		if grantIDs[c.Account] == nil {
			grantIDs[c.Account] = map[string]bool{}
		}
		grantIDs[c.Account][c.GrantID] = true
		fingerprints[c.Fingerprint] = true
	}
	if len(grantIDs["acme"]) != 1 || len(grantIDs["globex"]) != 1 {
		t.Errorf("grant ids per account = %v, want one deterministic id each", grantIDs)
	}
	for id := range grantIDs["acme"] {
		if grantIDs["globex"][id] {
			t.Errorf("accounts acme and globex share grant id %s", id)
		}
	}
	if len(fingerprints) != 3 { // 25.00; 26.00; 25.00 with an expiry
		t.Errorf("got %d distinct fingerprints, want 3", len(fingerprints))
	}
}

func TestSetAutoRecharge(t *testing.T) {
	full := `"threshold":"5","amount":"20","monthly_limit":"100"`
	tests := []struct {
		name        string
		body        string
		storeErr    error
		want        billing.AutoRecharge
		err         *errorCase
		wantMessage string
	}{
		{name: "enable", body: `{"enabled":true,` + full + `}`, want: billing.AutoRecharge{Enabled: true, Threshold: 5 * money.Dollar, Amount: 20 * money.Dollar, MonthlyLimit: 100 * money.Dollar}},
		{name: "zero threshold allowed", body: `{"enabled":true,"threshold":0,"amount":10,"monthly_limit":10}`, want: billing.AutoRecharge{Enabled: true, Amount: 10 * money.Dollar, MonthlyLimit: 10 * money.Dollar}},
		{name: "disable", body: `{"enabled":false}`, want: billing.AutoRecharge{}},
		{name: "disable keeping values", body: `{"enabled":false,"amount":"1"}`, want: billing.AutoRecharge{Amount: money.Dollar}},
		{name: "enabled missing", body: `{` + full + `}`, err: &errorCase{400, TypeInvalidRequest, CodeMissingField, "enabled"}},
		{name: "enabled not a bool", body: `{"enabled":"yes",` + full + `}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "enabled"}},
		{name: "threshold missing", body: `{"enabled":true,"amount":"20","monthly_limit":"100"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "threshold"}, wantMessage: "required"},
		{name: "amount missing", body: `{"enabled":true,"threshold":"5","monthly_limit":"100"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "monthly limit missing", body: `{"enabled":true,"threshold":"5","amount":"20"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "monthly_limit"}},
		{name: "amount below auto-recharge minimum", body: `{"enabled":true,"threshold":"5","amount":"9.99","monthly_limit":"100"}`, err: &errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"}, wantMessage: "10.000000"},
		{name: "amount zero", body: `{"enabled":true,"threshold":"5","amount":"0","monthly_limit":"100"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "monthly limit below amount", body: `{"enabled":true,"threshold":"5","amount":"20","monthly_limit":"19.999999"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "monthly_limit"}},
		{name: "bad threshold", body: `{"enabled":true,"threshold":"-1","amount":"20","monthly_limit":"100"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "threshold"}},
		{name: "bad amount when disabled", body: `{"enabled":false,"amount":"1e2"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "amount"}},
		{name: "unknown field", body: `{"enabled":false,"limit":"1"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownField, "limit"}},
		{name: "unknown account", body: `{"enabled":false}`, storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *billing.AutoRecharge
			l := &fakeLedger{SetAutoRechargeFunc: func(_ context.Context, id string, ar billing.AutoRecharge) error {
				got = &ar
				return tt.storeErr
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "PUT", "/admin/v1/accounts/acme/auto-recharge", tt.body)
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				if !strings.Contains(rec.Body.String(), tt.wantMessage) {
					t.Errorf("message %s does not mention %q", rec.Body, tt.wantMessage)
				}
				return
			}
			if got == nil || *got != tt.want {
				t.Fatalf("store got %+v, want %+v", got, tt.want)
			}
			w := autoRechargeFrom(tt.want)
			checkJSON(t, rec, http.StatusOK, fmt.Sprintf(`{"enabled":%t,"threshold":"%s","amount":"%s","monthly_limit":"%s"}`, w.Enabled, w.Threshold, w.Amount, w.MonthlyLimit))
		})
	}
}

func TestSetAutoRechargeHonoursMinPurchase(t *testing.T) {
	s := newTestServer(&fakeLedger{SetAutoRechargeFunc: func(context.Context, string, billing.AutoRecharge) error { return nil }}, nil)
	s.Policy = func() billing.Policy {
		p := testPolicy()
		p.AutoRechargeMin = money.Dollar
		p.MinPurchase = 5 * money.Dollar
		return p
	}
	rec := call(t, s.Handler(), "PUT", "/admin/v1/accounts/acme/auto-recharge", `{"enabled":true,"threshold":"1","amount":"2","monthly_limit":"10"}`)
	checkError(t, rec, errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"})
	if !strings.Contains(rec.Body.String(), "minimum purchase of 5.000000") {
		t.Errorf("message %s does not name the minimum purchase", rec.Body)
	}
}

func TestLedger(t *testing.T) {
	at := time.Date(2025, 3, 1, 13, 0, 0, 0, cet)
	events := []billing.Event{
		{ID: "1-0", Type: billing.EventTopUp, At: at, Amount: 25 * money.Dollar, BalanceAfter: 25 * money.Dollar, CreditAfter: 25 * money.Dollar, GrantID: "grant_a",
			PaymentRef: "inv-2025-001", Note: "wire transfer"},
		{ID: "2-0", Type: billing.EventUsage, At: at, Amount: 1234, BalanceAfter: 25*money.Dollar - 1234, CreditAfter: 25*money.Dollar - 1234,
			HoldID: "hold_1", RequestID: "req_1", KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
			PromptTokens: 100, CompletionTokens: 0, TokenSource: billing.TokenSourceUpstream, Cost: 1234, FromCredit: 1234},
		{ID: "3-0", Type: billing.EventAdjustment, At: at, Amount: -money.Dollar, BalanceAfter: 24*money.Dollar - 1234, CreditAfter: 24*money.Dollar - 1234, Note: "refund"},
	}
	const eventsJSON = `[
		{"id":"1-0","type":"topup","at":"2025-03-01T12:00:00Z","amount":"25.000000","balance_after":"25.000000","credit_after":"25.000000","debt_after":"0.000000","grant_id":"grant_a","payment_ref":"inv-2025-001","note":"wire transfer"},
		{"id":"2-0","type":"usage","at":"2025-03-01T12:00:00Z","amount":"0.001234","balance_after":"24.998766","credit_after":"24.998766","debt_after":"0.000000",
		 "hold_id":"hold_1","request_id":"req_1","key_id":"key_1","model":"gpt-4o-mini","endpoint":"/v1/chat/completions",
		 "prompt_tokens":100,"completion_tokens":0,"cached_tokens":0,"reasoning_tokens":0,"token_source":"upstream",
		 "cost":"0.001234","from_credit":"0.001234","to_debt":"0.000000"},
		{"id":"3-0","type":"adjustment","at":"2025-03-01T12:00:00Z","amount":"-1.000000","balance_after":"23.998766","credit_after":"23.998766","debt_after":"0.000000","note":"refund"}]`
	tests := []struct {
		name      string
		query     string
		page      billing.EventPage
		storeErr  error
		wantLimit int
		wantAfter string
		want      string
		err       *errorCase
	}{
		{name: "defaults", page: billing.EventPage{Events: events}, wantLimit: 100, want: `{"object":"list","data":` + eventsJSON + `,"next":"","has_more":false}`},
		{name: "with cursor and more", query: "?limit=3&after=0-1", page: billing.EventPage{Events: events, Next: "3-0"}, wantLimit: 3, wantAfter: "0-1",
			want: `{"object":"list","data":` + eventsJSON + `,"next":"3-0","has_more":true}`},
		{name: "empty page", query: "?limit=1000", wantLimit: 1000, want: `{"object":"list","data":[],"next":"","has_more":false}`},
		{name: "limit above max", query: "?limit=1001", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "limit zero", query: "?limit=0", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "limit negative", query: "?limit=-1", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "limit not a number", query: "?limit=ten", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "limit empty", query: "?limit=", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "limit twice", query: "?limit=1&limit=2", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{name: "unknown parameter", query: "?limt=5", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limt"}},
		{name: "cursor with a space", query: "?after=1%200", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "after"}},
		{name: "malformed query", query: "?a=%zz", err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, ""}},
		{name: "store rejects cursor", query: "?after=junk", storeErr: fmt.Errorf("%w: bad cursor %q", billing.ErrInvalid, "junk"), err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "after"}},
		{name: "store rejects something else", storeErr: fmt.Errorf("%w: odd", billing.ErrInvalid), err: &errorCase{400, TypeInvalidRequest, CodeInvalidRequest, ""}},
		{name: "unknown account", storeErr: billing.ErrAccountNotFound, err: &errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &fakeLedger{EventsFunc: func(_ context.Context, account, after string, limit int) (billing.EventPage, error) {
				if tt.storeErr == nil && (account != "acme" || after != tt.wantAfter || limit != tt.wantLimit) {
					t.Errorf("store got (%q, %q, %d), want (acme, %q, %d)", account, after, limit, tt.wantAfter, tt.wantLimit)
				}
				return tt.page, tt.storeErr
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "GET", "/admin/v1/accounts/acme/ledger"+tt.query, "")
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				return
			}
			checkJSON(t, rec, http.StatusOK, tt.want)
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "# metrics\n") })
	tests := []struct {
		name       string
		path       string
		ready      func(context.Context) error
		metrics    http.Handler
		wantStatus int
		wantBody   string
	}{
		{name: "healthz", path: "/healthz", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "readyz without check", path: "/readyz", wantStatus: 200, wantBody: `{"status":"ready"}`},
		{name: "readyz ready", path: "/readyz", ready: func(context.Context) error { return nil }, wantStatus: 200, wantBody: `{"status":"ready"}`},
		{name: "readyz not ready", path: "/readyz", ready: func(context.Context) error { return errors.New("redis: connection refused") },
			wantStatus: 503, wantBody: `{"status":"unavailable","reason":"redis: connection refused"}`},
		{name: "readyz check gets a deadline", path: "/readyz", ready: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return nil
		}, wantStatus: 200, wantBody: `{"status":"ready"}`},
		{name: "metrics", path: "/metrics", metrics: metrics, wantStatus: 200, wantBody: "# metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(nil, nil)
			s.Ready, s.Metrics = tt.ready, tt.metrics
			rec := call(t, s.Handler(), "GET", tt.path, "", "Authorization", "<none>")
			if rec.Code != tt.wantStatus || strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

func TestUnmatchedRoutes(t *testing.T) {
	h := newTestServer(nil, nil).Handler()
	tests := []struct {
		method, path string
		want         errorCase
		wantAllow    string
	}{
		{"GET", "/admin/v1/nothing", errorCase{404, TypeNotFound, CodeUnknownRoute, ""}, ""},
		{"GET", "/", errorCase{404, TypeNotFound, CodeUnknownRoute, ""}, ""},
		{"GET", "/metrics", errorCase{404, TypeNotFound, CodeUnknownRoute, ""}, ""}, // no Metrics handler configured
		{"PATCH", "/admin/v1/accounts", errorCase{405, TypeInvalidRequest, CodeMethodNotAllowed, ""}, "GET, HEAD, POST"},
		{"DELETE", "/admin/v1/accounts/acme", errorCase{405, TypeInvalidRequest, CodeMethodNotAllowed, ""}, "GET, HEAD, PATCH"},
		{"POST", "/healthz", errorCase{405, TypeInvalidRequest, CodeMethodNotAllowed, ""}, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := call(t, h, tt.method, tt.path, "")
			checkError(t, rec, tt.want)
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	l := &fakeLedger{CreateAccountFunc: func(context.Context, string, string) (billing.Account, error) {
		t.Error("the store was called for an oversized body")
		return billing.Account{}, nil
	}}
	body := `{"id":"acme","tier":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	rec := call(t, newTestServer(l, nil).Handler(), "POST", "/admin/v1/accounts", body)
	checkError(t, rec, errorCase{413, TypeInvalidRequest, CodeRequestTooLarge, ""})
}

func TestNilStores(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := &Server{Tokens: func() []string { return []string{testToken} }, Logger: zap.New(core)}
	h := s.Handler()
	checkError(t, call(t, h, "GET", "/admin/v1/accounts", ""), errorCase{500, TypeServer, CodeInternal, ""})
	checkError(t, call(t, h, "GET", "/admin/v1/accounts/acme/keys", ""), errorCase{500, TypeServer, CodeInternal, ""})
	if logs.FilterMessage("admin request").FilterField(zap.Int("status", 500)).Len() != 2 {
		t.Errorf("want two logged 500s, got %v", logs.All())
	}
}

func TestAccessLog(t *testing.T) {
	const secret = "sk-cg-abcSECRETwxyz"
	core, logs := observer.New(zapcore.DebugLevel)
	l := &fakeLedger{
		GetAccountFunc: func(context.Context, string) (billing.Account, error) { return sampleAccount(), nil },
		TopUpFunc: func(context.Context, billing.Policy, billing.TopUpRequest) (billing.TopUpResult, error) {
			return billing.TopUpResult{}, errors.New("lua: attempt to index a nil value")
		},
		CreateAccountFunc: func(_ context.Context, id, tier string) (billing.Account, error) {
			return billing.Account{ID: id, Tier: tier}, nil
		},
	}
	k := &fakeKeys{CreateKeyFunc: func(context.Context, string, string) (billing.APIKey, string, error) {
		return billing.APIKey{ID: "key_1"}, secret, nil
	}}
	s := newTestServer(l, k)
	s.Logger = zap.New(core)
	h := s.Handler()

	call(t, h, "GET", "/admin/v1/accounts/acme", "")
	call(t, h, "POST", "/admin/v1/accounts", `{"id":"globex","tier":"tier-1"}`)
	call(t, h, "POST", "/admin/v1/accounts/acme/keys", `{"name":"prompt-like name"}`)
	call(t, h, "POST", "/admin/v1/accounts/acme/credits", `{"amount":"10"}`)
	call(t, h, "GET", "/admin/v1/accounts/acme", "", "Authorization", "Bearer wrong-token-value")
	call(t, h, "GET", "/healthz", "") // public routes are not logged

	want := []struct {
		route   string
		status  int
		account string
		level   zapcore.Level
	}{
		{"GET /admin/v1/accounts/{id}", 200, "acme", zapcore.InfoLevel},
		{"POST /admin/v1/accounts", 201, "globex", zapcore.InfoLevel},
		{"POST /admin/v1/accounts/{id}/keys", 201, "acme", zapcore.InfoLevel},
		{"POST /admin/v1/accounts/{id}/credits", 500, "acme", zapcore.ErrorLevel},
		{"GET /admin/v1/accounts/{id}", 401, "", zapcore.InfoLevel},
	}
	entries := logs.All()
	if len(entries) != len(want) {
		t.Fatalf("got %d log lines, want %d: %v", len(entries), len(want), entries)
	}
	for i, e := range entries {
		f := e.ContextMap()
		w := want[i]
		if f["route"] != w.route || f["status"] != int64(w.status) || e.Level != w.level || f["method"] == nil || f["latency"] == nil {
			t.Errorf("line %d = %v %v, want route %s status %d level %v with method and latency", i, e.Level, f, w.route, w.status, w.level)
		}
		if got, _ := f["account"].(string); got != w.account {
			t.Errorf("line %d account = %q, want %q", i, got, w.account)
		}
		text := fmt.Sprint(e.Message, f)
		for _, leak := range []string{testToken, "wrong-token-value", secret, "prompt-like"} {
			if strings.Contains(text, leak) {
				t.Errorf("line %d leaks %q: %s", i, leak, text)
			}
		}
	}
	if cause, _ := entries[3].ContextMap()["error"].(string); !strings.Contains(cause, "lua: attempt") {
		t.Errorf("500 line lacks its cause: %v", entries[3].ContextMap())
	}
}

func TestStoreErrorMapping(t *testing.T) {
	tests := []struct {
		err  error
		want errorCase
	}{
		{fmt.Errorf("get: %w", billing.ErrAccountNotFound), errorCase{404, TypeNotFound, CodeAccountNotFound, ""}},
		{billing.ErrKeyNotFound, errorCase{404, TypeNotFound, CodeKeyNotFound, ""}},
		{billing.ErrAccountExists, errorCase{409, TypeConflict, CodeAccountExists, "id"}},
		{billing.ErrIdempotencyConflict, errorCase{409, TypeConflict, CodeIdempotencyConflict, ""}},
		{billing.ErrUnknownTier, errorCase{400, TypeInvalidRequest, CodeUnknownTier, "tier"}},
		{billing.ErrInvalid, errorCase{400, TypeInvalidRequest, CodeInvalidRequest, ""}},
		{&billing.LimitError{Err: billing.ErrBelowMinimum}, errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"}},
		{&billing.LimitError{Err: billing.ErrAboveMaxTopUp}, errorCase{400, TypeInvalidRequest, CodeAboveMaxTopUp, "amount"}},
		{&billing.LimitError{Err: billing.ErrAboveMaxBalance}, errorCase{400, TypeInvalidRequest, CodeAboveMaxBalance, "amount"}},
		{billing.ErrBelowMinimum, errorCase{400, TypeInvalidRequest, CodeBelowMinimum, "amount"}},
		{billing.ErrAboveMaxTopUp, errorCase{400, TypeInvalidRequest, CodeAboveMaxTopUp, "amount"}},
		{fmt.Errorf("%w: i/o timeout", billing.ErrUnavailable), errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
		{context.DeadlineExceeded, errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""}},
		{context.Canceled, errorCase{statusClientClosedRequest, TypeInvalidRequest, CodeRequestCanceled, ""}},
		{errors.New("ERR unknown command"), errorCase{500, TypeServer, CodeInternal, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			e := storeError(tt.err)
			got := errorCase{e.status, e.typ, e.code, e.param}
			if got != tt.want || e.message == "" {
				t.Errorf("storeError(%v) = %+v %q, want %+v", tt.err, got, e.message, tt.want)
			}
			// Server-side failures keep their detail in the log, out of the answer.
			if tt.want.status >= 500 && strings.Contains(e.message, tt.err.Error()) {
				t.Errorf("message %q exposes the cause", e.message)
			}
		})
	}
}

func TestUnavailableStoreLogsWarning(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := newTestServer(&fakeLedger{ListAccountsFunc: func(context.Context) ([]billing.Account, error) {
		return nil, fmt.Errorf("%w: dial tcp 127.0.0.1:6379: connection refused", billing.ErrUnavailable)
	}}, nil)
	s.Logger = zap.New(core)
	checkError(t, call(t, s.Handler(), "GET", "/admin/v1/accounts", ""), errorCase{503, TypeUnavailable, CodeStoreUnavailable, ""})
	entries := logs.FilterLevelExact(zapcore.WarnLevel).All()
	if len(entries) != 1 || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "connection refused") {
		t.Errorf("want one warning with the cause, got %v", logs.All())
	}
}
