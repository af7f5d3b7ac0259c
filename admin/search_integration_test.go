package admin_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
)

var _ admin.AccountDirectory = (*redisstore.Store)(nil)

// TestSearchOnRedis pages through 1,200 accounts on real Redis with the
// client: every account exactly once, the filters agree with the store, and
// the figures are GetAccount's.
func TestSearchOnRedis(t *testing.T) {
	const token = "integration-admin-token-123456"
	store := newRedisLedger(t, nil)
	srv := serveAdmin(t, store, token, nil)
	c := &client.Client{BaseURL: srv.URL, Token: token}
	ctx := context.Background()
	const n = 1200
	var all, inDebt []string
	for i := range n {
		id := fmt.Sprintf("org-%04d", i)
		all = append(all, id)
		if _, err := store.CreateAccount(ctx, id, "tier-1"); err != nil {
			t.Fatal(err)
		}
		if i%97 == 5 { // into debt: a request settled above an empty balance's grace
			hold := "h-" + id
			if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: money.MustParse("0.10"), Grace: money.MustParse("0.50"), TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if _, err := store.Settle(ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: money.MustParse("0.10")}); err != nil {
				t.Fatal(err)
			}
			inDebt = append(inDebt, id)
		}
	}
	follow := func(s client.AccountSearch) (ids []string, pages int) {
		t.Helper()
		for {
			page, err := c.SearchAccounts(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if page.Total != n {
				t.Fatalf("total_accounts %d, want %d", page.Total, n)
			}
			for _, a := range page.Data {
				ids = append(ids, a.ID)
			}
			if !page.HasMore {
				return ids, pages
			}
			s.Cursor = page.NextCursor
		}
	}
	got, pages := follow(client.AccountSearch{Limit: 100})
	slices.Sort(got)
	if !slices.Equal(got, all) || pages < n/100 {
		t.Errorf("%d ids in %d pages, want each of %d once", len(got), pages, n)
	}
	got, _ = follow(client.AccountSearch{InDebt: true, Limit: 5})
	slices.Sort(got)
	if !slices.Equal(got, inDebt) {
		t.Errorf("in debt: %v, want %v", got, inDebt)
	}
	// org-10xx in debt: 1072 only (i % 97 == 5).
	if got, _ = follow(client.AccountSearch{Q: "ORG-10", BalanceBelow: "0.00"}); !slices.Equal(got, []string{"org-1072"}) {
		t.Errorf("q ORG-10, balance below 0: %v, want [org-1072]", got)
	}
	page, err := c.SearchAccounts(ctx, client.AccountSearch{Q: inDebt[0]})
	if err != nil || len(page.Data) != 1 {
		t.Fatalf("%v %+v", err, page)
	}
	full, err := store.GetAccount(ctx, inDebt[0])
	if err != nil {
		t.Fatal(err)
	}
	if a := page.Data[0]; money.Micros(a.Balance) != full.Balance() || a.Debt != full.Debt || a.Tier != full.Tier {
		t.Errorf("search %+v, store %+v", a, full)
	}
}
