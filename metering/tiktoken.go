package metering

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"

	"github.com/creditgate/creditgate/metering/bpe"
)

// Tokenizer counts the tokens of text in one tiktoken encoding. Text is ordinary
// text: special-token strings such as "<|endoftext|>" count as the plain text they
// are, the way the API treats them in user content. Implementations are safe for
// concurrent use and do not keep text after Count returns (callers may pass a string
// that shares memory with a buffer they reuse).
type Tokenizer interface {
	Count(text string) int
}

// Encoding names.
const (
	O200kBase  = "o200k_base"
	CL100kBase = "cl100k_base"
)

// EncodingForModel returns the tiktoken encoding of a model: o200k_base for the
// gpt-4o, chatgpt-4o, gpt-4.1, gpt-4.5, gpt-5 and o-series families; cl100k_base for
// gpt-4 (not 4o), gpt-3.5, the text-embedding models and davinci-002/babbage-002;
// o200k_base for anything else. A fine-tuned model ("ft:gpt-4o-mini:org::id") uses
// its base model's encoding.
func EncodingForModel(model string) string {
	m := strings.ToLower(strings.TrimPrefix(model, "ft:"))
	for _, p := range [...]string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(m, p) {
			return O200kBase
		}
	}
	switch {
	case m == "gpt-4" || strings.HasPrefix(m, "gpt-4-"),
		strings.HasPrefix(m, "gpt-3.5"),
		strings.HasPrefix(m, "text-embedding-"),
		strings.HasPrefix(m, "davinci-002"), strings.HasPrefix(m, "babbage-002"):
		return CL100kBase
	}
	return O200kBase
}

// encoder is the optional interface of a Tokenizer that knows its encoding; the
// tool-definition overhead differs between encodings.
type encoder interface{ Encoding() string }

// tokenizerSlot loads one encoding at most once.
type tokenizerSlot struct {
	once sync.Once
	tok  Tokenizer
	err  error
}

var (
	setLoader      sync.Once
	tokenizerSlots = map[string]*tokenizerSlot{
		O200kBase:   {},
		CL100kBase:  {},
		"p50k_base": {},
		"r50k_base": {},
	}
)

// TokenizerFor returns the tokenizer of a tiktoken encoding ("o200k_base",
// "cl100k_base"; the legacy "p50k_base" and "r50k_base" work too). The vocabulary is
// embedded in the binary (no network access) and loaded on first use, once per
// encoding; loading takes a few hundred milliseconds, so a server should call
// TokenizerFor at startup. Counts of recently seen texts are cached (see
// countCache), since conversations resend their history on every turn.
//
// o200k_base and cl100k_base count with metering/bpe: exactly tiktoken's counts, in
// time linear in the text (about 100 MB/s per core on prose and code), allocating
// nothing. The legacy encodings count with pkoukk/tiktoken-go, segmented to stay
// linear (see tiktokenCounter); pkoukk also remains the reference the tests compare
// metering/bpe with.
func TokenizerFor(encoding string) (Tokenizer, error) {
	slot, ok := tokenizerSlots[encoding]
	if !ok {
		return nil, fmt.Errorf("metering: unknown tiktoken encoding %q (want %q or %q)", encoding, O200kBase, CL100kBase)
	}
	slot.once.Do(func() {
		var inner Tokenizer
		switch encoding {
		case O200kBase, CL100kBase:
			enc, err := bpe.Get(encoding)
			if err != nil {
				slot.err = fmt.Errorf("metering: loading tiktoken encoding %q: %w", encoding, err)
				return
			}
			inner = bpeCounter{enc}
		default:
			t, err := newTiktokenCounter(encoding)
			if err != nil {
				slot.err = err
				return
			}
			inner = t
		}
		slot.tok = newCountCache(inner)
	})
	return slot.tok, slot.err
}

// bpeCounter adapts a metering/bpe encoding.
type bpeCounter struct{ enc *bpe.Encoding }

func (b bpeCounter) Count(text string) int { return b.enc.Count(text) }
func (b bpeCounter) Encoding() string      { return b.enc.Name() }
func (b bpeCounter) TokenEnds(dst []int, text string) []int {
	return b.enc.AppendTokenEnds(dst, text)
}

// tokenEnder is the optional interface of a Tokenizer that tells where its tokens
// end, so that a text can be cut at a token boundary (cut.go); without it, the cut
// searches with Count.
type tokenEnder interface {
	// TokenEnds appends to dst the offset in text just past each of its tokens, in
	// order (nothing when it cannot tell).
	TokenEnds(dst []int, text string) []int
}

// newTiktokenCounter loads an encoding of pkoukk/tiktoken-go (from the offline loader's
// embedded files).
func newTiktokenCounter(encoding string) (*tiktokenCounter, error) {
	setLoader.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	enc, err := tiktoken.GetEncoding(encoding)
	if err != nil {
		return nil, fmt.Errorf("metering: loading tiktoken encoding %q: %w", encoding, err)
	}
	return &tiktokenCounter{name: encoding, enc: enc}, nil
}

// tiktokenCounter adapts pkoukk/tiktoken-go, for the legacy encodings. Its byte-pair
// merge is quadratic in the length of a pre-tokenized piece and its regexp2
// pre-tokenizer backtracks over long runs of one character class, so Count feeds it
// bounded segments (see nextSegment) to keep the cost linear in the text length.
type tiktokenCounter struct {
	name string
	enc  *tiktoken.Tiktoken
}

func (t *tiktokenCounter) Encoding() string { return t.name }

func (t *tiktokenCounter) Count(text string) int {
	n := 0
	for text != "" {
		var seg string
		seg, text = nextSegment(text)
		n += len(t.enc.EncodeOrdinary(seg))
	}
	return n
}

// Segmentation limits. A cut before a space that follows a non-space character is
// exact: no pre-tokenizer pattern of the tiktoken encodings (o200k, cl100k, p50k,
// r50k) lets a piece run from a non-space character into a following space, and a
// match starting at the space depends only on the text after it. Such cuts keep
// segments near maxSegment bytes without changing the count. A run of one character
// class longer than maxRun bytes (a word without spaces, one emoji repeated, a long
// whitespace run) is cut inside the run; each such forced cut may change the count by
// a few tokens (the merges across the cut are lost, typically +1), which bounds the
// error to about 1 token per maxRun bytes of pathological text. A segment with no
// exact cut point is also forced at maxSegment bytes.
const (
	maxSegment = 16 << 10
	maxRun     = 256
)

// nextSegment splits text into a first segment, cut as described above, and the rest.
func nextSegment(text string) (seg, rest string) {
	if len(text) <= maxRun {
		return text, ""
	}
	lastExact := -1 // index of the last exact cut point seen
	runClass, runStart := -1, 0
	prevSpace := true
	for i := 0; i < len(text); {
		r, size := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		if r == ' ' && !prevSpace && i > 0 {
			lastExact = i
		}
		c := charClass(r)
		if i >= maxSegment {
			if lastExact > 0 {
				return text[:lastExact], text[lastExact:]
			}
			if runClass == classDigit && c == classDigit && i-runStart >= 3 {
				// Digits pre-tokenize in threes from the start of their run: cutting
				// at a multiple of three is exact.
				cut := runStart + (i-runStart)/3*3
				return text[:cut], text[cut:]
			}
			return text[:i], text[i:]
		}
		if c != runClass {
			runClass, runStart = c, i
		} else if i-runStart >= maxRun && c != classDigit { // digits pre-tokenize in threes: no long pieces
			if lastExact > runStart {
				// An exact cut inside the run (only whitespace runs have one) is as good.
				return text[:lastExact], text[lastExact:]
			}
			return text[:i], text[i:]
		}
		prevSpace = c == classSpace
		i += size
	}
	return text, ""
}

const (
	classSpace = iota
	classWord  // letters and marks: the letter patterns of o200k take both
	classDigit // ASCII digits
	classOther
)

func charClass(r rune) int {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			return classSpace
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return classWord
		case r >= '0' && r <= '9':
			return classDigit
		}
		return classOther
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r) || unicode.IsMark(r):
		return classWord
	}
	return classOther // including non-ASCII digits, so the digit cut above stays byte-exact
}
