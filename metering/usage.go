package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// The upstream's usage object, authoritative when present: the same reader serves
// every endpoint and both namings (prompt/completion and input/output tokens).

// maxUpstreamTokens bounds a believable usage count; larger or negative values are
// ignored in favour of the local count.
const maxUpstreamTokens = 100_000_000

// readUsage reads a usage object in either naming (prompt/completion or
// input/output). A usage object whose totals are missing or absurd is ignored; an
// absurd detail count reads as 0.
// Under a limit, a usage object past it is relayed with the billed numbers
// (rewriteUsage); e is where the object ends.
func (m *ResponseMeter) readUsage(b []byte, s, e int) {
	const unset = -1
	in, out, total := int64(unset), int64(unset), int64(unset)
	var t Tokens
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("prompt_tokens"), f.Is("input_tokens"):
			in = saneCount(b, f)
		case f.Is("completion_tokens"), f.Is("output_tokens"):
			out = saneCount(b, f)
		case f.Is("total_tokens"):
			total = saneCount(b, f)
		case f.Is("prompt_tokens_details"), f.Is("input_tokens_details"):
			readDetails(b, f, "cached_tokens", &t.CachedInput, &t.AudioInput)
		case f.Is("completion_tokens_details"), f.Is("output_tokens_details"):
			readDetails(b, f, "reasoning_tokens", &t.Reasoning, &t.AudioOutput)
		}
	}
	if out == unset && in >= 0 {
		switch {
		case !m.spec.hasOutput():
			out = 0
		case total >= in:
			out = total - in
		}
	}
	if in < 0 || out < 0 {
		return
	}
	t.Input, t.Output = in, out
	m.usage, m.hasUsage = t, true
	if m.lim != nil {
		m.rewriteUsage(s, e)
	}
}

// readDetails reads a *_tokens_details object: the count called name into *named
// and audio_tokens into *audio; an absurd count reads as 0, anything but an object
// as nothing.
func readDetails(b []byte, f jsonscan.Member, name string, named, audio *int64) {
	if b[f.Start] != '{' {
		return
	}
	it := jsonscan.Members(b, f.Start)
	for g, ok := it.Next(); ok; g, ok = it.Next() {
		switch {
		case g.Is(name):
			*named = max(saneCount(b, g), 0)
		case g.Is("audio_tokens"):
			*audio = max(saneCount(b, g), 0)
		}
	}
}

// saneCount reads a token count: an integer in [0, maxUpstreamTokens], else -1.
func saneCount(b []byte, f jsonscan.Member) int64 {
	v, res := jsonscan.IntAt(b, f.Start, f.End)
	if res != jsonscan.IntOK || v > maxUpstreamTokens {
		return -1
	}
	return v
}
