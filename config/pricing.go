package config

import (
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// defaultModels is the built-in price table: OpenAI's public list prices (standard
// tier, USD per 1M tokens) and documented maximum output tokens. It is the
// default of pricing.models and the table of the embedded demo;
// config.example.yaml spells out the same table, and a test keeps the two equal.
func defaultModels() map[string]ModelPrice {
	chat := func(input, cached, output string, maxOut int64, enc string) ModelPrice {
		mp := ModelPrice{Input: usd(input), Output: usd(output), MaxOutputTokens: maxOut, Encoding: enc}
		if cached != "" {
			mp.CachedInput = usd(cached)
		}
		return mp
	}
	return map[string]ModelPrice{
		"gpt-4o":                 chat("2.50", "1.25", "10.00", 16384, "o200k_base"),
		"gpt-4o-mini":            chat("0.15", "0.075", "0.60", 16384, "o200k_base"),
		"gpt-4.1":                chat("2.00", "0.50", "8.00", 32768, "o200k_base"),
		"gpt-4.1-mini":           chat("0.40", "0.10", "1.60", 32768, "o200k_base"),
		"o3-mini":                chat("1.10", "0.55", "4.40", 100000, "o200k_base"),
		"o4-mini":                chat("1.10", "0.275", "4.40", 100000, "o200k_base"),
		"gpt-5":                  chat("1.25", "0.125", "10.00", 128000, "o200k_base"),
		"gpt-5-mini":             chat("0.25", "0.025", "2.00", 128000, "o200k_base"),
		"gpt-3.5-turbo":          chat("0.50", "", "1.50", 4096, "cl100k_base"),
		"gpt-4":                  chat("30.00", "", "60.00", 8192, "cl100k_base"),
		"text-embedding-3-small": {Input: usd("0.02"), Encoding: "cl100k_base"},
		"text-embedding-3-large": {Input: usd("0.13"), Encoding: "cl100k_base"},
	}
}

// usd parses a constant of the default table; TestDefault covers every one.
func usd(s string) *money.Micros {
	m := money.MustParse(s)
	return &m
}

// DefaultPricingModels returns the built-in price table (the default of
// pricing.models), with every class filled in, for the embedded demo.
func DefaultPricingModels() map[string]metering.Price {
	models := defaultModels()
	out := make(map[string]metering.Price, len(models))
	for name, mp := range models {
		out[name] = mp.Price()
	}
	return out
}

// Price converts mp to a metering.Price, filling each unset class from its
// parent class (cached and audio input from input; reasoning and audio output
// from output). An unset Input or Output is zero.
func (mp ModelPrice) Price() metering.Price {
	in, out := orZero(mp.Input), orZero(mp.Output)
	return metering.Price{
		Input:           in,
		CachedInput:     orDefault(mp.CachedInput, in),
		AudioInput:      orDefault(mp.AudioInput, in),
		Output:          out,
		Reasoning:       orDefault(mp.Reasoning, out),
		AudioOutput:     orDefault(mp.AudioOutput, out),
		MaxOutputTokens: mp.MaxOutputTokens,
		Encoding:        mp.Encoding,
	}
}

func orZero(m *money.Micros) money.Micros { return orDefault(m, 0) }

func orDefault(m *money.Micros, def money.Micros) money.Micros {
	if m == nil {
		return def
	}
	return *m
}

// build turns the pricing section into the metering table.
func (p Prices) build() (*metering.Pricing, error) {
	models := make(map[string]metering.Price, len(p.Models))
	for name, mp := range p.Models {
		models[name] = mp.Price()
	}
	var fallback *metering.Price
	if p.Default != nil {
		pr := p.Default.Price()
		fallback = &pr
	}
	return metering.NewPricing(models, p.Aliases, fallback)
}

// Pricing returns the price table. Validate builds it, so it is never nil on a
// Config that Load, LoadBytes or Validate accepted; on an unvalidated Config it
// is built on the fly and nil if the pricing section is inconsistent.
func (c *Config) Pricing() *metering.Pricing {
	if c.pricing != nil {
		return c.pricing
	}
	p, err := c.Prices.build()
	if err != nil {
		return nil
	}
	return p
}

// Policy returns the ledger rules of c.
func (c *Config) Policy() billing.Policy {
	tiers := make(map[string]billing.Tier, len(c.Billing.Tiers))
	for name, t := range c.Billing.Tiers {
		tiers[name] = billing.Tier{MaxTopUp: t.MaxTopUp, MaxBalance: t.MaxBalance}
	}
	return billing.Policy{
		Grace:           c.Billing.Grace,
		MinPurchase:     c.Billing.MinPurchase,
		CreditTTL:       c.Billing.CreditTTL,
		HoldTTL:         c.Billing.HoldTTL,
		DefaultTier:     c.Billing.DefaultTier,
		Tiers:           tiers,
		AutoRechargeMin: c.Billing.AutoRecharge.MinAmount,
	}
}

// Tokens returns a copy of the admin tokens.
func (c *Config) Tokens() []string {
	return append([]string(nil), c.Admin.Tokens...)
}
