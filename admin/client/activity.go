package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/creditgate/creditgate/admin"
)

// Overview reads the view across accounts: spend and requests today and this
// month, the last 30 days, the top accounts (top ≤ 50; 0: the server's
// default), 429s by reason and failed auto-recharges.
func (c *Client) Overview(ctx context.Context, top int) (admin.Overview, error) {
	q := url.Values{}
	if top > 0 {
		q.Set("top", strconv.Itoa(top))
	}
	var out admin.Overview
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/overview", q, nil, nil, &out)
	return out, err
}

// RecentRequests reads the newest requests across accounts, newest first
// (limit ≤ 200; 0: the server's default), or of one account ("": all).
func (c *Client) RecentRequests(ctx context.Context, account string, limit int) (admin.RecentRequestList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if account != "" {
		q.Set("account", account)
	}
	var out admin.RecentRequestList
	_, err := c.do(ctx, http.MethodGet, "/admin/v1/requests", q, nil, nil, &out)
	return out, err
}
