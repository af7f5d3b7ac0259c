package redisstore

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// model is an independent, obviously-correct implementation of the SPEC's ledger
// semantics, against which the Lua scripts are checked step by step.
type model struct {
	now     time.Time
	grants  []*mGrant
	debt    money.Micros
	holds   map[string]*mHold
	granted money.Micros
	usage   money.Micros
	expired money.Micros
	adjOut  money.Micros
}

type mGrant struct {
	id        string
	remaining money.Micros
	expires   time.Time
}

type mHold struct {
	amount  money.Micros
	expires time.Time
	done    bool // settled or released
	expired bool // a sweep ended it unsettled
	// ends are the events that ended it, in order: one of usage, release or
	// hold_expired, or hold_expired then usage.
	ends []billing.EventType
}

// sweepHolds ends the holds that reached their TTL unsettled, as any sweep of
// the store does (the test reads the account, which sweeps, after every step).
func (m *model) sweepHolds() {
	for _, h := range m.holds {
		if !h.done && !h.expired && !m.now.Before(h.expires) {
			h.expired = true
			h.ends = append(h.ends, billing.EventHoldExpired)
		}
	}
}

func (m *model) sweep() {
	for _, g := range m.grants {
		if !m.now.Before(g.expires) && g.remaining > 0 {
			m.expired += g.remaining
			g.remaining = 0
		}
	}
}

func (m *model) credit() money.Micros {
	m.sweep()
	var c money.Micros
	for _, g := range m.grants {
		c += g.remaining
	}
	return c
}

func (m *model) reserved() money.Micros {
	var r money.Micros
	for _, h := range m.holds {
		if !h.done && m.now.Before(h.expires) {
			r += h.amount
		}
	}
	return r
}

func (m *model) available() money.Micros { return m.credit() - m.debt - m.reserved() }

func (m *model) reserve(id string, est, minimum, grace money.Micros, ttl time.Duration) (bool, money.Micros) {
	avail := m.available()
	if avail <= 0 {
		return false, 0
	}
	held := est
	if est > avail+grace {
		if minimum <= 0 || minimum >= est || minimum > avail+grace {
			return false, 0
		}
		held = avail + grace
	}
	m.holds[id] = &mHold{amount: held, expires: m.now.Add(ttl)}
	return true, held
}

// live returns the grants with credit left, in consumption order.
func (m *model) live() []*mGrant {
	live := make([]*mGrant, 0, len(m.grants))
	for _, g := range m.grants {
		if g.remaining > 0 {
			live = append(live, g)
		}
	}
	sort.Slice(live, func(i, j int) bool {
		if !live[i].expires.Equal(live[j].expires) {
			return live[i].expires.Before(live[j].expires)
		}
		return live[i].id < live[j].id
	})
	return live
}

// adjust is an operator's correction: positive is a grant outside the purchase
// limits; negative takes credit back earliest expiry first, refused (false)
// above credit − reserved.
func (m *model) adjust(id string, amount money.Micros, expires time.Time) bool {
	if amount > 0 {
		m.topUp(id, amount, expires)
		return true
	}
	take := -amount
	if take > m.credit()-m.reserved() {
		return false
	}
	for _, g := range m.live() {
		x := min(g.remaining, take)
		g.remaining -= x
		take -= x
	}
	m.adjOut += -amount
	return true
}

func (m *model) settle(id string, cost money.Micros) {
	h := m.holds[id]
	if h.done {
		return
	}
	m.sweep()
	h.done = true
	h.ends = append(h.ends, billing.EventUsage) // after hold_expired too: a late settle is charged
	left := cost
	for _, g := range m.live() {
		take := min(g.remaining, left)
		g.remaining -= take
		left -= take
	}
	m.debt += left
	m.usage += cost
}

func (m *model) release(id string) {
	h := m.holds[id]
	if h.done {
		return
	}
	h.done = true
	if !h.expired { // an expired hold already ended uncharged: releasing it books nothing
		h.ends = append(h.ends, billing.EventRelease)
	}
}

// mPayment is a paid purchase's payment, as take-backs see it.
type mPayment struct {
	grant               *mGrant
	amount              money.Micros // credited
	seen, claimed, took money.Micros
}

// takeBack applies a refund or dispute reported up to upto: what it adds to the
// claim, up to what was credited, is taken from the payment's grant as far as the
// grant still holds it. It returns what this call took.
func (m *model) takeBack(p *mPayment, upto money.Micros) money.Micros {
	if upto <= p.seen {
		return 0
	}
	m.sweep()
	p.seen = upto
	add := min(upto, p.amount) - p.claimed
	if add <= 0 {
		return 0
	}
	take := min(add, p.grant.remaining)
	p.grant.remaining -= take
	p.claimed += add
	p.took += take
	m.adjOut += take
	return take
}

func (m *model) topUp(id string, amount money.Micros, expires time.Time) {
	m.sweep()
	repay := min(m.debt, amount)
	m.debt -= repay
	m.granted += amount
	m.grants = append(m.grants, &mGrant{id: id, remaining: amount - repay, expires: expires})
}

// TestLedgerMatchesModel runs random sequences of top-ups (some carrying a
// payment reference and a note), reserves, settles, releases, adjustments (both
// signs, refused ones, replays), purchases (created, refused, completed, completed
// again), take-backs of their payments (partial, cumulative, replayed, beyond what
// is left), retries and clock jumps against the Lua ledger and the model, checking
// state equality and exact conservation after every step. At the end of each
// sequence the clock passes every hold's TTL, and each admitted hold must have
// ended exactly as the model says — usage, release, hold_expired, or hold_expired
// then a late usage, the hold_expired naming its request and amount — and the
// audit must pass.
func TestLedgerMatchesModel(t *testing.T) {
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			var r *testredis.Store
			if kind == "redis" {
				r = testredis.New(t)
			} else {
				r = testredis.Memory(t)
			}
			var n, checks, trims atomic.Int64
			defer func() {
				t.Logf("%d random sequences matched the model and passed the audit (%d trims removed events)", checks.Load(), trims.Load())
			}()
			rapid.Check(t, func(rt *rapid.T) {
				e := newEnv(t, r)
				id := fmt.Sprintf("m%d", n.Add(1))
				if _, err := e.CreateAccount(e.ctx, id, "tier-1"); err != nil {
					rt.Fatal(err)
				}
				m := &model{now: e.clock.Now(), holds: map[string]*mHold{}}
				var holdIDs []string
				var adjusts []billing.AdjustRequest
				var purchases []string // created, in order
				pending := map[string]money.Micros{}
				payments := map[string]*mPayment{} // by purchase id, once paid
				lastSettle := billing.SettleRequest{}
				var trimmed []billing.Event // removed by trims, oldest first
				steps := rapid.IntRange(1, 40).Draw(rt, "steps")
				for step := 0; step < steps; step++ {
					switch op := rapid.IntRange(0, 13).Draw(rt, "op"); op {
					case 0: // top-up
						amount := money.Micros(rapid.Int64Range(int64(usd("5.00")), int64(usd("100.00"))).Draw(rt, "amount"))
						gid := fmt.Sprintf("g%d", step)
						expires := e.clock.Now().Add(testPolicy.CreditTTL)
						if rapid.Bool().Draw(rt, "promo") {
							expires = e.clock.Now().Add(time.Duration(rapid.IntRange(1, 72).Draw(rt, "hours")) * time.Hour)
						}
						credit, debt := m.credit(), m.debt
						wantErr := credit+amount-min(debt, amount) > usd("1000.00")
						_, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: gid, Amount: amount, ExpiresAt: expires})
						if wantErr != errors.Is(err, billing.ErrAboveMaxBalance) || (!wantErr && err != nil) {
							rt.Fatalf("top-up %s: err %v, model expects error=%v", amount, err, wantErr)
						}
						if err == nil {
							m.topUp(gid, amount, expires.Truncate(time.Millisecond))
						}
					case 1: // reserve
						hid := fmt.Sprintf("h%d", step)
						est := money.Micros(rapid.Int64Range(0, int64(usd("20.00"))).Draw(rt, "estimate"))
						minimum := money.Micros(0)
						if rapid.Bool().Draw(rt, "partial") {
							minimum = money.Micros(rapid.Int64Range(0, int64(est)).Draw(rt, "minimum"))
						}
						wantOK, wantHeld := m.reserve(hid, est, minimum, testPolicy.Grace, testPolicy.HoldTTL)
						res, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hid, Estimate: est, Minimum: minimum, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL,
							RequestID: "req_" + hid, KeyID: "key_m", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions"})
						if err != nil || res.Admitted != wantOK || res.Held != wantHeld {
							rt.Fatalf("reserve est=%s min=%s: %+v %v; model admits=%v held=%s", est, minimum, res, err, wantOK, wantHeld)
						}
						if wantOK {
							holdIDs = append(holdIDs, hid)
						}
					case 2, 3: // settle (or release) a known hold; sometimes for more than held
						if len(holdIDs) == 0 {
							continue
						}
						hid := rapid.SampledFrom(holdIDs).Draw(rt, "hold")
						if op == 3 {
							m.release(hid)
							if _, err := e.Release(e.ctx, id, hid, billing.Usage{}); err != nil {
								rt.Fatal(err)
							}
							continue
						}
						cost := money.Micros(rapid.Int64Range(0, int64(usd("12.00"))).Draw(rt, "cost"))
						m.settle(hid, cost)
						lastSettle = billing.SettleRequest{Account: id, HoldID: hid, Cost: cost}
						if _, err := e.Settle(e.ctx, lastSettle); err != nil {
							rt.Fatal(err)
						}
					case 4: // a retried settle (go-redis resending after a lost reply)
						if lastSettle.HoldID == "" {
							continue
						}
						s, err := e.Settle(e.ctx, lastSettle)
						if err != nil || !s.Replayed {
							rt.Fatalf("retried settle: %+v %v", s, err)
						}
					case 5: // time passes
						d := rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Minute, 16 * time.Minute, 25 * time.Hour, 400 * 24 * time.Hour}).Draw(rt, "advance")
						e.clock.Advance(d)
						m.now = m.now.Add(d)
					case 6: // a top-up retried with the same grant id
						if len(m.grants) == 0 {
							continue
						}
						g := m.grants[len(m.grants)-1]
						res, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: g.id, Amount: usd("5.00")})
						if err != nil || !res.Replayed {
							rt.Fatalf("retried top-up: %+v %v", res, err)
						}
					case 7: // an adjustment, either sign, sometimes beyond what can be taken back
						amount := money.Micros(rapid.Int64Range(1, int64(usd("30.00"))).Draw(rt, "adjustment"))
						q := billing.AdjustRequest{Amount: amount, Reason: "model", IdempotencyKey: fmt.Sprintf("a%d", step)}
						if rapid.Bool().Draw(rt, "negative") {
							q.Amount = -amount
						} else if rapid.Bool().Draw(rt, "adjustment expiry") {
							q.ExpiresAt = e.clock.Now().Add(time.Duration(rapid.IntRange(1, 72).Draw(rt, "adjustment hours")) * time.Hour)
						}
						expires := q.ExpiresAt
						if expires.IsZero() {
							expires = e.clock.Now().Add(testPolicy.CreditTTL)
						}
						want := m.adjust(AdjustmentID(id, q.IdempotencyKey), q.Amount, expires.Truncate(time.Millisecond))
						res, err := e.Adjust(e.ctx, testPolicy, id, q)
						if want != (err == nil) || (!want && !errors.Is(err, billing.ErrInsufficientCredit)) {
							rt.Fatalf("adjust %s: %+v %v; model accepts=%v", q.Amount, res, err, want)
						}
						if err == nil {
							adjusts = append(adjusts, q)
						}
					case 8: // an adjustment replayed with its Idempotency-Key
						if len(adjusts) == 0 {
							continue
						}
						q := rapid.SampledFrom(adjusts).Draw(rt, "replayed adjustment")
						res, err := e.Adjust(e.ctx, testPolicy, id, q)
						if err != nil || !res.Replayed {
							rt.Fatalf("replayed adjustment: %+v %v", res, err)
						}
					case 9: // a purchase starts, checked as a top-up of its amount
						amount := money.Micros(rapid.Int64Range(int64(usd("5.00")), int64(usd("100.00"))).Draw(rt, "purchase"))
						pid := fmt.Sprintf("pur_%d", step)
						wantErr := m.credit()+amount-min(m.debt, amount) > usd("1000.00")
						_, err := e.CreatePurchase(e.ctx, testPolicy, billing.NewPurchaseRequest{Account: id, ID: pid, Amount: amount, Provider: "stripe"})
						if wantErr != errors.Is(err, billing.ErrAboveMaxBalance) || (!wantErr && err != nil) {
							rt.Fatalf("purchase %s: err %v, model expects error=%v", amount, err, wantErr)
						}
						if err == nil {
							purchases = append(purchases, pid)
							pending[pid] = amount
						}
					case 10: // the provider reports a purchase paid, maybe again
						if len(purchases) == 0 {
							continue
						}
						pid := rapid.SampledFrom(purchases).Draw(rt, "paid purchase")
						amount, again := pending[pid], payments[pid] != nil
						if again {
							amount = payments[pid].amount
						}
						res, err := e.CompletePurchase(e.ctx, testPolicy, id, pid, billing.PaymentReport{Amount: amount, PaymentRef: "pi_" + id + "_" + pid})
						if err != nil || res.Replayed != again || res.Grant.ID != pid || res.Grant.Amount != amount {
							rt.Fatalf("complete %s (paid before: %v): %+v %v", pid, again, res, err)
						}
						if !again {
							m.topUp(pid, amount, e.clock.Now().Add(testPolicy.CreditTTL).Truncate(time.Millisecond))
							payments[pid] = &mPayment{grant: m.grants[len(m.grants)-1], amount: amount}
							delete(pending, pid)
						}
					case 11: // a refund or dispute of a paid purchase, cumulative
						if len(payments) == 0 {
							continue
						}
						paid := make([]string, 0, len(payments))
						for _, pid := range purchases {
							if payments[pid] != nil {
								paid = append(paid, pid)
							}
						}
						pid := rapid.SampledFrom(paid).Draw(rt, "refunded purchase")
						p := payments[pid]
						upto := money.Micros(rapid.Int64Range(1, int64(p.amount+usd("2.00"))).Draw(rt, "refunded up to"))
						want := m.takeBack(p, upto)
						res, err := e.TakeBack(e.ctx, billing.TakeBackRequest{PaymentRef: "pi_" + id + "_" + pid, Upto: upto, Reason: "refund"})
						if err != nil || res.Taken != want || res.Total != p.took {
							rt.Fatalf("take back %s up to %s: %+v %v; model takes %s (%s in all)", pid, upto, res, err, want, p.took)
						}
					case 12: // a top-up carrying the operator's own payment reference and a note
						amount := money.Micros(rapid.Int64Range(int64(usd("5.00")), int64(usd("50.00"))).Draw(rt, "referenced top-up"))
						gid := fmt.Sprintf("gref%d", step)
						ref := rapid.StringMatching(`[A-Za-z0-9][A-Za-z0-9 _./-]{0,39}`).Draw(rt, "external id")
						wantErr := m.credit()+amount-min(m.debt, amount) > usd("1000.00")
						res, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: id, GrantID: gid, Amount: amount, PaymentRef: ref, Note: "wire " + ref})
						if wantErr != errors.Is(err, billing.ErrAboveMaxBalance) || (!wantErr && err != nil) {
							rt.Fatalf("top-up with ref %q: err %v, model expects error=%v", ref, err, wantErr)
						}
						if err == nil {
							m.topUp(gid, amount, e.clock.Now().Add(testPolicy.CreditTTL).Truncate(time.Millisecond))
							if evs := e.events(t, id); evs[len(evs)-1].ID == res.EventID && (evs[len(evs)-1].PaymentRef != ref || evs[len(evs)-1].Note != "wire "+ref) {
								rt.Fatalf("top-up event %+v; want payment_ref %q", evs[len(evs)-1], ref)
							}
						}
					case 13: // the ledger is trimmed at a random point (an event id, an event's time, or neither)
						evs := e.events(t, id)
						if len(evs) == 0 {
							continue
						}
						upTo, before := "+", e.clock.Now().Add(time.Millisecond)
						if rapid.Bool().Draw(rt, "bounded by id") {
							upTo = rapid.SampledFrom(evs).Draw(rt, "up to").ID
						}
						if rapid.Bool().Draw(rt, "bounded by age") {
							before = rapid.SampledFrom(evs).Draw(rt, "before").At
						}
						res, err := e.TrimLedger(e.ctx, id, upTo, before)
						if err != nil {
							rt.Fatalf("trim up to %s before %s: %v", upTo, before, err)
						}
						left := e.events(t, id)
						removed := evs[:len(evs)-len(left)]
						if int64(len(removed)) != res.Removed || (len(removed) > 0 && res.CheckpointID != removed[len(removed)-1].ID) || left[len(left)-1].ID != evs[len(evs)-1].ID {
							rt.Fatalf("trim up to %s before %s: %+v; %d of %d events left", upTo, before, res, len(left), len(evs))
						}
						for _, ev := range removed {
							if (upTo != "+" && billing.CompareEventIDs(ev.ID, upTo) > 0) || !ev.At.Before(before) {
								rt.Fatalf("trim up to %s before %s removed event %s at %s", upTo, before, ev.ID, ev.At)
							}
						}
						trimmed = append(trimmed, removed...)
						if len(removed) > 0 {
							trims.Add(1)
						}
						checkCheckpoint(rt, e, id, trimmed)
					}
					a := checkConservation(t, e, id)
					if r := audit(t, e, id); !r.OK() {
						rt.Fatalf("step %d: audit from checkpoint %q: %+v", step, r.Checkpoint, r.Problems)
					}
					m.sweepHolds()
					if a.Credit != m.credit() || a.Debt != m.debt || a.Reserved != m.reserved() {
						rt.Fatalf("step %d: store credit %s debt %s reserved %s; model %s %s %s",
							step, a.Credit, a.Debt, a.Reserved, m.credit(), m.debt, m.reserved())
					}
					if a.Totals.Granted != m.granted || a.Totals.Usage != m.usage || a.Totals.Expired != m.expired || a.Totals.AdjustedOut != m.adjOut {
						rt.Fatalf("step %d: totals %+v; model granted %s usage %s expired %s adjusted out %s", step, a.Totals, m.granted, m.usage, m.expired, m.adjOut)
					}
				}
				e.clock.Advance(testPolicy.HoldTTL)
				m.now = m.now.Add(testPolicy.HoldTTL)
				checkConservation(t, e, id)
				m.sweepHolds()
				checkHoldEnds(rt, e, id, m.holds, trimmed)
				if r := audit(t, e, id); !r.OK() {
					rt.Fatalf("audit: %+v", r.Problems)
				}
				checks.Add(1)
			})
		})
	}
}

// checkHoldEnds compares the events that ended each hold in the ledger with the
// model's: the same types in the same order, a hold_expired of the held amount
// that names its request (reserve kept it in the hold record).
// trimmed are the events trimmed from the ledger before, oldest first.
func checkHoldEnds(rt *rapid.T, e *env, account string, holds map[string]*mHold, trimmed []billing.Event) {
	got := map[string][]billing.Event{}
	for _, ev := range trimmed {
		if ev.HoldID != "" {
			got[ev.HoldID] = append(got[ev.HoldID], ev)
		}
	}
	for after := ""; ; {
		page, err := e.Events(e.ctx, account, after, 500)
		if err != nil {
			rt.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.HoldID != "" {
				got[ev.HoldID] = append(got[ev.HoldID], ev)
			}
		}
		if after = page.Next; after == "" {
			break
		}
	}
	for hid, h := range holds {
		evs := got[hid]
		types := make([]billing.EventType, len(evs))
		for i, ev := range evs {
			types[i] = ev.Type
		}
		if fmt.Sprint(types) != fmt.Sprint(h.ends) {
			rt.Fatalf("hold %s ended with %v; the model says %v", hid, types, h.ends)
		}
		for _, ev := range evs {
			if ev.Type == billing.EventHoldExpired && (ev.Amount != h.amount || ev.RequestID != "req_"+hid || ev.KeyID != "key_m" ||
				ev.Model != "gpt-4o-mini" || ev.Endpoint != "/v1/chat/completions") {
				rt.Fatalf("hold %s of %s: hold_expired event %+v", hid, h.amount, ev)
			}
		}
		delete(got, hid)
	}
	if len(got) > 0 {
		rt.Fatalf("events of holds never admitted: %v", got)
	}
}

// TestConcurrentAdmissionNeverOverdraws has many goroutines (as many proxies would)
// reserve and settle against a small balance. Every settled cost is at most its
// hold, so the balance may never go below −grace, and the ledger must account for
// exactly what was settled.
func TestConcurrentAdmissionNeverOverdraws(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "hot", "5.00")
		const workers, perWorker = 50, 20
		var wg sync.WaitGroup
		var settled atomic.Int64
		var admitted atomic.Int64
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					hid := fmt.Sprintf("w%d-%d", w, i)
					est := usd("0.20") + money.Micros(w*997+i*13)%usd("0.30")
					r, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "hot", HoldID: hid, Estimate: est, Minimum: usd("0.01"), Grace: testPolicy.Grace, TTL: time.Minute})
					if err != nil {
						errs <- err
						return
					}
					if !r.Admitted {
						continue
					}
					admitted.Add(1)
					cost := r.Held - money.Micros(i%3)*usd("0.01")
					if cost < 0 {
						cost = 0
					}
					if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "hot", HoldID: hid, Cost: cost}); err != nil {
						errs <- err
						return
					}
					settled.Add(int64(cost))
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a := checkConservation(t, e, "hot")
		if a.Balance() < -testPolicy.Grace {
			t.Fatalf("overdraft %s exceeds grace %s", -a.Balance(), testPolicy.Grace)
		}
		if a.Totals.Usage != money.Micros(settled.Load()) || a.Reserved != 0 {
			t.Fatalf("usage %s, settled %s, reserved %s", a.Totals.Usage, money.Micros(settled.Load()), a.Reserved)
		}
		if admitted.Load() == 0 || a.Balance() > 0 {
			t.Fatalf("admitted %d, balance %s: the test should drain the account", admitted.Load(), a.Balance())
		}
		t.Logf("%d of %d requests admitted; balance %s", admitted.Load(), workers*perWorker, a.Balance())
	})
}

// checkCheckpoint compares the account's checkpoint with the events trimmed,
// summed here on their own: the totals, the grants counted, the state after the
// last one.
func checkCheckpoint(rt *rapid.T, e *env, id string, trimmed []billing.Event) {
	a, err := e.GetAccount(e.ctx, id)
	if err != nil {
		rt.Fatal(err)
	}
	cp := a.Checkpoint
	if len(trimmed) == 0 {
		if cp != nil {
			rt.Fatalf("a checkpoint %+v, but nothing was trimmed", cp)
		}
		return
	}
	var want billing.Totals
	var grants int64
	debt := money.Micros(0)
	for _, ev := range trimmed {
		switch {
		case ev.Type == billing.EventTopUp || ev.Type == billing.EventAutoRecharge || (ev.Type == billing.EventAdjustment && ev.Amount > 0):
			want.Granted += ev.Amount
			want.DebtRepaid += debt - ev.DebtAfter
			grants++
		case ev.Type == billing.EventAdjustment:
			want.AdjustedOut -= ev.Amount
		case ev.Type == billing.EventUsage:
			want.Usage += ev.Amount
			want.Consumed += ev.FromCredit
		case ev.Type == billing.EventExpire:
			want.Expired += ev.Amount
		}
		debt = ev.DebtAfter
	}
	last := trimmed[len(trimmed)-1]
	if cp == nil || cp.Totals != want || cp.Grants != grants || cp.Events != int64(len(trimmed)) || cp.EventID != last.ID ||
		cp.Credit != last.CreditAfter || cp.Debt != last.DebtAfter {
		rt.Fatalf("checkpoint %+v; the %d events trimmed sum to %+v, %d grants, ending at %+v", cp, len(trimmed), want, grants, last)
	}
}
