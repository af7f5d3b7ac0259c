package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// The issue that made pricing merge: a file adding one model must keep every
// built-in price (it used to replace the table, and gpt-4o then answered 400).
func TestAddingAModelKeepsTheBuiltinTable(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    my-finetune: { input: "3.00", output: "12.00", max_output_tokens: 4096 }
`, tokenEnv)
	p := cfg.Pricing()
	for name, want := range DefaultPricingModels() {
		got, price, ok := p.Resolve(name)
		if !ok || got != name || !reflect.DeepEqual(price, want) {
			t.Errorf("Resolve(%q) = %q %+v %v, want the built-in %+v", name, got, price, ok, want)
		}
	}
	if _, price, ok := p.Resolve("my-finetune"); !ok || price.Input != 3*money.Dollar || price.MaxOutputTokens != 4096 {
		t.Errorf("my-finetune = %+v %v", price, ok)
	}
	if got, want := len(p.Models()), len(DefaultPricingModels())+1; got != want {
		t.Errorf("%d models, want %d", got, want)
	}
}

// Merge rules, one row each: what the file says, and what a name then resolves to.
func TestPricingMerge(t *testing.T) {
	gpt4o := DefaultPricingModels()["gpt-4o"]
	tests := []struct {
		name    string
		yaml    string
		model   string
		want    string // the priced name; "" = no price
		input   money.Micros
		maxOut  int64
		cached  money.Micros
		wantErr string // a problem key instead of a config
	}{
		{name: "built-in untouched", yaml: "", model: "gpt-4o", want: "gpt-4o", input: gpt4o.Input, maxOut: gpt4o.MaxOutputTokens, cached: gpt4o.CachedInput},
		{name: "a snapshot of a built-in model", yaml: "", model: "gpt-4.1-nano-2025-04-14", want: "gpt-4.1-nano", input: 100_000, maxOut: 32768, cached: 25_000},
		{name: "override replaces the entry whole", yaml: "pricing: {models: {gpt-4o: {input: 2, output: 8}}}", model: "gpt-4o",
			// cached_input and max_output_tokens come from the override (input; the
			// default), never from the built-in entry
			want: "gpt-4o", input: 2 * money.Dollar, maxOut: 0, cached: 2 * money.Dollar},
		{name: "an alias replaces a built-in model", yaml: "pricing: {aliases: {gpt-4o: gpt-4o-mini}}", model: "gpt-4o",
			want: "gpt-4o-mini", input: 150_000, maxOut: 16384, cached: 75_000},
		{name: "builtin false drops the table", yaml: "pricing: {builtin: false, models: {m: {input: 1}}}", model: "gpt-4o", want: ""},
		{name: "builtin false keeps the file's", yaml: "pricing: {builtin: false, models: {m: {input: 1}}}", model: "m", want: "m", input: money.Dollar, cached: money.Dollar},
		{name: "builtin false from the environment", yaml: "pricing: {models: {m: {input: 1}}}", model: "gpt-5", want: ""},
		{name: "an alias to a built-in model", yaml: "pricing: {aliases: {fast: gpt-5-nano}}", model: "fast", want: "gpt-5-nano", input: 50_000, maxOut: 128000, cached: 5_000},
		{name: "an alias to an overridden model", yaml: "pricing: {models: {gpt-5-nano: {input: 1, output: 2, max_output_tokens: 10}}, aliases: {fast: gpt-5-nano}}",
			model: "fast", want: "gpt-5-nano", input: money.Dollar, maxOut: 10, cached: money.Dollar},
		{name: "an alias to a model builtin false removed", yaml: "pricing: {builtin: false, models: {m: {input: 1}}, aliases: {fast: gpt-4o}}", wantErr: "pricing.aliases.fast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken}
			if strings.Contains(tt.name, "environment") {
				env["CREDITGATE_PRICING_BUILTIN"] = "false"
			}
			if tt.wantErr != "" {
				ps := problemsOf(t, tt.yaml, env)
				if !slices.Equal(keysOf(ps), []string{tt.wantErr}) {
					t.Fatalf("problems %v, want one at %s", ps, tt.wantErr)
				}
				return
			}
			cfg := mustLoad(t, tt.yaml, env)
			got, price, ok := cfg.Pricing().Resolve(tt.model)
			if tt.want == "" {
				if ok {
					t.Fatalf("Resolve(%q) = %q %+v, want no price", tt.model, got, price)
				}
				return
			}
			if !ok || got != tt.want || price.Input != tt.input || price.MaxOutputTokens != tt.maxOut || price.CachedInput != tt.cached {
				t.Errorf("Resolve(%q) = %q %+v %v, want %q input %s cached %s max output %d", tt.model, got, price, ok, tt.want, tt.input, tt.cached, tt.maxOut)
			}
		})
	}
}

// A built-in alias follows its target when the file turns that target into an
// alias, and disappears when the file prices its name as a model.
func TestMergeOfBuiltinAliases(t *testing.T) {
	one, two := usd("1"), usd("2")
	base := priceTable{
		models:  map[string]ModelPrice{"big": {Input: two}, "small": {Input: one}},
		aliases: map[string]string{"latest": "big", "chat": "big"},
	}
	p := Prices{Builtin: true,
		Models:  map[string]ModelPrice{"chat": {Input: one}},
		Aliases: map[string]string{"big": "small"},
	}
	got := p.merge(base)
	if _, ok := got.models["big"]; ok {
		t.Error("the file's alias big did not replace the built-in model big")
	}
	if got.aliases["latest"] != "small" {
		t.Errorf("built-in alias latest -> %q, want small (it followed big)", got.aliases["latest"])
	}
	if _, ok := got.aliases["chat"]; ok || got.models["chat"].Input != one {
		t.Errorf("chat = alias %q, model %+v: want the file's model", got.aliases["chat"], got.models["chat"])
	}
	if !got.fromConfig["chat"] || !got.fromConfig["big"] || got.fromConfig["latest"] || got.fromConfig["small"] {
		t.Errorf("sources %v", got.fromConfig)
	}
	// The base is not modified.
	if base.aliases["latest"] != "big" || base.models["big"].Input != two {
		t.Error("merge changed the built-in table")
	}
}

// Model-based: for any built-in table and any file, the merged table prices a
// name the file prices at the file's price; a built-in name the file leaves alone
// at its built-in price (builtin true) or not at all (builtin false); nothing else.
func TestPricingMergeModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f"})
		price := rapid.Custom(func(t *rapid.T) ModelPrice {
			return ModelPrice{Input: usd(fmt.Sprint(rapid.IntRange(0, 99).Draw(t, "input")))}
		})
		base := priceTable{models: rapid.MapOf(names, price).Draw(t, "base"), aliases: map[string]string{}}
		p := Prices{
			Builtin: rapid.Bool().Draw(t, "builtin"),
			Models:  rapid.MapOf(names, price).Draw(t, "models"),
			Aliases: map[string]string{},
		}
		for from, to := range rapid.MapOf(names, names).Draw(t, "aliases") {
			if _, priced := p.Models[from]; !priced && from != to {
				p.Aliases[from] = to
			}
		}
		got := p.merge(base)
		for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
			mp, isModel := got.models[name]
			to, isAlias := got.aliases[name]
			if isModel && isAlias {
				t.Fatalf("%s is both a model and an alias", name)
			}
			switch fileModel, inFile := p.Models[name]; {
			case inFile:
				if !isModel || *mp.Input != *fileModel.Input {
					t.Fatalf("%s: the file's model is %v %v", name, mp, isModel)
				}
			case p.Aliases[name] != "":
				if !isAlias || to != p.Aliases[name] {
					t.Fatalf("%s: the file's alias -> %q, merged -> %q", name, p.Aliases[name], to)
				}
			case p.Builtin && base.models[name].Input != nil:
				if !isModel || *mp.Input != *base.models[name].Input {
					t.Fatalf("%s: built-in %v, merged %v %v", name, base.models[name], mp, isModel)
				}
			default:
				if isModel || isAlias {
					t.Fatalf("%s is priced (%v, alias %q) but neither the file nor the built-in table prices it", name, mp, to)
				}
			}
		}
	})
}

// The resolved table names every row's source, aliases with their target's price,
// and pricing.default last.
func TestPriceTable(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    gpt-4o: { input: "2.00", output: "8.00", max_output_tokens: 16384 }
    mine: { input: "1.00", output: "2.00", max_output_tokens: 100 }
  aliases: { fast: gpt-4o-mini }
  default: { input: "9.00", output: "9.00", max_output_tokens: 10 }
`, tokenEnv)
	rows := cfg.PriceTable()
	byName := map[string]PricedModel{}
	var names []string
	for _, r := range rows {
		byName[r.Name] = r
		names = append(names, r.Name)
	}
	if last := rows[len(rows)-1]; last.Name != DefaultPriceName || last.Price.Input != 9*money.Dollar || last.Source != SourceConfig {
		t.Errorf("last row %+v, want pricing.default", last)
	}
	if !slices.IsSorted(names[:len(names)-1]) {
		t.Errorf("rows not sorted: %v", names)
	}
	if got, want := len(rows), len(DefaultPricingModels())+3; got != want {
		t.Errorf("%d rows, want %d (built-ins, mine, fast, default)", got, want)
	}
	mini := DefaultPricingModels()["gpt-4o-mini"]
	for _, tt := range []struct {
		name, source, aliasOf string
		price                 metering.Price
	}{
		{"gpt-4o", SourceConfig, "", byName["gpt-4o"].Price},
		{"mine", SourceConfig, "", byName["mine"].Price},
		{"fast", SourceConfig, "gpt-4o-mini", mini},
		{"gpt-4o-mini", SourceBuiltin, "", mini},
	} {
		r, ok := byName[tt.name]
		if !ok || r.Source != tt.source || r.AliasOf != tt.aliasOf || r.Price != tt.price {
			t.Errorf("row %s = %+v, want source %s alias of %q price %+v", tt.name, r, tt.source, tt.aliasOf, tt.price)
		}
	}
	if byName["gpt-4o"].Price.Input != 2*money.Dollar {
		t.Errorf("gpt-4o row has the built-in price: %+v", byName["gpt-4o"])
	}
}

// Every built-in row is complete: chat models have an output price, a cached
// price no higher than input, a real max output and an encoding; embeddings have
// input only. The table carries its check date and source.
func TestBuiltinTable(t *testing.T) {
	for name, mp := range builtinModels() {
		if mp.AudioMinute != nil { // whisper-1: per minute of audio, no tokens
			if *mp.AudioMinute <= 0 || mp.Input != nil || mp.Output != nil {
				t.Errorf("%s: audio minute %v, input %v, output %v", name, *mp.AudioMinute, mp.Input, mp.Output)
			}
			continue
		}
		if mediaModel(name, mp) {
			// Per image, per character, or tokens with a request-bound output.
			if mp.Images == nil && mp.Characters == nil && mp.Input == nil {
				t.Errorf("%s: a media model with no price", name)
			}
			continue
		}
		if mp.Input == nil || *mp.Input <= 0 || mp.Encoding == "" {
			t.Errorf("%s: input %v encoding %q", name, mp.Input, mp.Encoding)
		}
		if strings.Contains(name, "embedding") {
			if mp.Output != nil || mp.MaxOutputTokens != 0 {
				t.Errorf("%s: an embeddings model with output pricing", name)
			}
			continue
		}
		if mp.Output == nil || *mp.Output <= 0 || mp.MaxOutputTokens <= 0 {
			t.Errorf("%s: output %v, max output %d", name, mp.Output, mp.MaxOutputTokens)
		}
		if mp.CachedInput != nil && *mp.CachedInput > *mp.Input {
			t.Errorf("%s: cached input %s above input %s", name, *mp.CachedInput, *mp.Input)
		}
	}
	for from, to := range builtinAliases() {
		if _, ok := builtinModels()[to]; !ok {
			t.Errorf("built-in alias %s -> %s, which has no price", from, to)
		}
	}
	if !strings.HasPrefix(BuiltinPricesSource, "https://") || len(BuiltinPricesChecked) != len("2006-01-02") {
		t.Errorf("source %q, checked %q", BuiltinPricesSource, BuiltinPricesChecked)
	}
	// Default warns about none of them (each sets its real limits).
	if w := (&Config{Prices: Prices{Builtin: true, Models: builtinModels()}}).Warnings(); slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, "pricing.") }) {
		t.Errorf("the built-in table, written as pricing.models, warns: %q", w)
	}
}
