package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Fuzz targets for every parser of client input. Run one with, e.g.,
// go test ./admin -run '^$' -fuzz FuzzAddCreditsBody -fuzztime 20s

// errorShapeOK reports whether body is exactly {"error":{message,type,code[,param]}}.
func errorShapeOK(body []byte) bool {
	var e struct {
		Error struct {
			Message, Type, Code, Param string
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(&e) == nil && e.Error.Message != "" && e.Error.Type != "" && e.Error.Code != ""
}

func FuzzAddCreditsBody(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"amount":"25.00"}`, ""},
		{`{"amount":25}`, "order-1"},
		{`{"amount":"1e3"}`, ""},
		{`{"amount":-5}`, ""},
		{`{"amount":"10","expires_at":"2030-01-01T00:00:00Z"}`, "k"},
		{`{"amount":"10","expires_at":"2030-01-01T00:00:00+25:00"}`, ""},
		{`{"amount":"NaN","x":1}`, "a b"},
		{`{"amount":null}`, ""},
		{``, ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, body, idemKey string) {
		var got *billing.TopUpRequest
		l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
			got = &r
			return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount}}, nil
		}}
		req := httptest.NewRequest("POST", "/admin/v1/accounts/acme/credits", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if idemKey != "" {
			req.Header["Idempotency-Key"] = []string{idemKey}
		}
		rec := httptest.NewRecorder()
		newTestServer(l, nil).Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
			if got == nil || got.Amount <= 0 || got.Amount > money.MaxAmount {
				t.Fatalf("201 for %q with store request %+v", body, got)
			}
			if !got.ExpiresAt.IsZero() && !got.ExpiresAt.After(testNow) {
				t.Fatalf("201 for %q with an expiry in the past: %v", body, got.ExpiresAt)
			}
			if (got.IdempotencyKey != "") != (idemKey != "") {
				t.Fatalf("Idempotency-Key %q reached the store as %q", idemKey, got.IdempotencyKey)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if got != nil {
				t.Fatalf("%d for %q, but the store was called", rec.Code, body)
			}
			if !errorShapeOK(rec.Body.Bytes()) {
				t.Fatalf("malformed error body %s", rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func FuzzCreateAccountBody(f *testing.F) {
	for _, s := range []string{`{"id":"acme"}`, `{"id":"a{b}","tier":"tier-2"}`, `{"id":"x:y"}`, `{"id":5}`, `[]`, `{"id":"acme"} {}`, `{"ID":"acme"}`, `{"id":"ac\u0000me"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		l := &fakeLedger{CreateAccountFunc: func(_ context.Context, id, tier string) (billing.Account, error) {
			// The hash-tag invariant: nothing but safe ids reaches the store.
			if err := billing.ValidAccountID(id); err != nil || strings.ContainsAny(id, "{}: ") {
				t.Fatalf("id %q reached the store", id)
			}
			if _, ok := testPolicy().TierFor(tier); !ok {
				t.Fatalf("tier %q reached the store", tier)
			}
			return billing.Account{ID: id, Tier: tier}, nil
		}}
		rec := call(t, newTestServer(l, nil).Handler(), "POST", "/admin/v1/accounts", body)
		switch rec.Code {
		case http.StatusCreated:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if !errorShapeOK(rec.Body.Bytes()) {
				t.Fatalf("malformed error body %s", rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func FuzzLedgerQuery(f *testing.F) {
	for _, s := range []string{"", "limit=10", "limit=1000&after=1-0", "limit=1001", "limit=-1", "after=%zz", "limt=1", "limit=1&limit=2", "after=" + strings.Repeat("9", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		called := false
		l := &fakeLedger{EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
			called = true
			if limit < 1 || limit > MaxLedgerLimit || len(after) > maxCursorLen {
				t.Fatalf("query %q reached the store as limit %d after %q", rawQuery, limit, after)
			}
			return billing.EventPage{}, nil
		}}
		req := httptest.NewRequest("GET", "/admin/v1/accounts/acme/ledger", nil)
		req.URL.RawQuery = rawQuery
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		newTestServer(l, nil).Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if !called {
				t.Fatalf("200 without a store call")
			}
		case http.StatusBadRequest:
			if called || !errorShapeOK(rec.Body.Bytes()) {
				t.Fatalf("400 for %q (store called %v): %s", rawQuery, called, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, rawQuery)
		}
	})
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer ", "", "BEARER\tabc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := bearerToken(header)
		if !ok {
			if token != "" {
				t.Fatalf("rejected %q but returned token %q", header, token)
			}
			return
		}
		if token == "" || strings.TrimSpace(token) != token || !strings.HasSuffix(strings.TrimSpace(header), token) {
			t.Fatalf("bearerToken(%q) = %q", header, token)
		}
		if !strings.EqualFold(header[:len("Bearer")], "Bearer") {
			t.Fatalf("accepted scheme of %q", header)
		}
	})
}
