package redisstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// arModel adds the SPEC's auto-recharge rules to the ledger model: a recharge
// starts when a settle (or a sweep) leaves the balance below the threshold, none is
// pending and any back-off has passed; the auto-recharged total per calendar month
// (UTC) never passes the limit; a skipped recharge is recorded once per crossing;
// a failure backs off exponentially; a completion credits once.
type arModel struct {
	*model
	threshold, amount, limit money.Micros
	pending, pendingMonth    string
	month                    string
	monthTotal               money.Micros
	skipMonth                string
	skips                    int
	fails                    int
	backoffUntil             time.Time
	started                  map[string]string // recharge id → its month
	credited                 map[string]bool
	failed                   map[string]bool
	// lateCredit: a recharge recorded as failed was credited after all (the charger
	// answered 2xx after all). It is credited — it was paid — even past the limit.
	lateCredit bool
}

const (
	arBackoff    = 10 * time.Minute
	arMaxBackoff = time.Hour
)

func (m *arModel) balance() money.Micros { return m.credit() - m.debt }

// maybeRecharge applies the start rule; id is the id the store would use.
func (m *arModel) maybeRecharge(id string) bool {
	if m.balance() >= m.threshold || m.pending != "" || m.now.Before(m.backoffUntil) {
		return false
	}
	month := billing.MonthOf(m.now)
	var total money.Micros
	if m.month == month {
		total = m.monthTotal
	}
	if total+m.amount > m.limit {
		if m.skipMonth != month {
			m.skips++
			m.skipMonth = month
		}
		return false
	}
	m.pending, m.pendingMonth = id, month
	m.started[id] = month
	return true
}

func (m *arModel) rearm() {
	if m.balance() >= m.threshold {
		m.skipMonth = ""
	}
}

func (m *arModel) complete(id string) (replayed bool) {
	if m.credited[id] {
		if m.pending == id {
			m.pending, m.fails, m.backoffUntil = "", 0, time.Time{}
		}
		return true
	}
	m.credited[id] = true
	m.lateCredit = m.lateCredit || m.failed[id]
	m.topUp(id, m.amount, m.now.Add(testPolicy.CreditTTL).Truncate(time.Millisecond))
	month := m.started[id]
	switch {
	case m.month == month:
		m.monthTotal += m.amount
	case m.month == "" || m.month < month:
		m.month, m.monthTotal = month, m.amount
	}
	if m.pending == id {
		m.pending, m.fails, m.backoffUntil = "", 0, time.Time{}
	}
	m.rearm()
	return false
}

func (m *arModel) fail(id string) bool {
	if m.pending != id {
		return false
	}
	m.fails++
	m.failed[id] = true
	wait := arBackoff
	for i := 1; i < m.fails; i++ {
		wait *= 2
	}
	m.backoffUntil = m.now.Add(min(wait, arMaxBackoff))
	m.pending = ""
	return true
}

// TestAutoRechargeMatchesModel runs random settles, top-ups, sweeps, recharge
// completions (some twice), failures and clock jumps across month boundaries
// against the Lua ledger and arModel.
func TestAutoRechargeMatchesModel(t *testing.T) {
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			var r *testredis.Store
			if kind == "redis" {
				r = testredis.New(t)
			} else {
				r = testredis.Memory(t)
			}
			var n atomic.Int64
			rapid.Check(t, func(rt *rapid.T) {
				e := newEnv(t, r)
				// Start near a month's end so jumps cross boundaries.
				e.clock.Advance(time.Date(2026, 3, 31, 20, 0, 0, 0, time.UTC).Sub(e.clock.Now()))
				id := fmt.Sprintf("ar%d", n.Add(1))
				if _, err := e.CreateAccount(e.ctx, id, "tier-1"); err != nil {
					rt.Fatal(err)
				}
				m := &arModel{
					model:     &model{now: e.clock.Now(), holds: map[string]*mHold{}},
					threshold: money.Micros(rapid.Int64Range(int64(usd("1.00")), int64(usd("10.00"))).Draw(rt, "threshold")),
					amount:    money.Micros(rapid.Int64Range(int64(usd("5.00")), int64(usd("20.00"))).Draw(rt, "amount")),
					started:   map[string]string{}, credited: map[string]bool{}, failed: map[string]bool{},
				}
				m.limit = m.amount * money.Micros(rapid.IntRange(1, 3).Draw(rt, "limit_multiple"))
				if err := e.SetAutoRecharge(e.ctx, id, billing.AutoRecharge{Enabled: true, Threshold: m.threshold, Amount: m.amount, MonthlyLimit: m.limit}); err != nil {
					rt.Fatal(err)
				}
				steps := rapid.IntRange(1, 40).Draw(rt, "steps")
				for step := 0; step < steps; step++ {
					switch op := rapid.IntRange(0, 6).Draw(rt, "op"); op {
					case 0: // manual top-up (never counts toward the limit)
						amount := money.Micros(rapid.Int64Range(int64(usd("5.00")), int64(usd("30.00"))).Draw(rt, "topup"))
						gid := fmt.Sprintf("g%d", step)
						if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: gid, Amount: amount}); err != nil {
							rt.Fatal(err)
						}
						m.topUp(gid, amount, e.clock.Now().Add(testPolicy.CreditTTL).Truncate(time.Millisecond))
						m.rearm()
					case 1, 2: // a settled request (reserve + settle) with the charger configured
						hid := fmt.Sprintf("h%d", step)
						cost := money.Micros(rapid.Int64Range(0, int64(usd("8.00"))).Draw(rt, "cost"))
						m.holds[hid] = &mHold{}
						m.settle(hid, cost)
						want := m.maybeRecharge("rc_" + hid)
						s, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hid, Cost: cost, Triggers: arOn})
						if err != nil || (s.RechargeID != "") != want {
							rt.Fatalf("settle %s: recharge %q, model starts one: %v (%v)", cost, s.RechargeID, want, err)
						}
					case 3: // the sweeper
						res, err := e.Sweep(e.ctx, id, billing.SweepRequest{Triggers: arOn})
						if err != nil {
							rt.Fatal(err)
						}
						m.sweep()
						before := m.pending
						if m.maybeRecharge(res.RechargeID) != (res.RechargeID != "" && res.RechargeID != before) {
							rt.Fatalf("sweep: recharge %q (pending before %q), model disagrees", res.RechargeID, before)
						}
					case 4: // the charger paid: complete (sometimes twice), maybe an old one
						if len(m.started) == 0 {
							continue
						}
						rid := m.pending
						if rid == "" || rapid.Bool().Draw(rt, "old") {
							ids := make([]string, 0, len(m.started))
							for k := range m.started {
								ids = append(ids, k)
							}
							rid = rapid.SampledFrom(sortedStrings(ids)).Draw(rt, "rid")
						}
						for i := 0; i < rapid.IntRange(1, 2).Draw(rt, "times"); i++ {
							wantReplay := m.complete(rid)
							res, err := e.CompleteRecharge(e.ctx, id, rid, billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: ""})
							if err != nil || res.Replayed != wantReplay {
								rt.Fatalf("complete %s: %+v %v; model replay=%v", rid, res, err, wantReplay)
							}
						}
					case 5: // the charger refused
						if m.pending == "" {
							continue
						}
						rid := m.pending
						m.fail(rid)
						if _, err := e.FailRecharge(e.ctx, id, rid, billing.RechargeFailure{Reason: "declined", Backoff: arBackoff, MaxBackoff: arMaxBackoff}); err != nil {
							rt.Fatal(err)
						}
					case 6: // time passes, across month boundaries too
						d := rapid.SampledFrom([]time.Duration{time.Minute, 15 * time.Minute, 2 * time.Hour, 25 * time.Hour, 20 * 24 * time.Hour}).Draw(rt, "advance")
						e.clock.Advance(d)
						m.now = m.now.Add(d)
					}
					a := checkConservation(t, e, id)
					if a.Credit != m.credit() || a.Debt != m.debt {
						rt.Fatalf("step %d: credit %s debt %s; model %s %s", step, a.Credit, a.Debt, m.credit(), m.debt)
					}
					st := a.Recharge
					if st.Pending != m.pending || st.Month != m.month || st.MonthTotal != m.monthTotal || st.Failures != m.fails {
						rt.Fatalf("step %d: recharge state %+v; model pending %q month %q total %s fails %d", step, st, m.pending, m.month, m.monthTotal, m.fails)
					}
					if got := countEvents(e.events(t, id), billing.EventAutoRechargeSkipped); got != m.skips {
						rt.Fatalf("step %d: %d skip events, model %d", step, got, m.skips)
					}
					if m.monthTotal > m.limit && !m.lateCredit {
						rt.Fatalf("month total %s over the limit %s", m.monthTotal, m.limit)
					}
				}
				if r, err := billing.AuditAccount(e.ctx, e.Store, id); err != nil || !r.OK() {
					rt.Fatalf("audit: %+v %v", r.Problems, err)
				}
			})
		})
	}
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
