package redisstore

import (
	"fmt"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// An argList's arguments reach the script as the values given, whichever way
// each was passed (a pointer into its arrays, a boxed value past their room or
// for a byte-sized integer, a constant), and a call's keys as its keys, on both
// stores.
func TestArgListArgumentsReachTheScript(t *testing.T) {
	echo := makeScript("echo.lua", "local out = {}\n"+
		"for i, k in ipairs(KEYS) do out[#out + 1] = 'K' .. k end\n"+
		"for i, a in ipairs(ARGV) do out[#out + 1] = a end\n"+
		"return out\n")
	eachStore(t, func(t *testing.T, e *env) {
		keys := e.holdKeys("acme", "hold-1", "outbox")
		for _, tc := range []struct {
			name  string
			build func(a *argList)
			want  []string
		}{
			{"strings and integers", func(a *argList) {
				a.str("hold-1")
				a.num(0)
				a.num(255)
				a.num(256)
				a.num(-1)
				a.num(1 << 52)
				a.str("")
				a.flag(true)
				a.flag(false)
				a.str("const")
				a.str("")
			}, []string{"hold-1", "0", "255", "256", "-1", "4503599627370496", "", "1", "0", "const", ""}},
			{"fields, empty ones skipped", func(a *argList) {
				a.field("model", "gpt-4o-mini")
				a.field("note", "")
				a.numField("prompt_tokens", 1007)
			}, []string{"model", "gpt-4o-mini", "prompt_tokens", "1007"}},
			{"past the arrays' room", func(a *argList) {
				for i := range argRoom + 5 {
					a.str(fmt.Sprintf("s%d", i))
					a.num(int64(1000 + i))
				}
			}, func() (w []string) {
				for i := range argRoom + 5 {
					w = append(w, fmt.Sprintf("s%d", i), fmt.Sprint(1000+i))
				}
				return w
			}()},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := newArgList(echo, keys)
				tc.build(a)
				r, err := e.runArgs(e.ctx, echo, a)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, k := range keys {
					want = append(want, "K"+k)
				}
				want = append(want, tc.want...)
				got := make([]string, len(r.v))
				for i, v := range r.v {
					got[i] = fmt.Sprint(v)
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("the script saw\n%q\nwant\n%q", got, want)
				}
			})
		}
	})
}

// The request path's ledger calls allocate little: the client side of a reserve
// and its settle against a real Redis is pinned, so a change that boxes each
// argument again shows here (149 allocations with the tests' slot guard before
// args.go, 62 after).
func TestReserveSettleAllocations(t *testing.T) {
	e, _ := countingEnv(t, testredis.New(t))
	if e.redis.Kind == testredis.KindMemory {
		t.Skip("the embedded store's allocations are its own; this counts the client's against a real Redis")
	}
	e.account(t, "acme", "100.00")
	n := 0
	one := func() {
		n++
		hold := fmt.Sprintf("hold-%d", n)
		res, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: 10_000, Minimum: 200, Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL})
		if err != nil || !res.Admitted {
			t.Fatalf("reserve: %+v %v", res, err)
		}
		if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: 160,
			Usage: billing.Usage{RequestID: hold, KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
				PromptTokens: 1000, CompletionTokens: 16, TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatalf("settle: %v", err)
		}
	}
	one()
	if got := testing.AllocsPerRun(50, one); got > 80 {
		t.Errorf("a reserve and its settle allocate %.0f times, want at most 80", got)
	}
}
