package client

import (
	"context"
	"errors"
	"net/http"
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

// purchases is an admin.Purchases over one in-memory list.
type purchases struct {
	started []purchase.StartRequest
	list    []billing.Purchase
}

func (p *purchases) Start(_ context.Context, r purchase.StartRequest) (purchase.Started, error) {
	if r.Amount < money.MustParse("5") {
		return purchase.Started{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: money.MustParse("5"), Amount: r.Amount}
	}
	replayed := false
	for _, old := range p.started {
		replayed = replayed || (r.ID != "" && old.ID == r.ID)
	}
	p.started = append(p.started, r)
	pur := billing.Purchase{ID: "pur_1", Account: r.Account, Amount: r.Amount, Status: billing.PurchasePending, Provider: "demo",
		SaveCard: r.SaveCard, CheckoutURL: "http://localhost:8080/billing/checkout/demo/pur_1?token=t", CreatedAt: testNow}
	if !replayed {
		p.list = append([]billing.Purchase{pur}, p.list...)
	}
	return purchase.Started{Purchase: pur, Replayed: replayed}, nil
}

func (p *purchases) List(_ context.Context, account string, limit int) ([]billing.Purchase, error) {
	return p.list, nil
}

func newPurchaseServer(t *testing.T) (*Client, *purchases, *[]billing.PortalLink) {
	t.Helper()
	ps := &purchases{}
	var links []billing.PortalLink
	s := &admin.Server{
		Ledger: &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
			if id != "acme" {
				return billing.Account{}, billing.ErrAccountNotFound
			}
			return sampleAccount(), nil
		}},
		Policy: testPolicy, Tokens: func() []string { return []string{testToken} }, Now: func() time.Time { return testNow },
		Purchases: ps, PortalURL: "https://credit.example.com", PortalLinkTTL: 10 * time.Minute,
		Portal: &purchasetest.Portal{CreatePortalLinkFunc: func(_ context.Context, _ billing.KeyHash, l billing.PortalLink) error {
			links = append(links, l)
			return nil
		}},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, Token: testToken, HTTP: srv.Client()}, ps, &links
}

func TestPurchaseRoundTrips(t *testing.T) {
	c, ps, links := newPurchaseServer(t)
	ctx := context.Background()
	req := admin.CreatePurchaseRequest{Amount: "10.00", SaveCard: true, SuccessURL: "https://app.example/ok"}
	p, err := c.CreatePurchase(ctx, "acme", req, "order-7")
	if err != nil || p.ID != "pur_1" || p.Status != "pending" || p.Amount != money.MustParse("10") || !p.SaveCard || p.Replayed ||
		!strings.HasPrefix(p.URL, "http://localhost:8080/billing/checkout/demo/") {
		t.Fatalf("CreatePurchase: %+v %v", p, err)
	}
	again, err := c.CreatePurchase(ctx, "acme", req, "order-7")
	if err != nil || !again.Replayed || again.ID != p.ID {
		t.Fatalf("the same key again: %+v %v", again, err)
	}
	if got := ps.started[0]; got.ID != purchase.IDForKey("acme", "order-7") || got.SuccessURL != "https://app.example/ok" || got.Actor != admin.FullAdmin(testToken).Name {
		t.Fatalf("started %+v", got)
	}
	list, err := c.ListPurchases(ctx, "acme", 10)
	if err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "pur_1" {
		t.Fatalf("ListPurchases: %+v %v", list, err)
	}
	_, err = c.CreatePurchase(ctx, "acme", admin.CreatePurchaseRequest{Amount: "1.00"}, "")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Code != admin.CodeBelowMinimum || apiErr.Param != "amount" {
		t.Fatalf("below the minimum: %v", err)
	}
	if _, err := c.ListPurchases(ctx, "nobody", 0); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("unknown account: %v", err)
	}

	ses, err := c.CreatePortalSession(ctx, "acme", "https://app.example/account")
	if err != nil || !strings.HasPrefix(ses.URL, "https://credit.example.com/billing/login?token=") || !ses.ExpiresAt.Equal(testNow.Add(10*time.Minute)) {
		t.Fatalf("CreatePortalSession: %+v %v", ses, err)
	}
	if len(*links) != 1 || (*links)[0].ReturnURL != "https://app.example/account" || (*links)[0].Account != "acme" {
		t.Fatalf("links %+v", *links)
	}
	if _, err := c.CreatePortalSession(ctx, "..", ""); err == nil {
		t.Fatal("a dot segment account was sent")
	}
}
