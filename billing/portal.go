package billing

import (
	"context"
	"errors"
	"time"
)

// A portal link opens one account's Billing page once; redeeming it starts a
// portal session (a cookie) scoped to that account. The store keeps only SHA-256
// hashes of the link token and of the session id, as it does for app keys, so a
// copy of the store opens nothing.

// PortalLink is a single-use link to an account's Billing page.
type PortalLink struct {
	Account string
	// ReturnURL is where the page's "Back" link goes (the operator's own app).
	ReturnURL string
	ExpiresAt time.Time
	// Actor is the admin token's name that asked for the link.
	Actor string
}

// PortalSession is a signed-in customer on the Billing page.
type PortalSession struct {
	Account   string
	ReturnURL string
	// CSRF is the token every state-changing form of the session must carry.
	CSRF      string
	ExpiresAt time.Time
}

// PortalStore keeps portal links and sessions. Links are single use: of two
// concurrent redemptions exactly one succeeds.
type PortalStore interface {
	CreatePortalLink(ctx context.Context, token KeyHash, l PortalLink) error
	// RedeemPortalLink consumes the link: ErrPortalLinkInvalid when it is unknown,
	// already used or expired (one answer for all three).
	RedeemPortalLink(ctx context.Context, token KeyHash) (PortalLink, error)
	CreatePortalSession(ctx context.Context, id KeyHash, s PortalSession) error
	// GetPortalSession returns a live session: ErrPortalSessionInvalid otherwise.
	GetPortalSession(ctx context.Context, id KeyHash) (PortalSession, error)
	DeletePortalSession(ctx context.Context, id KeyHash) error
}

// Errors of the portal store.
var (
	ErrPortalLinkInvalid    = errors.New("portal link unknown, used or expired")
	ErrPortalSessionInvalid = errors.New("portal session unknown or expired")
)
