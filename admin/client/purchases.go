package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/creditgate/creditgate/admin"
)

// CreatePurchase starts a purchase of credit for account through the payment
// provider and returns it with the checkout page's URL to send the customer to.
// A non-empty idemKey is sent as the Idempotency-Key header: repeating the call
// with the same key and arguments returns the same purchase and checkout, with
// Replayed set.
func (c *Client) CreatePurchase(ctx context.Context, account string, req admin.CreatePurchaseRequest, idemKey string) (admin.Purchase, error) {
	path, err := accountPath(account, "/purchases")
	if err != nil {
		return admin.Purchase{}, err
	}
	var out admin.Purchase
	out.Replayed, err = c.postIdempotent(ctx, path, idemKey, req, &out)
	return out, err
}

// ListPurchases returns account's purchases, newest first; limit 0 means the
// server's default (100).
func (c *Client) ListPurchases(ctx context.Context, account string, limit int) (admin.PurchaseList, error) {
	path, err := accountPath(account, "/purchases")
	if err != nil {
		return admin.PurchaseList{}, err
	}
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out admin.PurchaseList
	_, err = c.do(ctx, http.MethodGet, path, q, nil, nil, &out)
	return out, err
}

// CreatePortalSession mints a single-use link to account's Billing page, valid
// until its ExpiresAt (portal.link_ttl). returnURL, optional, is where the page's
// "Back" link goes. The link is a credential: hand it to the account's holder only.
func (c *Client) CreatePortalSession(ctx context.Context, account, returnURL string) (admin.PortalSession, error) {
	path, err := accountPath(account, "/portal-sessions")
	if err != nil {
		return admin.PortalSession{}, err
	}
	var out admin.PortalSession
	_, err = c.do(ctx, http.MethodPost, path, nil, nil, admin.CreatePortalSessionRequest{ReturnURL: returnURL}, &out)
	return out, err
}
