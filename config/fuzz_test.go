package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// policyYAML renders the part of a config file that determines p.
func policyYAML(p billing.Policy) []byte {
	tiers := make(map[string]any, len(p.Tiers))
	for name, tier := range p.Tiers {
		t := map[string]any{"max_topup": tier.MaxTopUp.String(), "max_balance": tier.MaxBalance.String(),
			"rpm": tier.RPM, "tpm": tier.TPM, "monthly_usage_limit": tier.MonthlyUsageLimit.String()}
		if q := tier.Qualify; q != nil {
			t["qualify"] = map[string]any{"paid": q.Paid.String(), "days": q.Days}
		}
		tiers[name] = t
	}
	doc := map[string]any{
		"admin": map[string]any{"tokens": []string{testToken}},
		"billing": map[string]any{
			"grace":         p.Grace.String(),
			"min_purchase":  p.MinPurchase.String(),
			"credit_ttl":    p.CreditTTL.String(),
			"hold_ttl":      p.HoldTTL.String(),
			"default_tier":  p.DefaultTier,
			"tiers":         tiers,
			"auto_recharge": map[string]any{"min_amount": p.AutoRechargeMin.String()},
		},
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		panic(err) // plain maps and strings always marshal
	}
	return out
}

// checkPolicy asserts what any valid configuration's policy satisfies.
func checkPolicy(t testing.TB, p billing.Policy) {
	t.Helper()
	inRange := func(name string, m money.Micros) {
		if m < 0 || m > money.MaxAmount {
			t.Fatalf("%s = %s out of range", name, m)
		}
	}
	inRange("grace", p.Grace)
	inRange("min_purchase", p.MinPurchase)
	inRange("auto-recharge min", p.AutoRechargeMin)
	if p.CreditTTL <= 0 || p.HoldTTL <= 0 {
		t.Fatalf("non-positive TTLs: %+v", p)
	}
	if _, ok := p.TierFor(p.DefaultTier); !ok {
		t.Fatalf("default tier %q is not a tier", p.DefaultTier)
	}
	if p.AutoRechargeMin < p.MinPurchase {
		t.Fatalf("auto-recharge min %s below min purchase %s", p.AutoRechargeMin, p.MinPurchase)
	}
	for name, tier := range p.Tiers {
		inRange(name+".max_topup", tier.MaxTopUp)
		inRange(name+".max_balance", tier.MaxBalance)
		if tier.MaxTopUp != 0 && tier.MaxTopUp < p.MinPurchase {
			t.Fatalf("tier %q max_topup %s below min purchase %s", name, tier.MaxTopUp, p.MinPurchase)
		}
	}
}

func FuzzLoadBytes(f *testing.F) {
	tok := "admin: {tokens: [" + testToken + "]}\n"
	seeds := []string{
		"",
		tok,
		tok + "billing: {grace: 0.075, min_purchase: '10', credit_ttl: 30d, tiers: {a: {max_topup: 10}}, default_tier: a}\n",
		tok + "billing:\n  gracee: 1\n",
		tok + "pricing:\n  models:\n    gpt-4.1: {input: 2, outptu: 8}\n",
		tok + "pricing:\n  models:\n    b: &b {input: 1e-3}\n    c: {<<: *b, output: .5}\n",
		tok + "pricing: {models: {x: {input: '1'}}, aliases: {y: x, x: z}, default: {input: 0}}\n",
		tok + "redis: {url: 'memory://', cluster_addrs: [a:1]}\nlimits: {max_body_bytes: 1GiB}\n",
		tok + "billing: {tiers: {'': {}}, default_tier: ''}\n",
		"admin: {tokens: *x}\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nadmin: {tokens: *b}\n",
		"- 1\n- 2\n",
		"listen: [\n",
		"---\n---\n",
		"billing: !!binary aGVsbG8=\n",
		tok + "billing: {grace: 999999999.999999, min_purchase: 1000000000}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if example, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(example)
		f.Add(append([]byte(tok), example...))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := LoadBytes(data, nil)
		if err != nil {
			var ps *Problems
			if !errors.As(err, &ps) || len(*ps) == 0 {
				t.Fatalf("error %T %v, want a non-empty *Problems", err, err)
			}
			for _, p := range *ps {
				if p.Message == "" {
					t.Fatalf("problem at %q without a message", p.Key)
				}
			}
			_ = err.Error()
			return
		}
		if cfg.Pricing() == nil {
			t.Fatal("valid config without a price table")
		}
		_ = cfg.Warnings()
		if d := ReloadDiff(cfg, cfg); len(d) != 0 {
			t.Fatalf("ReloadDiff(c, c) = %v", d)
		}
		p := cfg.Policy()
		checkPolicy(t, p)

		// The policy survives being written out and read back.
		again, err := LoadBytes(policyYAML(p), nil)
		if err != nil {
			t.Fatalf("policy written back does not load: %v\n%s", err, policyYAML(p))
		}
		if got := again.Policy(); !reflect.DeepEqual(got, p) {
			t.Fatalf("policy round trip:\n got %+v\nwant %+v", got, p)
		}
	})
}

// Any amount written as a plain YAML number, with or without trailing zeros,
// or as a string, loads to exactly that many micro-USD.
func TestPropMoneyLiteralsAreExact(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := money.Micros(rapid.Int64Range(0, int64(money.MaxAmount)).Draw(rt, "micros"))
		full := m.String()
		short := strings.TrimSuffix(strings.TrimRight(full, "0"), ".")
		for _, lit := range []string{full, short, `"` + full + `"`} {
			cfg, err := LoadBytes([]byte("billing: {grace: "+lit+"}\n"), tokenEnv)
			if err != nil {
				rt.Fatalf("grace %s: %v", lit, err)
			}
			if cfg.Billing.Grace != m {
				rt.Fatalf("grace %s loaded as %d, want %d", lit, cfg.Billing.Grace, m)
			}
		}
	})
}

// A random valid policy, written as YAML, loads back identical.
func TestPropPolicyRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		amount := func(label string) money.Micros {
			return money.Micros(rapid.Int64Range(0, int64(money.MaxAmount)).Draw(rt, label))
		}
		minPurchase := money.Micros(rapid.Int64Range(0, int64(1000*money.Dollar)).Draw(rt, "min_purchase"))
		limit := func(label string) money.Micros {
			if rapid.Bool().Draw(rt, label+"_unlimited") {
				return 0
			}
			return money.Micros(rapid.Int64Range(int64(minPurchase), int64(money.MaxAmount)).Draw(rt, label))
		}
		names := rapid.SliceOfNDistinct(rapid.StringMatching(`[A-Za-z0-9._ -]{1,12}`), 1, 4, rapid.ID[string]).Draw(rt, "tiers")
		tiers := make(map[string]billing.Tier, len(names))
		rules := map[billing.Qualify]bool{}
		for _, n := range names {
			t := billing.Tier{MaxTopUp: limit("max_topup"), MaxBalance: limit("max_balance"),
				RPM: rapid.Int64Range(0, 1e9).Draw(rt, "rpm"), TPM: rapid.Int64Range(0, billing.MaxRateLimit).Draw(rt, "tpm"),
				MonthlyUsageLimit: amount("monthly_usage_limit")}
			if !strings.Contains(n, " ") && rapid.Bool().Draw(rt, "qualify") {
				q := billing.Qualify{Paid: amount("paid"), Days: rapid.IntRange(0, maxQualifyDays).Draw(rt, "days")}
				if !rules[q] {
					rules[q] = true
					t.Qualify = &q
				}
			}
			tiers[n] = t
		}
		p := billing.Policy{
			Grace:           amount("grace"),
			MinPurchase:     minPurchase,
			CreditTTL:       time.Duration(rapid.Int64Range(1, int64(100*365*24*time.Hour)).Draw(rt, "credit_ttl")),
			HoldTTL:         time.Duration(rapid.Int64Range(1, int64(24*time.Hour)).Draw(rt, "hold_ttl")),
			DefaultTier:     rapid.SampledFrom(names).Draw(rt, "default_tier"),
			Tiers:           tiers,
			AutoRechargeMin: money.Micros(rapid.Int64Range(int64(minPurchase), int64(money.MaxAmount)).Draw(rt, "auto_recharge_min")),
		}
		cfg, err := LoadBytes(policyYAML(p), nil)
		if err != nil {
			rt.Fatalf("%v\n%s", err, policyYAML(p))
		}
		if got := cfg.Policy(); !reflect.DeepEqual(got, p) {
			rt.Fatalf("got %+v\nwant %+v", got, p)
		}
	})
}

func BenchmarkLoadBytes(b *testing.B) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(example)))
	for b.Loop() {
		if _, err := LoadBytes(example, tokenEnv); err != nil {
			b.Fatal(err)
		}
	}
}
