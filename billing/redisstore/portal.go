package redisstore

import (
	"context"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// Portal links and sessions are one hash each, named by the SHA-256 of the link
// token or session id ("portal:link:<hex>", "portal:session:<hex>"), outside
// any account's hash tag: every operation touches one key. The token itself is
// never stored, so a copy of Redis opens no Billing page. Each record carries
// its expiry, checked against the store's clock, and a Redis TTL that removes
// it then.

var _ billing.PortalStore = (*Store)(nil)

var (
	portalPutScript  = newScript("portal_put.lua")
	portalTakeScript = newScript("portal_take.lua")
)

func (s *Store) portalLinkKey(h billing.KeyHash) string { return s.prefix + "portal:link:" + h.Hex() }
func (s *Store) portalSessionKey(h billing.KeyHash) string {
	return s.prefix + "portal:session:" + h.Hex()
}

// CreatePortalLink stores a single-use link to account's Billing page under the
// hash of its token, until l.ExpiresAt.
func (s *Store) CreatePortalLink(ctx context.Context, token billing.KeyHash, l billing.PortalLink) error {
	if err := billing.ValidAccountID(l.Account); err != nil {
		return err
	}
	if err := checkText("return url", l.ReturnURL, 4096); err != nil {
		return err
	}
	if err := checkText("actor", l.Actor, 200); err != nil {
		return err
	}
	return s.portalPut(ctx, s.portalLinkKey(token), l.ExpiresAt,
		"hash", token.Hex(), "account", l.Account, "return_url", l.ReturnURL, "actor", l.Actor, "expires", msArg(l.ExpiresAt))
}

// RedeemPortalLink consumes the link whose token hashes to token: of two
// concurrent redemptions exactly one finds it. Unknown, used and expired links
// are one answer, billing.ErrPortalLinkInvalid. A redemption whose reply was
// lost has consumed the link all the same: the resent one finds it used.
func (s *Store) RedeemPortalLink(ctx context.Context, token billing.KeyHash) (billing.PortalLink, error) {
	r, err := s.run(ctx, portalTakeScript, []string{s.portalLinkKey(token)})
	if err != nil {
		return billing.PortalLink{}, err
	}
	f, err := decodePortalTake(r, token)
	if err != nil {
		return billing.PortalLink{}, err
	}
	if f == nil {
		return billing.PortalLink{}, billing.ErrPortalLinkInvalid
	}
	d := record{where: r.script + " reply"}
	l := billing.PortalLink{Account: f["account"], ReturnURL: f["return_url"], Actor: f["actor"], ExpiresAt: d.msOf(f, "expires")}
	if d.err != nil {
		return billing.PortalLink{}, d.err
	}
	if !s.now().Before(l.ExpiresAt) {
		return billing.PortalLink{}, billing.ErrPortalLinkInvalid
	}
	return l, nil
}

// CreatePortalSession stores a session under the hash of its id, until
// ss.ExpiresAt.
func (s *Store) CreatePortalSession(ctx context.Context, id billing.KeyHash, ss billing.PortalSession) error {
	if err := billing.ValidAccountID(ss.Account); err != nil {
		return err
	}
	if err := checkText("return url", ss.ReturnURL, 4096); err != nil {
		return err
	}
	if ss.CSRF == "" || !isToken(ss.CSRF) || len(ss.CSRF) > 255 {
		return fmt.Errorf("%w: a portal session needs a CSRF token of printable characters", billing.ErrInvalid)
	}
	return s.portalPut(ctx, s.portalSessionKey(id), ss.ExpiresAt,
		"hash", id.Hex(), "account", ss.Account, "return_url", ss.ReturnURL, "csrf", ss.CSRF, "expires", msArg(ss.ExpiresAt))
}

// GetPortalSession returns the live session whose id hashes to id, or
// billing.ErrPortalSessionInvalid.
func (s *Store) GetPortalSession(ctx context.Context, id billing.KeyHash) (billing.PortalSession, error) {
	f, err := s.c.HGetAll(ctx, s.portalSessionKey(id)).Result()
	if err != nil {
		return billing.PortalSession{}, wrap(err)
	}
	// As LookupKey: the stored hash is compared in constant time too.
	if len(f) == 0 || subtle.ConstantTimeCompare([]byte(f["hash"]), []byte(id.Hex())) != 1 {
		return billing.PortalSession{}, billing.ErrPortalSessionInvalid
	}
	d := record{where: "portal session record"}
	ss := billing.PortalSession{Account: f["account"], ReturnURL: f["return_url"], CSRF: f["csrf"], ExpiresAt: d.msOf(f, "expires")}
	if d.err != nil {
		return billing.PortalSession{}, d.err
	}
	if ss.Account == "" || ss.CSRF == "" {
		return billing.PortalSession{}, &malformedError{where: d.where, detail: "no account or csrf"}
	}
	if !s.now().Before(ss.ExpiresAt) {
		return billing.PortalSession{}, billing.ErrPortalSessionInvalid
	}
	return ss, nil
}

// DeletePortalSession ends a session (sign-out); ending one that is gone is fine.
func (s *Store) DeletePortalSession(ctx context.Context, id billing.KeyHash) error {
	return wrap(s.c.Del(ctx, s.portalSessionKey(id)).Err())
}

// portalPut writes a portal record that Redis removes at expires (by the store's
// clock, which tests move).
func (s *Store) portalPut(ctx context.Context, key string, expires time.Time, kv ...interface{}) error {
	ttl := expires.Sub(s.now())
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: expiry %s is not in the future", billing.ErrInvalid, expires.UTC().Format(time.RFC3339))
	}
	r, err := s.run(ctx, portalPutScript, []string{key}, append([]interface{}{ttl.Milliseconds()}, kv...)...)
	if err != nil {
		return err
	}
	return decodePortalPut(r)
}

func decodePortalPut(r reply) error {
	if !r.boolean(0) && r.err == nil {
		r.fail("element 0 is 0, want the integer 1")
	}
	return r.done(1)
}

// decodePortalTake decodes portal_take.lua's reply: the link record of h, or nil
// when there was none.
func decodePortalTake(r reply, h billing.KeyHash) (map[string]string, error) {
	if len(r.v) == 0 {
		return nil, nil
	}
	if len(r.v)%2 != 0 {
		r.fail("%d elements, want field/value pairs", len(r.v))
	}
	f := make(map[string]string, len(r.v)/2)
	for i := 0; i+1 < len(r.v) && r.err == nil; i += 2 {
		k, v := r.str(i), r.str(i+1)
		f[k] = v
	}
	if r.err == nil && (subtle.ConstantTimeCompare([]byte(f["hash"]), []byte(h.Hex())) != 1 || f["account"] == "") {
		r.fail("the record's hash or account does not match the link")
	}
	if r.err != nil {
		return nil, r.err
	}
	return f, nil
}
