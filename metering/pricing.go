package metering

import (
	"fmt"
	"math/bits"
	"regexp"
	"sort"
	"strings"

	"github.com/creditgate/creditgate/money"
)

// Tokens counts one request's tokens by class. The classes nest the way OpenAI's
// usage object nests them: CachedInput and AudioInput are parts of Input;
// Reasoning and AudioOutput are parts of Output. Each token is billed once, at
// the rate of the most specific class it belongs to.
type Tokens struct {
	Input       int64 // all input (prompt) tokens
	CachedInput int64 // part of Input served from the prompt cache
	AudioInput  int64 // part of Input that is audio
	Output      int64 // all output (completion) tokens
	Reasoning   int64 // part of Output spent on hidden reasoning
	AudioOutput int64 // part of Output that is audio
}

// Add returns the class-wise sum t + u.
func (t Tokens) Add(u Tokens) Tokens {
	return Tokens{
		Input: t.Input + u.Input, CachedInput: t.CachedInput + u.CachedInput, AudioInput: t.AudioInput + u.AudioInput,
		Output: t.Output + u.Output, Reasoning: t.Reasoning + u.Reasoning, AudioOutput: t.AudioOutput + u.AudioOutput,
	}
}

// Price is a model's price in micro-USD per 1M tokens, per class (so "0.15" USD
// per 1M tokens is 150000). Every class is set: the config fills unpriced classes
// from their parent class (CachedInput and AudioInput from Input; Reasoning and
// AudioOutput from Output).
type Price struct {
	Input       money.Micros
	CachedInput money.Micros
	AudioInput  money.Micros
	Output      money.Micros
	Reasoning   money.Micros
	AudioOutput money.Micros
	// MaxOutputTokens is the model's largest output; the estimate assumes it when a
	// request sets no output cap. 0 means DefaultMaxOutputTokens.
	MaxOutputTokens int64
	// Encoding is the tiktoken encoding used to count this model's text locally;
	// "" means the one EncodingForModel picks.
	Encoding string
	// AudioMinute prices one minute of audio transcribed or translated
	// (whisper-1), billed per second (AudioCost); 0: such requests are billed
	// by their tokens.
	AudioMinute money.Micros
	// The media endpoints' units (media.go): ImageInput prices image input tokens
	// (gpt-image-1; 0: Input); Images, when set, prices an image model per image
	// instead of per token (dall-e); Characters, when > 0, prices a speech model
	// per 1M input characters instead of per token (tts-1).
	ImageInput money.Micros
	Images     *ImagePrices
	Characters money.Micros
}

// DefaultMaxOutputTokens is assumed for a model whose price sets no MaxOutputTokens.
const DefaultMaxOutputTokens = 16384

// MaxOutput returns p.MaxOutputTokens or the default.
func (p Price) MaxOutput() int64 {
	if p.MaxOutputTokens > 0 {
		return p.MaxOutputTokens
	}
	return DefaultMaxOutputTokens
}

// Cost prices t: ceil(Σ tokens_c × price_c / 1e6) micro-USD, computed once over
// all classes (so rounding happens once per request, never per class). Negative
// counts are treated as zero and a class's sub-classes are clipped to it, so a
// malformed usage object can never produce a negative or doubled charge. The sum is
// computed in 128 bits; a result beyond money.MaxAmount saturates there.
func (p Price) Cost(t Tokens) money.Micros {
	in, out := nonNeg(t.Input), nonNeg(t.Output)
	cached := min(nonNeg(t.CachedInput), in)
	audioIn := min(nonNeg(t.AudioInput), in-cached)
	reasoning := min(nonNeg(t.Reasoning), out)
	audioOut := min(nonNeg(t.AudioOutput), out-reasoning)

	var hi, lo uint64
	overflow := false
	add := func(n int64, price money.Micros) {
		if n <= 0 || price <= 0 {
			return
		}
		h, l := bits.Mul64(uint64(n), uint64(price))
		var c uint64
		lo, c = bits.Add64(lo, l, 0)
		hi, c = bits.Add64(hi, h, c)
		overflow = overflow || c != 0 // beyond 128 bits: saturate below, never wrap
	}
	add(in-cached-audioIn, p.Input)
	add(cached, p.CachedInput)
	add(audioIn, p.AudioInput)
	add(out-reasoning-audioOut, p.Output)
	add(reasoning, p.Reasoning)
	add(audioOut, p.AudioOutput)

	// ceil((hi:lo) / 1e6)
	const perMillion = 1_000_000
	if overflow || hi >= perMillion { // quotient would not fit in 64 bits
		return money.MaxAmount
	}
	q, r := bits.Div64(hi, lo, perMillion)
	if r != 0 {
		q++
	}
	if q > uint64(money.MaxAmount) {
		return money.MaxAmount
	}
	return money.Micros(q)
}

func nonNeg(n int64) int64 {
	if n < 0 {
		return 0
	}
	return n
}

// Pricing maps model names to prices. It is immutable once built; a config reload
// builds a new one.
type Pricing struct {
	models  map[string]Price
	aliases map[string]string
	// fallback prices models with no entry; nil rejects them.
	fallback *Price
}

// NewPricing checks that every alias names a priced model and returns the table.
// fallback, when non-nil, prices every model without an entry.
func NewPricing(models map[string]Price, aliases map[string]string, fallback *Price) (*Pricing, error) {
	p := &Pricing{models: make(map[string]Price, len(models)), aliases: make(map[string]string, len(aliases)), fallback: fallback}
	for name, price := range models {
		p.models[name] = price
	}
	var problems []string
	for from, to := range aliases {
		if _, ok := models[to]; !ok {
			problems = append(problems, fmt.Sprintf("alias %q points to %q, which has no price", from, to))
		}
		p.aliases[from] = to
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("pricing: %s", strings.Join(problems, "; "))
	}
	return p, nil
}

// snapshotSuffix matches the date suffix of a model snapshot: "-2024-08-06" or the
// older "-0613" / "-1106" form.
var snapshotSuffix = regexp.MustCompile(`-(\d{4}-\d{2}-\d{2}|\d{4})$`)

// Resolve finds the price of model: the exact name, then an alias, then the model
// family of a dated snapshot ("gpt-4o-2024-08-06" → "gpt-4o"), then the fallback.
// It returns the priced name the request is billed as.
func (p *Pricing) Resolve(model string) (string, Price, bool) {
	if pr, ok := p.models[model]; ok {
		return model, pr, true
	}
	if to, ok := p.aliases[model]; ok {
		return to, p.models[to], true
	}
	if family := snapshotSuffix.ReplaceAllString(model, ""); family != model {
		if pr, ok := p.models[family]; ok {
			return family, pr, true
		}
		if to, ok := p.aliases[family]; ok {
			return to, p.models[to], true
		}
	}
	if p.fallback != nil && model != "" {
		return model, *p.fallback, true
	}
	return "", Price{}, false
}

// Models returns the priced model names, sorted.
func (p *Pricing) Models() []string {
	names := make([]string, 0, len(p.models))
	for n := range p.models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
