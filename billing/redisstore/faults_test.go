package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// faultyEnv is an env whose store reaches Redis through a fault proxy, with the
// connection settings the product uses (Connect), and a second, direct store on
// the same keys to look at the truth.
type faultyEnv struct {
	*env
	proxy  *faultproxy.Proxy
	direct *Store
}

func newFaultyEnv(t *testing.T, o ConnOptions) *faultyEnv {
	t.Helper()
	r := testredis.New(t)
	if r.Kind == testredis.KindCluster {
		t.Skip("a fault proxy in front of one cluster node would be bypassed by MOVED redirects")
	}
	p, err := faultproxy.New(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	o.URL = "redis://" + p.Addr()
	conn, err := Connect(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	conn.Client.AddHook(testredis.SlotGuard())
	t.Cleanup(func() { conn.Close() })
	c := newClock()
	faulty, err := New(conn.Client, Options{Prefix: r.Prefix, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := New(r.Client, Options{Prefix: r.Prefix, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &faultyEnv{env: &env{Store: faulty, clock: c, redis: r, ctx: context.Background()}, proxy: p, direct: direct}
}

// TestLostRepliesNeverDoubleBook drops the reply of each kind of ledger script
// after Redis ran it. go-redis resends the script (it cannot know it ran); each
// script is idempotent by its id, so the resent one answers from its record and
// the ledger books everything exactly once. Both ways a reply gets lost are
// tried: the connection closes (EOF), or it goes silent (read timeout).
func TestLostRepliesNeverDoubleBook(t *testing.T) {
	for _, fault := range []faultproxy.Fault{faultproxy.DropReplyAndClose, faultproxy.DropReplyAndHang} {
		t.Run(fmt.Sprint(map[faultproxy.Fault]string{faultproxy.DropReplyAndClose: "close", faultproxy.DropReplyAndHang: "hang"}[fault]), func(t *testing.T) {
			e := newFaultyEnv(t, ConnOptions{Timeout: 300 * time.Millisecond, MaxRetries: 2, OperationTimeout: 3 * time.Second})
			ctx := e.ctx
			if _, err := e.CreateAccount(ctx, "acme", "tier-1"); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name string
				do   func() error
			}{
				{"create account", func() error {
					_, err := e.CreateAccount(ctx, "beta", "tier-1")
					return err
				}},
				{"top-up", func() error {
					_, err := e.TopUp(ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: usd("10.00")})
					return err
				}},
				{"reserve", func() error {
					r, err := e.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: "h1", Estimate: usd("2.00"), Grace: testPolicy.Grace, TTL: time.Minute})
					if err == nil && (!r.Admitted || r.Held != usd("2.00")) {
						err = fmt.Errorf("reservation %+v", r)
					}
					return err
				}},
				{"settle", func() error {
					_, err := e.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: "h1", Cost: usd("1.25"), Usage: billing.Usage{RequestID: "h1"}})
					return err
				}},
				{"reserve 2", func() error {
					_, err := e.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: "h2", Estimate: usd("3.00"), Grace: testPolicy.Grace, TTL: time.Minute})
					return err
				}},
				{"release", func() error {
					_, err := e.Release(ctx, "acme", "h2", billing.Usage{RequestID: "h2"})
					return err
				}},
				{"adjustment +", func() error {
					// the resent script answers from the adjustment's record (Replayed)
					_, err := e.Adjust(ctx, testPolicy, "acme", billing.AdjustRequest{Amount: usd("2.00"), Reason: "refund"})
					return err
				}},
				{"adjustment −", func() error {
					_, err := e.Adjust(ctx, testPolicy, "acme", billing.AdjustRequest{Amount: -usd("0.75"), Reason: "clawback"})
					return err
				}},
			}
			for _, s := range steps {
				// Warm the script cache so the dropped reply is the script's own,
				// not a NOSCRIPT answer.
				before := e.proxy.Dropped()
				e.proxy.DropReplies(1, fault)
				if err := s.do(); err != nil {
					t.Fatalf("%s with a lost reply: %v (go-redis should have resent it)", s.name, err)
				}
				if e.proxy.Dropped() != before+1 {
					t.Fatalf("%s: no reply was dropped", s.name)
				}
			}
			// The resent create found its own account; another create is still refused.
			if _, err := e.direct.CreateAccount(ctx, "beta", "tier-1"); !errors.Is(err, billing.ErrAccountExists) {
				t.Fatalf("creating beta again: %v, want ErrAccountExists", err)
			}
			a, err := e.direct.GetAccount(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if a.Credit != usd("10.00") || a.Reserved != 0 || a.Totals.Granted != usd("12.00") || a.Totals.Usage != usd("1.25") || a.Totals.AdjustedOut != usd("0.75") {
				t.Fatalf("after lost replies: credit %s reserved %s totals %+v; want credit 10.00, one top-up, one usage, two adjustments", a.Credit, a.Reserved, a.Totals)
			}
			evs, err := e.direct.Events(ctx, "acme", "", 100)
			if err != nil {
				t.Fatal(err)
			}
			var types []billing.EventType
			for _, ev := range evs.Events {
				types = append(types, ev.Type)
			}
			want := []billing.EventType{billing.EventTopUp, billing.EventUsage, billing.EventRelease, billing.EventAdjustment, billing.EventAdjustment}
			if fmt.Sprint(types) != fmt.Sprint(want) {
				t.Fatalf("ledger %v, want %v", types, want)
			}
		})
	}
}

// Many concurrent reserve+settle pairs while a third of all replies are lost:
// every request that was answered is booked once, none twice, and the
// conservation invariant holds exactly.
func TestConcurrentLostReplies(t *testing.T) {
	e := newFaultyEnv(t, ConnOptions{Timeout: 500 * time.Millisecond, MaxRetries: 3, OperationTimeout: 5 * time.Second, PoolSize: 16})
	ctx := e.ctx
	if _, err := e.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	e.topUp(t, "acme", "100.00")
	const n = 60
	e.proxy.DropReplies(n, faultproxy.DropReplyAndClose)
	type result struct {
		settled bool
		cost    money.Micros
		err     error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			hold := fmt.Sprintf("h%d", i)
			cost := money.Micros(10_000 + i)
			r, err := e.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: usd("0.50"), Grace: testPolicy.Grace, TTL: time.Minute})
			if err != nil || !r.Admitted {
				results <- result{err: fmt.Errorf("reserve %s: %+v %w", hold, r, err)}
				return
			}
			_, err = e.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: cost, Usage: billing.Usage{RequestID: hold}})
			results <- result{settled: err == nil, cost: cost, err: err}
		}()
	}
	var want money.Micros
	for range n {
		r := <-results
		if r.err != nil {
			// Every lost reply is retried; a failure here would mean retries ran out.
			t.Fatal(r.err)
		}
		want += r.cost
	}
	if e.proxy.Dropped() == 0 {
		t.Fatal("no reply was dropped")
	}
	a := checkConservation(t, &env{Store: e.direct, clock: e.clock, redis: e.redis, ctx: ctx}, "acme")
	if a.Totals.Usage != want || a.Reserved != 0 {
		t.Fatalf("usage %s reserved %s, want usage %s: a lost reply was booked twice or not at all", a.Totals.Usage, a.Reserved, want)
	}
	usage := 0
	for _, ev := range (&env{Store: e.direct, ctx: ctx}).events(t, "acme") {
		if ev.Type == billing.EventUsage {
			usage++
		}
	}
	if usage != n {
		t.Fatalf("%d usage events for %d requests", usage, n)
	}
	t.Logf("%d requests, %d replies dropped and resent, each booked once", n, e.proxy.Dropped())
}

// A Redis that accepts connections and never answers costs a caller at most
// OperationTimeout (retries included), then billing.ErrUnavailable; a Redis that
// refuses connections fails at once. The proxy turns both into 503.
func TestUnreachableRedisFailsWithinTheBound(t *testing.T) {
	o := ConnOptions{Timeout: 200 * time.Millisecond, MaxRetries: 2, OperationTimeout: 700 * time.Millisecond}
	tests := []struct {
		name  string
		fault func(p *faultproxy.Proxy)
	}{
		{"silent", func(p *faultproxy.Proxy) { p.CutAll(); p.Set(faultproxy.Blackhole) }},
		{"refusing", func(p *faultproxy.Proxy) { p.Stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultyEnv(t, o)
			e.account(t, "acme", "5.00")
			tt.fault(e.proxy)
			acceptedBefore := e.proxy.Accepted()
			start := time.Now()
			_, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "acme", HoldID: "h1", Estimate: usd("1.00"), Grace: testPolicy.Grace, TTL: time.Minute})
			took := time.Since(start)
			if !errors.Is(err, billing.ErrUnavailable) {
				t.Fatalf("reserve against a %s Redis: %v, want ErrUnavailable", tt.name, err)
			}
			// At most one connection per try: go-redis's own dial retries are off.
			if tries := e.proxy.Accepted() - acceptedBefore; tries > int64(o.MaxRetries)+1 {
				t.Fatalf("%d connection attempts for %d tries", tries, o.MaxRetries+1)
			}
			// A hang guard, not a performance figure: far above the bound.
			if took > 5*o.OperationTimeout {
				t.Fatalf("reserve took %s; the bound is %s", took, o.OperationTimeout)
			}
			t.Logf("%s Redis: ErrUnavailable after %s (bound %s)", tt.name, took.Round(time.Millisecond), o.OperationTimeout)
		})
	}
}

// TestLostRechargeRepliesNeverDoubleBook drops the replies of the auto-recharge
// scripts that move money or record a failure: a completed recharge resent is
// credited once, a failure resent is recorded once.
func TestLostRechargeRepliesNeverDoubleBook(t *testing.T) {
	e := newFaultyEnv(t, ConnOptions{Timeout: 300 * time.Millisecond, MaxRetries: 2, OperationTimeout: 3 * time.Second})
	ctx := e.ctx
	e.account(t, "acme", "10.00")
	e.setAR(t, "acme", "5.00", "10.00", "100.00")
	lose := func(name string, do func() error) {
		t.Helper()
		before := e.proxy.Dropped()
		e.proxy.DropReplies(1, faultproxy.DropReplyAndClose)
		if err := do(); err != nil {
			t.Fatalf("%s with a lost reply: %v (go-redis should have resent it)", name, err)
		}
		if e.proxy.Dropped() != before+1 {
			t.Fatalf("%s: no reply was dropped", name)
		}
	}

	// Paid: the charger's answer is booked once although its reply was lost.
	if s := e.spend(t, "acme", "h1", usd("6.00"), arOn); s.RechargeID != "rc_h1" {
		t.Fatalf("recharge %q, want rc_h1", s.RechargeID)
	}
	if _, err := e.ClaimRecharge(ctx, "acme", "rc_h1", time.Minute); err != nil {
		t.Fatal(err)
	}
	// Load both scripts first, so that each dropped reply is the script's own, not
	// a NOSCRIPT answer (an unknown account's call changes nothing).
	e.CompleteRecharge(ctx, "nobody", "rc_x", billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: ""})
	e.FailRecharge(ctx, "nobody", "rc_x", billing.RechargeFailure{Reason: "warm-up"})
	lose("complete recharge", func() error {
		r, err := e.CompleteRecharge(ctx, "acme", "rc_h1", billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: ""})
		if err == nil && r.Grant.ID != "rc_h1" {
			err = fmt.Errorf("completed %+v", r)
		}
		return err
	})

	// Refused: one failure recorded, however often its script was sent.
	if s := e.spend(t, "acme", "h2", usd("10.00"), arOn); s.RechargeID != "rc_h2" {
		t.Fatalf("second recharge %q, want rc_h2", s.RechargeID)
	}
	if _, err := e.ClaimRecharge(ctx, "acme", "rc_h2", time.Minute); err != nil {
		t.Fatal(err)
	}
	var noticeID string
	lose("fail recharge", func() error {
		var err error
		noticeID, err = e.FailRecharge(ctx, "acme", "rc_h2", billing.RechargeFailure{Reason: "card declined", Backoff: time.Minute, MaxBackoff: time.Hour, Notice: true})
		return err
	})
	if noticeID == "" {
		t.Fatal("the resent failure lost its notice id")
	}
	// Asked again later (a worker that never heard back), it is the same answer.
	if again, err := e.direct.FailRecharge(ctx, "acme", "rc_h2", billing.RechargeFailure{Reason: "card declined", Backoff: time.Minute, MaxBackoff: time.Hour, Notice: true}); err != nil || again != noticeID {
		t.Fatalf("failure recorded again: %q %v, want %q", again, err, noticeID)
	}

	a, err := e.direct.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.Totals.Granted != usd("20.00") || a.Credit != usd("4.00") {
		t.Fatalf("granted %s, credit %s; want one top-up of 10 and one recharge of 10, credit 4", a.Totals.Granted, a.Credit)
	}
	evs, err := e.direct.Events(ctx, "acme", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := countEvents(evs.Events, billing.EventAutoRecharge); n != 1 {
		t.Fatalf("%d auto_recharge events, want 1", n)
	}
	if n := countEvents(evs.Events, billing.EventAutoRechargeFailed); n != 1 {
		t.Fatalf("%d auto_recharge_failed events, want 1", n)
	}
}
