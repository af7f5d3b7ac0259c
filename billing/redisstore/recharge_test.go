package redisstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var (
	arOn     = billing.Triggers{AutoRecharge: true}
	allOn    = billing.Triggers{AutoRecharge: true, Notices: true, LowBalance: usd("3.00")}
	noticeOn = billing.Triggers{Notices: true, LowBalance: usd("3.00")}
)

// setAR enables auto-recharge: below threshold, buy amount, at most limit a month.
func (e *env) setAR(t testing.TB, id, threshold, amount, limit string) {
	t.Helper()
	if err := e.SetAutoRecharge(e.ctx, id, billing.AutoRecharge{Enabled: true, Threshold: usd(threshold), Amount: usd(amount), MonthlyLimit: usd(limit)}); err != nil {
		t.Fatal(err)
	}
}

// spend reserves and settles cost with triggers, returning the settlement.
func (e *env) spend(t testing.TB, id, hold string, cost money.Micros, tr billing.Triggers) billing.Settlement {
	t.Helper()
	e.reserve(t, id, hold, cost, 0)
	s, err := e.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: cost, Triggers: tr, Usage: billing.Usage{RequestID: hold, Model: "gpt-4o-mini"}})
	if err != nil {
		t.Fatalf("settle %s: %v", hold, err)
	}
	return s
}

func (e *env) complete(t testing.TB, id, rc string) billing.TopUpResult {
	t.Helper()
	if _, err := e.ClaimRecharge(e.ctx, id, rc, time.Minute); err != nil && !errors.Is(err, billing.ErrRechargeNotPending) && !errors.Is(err, billing.ErrRechargeBusy) {
		t.Fatalf("claim %s: %v", rc, err)
	}
	r, err := e.CompleteRecharge(e.ctx, id, rc, billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: ""})
	if err != nil {
		t.Fatalf("complete %s: %v", rc, err)
	}
	return r
}

func countEvents(evs []billing.Event, typ billing.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// TestRechargeOncePerCrossingUnderConcurrency: 200 settles race on one account
// (as 200 proxies would); the crossing below the threshold starts exactly one
// recharge, and balance.low fires exactly once.
func TestRechargeOncePerCrossingUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "busy", "10.00")
		e.setAR(t, "busy", "5.00", "10.00", "100.00")
		const n = 200
		for i := 0; i < n; i++ {
			e.reserve(t, "busy", fmt.Sprintf("h%d", i), usd("0.04"), 0)
		}
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			recharges []string
			notices   []string
		)
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s, err := e.Settle(e.ctx, billing.SettleRequest{Account: "busy", HoldID: fmt.Sprintf("h%d", i), Cost: usd("0.04"), Triggers: allOn})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if s.RechargeID != "" {
					recharges = append(recharges, s.RechargeID)
				}
				notices = append(notices, s.Notices...)
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		a := checkConservation(t, e, "busy")
		if a.Balance() != usd("2.00") {
			t.Fatalf("balance %s, want 2.00", a.Balance())
		}
		if len(recharges) != 1 || a.Recharge.Pending != recharges[0] {
			t.Fatalf("recharges started %v, pending %q: want exactly one", recharges, a.Recharge.Pending)
		}
		if len(notices) != 1 {
			t.Fatalf("notices %v, want one balance.low", notices)
		}
		claimed, _, err := e.ClaimNotices(e.ctx, "busy", notices, time.Minute, 3)
		if err != nil || len(claimed) != 1 || claimed[0].Type != billing.NoticeBalanceLow || claimed[0].Threshold != usd("3.00") || claimed[0].Balance >= usd("3.00") {
			t.Fatalf("claimed %+v, %v", claimed, err)
		}
		rc, err := e.ClaimRecharge(e.ctx, "busy", recharges[0], time.Minute)
		if err != nil || rc.Amount != usd("10.00") || rc.MonthTotal != 0 || rc.Month != "2026-03" || rc.Drives != 1 {
			t.Fatalf("claim: %+v %v", rc, err)
		}
	})
}

func TestRechargeLifecycle(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		e.setAR(t, "a", "5.00", "10.00", "100.00")
		if s := e.spend(t, "a", "h1", usd("4.00"), arOn); s.RechargeID != "" {
			t.Fatalf("above the threshold a recharge started: %+v", s)
		}
		s := e.spend(t, "a", "h2", usd("2.00"), arOn)
		if s.RechargeID != "rc_h2" {
			t.Fatalf("recharge id %q, want rc_h2 (derived from the hold)", s.RechargeID)
		}
		// A retried settle returns the same recharge and starts nothing new.
		again, err := e.Settle(e.ctx, billing.SettleRequest{Account: "a", HoldID: "h2", Cost: usd("2.00"), Triggers: arOn})
		if err != nil || !again.Replayed || again.RechargeID != "rc_h2" {
			t.Fatalf("retried settle: %+v %v", again, err)
		}
		// While it is pending, further settles below the threshold start none.
		if s := e.spend(t, "a", "h3", usd("1.00"), arOn); s.RechargeID != "" {
			t.Fatalf("second recharge while one is pending: %+v", s)
		}
		// Without the trigger (no charger configured) nothing starts either.
		// Leases: one worker at a time.
		if _, err := e.ClaimRecharge(e.ctx, "a", "rc_h2", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ClaimRecharge(e.ctx, "a", "rc_h2", time.Minute); !errors.Is(err, billing.ErrRechargeBusy) {
			t.Fatalf("second claim: %v, want busy", err)
		}
		e.clock.Advance(2 * time.Minute)
		rc, err := e.ClaimRecharge(e.ctx, "a", "rc_h2", time.Minute)
		if err != nil || rc.Drives != 2 {
			t.Fatalf("claim after the lease ran out: %+v %v", rc, err)
		}
		// Paid: credited once, however often the charger says so.
		r1 := e.complete(t, "a", "rc_h2")
		r2 := e.complete(t, "a", "rc_h2")
		if r1.Replayed || !r2.Replayed || r1.Grant.ID != "rc_h2" || r1.Grant.Source != billing.SourceAutoRecharge || r1.Grant.Amount != usd("10.00") {
			t.Fatalf("complete twice: %+v / %+v", r1, r2)
		}
		if _, err := e.ClaimRecharge(e.ctx, "a", "rc_h2", time.Minute); !errors.Is(err, billing.ErrRechargeNotPending) {
			t.Fatalf("claim after completion: %v", err)
		}
		a := checkConservation(t, e, "a")
		if a.Balance() != usd("13.00") || a.Recharge.Pending != "" || a.Recharge.MonthTotal != usd("10.00") || a.Recharge.Month != "2026-03" {
			t.Fatalf("after the recharge: balance %s, state %+v", a.Balance(), a.Recharge)
		}
		if n := countEvents(e.events(t, "a"), billing.EventAutoRecharge); n != 1 {
			t.Fatalf("%d auto_recharge events, want 1", n)
		}
	})
}

// TestRechargeFailureBacksOff: a refused recharge is recorded, clears the pending
// one, queues auto_recharge.failed, and blocks new recharges for a back-off that
// doubles with each consecutive failure.
func TestRechargeFailureBacksOff(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "f", "10.00")
		e.setAR(t, "f", "5.00", "10.00", "100.00")
		fail := billing.RechargeFailure{Reason: "card declined\n(HTTP 402)", Backoff: time.Hour, MaxBackoff: 3 * time.Hour, Notice: true}
		s := e.spend(t, "f", "h1", usd("6.00"), arOn)
		nid, err := e.FailRecharge(e.ctx, "f", s.RechargeID, fail)
		if err != nil || nid == "" {
			t.Fatalf("fail: %q %v", nid, err)
		}
		// Told twice (a worker that never heard back): the same answer, recorded once.
		if again, err := e.FailRecharge(e.ctx, "f", s.RechargeID, fail); err != nil || again != nid {
			t.Fatalf("second fail: %q %v, want the first answer %q", again, err, nid)
		}
		claimed, _, err := e.ClaimNotices(e.ctx, "f", []string{nid}, time.Minute, 3)
		if err != nil || len(claimed) != 1 || claimed[0].Type != billing.NoticeAutoRechargeFailed || claimed[0].RechargeID != "rc_h1" ||
			claimed[0].Amount != usd("10.00") || claimed[0].Reason != "card declined (HTTP 402)" {
			t.Fatalf("failure notice %+v %v", claimed, err)
		}
		evs := e.events(t, "f")
		last := evs[len(evs)-1]
		if last.Type != billing.EventAutoRechargeFailed || last.Amount != usd("10.00") || last.GrantID != "rc_h1" || last.Note != "card declined (HTTP 402)" {
			t.Fatalf("failure event %+v", last)
		}
		a := e.get(t, "f")
		if a.Recharge.Pending != "" || a.Recharge.Failures != 1 || !a.Recharge.BackoffUntil.Equal(e.clock.Now().Add(time.Hour)) {
			t.Fatalf("state after failure %+v", a.Recharge)
		}
		if s := e.spend(t, "f", "h2", usd("0.10"), arOn); s.RechargeID != "" {
			t.Fatal("recharge started during the back-off")
		}
		e.clock.Advance(time.Hour)
		s = e.spend(t, "f", "h3", usd("0.10"), arOn)
		if s.RechargeID != "rc_h3" {
			t.Fatalf("no recharge after the back-off: %+v", s)
		}
		if _, err := e.FailRecharge(e.ctx, "f", "rc_h3", fail); err != nil {
			t.Fatal(err)
		}
		if a := e.get(t, "f"); a.Recharge.Failures != 2 || !a.Recharge.BackoffUntil.Equal(e.clock.Now().Add(2*time.Hour)) {
			t.Fatalf("second failure: %+v, want a 2h back-off", a.Recharge)
		}
		// A late 2xx for a recharge recorded as failed is still credited: it was paid.
		r := e.complete(t, "f", "rc_h1")
		if r.Replayed || r.Grant.Amount != usd("10.00") {
			t.Fatalf("late credit: %+v", r)
		}
		if a := checkConservation(t, e, "f"); a.Recharge.Failures != 2 {
			t.Fatalf("a late credit of an old recharge reset the failures of the current streak: %+v", a.Recharge)
		}
	})
}

// TestMonthlyLimitAcrossMonthBoundary: auto-recharged credit per calendar month
// (UTC) stays within the limit; the recharge that would pass it is skipped and
// recorded once per crossing; manual top-ups do not count; the next month starts
// from zero.
func TestMonthlyLimitAcrossMonthBoundary(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.clock.Advance(time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC).Sub(e.clock.Now()))
		e.account(t, "m", "10.00")
		e.setAR(t, "m", "5.00", "10.00", "20.00")
		hold := 0
		spend := func(cost string) billing.Settlement {
			hold++
			return e.spend(t, "m", fmt.Sprintf("h%d", hold), usd(cost), arOn)
		}
		// spendTo spends what takes the balance to target.
		spendTo := func(target string) billing.Settlement {
			hold++
			return e.spend(t, "m", fmt.Sprintf("h%d", hold), e.get(t, "m").Balance()-usd(target), arOn)
		}
		// Two recharges fit in March's limit.
		for i := 0; i < 2; i++ {
			s := spendTo("4.00")
			if s.RechargeID == "" {
				t.Fatalf("recharge %d did not start", i+1)
			}
			e.complete(t, "m", s.RechargeID)
			// Manual top-ups in between must not count toward the limit.
			e.topUp(t, "m", "5.00")
		}
		a := e.get(t, "m")
		if a.Recharge.MonthTotal != usd("20.00") || a.Recharge.Month != "2026-03" {
			t.Fatalf("March total %s (%s), want 20.00: manual top-ups must not count", a.Recharge.MonthTotal, a.Recharge.Month)
		}
		// The third would pass the limit: skipped, recorded once however many settles see it.
		for i := 0; i < 3; i++ {
			if s := spendTo(fmt.Sprintf("%d.00", 4-i)); s.RechargeID != "" {
				t.Fatalf("recharge past the monthly limit: %+v", s)
			}
		}
		if n := countEvents(e.events(t, "m"), billing.EventAutoRechargeSkipped); n != 1 {
			t.Fatalf("%d skip events, want 1 per crossing", n)
		}
		for _, ev := range e.events(t, "m") {
			if want := "monthly limit 20.000000 reached: 20.000000 auto-recharged in 2026-03"; ev.Type == billing.EventAutoRechargeSkipped && ev.Note != want {
				t.Fatalf("skip event note %q, want %q", ev.Note, want)
			}
		}
		// Back above the threshold and below again: a new crossing, recorded again.
		e.topUp(t, "m", "20.00")
		spendTo("1.00")
		if n := countEvents(e.events(t, "m"), billing.EventAutoRechargeSkipped); n != 2 {
			t.Fatalf("%d skip events after a second crossing, want 2", n)
		}
		// April: the limit starts over.
		e.clock.Advance(3 * time.Hour) // 2026-04-01T01:00Z
		s := spend("0.01")
		if s.RechargeID == "" {
			t.Fatal("no recharge in the new month")
		}
		rc, err := e.ClaimRecharge(e.ctx, "m", s.RechargeID, time.Minute)
		if err != nil || rc.Month != "2026-04" || rc.MonthTotal != 0 {
			t.Fatalf("April recharge %+v %v", rc, err)
		}
		e.complete(t, "m", s.RechargeID)
		a = checkConservation(t, e, "m")
		if a.Recharge.Month != "2026-04" || a.Recharge.MonthTotal != usd("10.00") {
			t.Fatalf("April state %+v", a.Recharge)
		}
		var auto money.Micros
		for _, g := range a.Grants {
			if g.Source == billing.SourceAutoRecharge && g.GrantedAt.Month() == time.March {
				auto += g.Amount
			}
		}
		if auto != usd("20.00") {
			t.Fatalf("auto-recharged in March %s, limit 20.00", auto)
		}
	})
}

func TestBalanceNoticesOncePerCrossing(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "n", "5.00")
		types := func(s billing.Settlement) []string {
			claimed, _, err := e.ClaimNotices(e.ctx, "n", s.Notices, time.Minute, 3)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range claimed {
				out = append(out, c.Type)
				if err := e.AckNotice(e.ctx, "n", c.ID); err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		steps := []struct {
			cost string
			want string
		}{
			{"1.00", "[]"},                  // 4.00
			{"1.50", "[balance.low]"},       // 2.50: crossed 3.00
			{"1.00", "[]"},                  // 1.50: still low, no repeat
			{"1.60", "[balance.exhausted]"}, // -0.10
			{"0.00", "[]"},                  // nothing crossed
		}
		for i, st := range steps {
			s := e.spend(t, "n", fmt.Sprintf("h%d", i), usd(st.cost), noticeOn)
			if got := fmt.Sprint(types(s)); got != st.want {
				t.Fatalf("step %d (cost %s): notices %s, want %s", i, st.cost, got, st.want)
			}
		}
		// A top-up re-arms both; one settle crossing both fires both.
		e.topUp(t, "n", "5.00") // 4.90
		s := e.spend(t, "n", "big", usd("5.00"), noticeOn)
		if got := fmt.Sprint(types(s)); got != "[balance.low balance.exhausted]" {
			t.Fatalf("after a top-up: %s", got)
		}
		// Notices off: nothing queued.
		e.topUp(t, "n", "5.00")
		if s := e.spend(t, "n", "quiet", usd("4.99"), billing.Triggers{}); len(s.Notices) != 0 {
			t.Fatalf("notices without the trigger: %v", s.Notices)
		}
	})
}

// TestSweep: the periodic sweep forfeits expired credit on an idle account (with
// its expire event), sees the crossing that expiry caused, announces expiring
// grants once each, and starts the recharge no settle can start on an account
// whose credit is gone.
func TestSweep(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "idle")
		soon := e.clock.Now().Add(48 * time.Hour)
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "idle", GrantID: "promo", Amount: usd("6.00"), ExpiresAt: soon}); err != nil {
			t.Fatal(err)
		}
		e.topUp(t, "idle", "5.00")
		e.setAR(t, "idle", "5.00", "10.00", "100.00")
		q := billing.SweepRequest{Triggers: allOn, ExpiringWithin: 72 * time.Hour}
		claimTypes := func(ids []string) []string {
			claimed, _, err := e.ClaimNotices(e.ctx, "idle", ids, time.Minute, 3)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range claimed {
				out = append(out, c.Type)
				if c.Type == billing.NoticeCreditsExpiring && (c.GrantID != "promo" || c.Amount != usd("6.00") || !c.ExpiresAt.Equal(soon)) {
					t.Fatalf("expiring notice %+v", c)
				}
				e.AckNotice(e.ctx, "idle", c.ID)
			}
			return out
		}
		r, err := e.Sweep(e.ctx, "idle", q)
		if err != nil || r.Expired != 0 || r.RechargeID != "" || fmt.Sprint(claimTypes(r.Notices)) != "[credits.expiring]" {
			t.Fatalf("first sweep %+v %v", r, err)
		}
		if r, _ := e.Sweep(e.ctx, "idle", q); len(r.Notices) != 0 {
			t.Fatalf("expiring grant announced twice: %+v", r)
		}
		e.clock.Advance(49 * time.Hour)
		r, err = e.Sweep(e.ctx, "idle", q)
		if err != nil || r.Expired != usd("6.00") || fmt.Sprint(claimTypes(r.Notices)) != "[]" {
			t.Fatalf("sweep after expiry %+v %v", r, err)
		}
		// 11.00 → 5.00: not below the 5.00 threshold, no recharge. Expire the rest.
		e.clock.Advance(400 * 24 * time.Hour)
		r, err = e.Sweep(e.ctx, "idle", q)
		if err != nil || r.Expired != usd("5.00") || r.RechargeID == "" || fmt.Sprint(claimTypes(r.Notices)) != "[balance.low balance.exhausted]" {
			t.Fatalf("sweep after full expiry %+v %v", r, err)
		}
		if r2, _ := e.Sweep(e.ctx, "idle", q); r2.RechargeID != r.RechargeID {
			t.Fatalf("the pending recharge should be reported again until done: %+v", r2)
		}
		e.complete(t, "idle", r.RechargeID)
		evs := e.events(t, "idle")
		if n := countEvents(evs, billing.EventExpire); n != 2 {
			t.Fatalf("%d expire events, want 2", n)
		}
		a := checkConservation(t, e, "idle")
		if a.Balance() != usd("10.00") || a.Totals.Expired != usd("11.00") {
			t.Fatalf("after the sweeps: balance %s, expired %s", a.Balance(), a.Totals.Expired)
		}
		if _, err := e.Sweep(e.ctx, "nobody", q); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("sweep of a missing account: %v", err)
		}
	})
}

func TestNoticeClaimsLeaseAndDrop(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "c", "5.00")
		s := e.spend(t, "c", "h", usd("4.00"), noticeOn)
		if len(s.Notices) != 1 {
			t.Fatalf("notices %v", s.Notices)
		}
		first, _, _ := e.ClaimNotices(e.ctx, "c", nil, time.Minute, 2)
		second, _, _ := e.ClaimNotices(e.ctx, "c", nil, time.Minute, 2)
		if len(first) != 1 || first[0].Attempts != 1 || len(second) != 0 {
			t.Fatalf("claims %+v / %+v: a leased notice must not be claimed twice", first, second)
		}
		e.clock.Advance(2 * time.Minute)
		again, _, _ := e.ClaimNotices(e.ctx, "c", nil, time.Minute, 2)
		if len(again) != 1 || again[0].Attempts != 2 {
			t.Fatalf("reclaim after the lease %+v", again)
		}
		e.clock.Advance(2 * time.Minute)
		claimed, dropped, err := e.ClaimNotices(e.ctx, "c", nil, time.Minute, 2)
		if err != nil || len(claimed) != 0 || len(dropped) != 1 {
			t.Fatalf("after max attempts: claimed %+v dropped %+v %v", claimed, dropped, err)
		}
		if r, _ := e.Sweep(e.ctx, "c", billing.SweepRequest{Triggers: noticeOn}); len(r.Notices) != 0 {
			t.Fatalf("dropped notice still queued: %+v", r)
		}
	})
}

func TestTryLock(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ok1, err1 := e.TryLock(e.ctx, "sweep", time.Minute)
		ok2, err2 := e.TryLock(e.ctx, "sweep", time.Minute)
		if !ok1 || ok2 || err1 != nil || err2 != nil {
			t.Fatalf("locks: %v %v %v %v", ok1, ok2, err1, err2)
		}
	})
}
