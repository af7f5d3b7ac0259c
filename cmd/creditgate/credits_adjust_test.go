package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// startRedisAdmin serves the admin API on a Redis ledger with account "acme"
// holding 10.00 of credit.
func startRedisAdmin(t *testing.T) (string, *redisstore.Store) {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	p := testPolicy()
	p.CreditTTL = 365 * 24 * time.Hour
	s := &admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return p }, Now: func() time.Time { return testNow },
		Tokens: func() []string { return []string{testToken} }}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, p, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: money.MustParse("10")}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, store
}

func TestCreditsAdjust(t *testing.T) {
	isolateEnv(t)
	url, store := startRedisAdmin(t)
	flags := []string{"--admin-url", url, "--admin-token", testToken}
	tests := []struct {
		name       string
		args       []string
		wantOut    []string // substrings of stdout
		wantStderr string
		wantErr    string
		credit     string // after
		noFlags    bool   // args carry the URL and token
	}{
		{name: "negative amount as a plain argument", args: []string{"credits", "adjust", "acme", "-1.50", "--reason", "refund of req_1"},
			wantOut: []string{"AMOUNT         -1.500000", "REASON         refund of req_1", "BALANCE AFTER  8.500000"}, credit: "8.500000"},
		{name: "flags first, negative after", args: []string{"credits", "adjust", "--reason", "-5 was wrong", "acme", "-0.5"},
			wantOut: []string{"AMOUNT         -0.500000", "REASON         -5 was wrong"}, credit: "8.000000"},
		{name: "negative after --", args: []string{"credits", "adjust", "--reason", "x", "--admin-url", url, "--admin-token", testToken, "acme", "--", "-1"},
			noFlags: true, wantOut: []string{"AMOUNT         -1.000000"}, credit: "7.000000"},
		{name: "positive with expiry and key", args: []string{"credits", "adjust", "acme", "2", "--reason", "goodwill", "--expires-at", "2025-06-01T00:00:00Z", "--idempotency-key", "fix-1"},
			wantOut: []string{"AMOUNT         2.000000", "EXPIRES        2025-06-01T00:00:00Z", "DEBT REPAID    0.000000", "BALANCE AFTER  9.000000"}, credit: "9.000000"},
		{name: "replayed", args: []string{"credits", "adjust", "acme", "2.00", "--reason", "goodwill", "--expires-at", "2025-06-01T02:00:00+02:00", "--idempotency-key", "fix-1"},
			wantOut: []string{"BALANCE AFTER  9.000000"}, wantStderr: "already used", credit: "9.000000"},
		{name: "changed body with the same key", args: []string{"credits", "adjust", "acme", "3", "--reason", "goodwill", "--idempotency-key", "fix-1"},
			wantErr: "idempotency_key_reused", credit: "9.000000"},
		{name: "claw-back above the credit", args: []string{"credits", "adjust", "acme", "-9.000001", "--reason", "x"},
			wantErr: "cannot take back 9.000001: only 9.000000 of credit is available (credit 9.000000 − reserved 0.000000 held by in-flight requests) (HTTP 400, insufficient_credit)", credit: "9.000000"},
		{name: "no reason", args: []string{"credits", "adjust", "acme", "-1"}, wantErr: "--reason is required", credit: "9.000000"},
		{name: "one argument", args: []string{"credits", "adjust", "acme", "--reason", "x"}, wantErr: "accepts 2 arg(s)", credit: "9.000000"},
		{name: "bad expiry", args: []string{"credits", "adjust", "acme", "1", "--reason", "x", "--expires-at", "soon"}, wantErr: "invalid --expires-at", credit: "9.000000"},
		{name: "zero", args: []string{"credits", "adjust", "acme", "0", "--reason", "x"}, wantErr: "invalid_amount", credit: "9.000000"},
		{name: "unknown flag", args: []string{"credits", "adjust", "acme", "1", "--reason", "x", "--bogus"}, wantErr: "unknown flag: --bogus", credit: "9.000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !tt.noFlags {
				args = append(args, flags...)
			}
			stdout, stderr, err := runCLI(t, args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q; stdout %s", err, tt.wantErr, stdout)
				}
			} else if err != nil {
				t.Fatalf("error %v; stderr %s", err, stderr)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout:\n%s\nlacks %q", stdout, want)
				}
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			a, err := store.GetAccount(context.Background(), "acme")
			if err != nil || a.Credit.String() != tt.credit {
				t.Fatalf("credit %s %v, want %s", a.Credit, err, tt.credit)
			}
		})
	}
	t.Run("json output", func(t *testing.T) {
		stdout, _, err := runCLI(t, append([]string{"credits", "adjust", "acme", "-0.25", "--reason", "json", "-o", "json"}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		var res admin.AdjustmentResult
		if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Amount.String() != "-0.250000" || res.Event.Type != "adjustment" || res.Event.Note != "json" {
			t.Fatalf("json %s: %+v %v", stdout, res, err)
		}
	})
	t.Run("help", func(t *testing.T) {
		stdout, _, err := runCLI(t, "credits", "adjust", "--help")
		if err != nil || !strings.Contains(stdout, "--reason") || !strings.Contains(stdout, "credits adjust acme -1.50") {
			t.Fatalf("help: %v\n%s", err, stdout)
		}
	})
	if r, err := billing.AuditAccount(context.Background(), store, "acme"); err != nil || !r.OK() {
		t.Fatalf("audit %+v %v", r.Problems, err)
	}
}
