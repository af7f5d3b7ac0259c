package config

import "github.com/creditgate/creditgate/money"

// BuiltinTiers is the default billing.tiers table: OpenAI's usage tiers 1 to 5,
// so that an account moves up as an OpenAI organization does.
//
// Source: OpenAI's API guide "Rate limits", section "Usage tiers"
// (platform.openai.com/docs/guides/rate-limits#usage-tiers, now
// developers.openai.com/api/docs/guides/rate-limits), looked up on 2026-12-02.
//
//   - qualify and monthly_usage_limit are the guide's table: tier 1 "$5 paid",
//     $100 a month; tier 2 "$50 paid and 7+ days since first successful
//     payment", $500; tier 3 $100 and 7+ days, $1,000; tier 4 $250 and 14+
//     days, $5,000; tier 5 $1,000 and 30+ days, $200,000 a month.
//   - rpm and tpm: OpenAI publishes them per model, not per organization; these
//     are its figures for gpt-5 (tier 1: 500 RPM, 500,000 TPM; tier 2: 5,000,
//     1M; tier 3: 5,000, 2M; tier 4: 10,000, 4M; tier 5: 15,000, 40M), the
//     current flagship's, as of OpenAI's rate-limit increase of September 2025.
//   - max_topup and max_balance: OpenAI publishes no per-tier maximum balance.
//     creditgate's rule is a tier's monthly usage limit as its largest top-up
//     and ten times it as its largest balance (tier 1 keeps the $100 / $1,000
//     it always had).
//
// OpenAI's Free tier has no counterpart: every creditgate account is prepaid.
func BuiltinTiers() map[string]Tier {
	tier := func(paid, days, monthly, rpm, tpm int64) Tier {
		limit := money.Micros(monthly) * money.Dollar
		return Tier{
			MaxTopUp: limit, MaxBalance: 10 * limit, RPM: rpm, TPM: tpm, MonthlyUsageLimit: limit,
			Qualify: &Qualify{Paid: money.Micros(paid) * money.Dollar, Days: days},
		}
	}
	return map[string]Tier{
		"tier-1": tier(5, 0, 100, 500, 500_000),
		"tier-2": tier(50, 7, 500, 5_000, 1_000_000),
		"tier-3": tier(100, 7, 1_000, 5_000, 2_000_000),
		"tier-4": tier(250, 14, 5_000, 10_000, 4_000_000),
		"tier-5": tier(1_000, 30, 200_000, 15_000, 40_000_000),
	}
}
