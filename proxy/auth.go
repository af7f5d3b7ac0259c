package proxy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// keyCache remembers successful key lookups for a short TTL so most requests cost
// one Redis round trip (the reserve), not two. A cached key carries its settings
// and its account's status as LookupKey read them (billing.APIKey.AccountStatus),
// so a PATCHed key or a suspension reaches every proxy within the TTL. Only found keys are cached: an
// unknown key always asks the store, so a new key works at once. A revoked key
// keeps working on a proxy that cached it for at most the TTL.
type keyCache struct {
	store billing.KeyStore
	ttl   time.Duration
	now   func() time.Time

	mu      sync.RWMutex
	entries map[billing.KeyHash]cachedKey
}

type cachedKey struct {
	key     billing.APIKey
	expires time.Time
}

// maxCachedKeys bounds the cache; when full, it is emptied (simple, and a full
// cache only happens with that many distinct live keys within one TTL).
const maxCachedKeys = 100_000

func newKeyCache(store billing.KeyStore, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{store: store, ttl: ttl, now: now, entries: make(map[billing.KeyHash]cachedKey)}
}

func (c *keyCache) lookup(ctx context.Context, h billing.KeyHash) (billing.APIKey, error) {
	if c.ttl > 0 {
		c.mu.RLock()
		e, ok := c.entries[h]
		c.mu.RUnlock()
		if ok && c.now().Before(e.expires) {
			return e.key, nil
		}
	}
	k, err := c.store.LookupKey(ctx, h)
	if err != nil {
		return billing.APIKey{}, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		if len(c.entries) >= maxCachedKeys {
			c.entries = make(map[billing.KeyHash]cachedKey)
		}
		c.entries[h] = cachedKey{key: k, expires: c.now().Add(c.ttl)}
		c.mu.Unlock()
	}
	return k, nil
}

// forget drops a key from the cache (its account vanished).
func (c *keyCache) forget(h billing.KeyHash) {
	c.mu.Lock()
	delete(c.entries, h)
	c.mu.Unlock()
}

// forgetKey drops the request's key from the cache.
func (p *Proxy) forgetKey(r *http.Request) {
	if tok, ok := bearer(r); ok {
		p.keys.forget(billing.HashKey(tok))
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}

// authenticate resolves the request's app key and checks it may be used
// (checkKeyUsable). Unknown and revoked keys get the same answer; a store
// outage is a 503 (fail closed).
func (p *Proxy) authenticate(r *http.Request) (billing.APIKey, billing.KeyHash, *apiError) {
	tok, ok := bearer(r)
	if !ok {
		return billing.APIKey{}, billing.KeyHash{}, errMissingKey()
	}
	// Not a creditgate key (e.g. an OpenAI key pasted by mistake): refuse without a
	// store lookup. Length bound: no legitimate key is longer.
	if !strings.HasPrefix(tok, billing.KeyPrefix) || len(tok) > 128 {
		return billing.APIKey{}, billing.KeyHash{}, errInvalidKey()
	}
	h := billing.HashKey(tok)
	k, err := p.keys.lookup(r.Context(), h)
	if err != nil {
		return billing.APIKey{}, h, p.storeError(err, "key lookup failed")
	}
	if aerr := p.checkKeyUsable(k); aerr != nil {
		return k, h, aerr
	}
	return k, h, nil
}
