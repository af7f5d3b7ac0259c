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

// limitModel is the obviously-correct key limit: every settle is kept with its
// time, and what a key spent in a period is the sum of the settles in it.
type limitModel struct {
	now     time.Time
	limit   money.Micros // key_a's; key_b has none
	reset   string
	holds   map[string]*lmHold
	settles map[string][]lmSettle // by key
}

type lmHold struct {
	key     string
	held    money.Micros
	expires time.Time
	done    bool // settled or released
	expired bool // swept unsettled
}

type lmSettle struct {
	at    time.Time
	cost  money.Micros
	slack money.Micros // what it cost beyond its hold (all of it for a hold that had expired)
}

// periodStart is the start of the period of kind reset that contains t (zero: never resets).
func periodStart(t time.Time, reset string) time.Time {
	p := billing.PeriodsOf(t)
	switch reset {
	case billing.LimitDaily:
		return p.Day
	case billing.LimitWeekly:
		return p.Week
	case billing.LimitMonthly:
		return p.Month
	}
	return time.Time{}
}

// spent is what key spent in the current period of kind reset, and the slack in it.
func (m *limitModel) spent(key, reset string) (spent, slack money.Micros) {
	from := periodStart(m.now, reset)
	for _, s := range m.settles[key] {
		if !s.at.Before(from) {
			spent += s.cost
			slack += s.slack
		}
	}
	return spent, slack
}

func (m *limitModel) usage(key string) billing.KeyUsage {
	d, _ := m.spent(key, billing.LimitDaily)
	w, _ := m.spent(key, billing.LimitWeekly)
	mo, _ := m.spent(key, billing.LimitMonthly)
	t, _ := m.spent(key, billing.LimitNever)
	return billing.KeyUsage{Daily: d, Weekly: w, Monthly: mo, Total: t}
}

// reserved is what the live holds of key count against its limit.
func (m *limitModel) reserved(key string) money.Micros {
	var r money.Micros
	for _, h := range m.holds {
		if h.key == key && !h.done && !h.expired {
			r += h.held
		}
	}
	return r
}

// sweep ends the holds whose TTL passed, as any sweep of the store does (the
// test reads the account, which sweeps, after every step).
func (m *limitModel) sweep() {
	for _, h := range m.holds {
		if !h.done && !h.expired && !m.now.Before(h.expires) {
			h.expired = true
		}
	}
}

// reserve is the admission rule of the limits: the hold is at most what the key
// may still spend; a partial hold takes what is left when that covers minimum.
func (m *limitModel) reserve(hid, key string, est, minimum money.Micros) (bool, money.Micros) {
	need := est
	if minimum > 0 && minimum < est {
		need = minimum
	}
	held := est
	if key == "key_a" {
		spent, _ := m.spent(key, m.reset)
		room := m.limit - spent - m.reserved(key)
		if room <= 0 || need > room {
			return false, 0
		}
		held = min(est, room)
	}
	if key == "key_a" || key == "key_b" {
		m.holds[hid] = &lmHold{key: key, held: held, expires: m.now.Add(testPolicy.HoldTTL)}
	}
	return true, held
}

func (m *limitModel) settle(hid string, cost money.Micros) {
	h := m.holds[hid]
	if h.done {
		return
	}
	slack := max(0, cost-h.held)
	if h.expired {
		slack = cost
	}
	h.done = true
	m.settles[h.key] = append(m.settles[h.key], lmSettle{at: m.now, cost: cost, slack: slack})
}

func (m *limitModel) release(hid string) { m.holds[hid].done = true }

// TestKeyLimitsMatchModel runs random sequences of reserves (within and past
// the limit, partial), settles (below and above their holds, late, retried),
// releases and clock jumps across day, week (Monday) and month boundaries, for
// a key with a random limit and period and a key without a limit, against real
// Redis (a 3-master cluster when CREDITGATE_TEST_REDIS_CLUSTER names one) and
// miniredis. After every step the store and the model agree on each key's
// usage in every period, in all, and its reserved; and the limited key never
// spent in its period more than its limit plus its settles' slack.
func TestKeyLimitsMatchModel(t *testing.T) {
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			var r *testredis.Store
			if kind == "redis" {
				r = testredis.New(t)
			} else {
				r = testredis.Memory(t)
			}
			var n, steps atomic.Int64
			defer func() { t.Logf("%d sequences, %d steps matched the model (%s)", n.Load(), steps.Load(), r.Kind) }()
			rapid.Check(t, func(rt *rapid.T) {
				e := newEnv(t, r)
				id := fmt.Sprintf("k%d", n.Add(1))
				if _, err := e.CreateAccount(e.ctx, id, "tier-1"); err != nil {
					rt.Fatal(err)
				}
				for range 3 {
					e.topUp(t, id, "100.00") // the balance never binds: the limit does
				}
				// Start anywhere from the test clock's Tuesday to a month on.
				e.clock.Advance(time.Duration(rapid.Int64Range(0, 31*24*60).Draw(rt, "start_minutes")) * time.Minute)
				m := &limitModel{now: e.clock.Now(), holds: map[string]*lmHold{}, settles: map[string][]lmSettle{},
					limit: money.Micros(rapid.Int64Range(1, int64(usd("5.00"))).Draw(rt, "limit")),
					reset: rapid.SampledFrom([]string{billing.LimitNever, billing.LimitDaily, billing.LimitWeekly, billing.LimitMonthly}).Draw(rt, "reset")}
				keys := map[string]limitedKey{"key_a": {"key_a", m.limit, m.reset}, "key_b": {"key_b", 0, ""}}
				var holdIDs []string
				for step := range rapid.IntRange(1, 50).Draw(rt, "steps") {
					switch op := rapid.IntRange(0, 6).Draw(rt, "op"); op {
					case 0, 1: // reserve
						hid := fmt.Sprintf("h%d", step)
						k := keys[rapid.SampledFrom([]string{"key_a", "key_a", "key_b"}).Draw(rt, "key")]
						est := money.Micros(rapid.Int64Range(0, int64(usd("2.00"))).Draw(rt, "estimate"))
						minimum := money.Micros(0)
						if rapid.Bool().Draw(rt, "partial") {
							minimum = money.Micros(rapid.Int64Range(0, int64(est)).Draw(rt, "minimum"))
						}
						wantOK, wantHeld := m.reserve(hid, k.id, est, minimum)
						res, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hid, Estimate: est, Minimum: minimum,
							Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL, KeyID: k.id, KeyLimit: k.limit, KeyLimitReset: k.reset})
						if err != nil || res.Admitted != wantOK || (wantOK && res.Held != wantHeld) || (!wantOK && res.Reason != billing.ReasonKeyLimit) {
							rt.Fatalf("reserve %s on %s est=%s min=%s: %+v %v; model admits=%v held=%s", hid, k.id, est, minimum, res, err, wantOK, wantHeld)
						}
						if wantOK {
							holdIDs = append(holdIDs, hid)
						}
					case 2, 3: // settle a known hold (again: a replay), below or above its hold
						if len(holdIDs) == 0 {
							continue
						}
						hid := rapid.SampledFrom(holdIDs).Draw(rt, "hold")
						h := m.holds[hid]
						cost := money.Micros(rapid.Int64Range(0, int64(h.held)*6/5+1000).Draw(rt, "cost"))
						m.settle(hid, cost)
						if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hid, Cost: cost, Usage: billing.Usage{KeyID: h.key}}); err != nil {
							rt.Fatal(err)
						}
					case 4: // release
						if len(holdIDs) == 0 {
							continue
						}
						hid := rapid.SampledFrom(holdIDs).Draw(rt, "hold")
						m.release(hid) // a settled one stays settled; an expired one is then never charged
						if _, err := e.Release(e.ctx, id, hid, billing.Usage{KeyID: m.holds[hid].key}); err != nil {
							rt.Fatal(err)
						}
					case 5, 6: // the clock moves: within a hold's TTL, past it, across days, weeks, months
						d := rapid.SampledFrom([]time.Duration{time.Minute, 14 * time.Minute, 16 * time.Minute, 3 * time.Hour,
							13 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour, 8 * 24 * time.Hour, 31 * 24 * time.Hour}).Draw(rt, "advance")
						e.clock.Advance(d)
						m.now = e.clock.Now()
					}
					steps.Add(1)
					e.get(t, id) // sweeps, as the model does
					m.sweep()
					for _, k := range keys {
						got, err := e.KeyUsage(e.ctx, id, k.id, e.clock.Now())
						if err != nil {
							rt.Fatal(err)
						}
						if want := m.usage(k.id); got != want {
							rt.Fatalf("step %d: %s usage %+v, model %+v", step, k.id, got, want)
						}
						wantRes := m.reserved(k.id)
						if k.limit == 0 {
							wantRes = 0 // holds of a key without a limit count nowhere
						}
						if got := e.keyHeld(t, id, k.id); got != wantRes {
							rt.Fatalf("step %d: %s reserved %s, model %s", step, k.id, got, wantRes)
						}
					}
					if spent, slack := m.spent("key_a", m.reset); spent > m.limit+slack {
						rt.Fatalf("step %d: key_a spent %s in its %s period, past its limit %s + slack %s", step, spent, m.reset, m.limit, slack)
					}
				}
				checkConservation(t, e, id)
			})
		})
	}
}
