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
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/purchase/purchasetest"
	"github.com/creditgate/creditgate/money"
)

// fakePurchases answers purchases for account "acme".
type fakePurchases struct{ started []purchase.StartRequest }

func (f *fakePurchases) Start(_ context.Context, r purchase.StartRequest) (purchase.Started, error) {
	if r.Amount < money.MustParse("5") {
		return purchase.Started{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: money.MustParse("5"), Amount: r.Amount}
	}
	f.started = append(f.started, r)
	return purchase.Started{Purchase: billing.Purchase{ID: "pur_1", Account: r.Account, Amount: r.Amount, Status: billing.PurchasePending,
		Provider: "stripe", SaveCard: r.SaveCard, CheckoutURL: "https://checkout.stripe.com/c/pay/cs_1", CheckoutExpiresAt: testNow.Add(24 * time.Hour),
		CreatedAt: testNow}, Replayed: r.ID != "" && len(f.started) > 1}, nil
}

func (f *fakePurchases) List(context.Context, string, int) ([]billing.Purchase, error) {
	return []billing.Purchase{{ID: "pur_2", Account: "acme", Amount: money.MustParse("25"), PaidAmount: money.MustParse("25"),
		Status: billing.PurchasePaid, Provider: "stripe", PaymentRef: "pi_1", CreatedAt: testNow}}, nil
}

func startPurchaseAdmin(t *testing.T) (string, *fakePurchases, *[]billing.KeyHash) {
	t.Helper()
	ps := &fakePurchases{}
	var hashes []billing.KeyHash
	s := &admin.Server{
		Ledger: &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
			if id != "acme" {
				return billing.Account{}, billing.ErrAccountNotFound
			}
			return sampleAccount(), nil
		}},
		Policy: testPolicy, Now: func() time.Time { return testNow }, Tokens: func() []string { return []string{testToken} },
		Purchases: ps, PortalURL: "http://localhost:8080",
		Portal: &purchasetest.Portal{CreatePortalLinkFunc: func(_ context.Context, h billing.KeyHash, _ billing.PortalLink) error {
			hashes = append(hashes, h)
			return nil
		}},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, ps, &hashes
}

func TestPurchaseCommands(t *testing.T) {
	isolateEnv(t)
	url, ps, hashes := startPurchaseAdmin(t)
	flags := []string{"--admin-url", url, "--admin-token", testToken}
	tests := []struct {
		name, wantOut, wantErr string // wantErr: substring of the error ("" = none)
		args                   []string
	}{
		{name: "purchases create", args: []string{"purchases", "create", "acme", "10.00", "--save-card", "--success-url", "https://app.example/ok"},
			wantOut: `ID            pur_1
ACCOUNT       acme
STATUS        pending
AMOUNT        10.000000
PROVIDER      stripe
SAVE CARD     true
CHECKOUT URL  https://checkout.stripe.com/c/pay/cs_1
EXPIRES       2025-03-02T12:00:00Z
`},
		{name: "purchases list", args: []string{"purchases", "list", "acme"},
			wantOut: `ID     STATUS  AMOUNT     PAID       TAKEN BACK  PROVIDER  CREATED               PAYMENT
pur_2  paid    25.000000  25.000000  0.000000    stripe    2025-03-01T12:00:00Z  pi_1
`},
		{name: "purchases create below the minimum", args: []string{"purchases", "create", "acme", "1.00"},
			wantErr: "amount 1.000000 is below the minimum purchase of 5.000000 (HTTP 400, below_minimum_purchase)"},
		{name: "purchases list of an unknown account", args: []string{"purchases", "list", "nobody"}, wantErr: "HTTP 404"},
		{name: "portal of an unknown account", args: []string{"portal", "nobody"}, wantErr: "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runCLI(t, append(tt.args, flags...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || out != tt.wantOut {
				t.Fatalf("output:\n%s\nwant:\n%s\nerror %v", out, tt.wantOut, err)
			}
		})
	}
	if got := ps.started[0]; !got.SaveCard || got.SuccessURL != "https://app.example/ok" || got.Amount != money.MustParse("10") {
		t.Fatalf("started %+v", got)
	}

	out, stderr, err := runCLI(t, append([]string{"portal", "acme", "--return-url", "https://app.example/"}, flags...)...)
	link := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(link, "http://localhost:8080/billing/login?token=") || strings.Count(out, "\n") != 1 ||
		!strings.Contains(stderr, "valid until 2025-03-01T12:10:00Z") {
		t.Fatalf("portal: %q %q %v", out, stderr, err)
	}
	token := strings.TrimPrefix(link, "http://localhost:8080/billing/login?token=")
	if len(*hashes) != 1 || (*hashes)[0] != billing.HashKey(token) {
		t.Fatal("the printed token is not the one whose hash was stored")
	}

	out, _, err = runCLI(t, append([]string{"purchases", "create", "acme", "10.00", "--idempotency-key", "k1", "-o", "json"}, flags...)...)
	var p admin.Purchase
	if err != nil || json.Unmarshal([]byte(out), &p) != nil || p.URL == "" || ps.started[len(ps.started)-1].ID != purchase.IDForKey("acme", "k1") {
		t.Fatalf("json create: %q %v", out, err)
	}
	out, _, err = runCLI(t, append([]string{"portal", "acme", "-o", "json"}, flags...)...)
	var s admin.PortalSession
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || s.URL == "" {
		t.Fatalf("json portal: %q %v", out, err)
	}
}

func TestLocalURL(t *testing.T) {
	for in, want := range map[string]string{
		":8080": "http://localhost:8080", "0.0.0.0:9000": "http://localhost:9000", "127.0.0.1:8080": "http://127.0.0.1:8080",
		"[::]:8080": "http://localhost:8080", "127.0.0.1:0": "", "nonsense": "",
	} {
		if got := localURL(in); got != want {
			t.Errorf("localURL(%q) = %q, want %q", in, got, want)
		}
	}
}
