package admin

import (
	"context"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// BenchmarkGetAccount measures one authenticated GET /admin/v1/accounts/{id}:
// auth, routing, conversion and JSON encoding, with a store that answers at once.
func BenchmarkGetAccount(b *testing.B) {
	l := &fakeLedger{GetAccountFunc: func(context.Context, string) (billing.Account, error) { return sampleAccount(), nil }}
	h := newTestServer(l, nil).Handler()
	req := httptest.NewRequest("GET", "/admin/v1/accounts/acme", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkTokenMatches measures the token check against three configured tokens.
func BenchmarkTokenMatches(b *testing.B) {
	tokens := []string{"token-one", "token-two", testToken}
	for b.Loop() {
		if !tokenMatches(testToken, tokens, subtle.ConstantTimeCompare) {
			b.Fatal("no match")
		}
	}
}
