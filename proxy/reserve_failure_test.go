package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// faultyLedger is a ledger on the harness's Redis keys reached through a fault
// proxy, with the product's connection settings (Connect) and test-sized
// timeouts: two retries, so three replies lost make a reserve fail.
func faultyLedger(t *testing.T) (*redisstore.Store, *faultproxy.Proxy, *testredis.Store) {
	t.Helper()
	r := testredis.New(t)
	if r.Kind == testredis.KindCluster {
		t.Skip("a fault proxy in front of one cluster node would be bypassed by MOVED redirects")
	}
	fp, err := faultproxy.New(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	conn, err := redisstore.Connect(context.Background(), redisstore.ConnOptions{
		URL: "redis://" + fp.Addr(), Timeout: 300 * time.Millisecond, MaxRetries: 2, OperationTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.Client.AddHook(testredis.SlotGuard())
	store, err := redisstore.New(conn.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	return store, fp, r
}

// releaseHook is a ledger that calls beforeRelease before each Release: the
// test lets the faults stop there, so only the reserve meets them.
type releaseHook struct {
	billing.Ledger
	beforeRelease func()
}

func (l releaseHook) Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
	l.beforeRelease()
	return l.Ledger.Release(ctx, account, holdID, u)
}

// A reserve that Redis applied while every reply was lost until go-redis gave
// up answers 503; the hold it made must not stay reserved for hold_ttl. The
// proxy releases the hold id on that failure path: the account shows nothing
// reserved as soon as the 503 is answered, and the ledger's release event
// carries the amount that had been held (proof the reserve had been applied).
// When Redis stays unreachable the release fails too, which is logged; a
// reserve that never reached Redis left nothing to release.
func TestAmbiguousReserveFailureReleasesTheHold(t *testing.T) {
	const (
		released = "reserve failed; its hold id released in case Redis had applied it"
		failed   = "reserve failed and the release after it too: a hold Redis may have made counts as reserved until hold_ttl"
	)
	cases := []struct {
		name          string
		fault, repair func(*faultproxy.Proxy)
		applied       bool // the reserve reached Redis
		wantLog       string
	}{
		{"replies lost, connection closed", func(fp *faultproxy.Proxy) { fp.Set(faultproxy.DropReplyAndClose) },
			func(fp *faultproxy.Proxy) { fp.Set(faultproxy.Pass) }, true, released},
		{"replies lost, connection silent", func(fp *faultproxy.Proxy) { fp.Set(faultproxy.DropReplyAndHang) },
			func(fp *faultproxy.Proxy) { fp.Set(faultproxy.Pass) }, true, released},
		{"Redis unreachable", func(fp *faultproxy.Proxy) { fp.Stop() }, func(*faultproxy.Proxy) {}, false, failed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ledger, fp, r := faultyLedger(t)
			direct, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
			if err != nil {
				t.Fatal(err)
			}
			// Keys through the direct store: only the ledger's calls meet the faults.
			h := newHarness(t, func(o *Options) {
				o.Ledger, o.Keys = releaseHook{Ledger: ledger, beforeRelease: func() { c.repair(fp) }}, direct
			})
			h.store = direct
			key := h.account("acme", "10.00")

			c.fault(fp)
			res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, `"max_tokens":100`))
			body := readAll(t, res)
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d %s", res.StatusCode, body)
			}
			id := res.Header.Get(RequestIDHeader)
			a := h.get("acme")
			if a.Reserved != 0 {
				t.Fatalf("%s still reserved after the 503 (%d replies dropped)", a.Reserved, fp.Dropped())
			}
			if a.Balance() != usd("10.00") {
				t.Fatalf("balance %s: something was booked", a.Balance())
			}
			var release *billing.Event
			for _, ev := range h.events("acme") {
				if ev.Type == billing.EventUsage {
					t.Fatalf("usage booked for a 503: %+v", ev)
				}
				if ev.Type == billing.EventRelease && ev.RequestID == id {
					release = &ev
				}
			}
			switch {
			case c.applied && (release == nil || release.Amount <= 0 || fp.Dropped() == 0):
				t.Fatalf("no release of the applied hold in the ledger (%d replies dropped): %+v", fp.Dropped(), release)
			case !c.applied && release != nil:
				t.Fatalf("a release was booked though Redis was unreachable: %+v", release)
			}
			if n := h.logs.FilterMessage(c.wantLog).FilterField(zap.String("request_id", id)).Len(); n != 1 {
				t.Fatalf("%d log lines %q for %s", n, c.wantLog, id)
			}

			// Redis back: the account serves the next request normally.
			if err := fp.Start(); err != nil {
				t.Fatal(err)
			}
			fp.Set(faultproxy.Pass)
			if res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, `"max_tokens":100`)); res.StatusCode != http.StatusOK {
				t.Fatalf("next request: %d %s", res.StatusCode, readAll(t, res))
			} else {
				readAll(t, res)
			}
			if a := h.get("acme"); a.Reserved != 0 {
				t.Fatalf("%s reserved after the next request", a.Reserved)
			}
		})
	}
}

// What the failure path relies on, on the real store: releasing a hold id that
// was never reserved books nothing (a release event of 0, the balance and the
// reservations unchanged), and a reserve of that id arriving afterwards (one
// still on the wire when the release ran) is refused rather than holding money,
// while other requests' reserves are untouched.
func TestReleaseOfAHoldNeverMadeBooksNothingAndBlocksALateReserve(t *testing.T) {
	h := newHarness(t)
	h.account("acme", "10.00")
	ctx := context.Background()
	before := h.get("acme")
	if _, err := h.store.Release(ctx, "acme", "req_never_reserved", billing.Usage{RequestID: "req_never_reserved", Note: "reserve failed: answered 503"}); err != nil {
		t.Fatal(err)
	}
	after := h.get("acme")
	if after.Balance() != before.Balance() || after.Reserved != 0 || after.Credit != before.Credit || after.Debt != before.Debt {
		t.Fatalf("releasing an unknown hold changed the account: %+v → %+v", before, after)
	}
	last := h.lastEvent("acme")
	if last.Type != billing.EventRelease || last.Amount != 0 || last.RequestID != "req_never_reserved" {
		t.Fatalf("event %+v", last)
	}
	q := billing.ReserveRequest{Account: "acme", HoldID: "req_never_reserved", Estimate: usd("1.00"), Minimum: usd("1.00"), Grace: usd("0.50"), TTL: time.Minute}
	if res, err := h.store.Reserve(ctx, q); !errors.Is(err, billing.ErrInvalid) || res.Admitted {
		t.Fatalf("a late reserve of the released id: %+v %v", res, err)
	}
	if a := h.get("acme"); a.Reserved != 0 {
		t.Fatalf("the late reserve held %s", a.Reserved)
	}
	q.HoldID = "req_next"
	if res, err := h.store.Reserve(ctx, q); err != nil || !res.Admitted {
		t.Fatalf("another request's reserve: %+v %v", res, err)
	}
}
