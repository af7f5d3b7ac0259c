package redisstore

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// rateTiers are the tiers of the rate-limit tests: "tier-1" (the accounts'
// tier) is set per case.
func rateTiers(rpm, tpm int64) map[string]billing.Tier {
	return map[string]billing.Tier{"tier-1": {RPM: rpm, TPM: tpm}, "other": {RPM: 1, TPM: 1}, "free": {}}
}

// rateStep is one call of a rate-limit case: after advancing the clock, a
// request of tokens with key key (limits rpm and tpm), and what it must answer.
type rateStep struct {
	advance        time.Duration
	key            string
	keyRPM, keyTPM int64
	tokens         int64
	want           billing.RateLimitResult
}

func admitted(req, tok billing.RateWindow) billing.RateLimitResult {
	return billing.RateLimitResult{Admitted: true, Requests: req, Tokens: tok}
}

func win(limit, remaining int64, reset time.Duration) billing.RateWindow {
	return billing.RateWindow{Limit: limit, Remaining: remaining, Reset: reset}
}

func limited(typ, scope string, limit, used, requested int64, retry time.Duration, req, tok billing.RateWindow) billing.RateLimitResult {
	return billing.RateLimitResult{Type: typ, Scope: scope, Limit: limit, Used: used, Requested: requested, RetryAfter: retry,
		TooLarge: retry == 0, Requests: req, Tokens: tok}
}

var none billing.RateWindow

// TestRateLimitScript runs ratelimit.lua through cases with a fake clock: the
// boundaries of each type (the request that just fits, the one that does not, the
// millisecond it fits again), a key lower than its tier, one higher, no limit.
func TestRateLimitScript(t *testing.T) {
	const s = time.Second
	const ms = time.Millisecond
	req, tok := billing.RateLimitRequests, billing.RateLimitTokens
	acct, key := billing.RateScopeAccount, billing.RateScopeKey
	cases := []struct {
		name     string
		rpm, tpm int64
		steps    []rateStep
	}{
		{name: "no limit", steps: []rateStep{
			{key: "k1", tokens: 1e6, want: admitted(none, none)},
			{key: "k1", tokens: 1e6, want: admitted(none, none)},
		}},
		{name: "rpm boundaries", rpm: 3, steps: []rateStep{
			{key: "k1", tokens: 10, want: admitted(win(3, 2, 20*s), none)},
			{key: "k1", tokens: 10, want: admitted(win(3, 1, 40*s), none)},
			{key: "k2", tokens: 10, want: admitted(win(3, 0, 60*s), none)},
			{key: "k1", tokens: 10, want: limited(req, acct, 3, 3, 1, 20*s, win(3, 0, 60*s), none)},
			{advance: 20*s - ms, key: "k1", want: limited(req, acct, 3, 3, 1, ms, win(3, 0, 40*s+ms), none)},
			{advance: ms, key: "k1", want: admitted(win(3, 0, 60*s), none)},
			{advance: time.Hour, key: "k1", want: admitted(win(3, 2, 20*s), none)},
		}},
		{name: "tpm boundaries", tpm: 1000, steps: []rateStep{
			{key: "k1", tokens: 600, want: admitted(none, win(1000, 400, 36*s))},
			{key: "k1", tokens: 400, want: admitted(none, win(1000, 0, 60*s))},
			{key: "k1", tokens: 1, want: limited(tok, acct, 1000, 1000, 1, 60*ms, none, win(1000, 0, 60*s))},
			{advance: 6 * s, key: "k1", tokens: 100, want: admitted(none, win(1000, 0, 60*s))},
			{key: "k1", tokens: 1001, want: limited(tok, acct, 1000, 1000, 1001, 0, none, win(1000, 0, 60*s))},
			{advance: 30 * s, key: "k1", tokens: 0, want: admitted(none, win(1000, 500, 30*s))},
		}},
		{name: "both types: the refusal waits for the later one", rpm: 2, tpm: 100, steps: []rateStep{
			{key: "k1", tokens: 90, want: admitted(win(2, 1, 30*s), win(100, 10, 54*s))},
			{key: "k1", tokens: 20, want: limited(tok, acct, 100, 90, 20, 6*s, win(2, 1, 30*s), win(100, 10, 54*s))},
			// Refused requests count nothing: the next one still finds one request left.
			{key: "k1", tokens: 10, want: admitted(win(2, 0, 60*s), win(100, 0, 60*s))},
			{key: "k1", tokens: 10, want: limited(req, acct, 2, 2, 1, 30*s, win(2, 0, 60*s), win(100, 0, 60*s))},
		}},
		{name: "key lower than its tier", rpm: 10, steps: []rateStep{
			{key: "k1", keyRPM: 2, want: admitted(win(2, 1, 30*s), none)},
			{key: "k1", keyRPM: 2, want: admitted(win(2, 0, 60*s), none)},
			{key: "k1", keyRPM: 2, want: limited(req, key, 2, 2, 1, 30*s, win(2, 0, 60*s), none)},
			// Another key of the account: the account's limit, which counted k1's two.
			{key: "k2", want: admitted(win(10, 7, 18*s), none)},
		}},
		{name: "key higher than its tier", rpm: 2, steps: []rateStep{
			{key: "k1", keyRPM: 100, want: admitted(win(2, 1, 30*s), none)},
			{key: "k1", keyRPM: 100, want: admitted(win(2, 0, 60*s), none)},
			{key: "k1", keyRPM: 100, want: limited(req, acct, 2, 2, 1, 30*s, win(2, 0, 60*s), none)},
		}},
		{name: "key limit, no tier limit", steps: []rateStep{
			{key: "k1", keyTPM: 50, tokens: 50, want: admitted(none, win(50, 0, 60*s))},
			{key: "k1", keyTPM: 50, tokens: 1, want: limited(tok, key, 50, 50, 1, 1200*ms, none, win(50, 0, 60*s))},
			{key: "k2", tokens: 1, want: admitted(none, none)},
		}},
	}
	eachStore(t, func(t *testing.T, e *env) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := "rl-" + billing.NewID("")
				e.account(t, id)
				for i, st := range c.steps {
					e.clock.Advance(st.advance)
					got, err := e.RateLimit(e.ctx, billing.RateLimitRequest{Account: id, KeyID: st.key, KeyRPM: st.keyRPM, KeyTPM: st.keyTPM,
						Tokens: st.tokens, Tiers: rateTiers(c.rpm, c.tpm)})
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if got != st.want {
						t.Fatalf("step %d:\n got %+v\nwant %+v", i, got, st.want)
					}
				}
			})
		}
	})
}

// TestRateLimitFollowsTheStore: the tier is the account's as the store has it
// (a tier change applies at the next request), a lagging clock drains nothing,
// a gone account and a malformed state are errors.
func TestRateLimitFollowsTheStore(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		tiers := map[string]billing.Tier{"tier-1": {RPM: 1}, "small": {RPM: 2}}
		call := func(now time.Time) billing.RateLimitResult {
			t.Helper()
			s, err := New(e.redis.Client, Options{Prefix: e.redis.Prefix, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.RateLimit(e.ctx, billing.RateLimitRequest{Account: "acme", KeyID: "k1", Tiers: tiers})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		t0 := e.clock.Now()
		if r := call(t0); !r.Admitted || r.Requests.Limit != 1 {
			t.Fatalf("first request %+v", r)
		}
		if r := call(t0); r.Admitted {
			t.Fatalf("second request at rpm 1 admitted: %+v", r)
		}
		// An instance whose clock is 30s behind sees the bucket as the latest clock left it.
		if r := call(t0.Add(-30 * time.Second)); r.Admitted || r.RetryAfter != time.Minute {
			t.Fatalf("lagging clock: %+v", r)
		}
		if err := e.SetTier(e.ctx, "acme", "small"); err != nil {
			t.Fatal(err)
		}
		if r := call(t0); !r.Admitted || r.Requests != win(2, 0, time.Minute) {
			t.Fatalf("after the tier change: %+v", r)
		}

		if _, err := e.RateLimit(e.ctx, billing.RateLimitRequest{Account: "nobody", KeyID: "k1", Tiers: tiers}); !errors.Is(err, billing.ErrAccountNotFound) {
			t.Fatalf("gone account: %v", err)
		}
		if err := e.redis.Client.Set(e.ctx, e.rateKey("acme"), "12 x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.RateLimit(e.ctx, billing.RateLimitRequest{Account: "acme", KeyID: "k1", Tiers: tiers}); err == nil {
			t.Fatal("a malformed state was read")
		}
		for _, bad := range []billing.RateLimitRequest{
			{Account: "acme", KeyID: "k{1}", Tiers: tiers},
			{Account: "acme", KeyID: "k1", KeyRPM: -1},
			{Account: "acme", KeyID: "k1", KeyTPM: billing.MaxRateLimit + 1},
			{Account: "acme", KeyID: "k1", Tiers: map[string]billing.Tier{"tier-1": {TPM: -5}}},
		} {
			if _, err := e.RateLimit(e.ctx, bad); !errors.Is(err, billing.ErrInvalid) {
				t.Errorf("%+v: %v, want ErrInvalid", bad, err)
			}
		}
	})
}

// The reply cases of ratelimit.lua, added to reply_test.go's table.
func init() {
	decoders["ratelimit.lua"] = func(r reply) error { _, err := decodeRateLimit(r, "acme"); return err }
	replyCases = append(replyCases,
		replyCase{script: "ratelimit.lua", valid: []any{"OK", "3", "2", "20000", "0", "0", "0"}, numeric: []int{1, 2, 3, 4, 5, 6}},
		replyCase{script: "ratelimit.lua", valid: []any{"LIMITED", "requests", "account", "3", "3", "1", "20000", "3", "0", "60000", "0", "0", "0"},
			numeric: []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		replyCase{script: "ratelimit.lua", valid: []any{"LIMITED", "tokens", "key", "50", "50", "51", "-1", "0", "0", "0", "50", "0", "60000"},
			numeric: []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		replyCase{script: "ratelimit.lua", valid: []any{"NOACCOUNT"}},
	)
	type malformed = struct {
		script string
		v      []any
	}
	ok := []any{"OK", "3", "2", "20000", "0", "0", "0"}
	lim := []any{"LIMITED", "requests", "account", "3", "3", "1", "20000", "3", "0", "60000", "0", "0", "0"}
	with := func(base []any, i int, x any) []any {
		out := append([]any(nil), base...)
		out[i] = x
		return out
	}
	for _, v := range [][]any{
		with(ok, 2, "4"),     // more remaining than the limit
		with(ok, 3, "60001"), // a reset beyond a minute
		with(ok, 1, "-1"),
		with(lim, 1, "images"), with(lim, 2, "project"),
		with(lim, 6, "0"), with(lim, 6, "-2"), // a retry of nothing, or before now
		with(lim, 3, "0"), // refused by no limit
	} {
		malformedReplies = append(malformedReplies, malformed{"ratelimit.lua", v})
	}
}

// TestKeyRateLimitsStored: a key's rpm and tpm survive its entry and its lookup
// record; entries written before keys had limits still read (no limits);
// malformed settings are errors naming the entry.
func TestKeyRateLimitsStored(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme")
		k, secret, err := e.CreateKeyWith(e.ctx, "acme", billing.KeySpec{Name: "app one", RPM: 60, TPM: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		plain, _, err := e.CreateKey(e.ctx, "acme", "plain")
		if err != nil {
			t.Fatal(err)
		}
		found, err := e.LookupKey(e.ctx, billing.HashKey(secret))
		if err != nil || found.RPM != 60 || found.TPM != 100_000 || found.Name != "app one" {
			t.Fatalf("lookup %+v, %v", found, err)
		}
		list, err := e.ListKeys(e.ctx, "acme")
		if err != nil || len(list) != 2 {
			t.Fatalf("list %+v, %v", list, err)
		}
		for _, got := range list {
			want := map[string][2]int64{k.ID: {60, 100_000}, plain.ID: {0, 0}}[got.ID]
			if got.RPM != want[0] || got.TPM != want[1] {
				t.Errorf("listed %+v, want rpm/tpm %v", got, want)
			}
		}
		for _, bad := range []billing.KeySpec{{RPM: -1}, {TPM: billing.MaxRateLimit + 1}} {
			if _, _, err := e.CreateKeyWith(e.ctx, "acme", bad); !errors.Is(err, billing.ErrInvalid) {
				t.Errorf("%+v: %v, want ErrInvalid", bad, err)
			}
		}
	})

	old, _, err := parseKeyEntry("acme", "key_1", "abcd "+msNow+" sk-…x1 my old key")
	if err != nil || old.Name != "my old key" || old.RPM != 0 || old.TPM != 0 {
		t.Fatalf("old entry: %+v, %v", old, err)
	}
	k, hash, err := parseKeyEntry("acme", "key_1", "v2 abcd "+msNow+" sk-…x1 tpm=5,rpm=3 rpm=9 name")
	if err != nil || hash != "abcd" || k.Name != "rpm=9 name" || k.RPM != 3 || k.TPM != 5 {
		t.Fatalf("v2 entry: %+v %q, %v", k, hash, err)
	}
	for _, bad := range []string{
		"v2 abcd " + msNow + " sk-…x1 -",           // no name field
		"v2 abcd " + msNow + " sk-…x1 rpm=0 n",     // 0 is not written
		"v2 abcd " + msNow + " sk-…x1 rpm=x n",     // not a number
		"v2 abcd " + msNow + " sk-…x1 quota=5 n",   // an unknown setting
		"v2 abcd " + msNow + " sk-…x1 rpm=1,, n",   // an empty one
		"v2 abcd " + msNow + " sk-…x1 tpm=-3 n",    // negative
		"v2 abcd later sk-…x1 - n",                 // a bad time
		"v2 abcd " + msNow + " sk-…x1 rpm=1e3 n",   // not decimal
		"v2 abcd " + msNow + " sk-…x1 rpm=+1000 n", // a sign
	} {
		_, _, err := parseKeyEntry("acme", "key_1", bad)
		var m *malformedError
		if !errors.As(err, &m) || !strings.Contains(err.Error(), `key entry "key_1"`) {
			t.Errorf("key entry %q: %v, want a malformed error naming it", bad, err)
		}
	}
}

// BenchmarkRateLimit: the cost the rate limits add to a request, one script run
// (an account and a key limit, the built-in five tiers passed), on real Redis
// and on the embedded store. Compare with BenchmarkReserveSettle.
//
//	go test ./billing/redisstore -run '^$' -bench RateLimit
func BenchmarkRateLimit(b *testing.B) {
	tiers := map[string]billing.Tier{}
	for i, rpm := range []int64{500, 5000, 5000, 10000, 15000} {
		tiers[fmt.Sprintf("tier-%d", i+1)] = billing.Tier{RPM: rpm * 1000, TPM: rpm * 1_000_000}
	}
	for _, kind := range []string{"redis", "miniredis"} {
		b.Run(kind, func(b *testing.B) {
			r := testredis.Memory(b)
			if kind == "redis" {
				r = testredis.New(b)
				if r.Kind == testredis.KindMemory {
					b.Skip("no real Redis reachable")
				}
			}
			e := newEnv(b, r)
			e.account(b, "acme")
			q := billing.RateLimitRequest{Account: "acme", KeyID: "key_1", KeyRPM: 1_000_000, KeyTPM: 1_000_000_000, Tokens: 1016, Tiers: tiers}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if res, err := e.RateLimit(e.ctx, q); err != nil || !res.Admitted {
					b.Fatalf("%+v %v", res, err)
				}
			}
		})
	}
}

// FuzzParseKeyEntry: any stored key entry parses or is a malformed-record error,
// never a panic; what parses is within bounds and writes back to an entry that
// parses to the same key.
func FuzzParseKeyEntry(f *testing.F) {
	for _, s := range []string{
		"abcd " + msNow + " sk-…x1 my key", "v2 abcd " + msNow + " sk-…x1 rpm=3,tpm=5 n", "v2 a 1 h - ", "v2 a 1 h rpm=,=1 n",
		"v2 abcd " + msNow + " sk-…x1 limit=20000000,reset=monthly,exp=" + msLater + ",models=gpt-4o|gpt-4o-mini,disabled=1 app",
		"v2 abcd " + msNow + " sk-…x1 models=a%7Cb|c+d|%25 n", "v2 a 1 h reset=weekly,reset=daily n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		k, hash, err := parseKeyEntry("acme", "key_1", raw)
		if err != nil {
			var m *malformedError
			if !errors.As(err, &m) {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if k.RPM < 0 || k.TPM < 0 || k.RPM > billing.MaxRateLimit || k.TPM > billing.MaxRateLimit {
			t.Fatalf("%q parsed limits %d %d", raw, k.RPM, k.TPM)
		}
		if k.Limit < 0 || k.Limit > money.MaxAmount || !billing.ValidLimitReset(k.LimitReset) || len(k.Models) > billing.MaxKeyModels {
			t.Fatalf("%q parsed settings %+v", raw, k)
		}
		if strings.Contains(hash, " ") || strings.Contains(k.Hint, " ") {
			return // cannot be written back as one field; keyEntry never writes such
		}
		again, hash2, err := parseKeyEntry("acme", "key_1", keyEntry(hash, k))
		if err != nil || hash2 != hash || !reflect.DeepEqual(again, k) {
			t.Fatalf("%q: written back as %q: %+v, %v; want %+v", raw, keyEntry(hash, k), again, err, k)
		}
	})
}
