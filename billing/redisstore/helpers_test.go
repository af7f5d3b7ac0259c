package redisstore

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var usd = money.MustParse

var testPolicy = billing.Policy{
	Grace:       usd("0.50"),
	MinPurchase: usd("5.00"),
	CreditTTL:   365 * 24 * time.Hour,
	HoldTTL:     15 * time.Minute,
	DefaultTier: "tier-1",
	Tiers: map[string]billing.Tier{
		"tier-1": {MaxTopUp: usd("100.00"), MaxBalance: usd("1000.00")},
		"small":  {MaxTopUp: usd("50.00"), MaxBalance: usd("60.00")},
		"free":   {},
	},
}

type env struct {
	*Store
	clock *clock
	redis *testredis.Store
	ctx   context.Context
}

// testPipeline is the pipelining the package's tests run with:
// CREDITGATE_TEST_REDIS_PIPELINE=<max batch> runs them all pipelined (CI's
// cluster run does), unset sends each script on its own.
func testPipeline() PipelineOptions {
	n, _ := strconv.Atoi(os.Getenv("CREDITGATE_TEST_REDIS_PIPELINE"))
	return PipelineOptions{MaxBatch: n}
}

// eachStore runs f against real Redis (when reachable) and against the embedded
// miniredis, which the product also runs on (redis.url: memory://).
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("redis", func(t *testing.T) { f(t, newEnv(t, testredis.New(t))) })
	t.Run("miniredis", func(t *testing.T) { f(t, newEnv(t, testredis.Memory(t))) })
}

func newEnv(t testing.TB, r *testredis.Store) *env {
	t.Helper()
	c := newClock()
	s, err := New(r.Client, Options{Prefix: r.Prefix, Now: c.Now, Pipeline: testPipeline()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{Store: s, clock: c, redis: r, ctx: context.Background()}
}

func (e *env) account(t testing.TB, id string, topups ...string) {
	t.Helper()
	if _, err := e.CreateAccount(e.ctx, id, "tier-1"); err != nil {
		t.Fatal(err)
	}
	for _, a := range topups {
		e.topUp(t, id, a)
	}
}

func (e *env) topUp(t testing.TB, id, amount string) billing.TopUpResult {
	t.Helper()
	r, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(amount)})
	if err != nil {
		t.Fatalf("top-up %s: %v", amount, err)
	}
	return r
}

func (e *env) get(t testing.TB, id string) billing.Account {
	t.Helper()
	a, err := e.GetAccount(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) reserve(t testing.TB, id, hold string, estimate, minimum money.Micros) billing.Reservation {
	t.Helper()
	r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: estimate, Minimum: minimum, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL})
	if err != nil {
		t.Fatalf("reserve %s: %v", hold, err)
	}
	return r
}

func (e *env) settle(t testing.TB, id, hold string, cost money.Micros) billing.Settlement {
	t.Helper()
	s, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: cost, Usage: billing.Usage{RequestID: hold, Model: "gpt-4o-mini", TokenSource: billing.TokenSourceUpstream}})
	if err != nil {
		t.Fatalf("settle %s: %v", hold, err)
	}
	return s
}

func (e *env) events(t testing.TB, id string) []billing.Event {
	t.Helper()
	var all []billing.Event
	after := ""
	for {
		p, err := e.Events(e.ctx, id, after, 50)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if p.Next == "" {
			return all
		}
		after = p.Next
	}
}

// checkConservation asserts the SPEC's invariant (2) on the stored state and ledger:
// Σ granted = Σ consumed + Σ debt repaid + Σ expired + Σ adjusted out + credit, the grants' remaining
// amounts sum to credit, debt = Σ to_debt − Σ repaid, and replaying the ledger gives
// the stored balance after every event.
func checkConservation(t testing.TB, e *env, id string) billing.Account {
	t.Helper()
	a := e.get(t, id)
	tot := a.Totals
	if tot.Granted != tot.Consumed+tot.DebtRepaid+tot.Expired+tot.AdjustedOut+a.Credit {
		t.Fatalf("conservation: granted %s != consumed %s + repaid %s + expired %s + adjusted out %s + credit %s", tot.Granted, tot.Consumed, tot.DebtRepaid, tot.Expired, tot.AdjustedOut, a.Credit)
	}
	if tot.Usage-tot.Consumed != a.Debt+tot.DebtRepaid {
		t.Fatalf("debt: usage %s − consumed %s != debt %s + repaid %s", tot.Usage, tot.Consumed, a.Debt, tot.DebtRepaid)
	}
	var remaining money.Micros
	for _, g := range a.Grants {
		remaining += g.Remaining
		if g.Remaining < 0 || g.Remaining > g.Amount {
			t.Fatalf("grant %s remaining %s outside [0, %s]", g.ID, g.Remaining, g.Amount)
		}
	}
	if remaining != a.Credit {
		t.Fatalf("Σ grant remaining %s != credit %s", remaining, a.Credit)
	}
	var balance, granted, usage, expired, repaid, adjustedOut money.Micros
	if cp := a.Checkpoint; cp != nil { // a trimmed ledger: its replay starts from the checkpoint
		balance, granted, usage, expired, repaid, adjustedOut = cp.Balance(), cp.Totals.Granted, cp.Totals.Usage, cp.Totals.Expired, cp.Totals.DebtRepaid, cp.Totals.AdjustedOut
		repaid -= cp.PendingRepay // its debt_repaid event is in the tail, summed below
	}
	for _, ev := range e.events(t, id) {
		switch ev.Type {
		case billing.EventTopUp, billing.EventAutoRecharge:
			balance += ev.Amount
			granted += ev.Amount
		case billing.EventAdjustment:
			balance += ev.Amount
			if ev.Amount > 0 {
				granted += ev.Amount
			} else {
				adjustedOut -= ev.Amount
			}
		case billing.EventUsage:
			balance -= ev.Amount
			usage += ev.Amount
			if ev.FromCredit+ev.ToDebt != ev.Cost || ev.Cost != ev.Amount {
				t.Fatalf("usage event %s: from_credit %s + to_debt %s != cost %s", ev.ID, ev.FromCredit, ev.ToDebt, ev.Cost)
			}
		case billing.EventExpire:
			balance -= ev.Amount
			expired += ev.Amount
		case billing.EventDebtRepaid:
			repaid += ev.Amount
		}
		if ev.BalanceAfter != balance || ev.CreditAfter-ev.DebtAfter != balance {
			t.Fatalf("event %s %s: balance_after %s (credit %s debt %s), replay says %s", ev.ID, ev.Type, ev.BalanceAfter, ev.CreditAfter, ev.DebtAfter, balance)
		}
	}
	if balance != a.Balance() || granted != tot.Granted || usage != tot.Usage || expired != tot.Expired || repaid != tot.DebtRepaid || adjustedOut != tot.AdjustedOut {
		t.Fatalf("ledger replay: balance %s granted %s usage %s expired %s repaid %s adjusted out %s; state: %+v", balance, granted, usage, expired, repaid, adjustedOut, a)
	}
	return a
}
