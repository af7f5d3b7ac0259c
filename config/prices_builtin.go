package config

import "github.com/creditgate/creditgate/money"

// The built-in price table: OpenAI's published standard-tier prices in USD per 1M
// tokens (input, cached input, output), each model's documented maximum output
// tokens and the tiktoken encoding creditgate counts it with locally.
//
// Checked on 2026-12-02 against https://developers.openai.com/api/docs/pricing and
// the model pages under https://developers.openai.com/api/docs/models/ (one per
// model, e.g. .../models/gpt-5-nano). Re-check both when updating this table, bump
// BuiltinPricesChecked, and keep the rows sorted as they are (by family, newest
// first).
//
// What this table cannot say, and creditgate therefore does not bill:
//   - long-context rates: the GPT-5.4 and later models charge 2x input and 1.5x
//     output for a whole request with more than 272K input tokens;
//   - cache writes (GPT-5.6 and GPT-6 models: 1.25x input), billed here as input;
//   - the Batch, Flex, Priority and Fast tiers and regional-processing uplifts.
//
// Models OpenAI published no stable price for on the date above (GPT-5.6 Sol and
// Terra were on a promotional price) are left out: configure them in
// pricing.models. The newest models' tokenizer is not published; o200k_base is
// assumed (local counts only estimate and cross-check; upstream usage bills).

// BuiltinPricesChecked is the date the built-in table was last checked against
// BuiltinPricesSource.
const BuiltinPricesChecked = "2026-12-02"

// BuiltinPricesSource is the page the built-in table was checked against.
const BuiltinPricesSource = "https://developers.openai.com/api/docs/pricing"

// builtinModels returns a fresh copy of the built-in table, as pricing.models
// entries (so a config entry and a built-in one are the same kind of value).
func builtinModels() map[string]ModelPrice {
	chat := func(input, cached, output string, maxOut int64, enc string) ModelPrice {
		mp := ModelPrice{Input: usd(input), Output: usd(output), MaxOutputTokens: maxOut, Encoding: enc}
		if cached != "" {
			mp.CachedInput = usd(cached)
		}
		return mp
	}
	embedding := func(input string) ModelPrice {
		return ModelPrice{Input: usd(input), Encoding: "cl100k_base"}
	}
	const o200k, cl100k = "o200k_base", "cl100k_base"
	return map[string]ModelPrice{
		// GPT-6 Sol
		"gpt-6.2-sol": chat("2.00", "0.10", "10.00", 128000, o200k),
		"gpt-6.1-sol": chat("2.00", "0.10", "10.00", 128000, o200k),
		"gpt-6-sol":   chat("2.00", "0.20", "10.00", 128000, o200k),
		// GPT-5.x
		"gpt-5.6-luna": chat("0.20", "0.02", "1.20", 128000, o200k),
		"gpt-5.5":      chat("5.00", "0.50", "30.00", 128000, o200k),
		"gpt-5.4":      chat("2.50", "0.25", "15.00", 128000, o200k),
		"gpt-5.4-mini": chat("0.75", "0.075", "4.50", 128000, o200k),
		"gpt-5.4-nano": chat("0.20", "0.02", "1.25", 128000, o200k),
		"gpt-5.2":      chat("1.75", "0.175", "14.00", 128000, o200k),
		"gpt-5.1":      chat("1.25", "0.125", "10.00", 128000, o200k),
		"gpt-5":        chat("1.25", "0.125", "10.00", 128000, o200k),
		"gpt-5-mini":   chat("0.25", "0.025", "2.00", 128000, o200k),
		"gpt-5-nano":   chat("0.05", "0.005", "0.40", 128000, o200k),
		// ChatGPT's chat models: their GPT-5 model's price, a smaller output cap
		"gpt-5.2-chat-latest": chat("1.75", "0.175", "14.00", 16384, o200k),
		"gpt-5.1-chat-latest": chat("1.25", "0.125", "10.00", 16384, o200k),
		"gpt-5-chat-latest":   chat("1.25", "0.125", "10.00", 16384, o200k),
		// GPT-4.1 and GPT-4o
		"gpt-4.1":      chat("2.00", "0.50", "8.00", 32768, o200k),
		"gpt-4.1-mini": chat("0.40", "0.10", "1.60", 32768, o200k),
		"gpt-4.1-nano": chat("0.10", "0.025", "0.40", 32768, o200k),
		"gpt-4o":       chat("2.50", "1.25", "10.00", 16384, o200k),
		"gpt-4o-mini":  chat("0.15", "0.075", "0.60", 16384, o200k),
		// o-series reasoning models
		"o3":      chat("2.00", "0.50", "8.00", 100000, o200k),
		"o3-mini": chat("1.10", "0.55", "4.40", 100000, o200k),
		"o4-mini": chat("1.10", "0.275", "4.40", 100000, o200k),
		"o1":      chat("15.00", "7.50", "60.00", 100000, o200k),
		// Older chat models (no prompt caching)
		"gpt-4":         chat("30.00", "", "60.00", 8192, cl100k),
		"gpt-3.5-turbo": chat("0.50", "", "1.50", 4096, cl100k),
		// Embeddings: input only
		"text-embedding-3-small": embedding("0.02"),
		"text-embedding-3-large": embedding("0.13"),
		"text-embedding-ada-002": embedding("0.10"),
		// Speech to text: whisper-1 per minute of audio (billed per second), the
		// GPT-4o transcribe models by tokens (text in, audio in, text out)
		"whisper-1":              {AudioMinute: usd("0.006"), Encoding: o200k},
		"gpt-4o-transcribe":      {Input: usd("2.50"), AudioInput: usd("6.00"), Output: usd("10.00"), MaxOutputTokens: 2000, Encoding: o200k},
		"gpt-4o-mini-transcribe": {Input: usd("1.25"), AudioInput: usd("3.00"), Output: usd("5.00"), MaxOutputTokens: 2000, Encoding: o200k},
		// Moderations: free at OpenAI (a usage event of zero cost)
		"omni-moderation-latest":     embedding("0"),
		"omni-moderation-2024-09-26": embedding("0"), // its family name "omni-moderation" is no model
		"text-moderation-007":        embedding("0"),
		"text-moderation-latest":     embedding("0"),
		"text-moderation-stable":     embedding("0"),
		// Images: per image by quality and size (dall-e), or by tokens (gpt-image-1)
		"dall-e-2": {Images: &ImagePrice{DefaultSize: "1024x1024", DefaultQuality: "standard",
			PerImage: map[string]map[string]money.Micros{"standard": {"256x256": *usd("0.016"), "512x512": *usd("0.018"), "1024x1024": *usd("0.020")}}}},
		"dall-e-3": {Images: &ImagePrice{DefaultSize: "1024x1024", DefaultQuality: "standard", PerImage: map[string]map[string]money.Micros{
			"standard": {"1024x1024": *usd("0.040"), "1024x1792": *usd("0.080"), "1792x1024": *usd("0.080")},
			"hd":       {"1024x1024": *usd("0.080"), "1024x1792": *usd("0.120"), "1792x1024": *usd("0.120")}}}},
		"gpt-image-1": {Input: usd("5.00"), CachedInput: usd("1.25"), ImageInput: usd("10.00"), Output: usd("40.00"), Encoding: o200k},
		// Speech: per 1M input characters (tts-1), or by tokens (gpt-4o-mini-tts)
		"tts-1":           {Characters: usd("15.00")},
		"tts-1-hd":        {Characters: usd("30.00")},
		"gpt-4o-mini-tts": {Input: usd("0.60"), AudioOutput: usd("12.00"), Encoding: o200k},
	}
}

// builtinAliases returns a fresh copy of the built-in aliases (pricing.aliases
// entries). There are none at present: a name OpenAI bills like another model but
// caps differently (gpt-5-chat-latest) needs its own entry, because an alias takes
// its target's max_output_tokens too.
func builtinAliases() map[string]string { return map[string]string{} }
