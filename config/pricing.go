package config

import (
	"sort"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// usd parses a constant of the built-in table; TestBuiltinTable covers every one.
func usd(s string) *money.Micros {
	m := money.MustParse(s)
	return &m
}

// DefaultPricingModels returns the built-in price table, with every class
// filled in. It is a copy: changing it changes nothing for the next caller.
func DefaultPricingModels() map[string]metering.Price {
	models := builtinModels()
	out := make(map[string]metering.Price, len(models))
	for name, mp := range models {
		out[name] = mp.Price()
	}
	return out
}

// Where a row of the resolved price table comes from.
const (
	SourceBuiltin = "built-in" // the built-in table (prices_builtin.go)
	SourceConfig  = "config"   // pricing.models, pricing.aliases or pricing.default
)

// PricedModel is one row of the resolved price table (Config.PriceTable).
type PricedModel struct {
	// Name is the model name requests use ("(default)" for pricing.default).
	Name string
	// Price is what the name is billed at, every class filled in (for an alias,
	// its target's price).
	Price metering.Price
	// AliasOf is the model an alias is billed as; "" for a priced model.
	AliasOf string
	// Source is SourceBuiltin or SourceConfig.
	Source string
}

// DefaultPriceName names pricing.default in PriceTable.
const DefaultPriceName = "(default)"

// priceTable is the pricing section resolved: the built-in table (unless
// pricing.builtin is false) with the file's models and aliases merged over it.
type priceTable struct {
	models  map[string]ModelPrice
	aliases map[string]string
	// fromConfig holds the names (models and aliases) the file set.
	fromConfig map[string]bool
}

// merge resolves p over base, the built-in table. A model the file names
// replaces the built-in entry of that name whole (its unset classes fall back to
// its own input and output, never to the built-in prices) and hides a built-in
// alias of that name; an alias the file names replaces a built-in model or alias
// of that name. A built-in alias whose target the file turned into an alias
// follows it, so it is billed as the file says that target is.
func (p Prices) merge(base priceTable) priceTable {
	t := priceTable{models: map[string]ModelPrice{}, aliases: map[string]string{}, fromConfig: map[string]bool{}}
	if p.Builtin {
		for name, mp := range base.models {
			t.models[name] = mp
		}
		for from, to := range base.aliases {
			t.aliases[from] = to
		}
	}
	for name, mp := range p.Models {
		t.models[name] = mp
		delete(t.aliases, name)
		t.fromConfig[name] = true
	}
	for from, to := range p.Aliases {
		if !t.fromConfig[from] { // a name in both of the file's sections is a problem, reported by validatePricing
			delete(t.models, from)
		}
		t.aliases[from] = to
		t.fromConfig[from] = true
	}
	for from, to := range t.aliases {
		if next, ok := p.Aliases[to]; ok && !t.fromConfig[from] {
			t.aliases[from] = next
		}
	}
	return t
}

// resolved is c's pricing section merged over the built-in table.
func (p Prices) resolved() priceTable {
	return p.merge(priceTable{models: builtinModels(), aliases: builtinAliases()})
}

// PriceTable returns the resolved price table, sorted by name: every priced
// model and alias, each with the source of its entry, then pricing.default when
// it is set. It is what requests are billed by (creditgate check-config prints
// it).
func (c *Config) PriceTable() []PricedModel {
	t := c.Prices.resolved()
	source := func(name string) string {
		if t.fromConfig[name] {
			return SourceConfig
		}
		return SourceBuiltin
	}
	rows := make([]PricedModel, 0, len(t.models)+len(t.aliases)+1)
	for name, mp := range t.models {
		rows = append(rows, PricedModel{Name: name, Price: mp.Price(), Source: source(name)})
	}
	for from, to := range t.aliases {
		rows = append(rows, PricedModel{Name: from, Price: t.models[to].Price(), AliasOf: to, Source: source(from)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	if c.Prices.Default != nil {
		rows = append(rows, PricedModel{Name: DefaultPriceName, Price: c.Prices.Default.Price(), Source: SourceConfig})
	}
	return rows
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
		AudioMinute:     orZero(mp.AudioMinute),
		ImageInput:      orZero(mp.ImageInput), // 0: metering bills image input at Input
		Images:          mp.Images.prices(),
		Characters:      orZero(mp.Characters),
	}
}

// mediaModel reports whether a model is priced for the media endpoints (per
// image, per character, image tokens, or a moderation or speech model), whose
// output is bounded by the request, not by max_output_tokens.
func mediaModel(name string, mp ModelPrice) bool {
	if mp.Images != nil || mp.Characters != nil || mp.ImageInput != nil {
		return true
	}
	for _, family := range []string{"moderation", "tts", "dall-e", "gpt-image"} {
		if strings.Contains(name, family) {
			return true
		}
	}
	return false
}

// prices converts ip to metering's per-image prices (nil for nil).
func (ip *ImagePrice) prices() *metering.ImagePrices {
	if ip == nil {
		return nil
	}
	out := &metering.ImagePrices{PerImage: make(map[string]map[string]money.Micros, len(ip.PerImage)),
		DefaultSize: ip.DefaultSize, DefaultQuality: ip.DefaultQuality}
	for q, sizes := range ip.PerImage {
		out.PerImage[q] = make(map[string]money.Micros, len(sizes))
		for size, price := range sizes {
			out.PerImage[q][size] = price
		}
	}
	return out
}

func orZero(m *money.Micros) money.Micros { return orDefault(m, 0) }

func orDefault(m *money.Micros, def money.Micros) money.Micros {
	if m == nil {
		return def
	}
	return *m
}

// build turns the pricing section, merged over the built-in table, into the
// metering table.
func (p Prices) build() (*metering.Pricing, error) {
	t := p.resolved()
	models := make(map[string]metering.Price, len(t.models))
	for name, mp := range t.models {
		models[name] = mp.Price()
	}
	var fallback *metering.Price
	if p.Default != nil {
		pr := p.Default.Price()
		fallback = &pr
	}
	return metering.NewPricing(models, t.aliases, fallback)
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
		bt := billing.Tier{MaxTopUp: t.MaxTopUp, MaxBalance: t.MaxBalance, RPM: t.RPM, TPM: t.TPM, MonthlyUsageLimit: t.MonthlyUsageLimit}
		if q := t.Qualify; q != nil {
			bt.Qualify = &billing.Qualify{Paid: q.Paid, Days: int(q.Days)}
		}
		tiers[name] = bt
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

// Tokens returns the admin tokens' secrets, in order.
func (c *Config) Tokens() []string {
	out := make([]string, len(c.Admin.Tokens))
	for i, t := range c.Admin.Tokens {
		out[i] = t.Token
	}
	return out
}

// AdminTokens returns a copy of the admin tokens.
func (c *Config) AdminTokens() []AdminToken {
	out := make([]AdminToken, len(c.Admin.Tokens))
	for i, t := range c.Admin.Tokens {
		t.Scopes = append([]string(nil), t.Scopes...)
		out[i] = t
	}
	return out
}
