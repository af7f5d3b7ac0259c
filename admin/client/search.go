package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/creditgate/creditgate/admin"
)

// AccountSearch is one page request of an account search (GET
// /admin/v1/accounts?q=…). Zero fields are left out.
type AccountSearch struct {
	Q            string // part of the id, any case
	Tier         string
	InDebt       bool
	BalanceBelow string // a signed amount: accounts whose balance is below it
	Limit        int    // 1 to admin.MaxSearchLimit; 0: the server's default
	Cursor       string // a previous page's NextCursor
}

// SearchAccounts reads one page of an account search; follow NextCursor while
// HasMore for the rest. A page may be short, even empty, with HasMore: the
// server scans a bounded part of the accounts per request.
func (c *Client) SearchAccounts(ctx context.Context, s AccountSearch) (admin.AccountPage, error) {
	q := url.Values{}
	// limit is always sent: it is what makes the request a search.
	if s.Limit > 0 {
		q.Set("limit", strconv.Itoa(s.Limit))
	} else {
		q.Set("limit", strconv.Itoa(admin.DefaultSearchLimit))
	}
	for name, v := range map[string]string{"q": s.Q, "tier": s.Tier, "balance_below": s.BalanceBelow, "cursor": s.Cursor} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if s.InDebt {
		q.Set("in_debt", "true")
	}
	var out admin.AccountPage
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/accounts", q, nil, nil, &out)
	return out, err
}
