package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
)

// `creditgate credits add --external-id X --note Y` sends both, and the ledger
// gets them for the top-up event.
func TestCreditsAddExternalIDAndNote(t *testing.T) {
	isolateEnv(t)
	var got billing.TopUpRequest
	l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		got = r
		return billing.TopUpResult{Grant: billing.Grant{ID: "grant_r", Amount: r.Amount, Remaining: r.Amount, GrantedAt: testNow, ExpiresAt: testNow.AddDate(1, 0, 0), Source: r.Source}, EventID: "7-0"}, nil
	}}
	s := &admin.Server{Ledger: l, Keys: &fakeKeys{}, Policy: testPolicy, Now: func() time.Time { return testNow },
		Tokens: func() []string { return []string{testToken} }}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	flags := []string{"--admin-url", srv.URL, "--admin-token", testToken}
	tests := []struct {
		name           string
		args           []string
		wantRef, wantN string
		wantErr        string
	}{
		{name: "both", args: []string{"credits", "add", "acme", "25", "--external-id", "inv-2025-001", "--note", "wire transfer, March"}, wantRef: "inv-2025-001", wantN: "wire transfer, March"},
		{name: "with an idempotency key", args: []string{"credits", "add", "acme", "25", "--external-id", "inv-2", "--idempotency-key", "order-2"}, wantRef: "inv-2"},
		{name: "neither", args: []string{"credits", "add", "acme", "25"}},
		{name: "an empty external id", args: []string{"credits", "add", "acme", "25", "--external-id", ""}, wantErr: "--external-id must not be empty"},
		{name: "a note on two lines", args: []string{"credits", "add", "acme", "25", "--note", "a\nb"}, wantErr: "control character (HTTP 400, invalid_value)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = billing.TopUpRequest{}
			stdout, stderr, err := runCLI(t, append(tt.args, flags...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v; stderr %s", err, stderr)
			}
			if got.PaymentRef != tt.wantRef || got.Note != tt.wantN || got.Fingerprint == "" || got.IdempotencyKey == "" || !strings.Contains(stdout, "grant_r") {
				t.Fatalf("ledger got %+v; stdout %s", got, stdout)
			}
		})
	}
}
