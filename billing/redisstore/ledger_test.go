package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

func TestAdmission(t *testing.T) {
	tests := []struct {
		name        string
		credit      string // topped up before
		spent       string // settled before (may create debt)
		estimate    string
		minimum     string
		wantAdmit   bool
		wantHeld    string
		wantReason  string
		wantAvailAf string
	}{
		{name: "fits", credit: "5.00", estimate: "1.00", wantAdmit: true, wantHeld: "1.00", wantAvailAf: "4.00"},
		{name: "exactly available", credit: "5.00", estimate: "5.00", wantAdmit: true, wantHeld: "5.00", wantAvailAf: "0"},
		{name: "within grace", credit: "5.00", estimate: "5.50", wantAdmit: true, wantHeld: "5.50", wantAvailAf: "-0.50"},
		{name: "beyond grace", credit: "5.00", estimate: "5.500001", wantReason: billing.ReasonInsufficient, wantAvailAf: "5.00"},
		{name: "partial hold when minimum fits", credit: "5.00", estimate: "9.00", minimum: "0.10", wantAdmit: true, wantHeld: "5.50", wantAvailAf: "-0.50"},
		{name: "minimum beyond grace", credit: "5.00", estimate: "9.00", minimum: "5.60", wantReason: billing.ReasonInsufficient, wantAvailAf: "5.00"},
		{name: "nothing available, grace does not admit", credit: "5.00", spent: "5.00", estimate: "0.01", wantReason: billing.ReasonEmpty, wantAvailAf: "0"},
		{name: "in debt", credit: "5.00", spent: "5.30", estimate: "0.01", wantReason: billing.ReasonEmpty, wantAvailAf: "-0.30"},
		{name: "never funded", estimate: "0.01", wantReason: billing.ReasonEmpty, wantAvailAf: "0"},
		{name: "zero estimate with credit", credit: "5.00", estimate: "0", wantAdmit: true, wantHeld: "0", wantAvailAf: "5.00"},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				id := "acct-" + billing.NewID("")[:8]
				e.account(t, id)
				if tc.credit != "" {
					e.topUp(t, id, tc.credit)
				}
				if tc.spent != "" {
					e.settle(t, id, "spend", usd(tc.spent))
				}
				var minimum money.Micros
				if tc.minimum != "" {
					minimum = usd(tc.minimum)
				}
				r := e.reserve(t, id, "h1", usd(tc.estimate), minimum)
				if r.Admitted != tc.wantAdmit || r.Reason != tc.wantReason {
					t.Fatalf("admitted=%v reason=%q, want %v %q", r.Admitted, r.Reason, tc.wantAdmit, tc.wantReason)
				}
				if tc.wantAdmit && r.Held != usd(tc.wantHeld) {
					t.Fatalf("held %s, want %s", r.Held, tc.wantHeld)
				}
				if want := parseSigned(tc.wantAvailAf); r.Available != want {
					t.Fatalf("available %s, want %s", r.Available, want)
				}
				a := e.get(t, id)
				if tc.wantAdmit && a.Reserved != r.Held || !tc.wantAdmit && a.Reserved != 0 {
					t.Fatalf("reserved %s after admit=%v held %s", a.Reserved, r.Admitted, r.Held)
				}
			})
		}
	})
}

func parseSigned(s string) money.Micros {
	if s != "" && s[0] == '-' {
		return -usd(s[1:])
	}
	return usd(s)
}

func TestEarliestExpiryFirst(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		late, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "g-late", Amount: usd("10.00")})
		if err != nil {
			t.Fatal(err)
		}
		early, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "g-early", Amount: usd("5.00"), ExpiresAt: e.clock.Now().Add(30 * 24 * time.Hour), Source: billing.SourcePromo})
		if err != nil {
			t.Fatal(err)
		}
		e.reserve(t, "a", "h1", usd("7.00"), 0)
		s := e.settle(t, "a", "h1", usd("7.00"))
		if s.FromCredit != usd("7.00") || s.ToDebt != 0 || s.BalanceAfter != usd("8.00") {
			t.Fatalf("settlement %+v", s)
		}
		a := e.get(t, "a")
		got := map[string]money.Micros{}
		for _, g := range a.Grants {
			got[g.ID] = g.Remaining
		}
		if got[early.Grant.ID] != 0 || got[late.Grant.ID] != usd("8.00") {
			t.Fatalf("remaining %v: the earlier-expiring grant must be consumed first", got)
		}
		if a.Grants[0].ID != late.Grant.ID {
			t.Fatalf("live grants first: %+v", a.Grants)
		}
		checkConservation(t, e, "a")
	})
}

func TestExpiryForfeitsCredit(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "promo", Amount: usd("5.00"), ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		e.reserve(t, "a", "h1", usd("1.25"), 0)
		e.settle(t, "a", "h1", usd("1.25"))

		e.clock.Advance(time.Hour) // expires_at is exclusive: at that instant the credit is gone
		r := e.reserve(t, "a", "h2", usd("0.01"), 0)
		if r.Admitted || r.Reason != billing.ReasonExpired {
			t.Fatalf("after expiry: %+v, want denied as expired", r)
		}
		a := checkConservation(t, e, "a")
		if a.Credit != 0 || a.Totals.Expired != usd("3.75") || a.Depleted != "expired" {
			t.Fatalf("after expiry: %+v", a)
		}
		evs := e.events(t, "a")
		last := evs[len(evs)-1]
		if last.Type != billing.EventExpire || last.Amount != usd("3.75") || last.GrantID != "promo" || last.BalanceAfter != 0 {
			t.Fatalf("expire event %+v", last)
		}
		// Only one expire event however often the account is touched.
		e.get(t, "a")
		e.reserve(t, "a", "h3", usd("0.01"), 0)
		if n := len(e.events(t, "a")); n != len(evs) {
			t.Fatalf("touching the account again added events: %d → %d", len(evs), n)
		}
		// A new purchase admits again.
		e.topUp(t, "a", "5.00")
		if r := e.reserve(t, "a", "h4", usd("0.01"), 0); !r.Admitted {
			t.Fatalf("after a new top-up: %+v", r)
		}
	})
}

func TestDebtAndRepayment(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "5.00")
		e.reserve(t, "a", "h1", usd("5.40"), 0)
		s := e.settle(t, "a", "h1", usd("5.30"))
		if s.FromCredit != usd("5.00") || s.ToDebt != usd("0.30") || s.BalanceAfter != -usd("0.30") {
			t.Fatalf("settlement %+v", s)
		}
		a := e.get(t, "a")
		if a.Credit != 0 || a.Debt != usd("0.30") || a.Reserved != 0 {
			t.Fatalf("account %+v", a)
		}
		r := e.topUp(t, "a", "10.00")
		if r.DebtRepaid != usd("0.30") || r.Grant.Remaining != usd("9.70") || r.BalanceAfter != usd("9.70") {
			t.Fatalf("top-up %+v", r)
		}
		a = checkConservation(t, e, "a")
		if a.Debt != 0 || a.Credit != usd("9.70") {
			t.Fatalf("after repayment %+v", a)
		}
		evs := e.events(t, "a")
		var types []billing.EventType
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		want := []billing.EventType{billing.EventTopUp, billing.EventUsage, billing.EventTopUp, billing.EventDebtRepaid}
		if len(types) != len(want) {
			t.Fatalf("events %v, want %v", types, want)
		}
		for i := range want {
			if types[i] != want[i] {
				t.Fatalf("events %v, want %v", types, want)
			}
		}
		if evs[3].Amount != usd("0.30") || evs[3].BalanceAfter != usd("9.70") {
			t.Fatalf("debt_repaid event %+v", evs[3])
		}
	})
}

func TestTopUpRules(t *testing.T) {
	tests := []struct {
		name    string
		tier    string
		before  []string
		amount  string
		expires time.Duration // 0 = default
		wantErr error
	}{
		{name: "minimum purchase", amount: "5.00"},
		{name: "below minimum", amount: "4.99", wantErr: billing.ErrBelowMinimum},
		{name: "at tier max", amount: "100.00"},
		{name: "above tier max", amount: "100.01", wantErr: billing.ErrAboveMaxTopUp},
		{name: "balance limit reached", tier: "small", before: []string{"50.00"}, amount: "10.00"},
		{name: "balance limit exceeded", tier: "small", before: []string{"50.00"}, amount: "10.01", wantErr: billing.ErrAboveMaxBalance},
		{name: "no limits tier", tier: "free", amount: "5000.00"},
		{name: "expiry in the past", amount: "5.00", expires: -time.Second, wantErr: billing.ErrInvalid},
		{name: "unconfigured tier", tier: "gold", amount: "5.00", wantErr: billing.ErrUnknownTier},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				id := "t-" + billing.NewID("")[:8]
				tier := tc.tier
				if tier == "" {
					tier = "tier-1"
				}
				if _, err := e.CreateAccount(e.ctx, id, tier); err != nil {
					t.Fatal(err)
				}
				for _, b := range tc.before {
					e.topUp(t, id, b)
				}
				req := billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: usd(tc.amount)}
				if tc.expires != 0 {
					req.ExpiresAt = e.clock.Now().Add(tc.expires)
				}
				before := e.get(t, id)
				r, err := e.TopUp(e.ctx, testPolicy, req)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				after := checkConservation(t, e, id)
				if err != nil {
					if after.Credit != before.Credit || len(after.Grants) != len(before.Grants) {
						t.Fatalf("a refused top-up changed the account: %+v → %+v", before, after)
					}
					return
				}
				if r.Grant.Amount != usd(tc.amount) || after.Credit != before.Credit+usd(tc.amount) {
					t.Fatalf("result %+v, credit %s → %s", r, before.Credit, after.Credit)
				}
				if want := e.clock.Now().Add(testPolicy.CreditTTL).UTC().Truncate(time.Millisecond); tc.expires == 0 && !r.Grant.ExpiresAt.Equal(want) {
					t.Fatalf("expires %v, want credit_ttl later %v", r.Grant.ExpiresAt, want)
				}
			})
		}
	})
}

func TestTopUpLimitErrorNamesTheNumbers(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		_, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "a", GrantID: "g", Amount: usd("4.00")})
		var le *billing.LimitError
		if !errors.As(err, &le) || le.Limit != usd("5.00") || le.Amount != usd("4.00") {
			t.Fatalf("err = %#v", err)
		}
		if got, want := err.Error(), "amount 4.000000 is below the minimum purchase of 5.000000"; got != want {
			t.Fatalf("message %q, want %q", got, want)
		}
	})
}

func TestTopUpIdempotency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a")
		req := billing.TopUpRequest{Account: "a", GrantID: "grant-k1", Amount: usd("25.00"), IdempotencyKey: "k1", Fingerprint: "fp-25"}
		first, err := e.TopUp(e.ctx, testPolicy, req)
		if err != nil || first.Replayed {
			t.Fatalf("first: %+v %v", first, err)
		}
		e.reserve(t, "a", "h", usd("1.00"), 0)
		e.settle(t, "a", "h", usd("1.00"))

		again, err := e.TopUp(e.ctx, testPolicy, req)
		if err != nil || !again.Replayed {
			t.Fatalf("replay: %+v %v", again, err)
		}
		again.Replayed = false
		if again != first { // the original answer, although the grant was spent since
			t.Fatalf("replay %+v differs from the original %+v", again, first)
		}
		changed := req
		changed.Amount, changed.Fingerprint = usd("30.00"), "fp-30"
		if _, err := e.TopUp(e.ctx, testPolicy, changed); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("changed body: %v, want conflict", err)
		}
		// Past the key's retention its record is gone, but the grant it named is
		// not: the same request is still the original, another one still a conflict.
		if err := e.redis.Client.Del(e.ctx, e.redis.Prefix+"{acct:a}:idem:k1").Err(); err != nil {
			t.Fatal(err)
		}
		if late, err := e.TopUp(e.ctx, testPolicy, req); err != nil || !late.Replayed || late.Grant != first.Grant || late.EventID != first.EventID {
			t.Fatalf("same request after the record expired: %+v %v, want the original %+v", late, err, first)
		}
		if _, err := e.TopUp(e.ctx, testPolicy, changed); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("changed amount after the record expired: %v, want conflict", err)
		}
		promo := req
		promo.ExpiresAt, promo.Fingerprint = e.clock.Now().Add(48*time.Hour), "fp-25-promo"
		if _, err := e.TopUp(e.ctx, testPolicy, promo); !errors.Is(err, billing.ErrIdempotencyConflict) {
			t.Fatalf("changed expiry after the record expired: %v, want conflict", err)
		}
		// A retried script without Idempotency-Key is deduplicated by grant id.
		plain := billing.TopUpRequest{Account: "a", GrantID: "grant-plain", Amount: usd("5.00")}
		for i := 0; i < 3; i++ {
			if _, err := e.TopUp(e.ctx, testPolicy, plain); err != nil {
				t.Fatal(err)
			}
		}
		a := checkConservation(t, e, "a")
		if a.Totals.Granted != usd("30.00") || a.Credit != usd("29.00") {
			t.Fatalf("granted %s credit %s: retries must not credit twice", a.Totals.Granted, a.Credit)
		}
	})
}

func TestHoldIdempotency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "10.00")
		r1 := e.reserve(t, "a", "h1", usd("2.00"), 0)
		r2 := e.reserve(t, "a", "h1", usd("2.00"), 0)
		if !r1.Admitted || !r2.Admitted || r2.Held != r1.Held || e.get(t, "a").Reserved != usd("2.00") {
			t.Fatalf("a retried reserve must hold once: %+v %+v reserved %s", r1, r2, e.get(t, "a").Reserved)
		}
		s1 := e.settle(t, "a", "h1", usd("1.50"))
		s2 := e.settle(t, "a", "h1", usd("1.50"))
		if s1.Replayed || !s2.Replayed || s2.EventID != s1.EventID || s2.BalanceAfter != s1.BalanceAfter || s2.Cost != s1.Cost {
			t.Fatalf("settle twice: %+v then %+v", s1, s2)
		}
		rel, err := e.Release(e.ctx, "a", "h1", billing.Usage{})
		if err != nil || !rel.Replayed || rel.EventID != s1.EventID {
			t.Fatalf("release after settle: %+v %v", rel, err)
		}
		if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "a", HoldID: "h1", Estimate: usd("1"), Grace: 0, TTL: time.Minute}); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("reserve of a settled hold id: %v", err)
		}
		e.reserve(t, "a", "h2", usd("3.00"), 0)
		for i := 0; i < 2; i++ {
			if _, err := e.Release(e.ctx, "a", "h2", billing.Usage{RequestID: "h2"}); err != nil {
				t.Fatal(err)
			}
		}
		a := checkConservation(t, e, "a")
		if a.Credit != usd("8.50") || a.Reserved != 0 || a.Totals.Usage != usd("1.50") {
			t.Fatalf("account %+v", a)
		}
		var usage, release int
		for _, ev := range e.events(t, "a") {
			switch ev.Type {
			case billing.EventUsage:
				usage++
			case billing.EventRelease:
				release++
				if ev.Amount != usd("3.00") || ev.HoldID != "h2" {
					t.Fatalf("release event %+v", ev)
				}
			}
		}
		if usage != 1 || release != 1 {
			t.Fatalf("%d usage and %d release events, want one each", usage, release)
		}
	})
}

func TestHoldTTL(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "5.00")
		e.reserve(t, "a", "crashed", usd("4.00"), 0)
		if r := e.reserve(t, "a", "other", usd("1.60"), 0); r.Admitted {
			t.Fatalf("4.00 held of 5.00 (+0.50 grace) must not admit 1.60 more: %+v", r)
		}
		e.clock.Advance(testPolicy.HoldTTL)
		a := e.get(t, "a")
		if a.Reserved != 0 {
			t.Fatalf("an expired hold still counts: reserved %s", a.Reserved)
		}
		if r := e.reserve(t, "a", "later", usd("1.60"), 0); !r.Admitted {
			t.Fatalf("after the hold expired: %+v", r)
		}
		// The late settle of an expired hold still charges (the request was served)
		// and does not release anything twice.
		s := e.settle(t, "a", "crashed", usd("0.40"))
		a = checkConservation(t, e, "a")
		if s.FromCredit != usd("0.40") || a.Reserved != usd("1.60") || a.Credit != usd("4.60") {
			t.Fatalf("settlement %+v, account %+v", s, a)
		}
	})
}

func TestUsageEventFields(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "5.00")
		e.reserve(t, "a", "req_1", usd("0.10"), 0)
		u := billing.Usage{RequestID: "req_1", KeyID: "key_9", Model: "gpt-4o", Endpoint: "/v1/chat/completions",
			PromptTokens: 1200, CompletionTokens: 300, CachedTokens: 1024, ReasoningTokens: 64, TokenSource: billing.TokenSourceLocal, Note: "stream abandoned"}
		if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "a", HoldID: "req_1", Cost: 4321, Usage: u}); err != nil {
			t.Fatal(err)
		}
		evs := e.events(t, "a")
		ev := evs[len(evs)-1]
		got := billing.Usage{RequestID: ev.RequestID, KeyID: ev.KeyID, Model: ev.Model, Endpoint: ev.Endpoint, PromptTokens: ev.PromptTokens,
			CompletionTokens: ev.CompletionTokens, CachedTokens: ev.CachedTokens, ReasoningTokens: ev.ReasoningTokens, TokenSource: ev.TokenSource, Note: ev.Note}
		if got != u || ev.Cost != 4321 || ev.Amount != 4321 || ev.HoldID != "req_1" || ev.Type != billing.EventUsage {
			t.Fatalf("event %+v", ev)
		}
		if ev.At != e.clock.Now().Truncate(time.Millisecond) || ev.BalanceAfter != usd("5.00")-4321 {
			t.Fatalf("event at %v balance %s", ev.At, ev.BalanceAfter)
		}
	})
}

// The excess an upstream claimed beyond the billed cost is kept on the usage event;
// it moves no money, so the audit stays clean, and events without it read as zero.
func TestUsageEventExcess(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "5.00")
		for _, c := range []struct {
			hold   string
			excess money.Micros
			tokens int64
		}{{"req_lying", 987654, 4984}, {"req_honest", 0, 0}} {
			e.reserve(t, "a", c.hold, usd("0.10"), 0)
			u := billing.Usage{RequestID: c.hold, Model: "gpt-4o", PromptTokens: 30, CompletionTokens: 16,
				TokenSource: billing.TokenSourceUpstream, Excess: c.excess, ExcessTokens: c.tokens}
			if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "a", HoldID: c.hold, Cost: 1234, Usage: u}); err != nil {
				t.Fatal(err)
			}
			evs := e.events(t, "a")
			ev := evs[len(evs)-1]
			if ev.Excess != c.excess || ev.ExcessTokens != c.tokens || ev.Cost != 1234 || ev.Amount != 1234 {
				t.Fatalf("%s: event %+v, want excess %s and %d tokens on a cost of 0.001234", c.hold, ev, c.excess, c.tokens)
			}
		}
		a := checkConservation(t, e, "a")
		if a.Totals.Usage != 2*1234 {
			t.Fatalf("usage total %s: the excess must not be charged", a.Totals.Usage)
		}
		if r := audit(t, e, "a"); !r.OK() {
			t.Fatalf("audit: %+v", r.Problems)
		}
	})
}

func TestLedgerPagination(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "a", "50.00")
		for i := 0; i < 9; i++ {
			h := "h" + string(rune('a'+i))
			e.reserve(t, "a", h, usd("0.01"), 0)
			e.settle(t, "a", h, usd("0.01"))
		}
		var ids []string
		after := ""
		for pages := 0; ; pages++ {
			p, err := e.Events(e.ctx, "a", after, 4)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range p.Events {
				ids = append(ids, ev.ID)
			}
			if p.Next == "" {
				if pages != 2 {
					t.Fatalf("10 events in pages of 4 took %d pages", pages+1)
				}
				break
			}
			after = p.Next
		}
		if len(ids) != 10 {
			t.Fatalf("%d events, want 10", len(ids))
		}
		for i := 1; i < len(ids); i++ {
			a, _ := nextStreamID(ids[i-1])
			if ids[i] < a && len(ids[i]) == len(a) {
				t.Fatalf("ids not increasing: %v", ids)
			}
		}
		if _, err := e.Events(e.ctx, "a", "not-a-cursor", 4); !errors.Is(err, billing.ErrInvalid) {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}

func TestAccounts(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		if _, err := e.CreateAccount(e.ctx, "acme", "tier-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateAccount(e.ctx, "acme", "tier-1"); !errors.Is(err, billing.ErrAccountExists) {
			t.Fatalf("duplicate: %v", err)
		}
		for _, bad := range []string{"", "{x}", "a:b", "a b", "-lead", string(make([]byte, 65))} {
			if _, err := e.CreateAccount(e.ctx, bad, "tier-1"); !errors.Is(err, billing.ErrInvalid) {
				t.Fatalf("id %q: %v", bad, err)
			}
		}
		if _, err := e.GetAccount(e.ctx, "nobody"); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "nobody", HoldID: "h", Estimate: 1, TTL: time.Minute}); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("reserve unknown: %v", err)
		}
		e.account(t, "beta", "5.00")
		list, err := e.ListAccounts(e.ctx)
		if err != nil || len(list) != 2 || list[0].ID != "acme" || list[1].ID != "beta" || list[1].Credit != usd("5.00") {
			t.Fatalf("list %+v %v", list, err)
		}
		ar := billing.AutoRecharge{Enabled: true, Threshold: usd("2.00"), Amount: usd("10.00"), MonthlyLimit: usd("50.00")}
		if err := e.SetAutoRecharge(e.ctx, "beta", ar); err != nil {
			t.Fatal(err)
		}
		if err := e.SetTier(e.ctx, "beta", "small"); err != nil {
			t.Fatal(err)
		}
		b := e.get(t, "beta")
		if b.AutoRecharge != ar || b.Tier != "small" {
			t.Fatalf("settings %+v", b)
		}
		if err := e.SetTier(e.ctx, "nobody", "small"); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("set tier unknown: %v", err)
		}
	})
}
