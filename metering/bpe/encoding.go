package bpe

import (
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// Encoding counts and encodes text with one tiktoken encoding. It is immutable and
// safe for concurrent use.
type Encoding struct {
	name  string
	v     *vocab
	split func(text string, i int) int // end of the piece that starts at i
}

// The supported encodings, by name.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
)

type lazyEncoding struct {
	once  sync.Once
	file  string
	split func(string, int) int
	enc   *Encoding
	err   error
}

var encodings = map[string]*lazyEncoding{
	O200kBase:  {file: "o200k_base.tiktoken", split: nextO200k},
	Cl100kBase: {file: "cl100k_base.tiktoken", split: nextCl100k},
}

// Get returns the named encoding, "o200k_base" or "cl100k_base". The first call for a
// name builds it from the embedded rank file (about 0.2 s of one core for o200k_base,
// 0.1 s for cl100k_base); later calls return the same *Encoding.
func Get(name string) (*Encoding, error) {
	l, ok := encodings[name]
	if !ok {
		return nil, fmt.Errorf("bpe: unknown encoding %q (want %q or %q)", name, O200kBase, Cl100kBase)
	}
	l.once.Do(func() {
		loadClassTable()
		data, err := assets.Assets.ReadFile(l.file)
		if err != nil {
			l.err = fmt.Errorf("bpe: encoding %s: %w", name, err)
			return
		}
		v, err := parseRanks(l.file, data)
		if err != nil {
			l.err = err
			return
		}
		l.enc = &Encoding{name: name, v: v, split: l.split}
	})
	return l.enc, l.err
}

// Name returns the encoding's name, e.g. "o200k_base".
func (e *Encoding) Name() string { return e.name }

// Count returns the number of tokens tiktoken's EncodeOrdinary produces for text.
// It takes time linear in len(text) and, in steady state, allocates only to replace
// invalid UTF-8 and for pieces (runs of letters, symbols…) longer than 1 MiB.
func (e *Encoding) Count(text string) int {
	if !utf8.ValidString(text) {
		text = toValidUTF8(text)
	}
	n := 0
	for i := 0; i < len(text); {
		end := e.split(text, i)
		n += e.v.countPiece(text[i:end])
		i = end
	}
	return n
}

// Encode returns the token ids tiktoken's EncodeOrdinary produces for text. It is meant
// for tests and debugging; Count is the fast path.
func (e *Encoding) Encode(text string) []int {
	if !utf8.ValidString(text) {
		text = toValidUTF8(text)
	}
	out := make([]int, 0, len(text)/4+1)
	for i := 0; i < len(text); {
		end := e.split(text, i)
		out = e.v.appendPiece(out, text[i:end])
		i = end
	}
	return out
}

// AppendTokenEnds appends to dst, for each token tiktoken's EncodeOrdinary produces
// for text, the byte offset in text just past it, in order: the token boundaries a
// text may be cut at. Text that is not valid UTF-8 is encoded as Count reads it
// (invalid bytes replaced), so its offsets would not be text's: dst is then returned
// unchanged.
func (e *Encoding) AppendTokenEnds(dst []int, text string) []int {
	if !utf8.ValidString(text) {
		return dst
	}
	var tokens []int
	for i := 0; i < len(text); {
		end := e.split(text, i)
		tokens = e.v.appendPiece(tokens[:0], text[i:end])
		at := i
		for _, t := range tokens {
			at += len(e.v.token(uint32(t)))
			dst = append(dst, at)
		}
		i = end
	}
	return dst
}

// decode returns the bytes of tokens; unknown ids are an error.
func (e *Encoding) decode(tokens []int) ([]byte, error) {
	var out []byte
	for _, t := range tokens {
		if t < 0 || t >= e.v.size() {
			return nil, fmt.Errorf("bpe: %s has no token %d", e.name, t)
		}
		out = append(out, e.v.token(uint32(t))...)
	}
	return out, nil
}
