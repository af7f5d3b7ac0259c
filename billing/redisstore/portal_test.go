package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

func TestPortalLinks(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		token := billing.HashKey("cgpl_one")
		link := billing.PortalLink{Account: "acme", ReturnURL: "https://app.example/settings", ExpiresAt: e.clock.Now().Add(10 * time.Minute), Actor: "ops"}
		if err := e.CreatePortalLink(e.ctx, token, link); err != nil {
			t.Fatal(err)
		}
		got, err := e.RedeemPortalLink(e.ctx, token)
		if err != nil || got.Account != link.Account || got.ReturnURL != link.ReturnURL || got.Actor != link.Actor || !got.ExpiresAt.Equal(link.ExpiresAt) {
			t.Fatalf("redeemed %+v %v; want %+v", got, err, link)
		}
		if _, err := e.RedeemPortalLink(e.ctx, token); !errors.Is(err, billing.ErrPortalLinkInvalid) {
			t.Fatalf("a used link: %v, want ErrPortalLinkInvalid", err)
		}

		tests := []struct {
			name   string
			link   billing.PortalLink
			ttl    time.Duration // from now to the link's expiry
			create error         // of CreatePortalLink
			after  time.Duration // the clock moves before redeeming
			redeem error
		}{
			{name: "redeemed in time", link: billing.PortalLink{Account: "acme"}, ttl: 10 * time.Minute, after: 9 * time.Minute},
			{name: "expired", link: billing.PortalLink{Account: "acme"}, ttl: 10 * time.Minute, after: 10 * time.Minute, redeem: billing.ErrPortalLinkInvalid},
			{name: "already expired", link: billing.PortalLink{Account: "acme"}, create: billing.ErrInvalid},
			{name: "invalid account", link: billing.PortalLink{Account: "a{b}"}, ttl: time.Minute, create: billing.ErrInvalid},
			{name: "return url with a newline", link: billing.PortalLink{Account: "acme", ReturnURL: "https://x\n"}, ttl: time.Minute, create: billing.ErrInvalid},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				tok := billing.HashKey("cgpl_case_" + string(rune('a'+i)))
				tc.link.ExpiresAt = e.clock.Now().Add(tc.ttl)
				err := e.CreatePortalLink(e.ctx, tok, tc.link)
				if !errors.Is(err, tc.create) || (tc.create == nil && err != nil) {
					t.Fatalf("create: %v, want %v", err, tc.create)
				}
				if tc.create != nil {
					return
				}
				e.clock.Advance(tc.after)
				_, err = e.RedeemPortalLink(e.ctx, tok)
				if !errors.Is(err, tc.redeem) || (tc.redeem == nil && err != nil) {
					t.Fatalf("redeem: %v, want %v", err, tc.redeem)
				}
			})
		}
		if _, err := e.RedeemPortalLink(e.ctx, billing.HashKey("never issued")); !errors.Is(err, billing.ErrPortalLinkInvalid) {
			t.Fatalf("an unknown link: %v", err)
		}
	})
}

// Of N concurrent redemptions of one link exactly one wins.
func TestPortalLinkIsSingleUseUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		for round := range 5 {
			token := billing.HashKey("cgpl_race_" + string(rune('0'+round)))
			if err := e.CreatePortalLink(e.ctx, token, billing.PortalLink{Account: "acme", ExpiresAt: e.clock.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			const n = 32
			var wg sync.WaitGroup
			var mu sync.Mutex
			wins, losses := 0, 0
			start := make(chan struct{})
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := e.RedeemPortalLink(e.ctx, token)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						wins++
					case errors.Is(err, billing.ErrPortalLinkInvalid):
						losses++
					default:
						t.Error(err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if wins != 1 || losses != n-1 {
				t.Fatalf("round %d: %d redemptions won, %d lost; want exactly 1 winner of %d", round, wins, losses, n)
			}
		}
	})
}

func TestPortalSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		id := billing.HashKey("cgps_session")
		s := billing.PortalSession{Account: "acme", ReturnURL: "https://app.example", CSRF: "csrf-token-1", ExpiresAt: e.clock.Now().Add(time.Hour)}
		if err := e.CreatePortalSession(e.ctx, id, s); err != nil {
			t.Fatal(err)
		}
		for range 2 { // a session is read on every page load: not single use
			got, err := e.GetPortalSession(e.ctx, id)
			if err != nil || got.Account != s.Account || got.CSRF != s.CSRF || got.ReturnURL != s.ReturnURL || !got.ExpiresAt.Equal(s.ExpiresAt) {
				t.Fatalf("session %+v %v; want %+v", got, err, s)
			}
		}
		if _, err := e.GetPortalSession(e.ctx, billing.HashKey("cgps_other")); !errors.Is(err, billing.ErrPortalSessionInvalid) {
			t.Fatalf("an unknown session: %v", err)
		}
		if err := e.DeletePortalSession(e.ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := e.GetPortalSession(e.ctx, id); !errors.Is(err, billing.ErrPortalSessionInvalid) {
			t.Fatalf("a deleted session: %v", err)
		}
		if err := e.DeletePortalSession(e.ctx, id); err != nil {
			t.Fatalf("deleting a deleted session: %v", err)
		}
		// expiry by the store's clock
		id2 := billing.HashKey("cgps_two")
		s.ExpiresAt = e.clock.Now().Add(time.Hour)
		if err := e.CreatePortalSession(e.ctx, id2, s); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Hour)
		if _, err := e.GetPortalSession(e.ctx, id2); !errors.Is(err, billing.ErrPortalSessionInvalid) {
			t.Fatalf("an expired session: %v", err)
		}
		for name, bad := range map[string]billing.PortalSession{
			"no csrf":      {Account: "acme", ExpiresAt: e.clock.Now().Add(time.Hour)},
			"no account":   {CSRF: "x", ExpiresAt: e.clock.Now().Add(time.Hour)},
			"past expiry":  {Account: "acme", CSRF: "x", ExpiresAt: e.clock.Now().Add(-time.Second)},
			"csrf a space": {Account: "acme", CSRF: "a b", ExpiresAt: e.clock.Now().Add(time.Hour)},
		} {
			if err := e.CreatePortalSession(e.ctx, billing.HashKey(name), bad); !errors.Is(err, billing.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
	})
}

// Redis itself removes links and sessions at their expiry (a real TTL, not only
// the store's clock).
func TestPortalRecordsExpireInRedis(t *testing.T) {
	r := testredis.Memory(t)
	e := newEnv(t, r)
	e.Store.now = time.Now // the TTL is Redis's clock here
	link, sess := billing.HashKey("cgpl_ttl"), billing.HashKey("cgps_ttl")
	if err := e.CreatePortalLink(e.ctx, link, billing.PortalLink{Account: "acme", ExpiresAt: time.Now().Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreatePortalSession(e.ctx, sess, billing.PortalSession{Account: "acme", CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ttl := r.Mini.TTL(e.portalLinkKey(link)); ttl <= 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("link TTL %s, want about 10m", ttl)
	}
	r.Mini.FastForward(61 * time.Minute)
	if r.Mini.Exists(e.portalLinkKey(link)) || r.Mini.Exists(e.portalSessionKey(sess)) {
		t.Fatal("the link or the session outlived its TTL")
	}
}

// Redis holds only hashes: no key or value anywhere contains a link token or a
// session id.
func TestPortalStoresHashesOnly(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		linkTok, sessID := billing.NewID("cgpl_"), billing.NewID("cgps_")
		if err := e.CreatePortalLink(e.ctx, billing.HashKey(linkTok), billing.PortalLink{Account: "acme", ExpiresAt: e.clock.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := e.CreatePortalSession(e.ctx, billing.HashKey(sessID), billing.PortalSession{Account: "acme", CSRF: "csrf", ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		keys := allKeys(t, e.redis)
		if len(keys) != 2 {
			t.Fatalf("keys %v, want a link and a session", keys)
		}
		for _, k := range keys {
			vals, err := e.redis.Client.HGetAll(e.ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			all := k
			for f, v := range vals {
				all += " " + f + "=" + v
			}
			if strings.Contains(all, linkTok) || strings.Contains(all, sessID) {
				t.Fatalf("key %s holds a raw token: %s", k, all)
			}
			if !strings.Contains(k, billing.HashKey(linkTok).Hex()) && !strings.Contains(k, billing.HashKey(sessID).Hex()) {
				t.Fatalf("key %s is named by neither hash", k)
			}
		}
	})
}

// allKeys lists the test's keys, on every master of a cluster.
func allKeys(t testing.TB, r *testredis.Store) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		k, err := c.Keys(ctx, r.Prefix+"*").Result()
		mu.Lock()
		keys = append(keys, k...)
		mu.Unlock()
		return err
	}
	ctx := context.Background()
	var err error
	if cc, ok := r.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	} else {
		err = scan(ctx, r.Client)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
