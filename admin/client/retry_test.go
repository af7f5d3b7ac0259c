package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// fastRetry keeps the tests' pauses short.
var fastRetry = Retry{Attempts: 4, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

// A top-up whose answer is lost after the server applied it (a fault proxy
// between client and server swallows the reply and closes the connection, or goes
// silent past the client's timeout) is retried with the same, generated,
// Idempotency-Key: the server replays it, and the account is credited once.
func TestLostAnswerIsRetriedAndCreditsOnce(t *testing.T) {
	for _, fault := range []faultproxy.Fault{faultproxy.DropReplyAndClose, faultproxy.DropReplyAndHang} {
		t.Run(map[faultproxy.Fault]string{faultproxy.DropReplyAndClose: "close", faultproxy.DropReplyAndHang: "hang"}[fault], func(t *testing.T) {
			r := testredis.New(t)
			store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
			if err != nil {
				t.Fatal(err)
			}
			policy := testPolicy()
			policy.CreditTTL = time.Hour
			srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: func() billing.Policy { return policy },
				Tokens: func() []string { return []string{testToken} }}).Handler())
			t.Cleanup(srv.Close)
			fp, err := faultproxy.New(strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fp.Close() })
			ctx := context.Background()
			if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
				t.Fatal(err)
			}
			var retries []RetryEvent
			c := &Client{BaseURL: "http://" + fp.Addr(), Token: testToken, HTTP: &http.Client{Timeout: time.Second},
				Retry: fastRetry, OnRetry: func(e RetryEvent) { retries = append(retries, e) }}
			fp.DropReplies(1, fault)
			res, err := c.AddCredits(ctx, "acme", "10.00", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			if fp.Dropped() != 1 || len(retries) != 1 || !res.Replayed {
				t.Fatalf("%d replies dropped, %d retries, replayed %v; want 1, 1 and the retry replayed", fp.Dropped(), len(retries), res.Replayed)
			}
			if !generatedKeyPattern.MatchString(retries[0].Key) {
				t.Fatalf("retried with key %q, want a generated one", retries[0].Key)
			}
			a, err := store.GetAccount(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if a.Credit != money.MustParse("10.00") || len(a.Grants) != 1 || a.Grants[0].ID != res.Grant.ID {
				t.Fatalf("credit %s in %d grants, want 10.00 once (grant %s)", a.Credit, len(a.Grants), res.Grant.ID)
			}
		})
	}
}

// recordingLedger fails TopUp and Adjust with the errors of fails, in turn
// (nil: succeed), recording each request; a request after one that committed
// (every one after the first) is a replay.
type recordingLedger struct {
	mu       sync.Mutex
	fails    []error
	topUps   []billing.TopUpRequest
	adjusts  []billing.AdjustRequest
	fakeOnce fakeLedger
}

func (l *recordingLedger) next() (replayed bool, err error) {
	n := len(l.topUps) + len(l.adjusts)
	if n <= len(l.fails) {
		err = l.fails[n-1]
	}
	return n > 1, err
}

func (l *recordingLedger) ledger() *fakeLedger {
	l.fakeOnce.TopUpFunc = func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.topUps = append(l.topUps, r)
		replayed, err := l.next()
		return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount, Remaining: r.Amount}, BalanceAfter: r.Amount, EventID: "1-0", Replayed: replayed}, err
	}
	l.fakeOnce.AdjustFunc = func(_ context.Context, _ billing.Policy, _ string, r billing.AdjustRequest) (billing.AdjustResult, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.adjusts = append(l.adjusts, r)
		replayed, err := l.next()
		return billing.AdjustResult{ID: "adj_1", Amount: r.Amount, Reason: r.Reason, EventID: "2-0", Replayed: replayed}, err
	}
	return &l.fakeOnce
}

var errNotDurable = fmt.Errorf("%w: event 1-0 of account \"acme\": 0 of 1 replicas confirmed within 1s", billing.ErrNotDurable)

// A 503 (the store failed, or the change is not confirmed by replicas yet) is
// retried with the same key, for a top-up and an adjustment, with the caller's
// key or a generated one; a definite answer (400, 404, 409) is not retried.
func TestRetriesOnlyWhileTheOutcomeIsUnknown(t *testing.T) {
	ctx := context.Background()
	calls := map[string]func(c *Client, key string) (bool, error){
		"top-up": func(c *Client, key string) (bool, error) {
			r, err := c.AddCredits(ctx, "acme", "10", nil, key)
			return r.Replayed, err
		},
		"adjustment": func(c *Client, key string) (bool, error) {
			r, err := c.Adjust(ctx, "acme", "-1.50", "refund", nil, key)
			return r.Replayed, err
		},
	}
	tests := []struct {
		name     string
		fails    []error
		tries    int  // requests that reach the store
		replayed bool // the final answer
		wantErr  string
	}{
		{"first try", nil, 1, false, ""},
		{"not durable, then confirmed", []error{errNotDurable}, 2, true, ""},
		{"store down twice", []error{billing.ErrUnavailable, billing.ErrUnavailable}, 3, true, ""},
		{"refused", []error{billing.ErrAccountNotFound}, 1, false, "account_not_found"},
		{"conflict", []error{billing.ErrIdempotencyConflict}, 1, false, "idempotency_key_reused"},
		{"down for good", []error{billing.ErrUnavailable, billing.ErrUnavailable, billing.ErrUnavailable, errNotDurable}, 4, false, "after 4 tries the outcome is unknown"},
	}
	for name, call := range calls {
		for _, tt := range tests {
			for _, key := range []string{"", "order-1"} {
				t.Run(fmt.Sprintf("%s %s key=%q", name, tt.name, key), func(t *testing.T) {
					l := &recordingLedger{fails: tt.fails}
					c, _ := newServer(t, l.ledger(), &fakeKeys{})
					c.Retry = fastRetry
					var retries []RetryEvent
					c.OnRetry = func(e RetryEvent) { retries = append(retries, e) }
					replayed, err := call(c, key)
					if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
						t.Fatalf("error %v, want %q", err, tt.wantErr)
					}
					if replayed != tt.replayed {
						t.Fatalf("replayed %v, want %v", replayed, tt.replayed)
					}
					keys := map[string]bool{}
					for _, r := range l.topUps {
						keys[r.IdempotencyKey] = true
					}
					for _, r := range l.adjusts {
						keys[r.IdempotencyKey] = true
					}
					if n := len(l.topUps) + len(l.adjusts); n != tt.tries || len(retries) != n-1 {
						t.Fatalf("%d tries reached the store, %d retries reported; want %d", n, len(retries), tt.tries)
					}
					if len(keys) != 1 {
						t.Fatalf("tries carried keys %v, want one", keys)
					}
					for k := range keys {
						if key != "" && k != key || key == "" && !generatedKeyPattern.MatchString(k) {
							t.Fatalf("tries carried key %q; the caller gave %q", k, key)
						}
						var ue *UnconfirmedError
						if errors.As(err, &ue) && (ue.Key != k || ue.Attempts != tt.tries) {
							t.Fatalf("UnconfirmedError %+v, want key %q after %d tries", ue, k, tt.tries)
						}
					}
					var ae *APIError
					if tt.wantErr != "" && !errors.As(err, &ae) {
						t.Fatalf("error %v does not wrap the server's *APIError", err)
					}
				})
			}
		}
	}
}

// Two calls without a key are two requests: each gets a key of its own.
func TestEachCallGetsItsOwnKey(t *testing.T) {
	l := &recordingLedger{}
	c, _ := newServer(t, l.ledger(), &fakeKeys{})
	for range 2 {
		if _, err := c.AddCredits(context.Background(), "acme", "10", nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.topUps) != 2 || l.topUps[0].IdempotencyKey == l.topUps[1].IdempotencyKey {
		t.Fatalf("top-ups %+v, want two with different keys", l.topUps)
	}
}

// The caller's context ends during a pause: the call stops at once, with the
// key to retry with later.
func TestCanceledDuringAPauseIsUnconfirmed(t *testing.T) {
	l := &recordingLedger{fails: []error{billing.ErrUnavailable}}
	c, _ := newServer(t, l.ledger(), &fakeKeys{})
	c.Retry = Retry{Attempts: 3, Backoff: time.Minute, MaxBackoff: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	c.OnRetry = func(RetryEvent) { cancel() }
	start := time.Now()
	_, err := c.AddCredits(ctx, "acme", "10", nil, "order-9")
	var ue *UnconfirmedError
	if !errors.As(err, &ue) || ue.Key != "order-9" || ue.Attempts != 1 {
		t.Fatalf("error %v, want an UnconfirmedError for order-9 after 1 try", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s: the pause was not cut short", took)
	}
}

// Pauses grow from Backoff, doubling up to MaxBackoff, each drawn in the upper
// half of its bound; the defaults apply to a zero Retry.
func TestRetryPauses(t *testing.T) {
	r := (&Client{}).retry()
	if r != DefaultRetry {
		t.Fatalf("zero Retry → %+v, want DefaultRetry", r)
	}
	total := time.Duration(0)
	for attempt := 1; attempt < r.Attempts; attempt++ {
		bound := min(r.Backoff<<(attempt-1), r.MaxBackoff)
		for range 50 {
			if p := r.pause(attempt); p < bound/2 || p > bound {
				t.Fatalf("pause after try %d: %s, want within [%s, %s]", attempt, p, bound/2, bound)
			}
		}
		total += bound
	}
	if total > 6*time.Second || total < 3*time.Second {
		t.Fatalf("DefaultRetry pauses add up to at most %s; want a few seconds", total)
	}
}
