package portal

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// DefaultLinkTTL is portal.link_ttl's default: how long a link can be opened.
const DefaultLinkTTL = 10 * time.Minute

// NewLink mints a single-use link to account's Billing page: it stores the
// SHA-256 of a fresh random token and returns base + "/billing/login?token=…"
// (base is portal.public_url) with the link's expiry. The token exists only in
// the returned URL.
func NewLink(ctx context.Context, store billing.PortalStore, base string, l billing.PortalLink) (string, error) {
	if err := billing.ValidAccountID(l.Account); err != nil {
		return "", err
	}
	if l.ExpiresAt.IsZero() {
		l.ExpiresAt = time.Now().Add(DefaultLinkTTL)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: portal base URL %q: want an absolute http(s) URL", billing.ErrInvalid, base)
	}
	token := randomToken()
	if err := store.CreatePortalLink(ctx, billing.HashKey(token), l); err != nil {
		return "", err
	}
	return strings.TrimSuffix(base, "/") + Path + "login?token=" + url.QueryEscape(token), nil
}
