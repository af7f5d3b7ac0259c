package bpe

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizers below are the two encodings' regexps, as regexp2 runs them:
//
//	cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//	             \s*[\r\n]+|\s+(?!\S)|\s+
//	o200k_base:  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	             [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
//	             \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Alternatives are tried in order and the first that matches wins (not the longest),
// greedy quantifiers give characters back one at a time, and every character starts
// some match, so the text is cut into consecutive pieces. Each function returns the end
// of the piece that starts at i; text is valid UTF-8 and i < len(text).

// Character classes, one bit each.
const (
	classLetter  = 1 << iota // \p{L}
	classNumber              // \p{N}
	classSpace               // \s, which regexp2 defines as unicode.IsSpace
	classUpper               // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	classLower               // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	classNewline             // \r or \n
)

var (
	classTableOnce sync.Once
	classTable     []uint8 // by rune, 0 … unicode.MaxRune
	asciiClass     [utf8.RuneSelf]uint8
)

// loadClassTable fills the rune class table from Go's unicode tables, the ones regexp2
// uses for \p{…}, so both agree on every rune whatever Unicode version Go ships.
func loadClassTable() {
	classTableOnce.Do(func() {
		t := make([]uint8, unicode.MaxRune+1)
		mark := func(table *unicode.RangeTable, class uint8) {
			for _, r := range table.R16 {
				for c := uint32(r.Lo); c <= uint32(r.Hi); c += uint32(r.Stride) {
					t[c] |= class
				}
			}
			for _, r := range table.R32 {
				for c := r.Lo; c <= r.Hi; c += r.Stride {
					t[c] |= class
				}
			}
		}
		mark(unicode.L, classLetter)
		mark(unicode.N, classNumber)
		mark(unicode.White_Space, classSpace)
		for _, table := range []*unicode.RangeTable{unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M} {
			mark(table, classUpper)
		}
		for _, table := range []*unicode.RangeTable{unicode.Ll, unicode.Lm, unicode.Lo, unicode.M} {
			mark(table, classLower)
		}
		// unicode.IsSpace is White_Space outside Latin-1 but its own list inside it.
		for c := rune(0); c < 0x100; c++ {
			t[c] &^= classSpace
			if unicode.IsSpace(c) {
				t[c] |= classSpace
			}
		}
		t['\r'] |= classNewline
		t['\n'] |= classNewline
		copy(asciiClass[:], t[:utf8.RuneSelf])
		classTable = t
	})
}

// classAt returns the class and byte width of the rune at text[i].
func classAt(text string, i int) (uint8, int) {
	if c := text[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(text[i:])
	return classTable[r], w
}

// notLetterNumberNewline is [^\r\n\p{L}\p{N}], the optional character before a word.
func notLetterNumberNewline(class uint8) bool {
	return class&(classLetter|classNumber|classNewline) == 0
}

// isSymbol is [^\s\p{L}\p{N}]: punctuation, symbols, and (in cl100k) marks.
func isSymbol(class uint8) bool { return class&(classLetter|classNumber|classSpace) == 0 }

// runEnd returns the end of the run of characters with any of the class bits from i.
func runEnd(text string, i int, bits uint8) int {
	for i < len(text) {
		c, w := classAt(text, i)
		if c&bits == 0 {
			break
		}
		i += w
	}
	return i
}

// numberEnd is \p{N}{1,3} from i, given that text[i] is a number.
func numberEnd(text string, i int) int {
	_, w := classAt(text, i)
	i += w
	for n := 1; n < 3 && i < len(text); n++ {
		c, w := classAt(text, i)
		if c&classNumber == 0 {
			break
		}
		i += w
	}
	return i
}

// contractionLen is the length of (?i:'s|'t|'re|'ve|'m|'ll|'d) at text[i:], or 0.
func contractionLen(text string, i int) int {
	if i >= len(text) || text[i] != '\'' {
		return 0
	}
	r1, w1 := lowerAt(text, i+1)
	switch r1 {
	case 's', 't', 'm', 'd':
		return 1 + w1
	case 'r', 'v', 'l':
		r2, w2 := lowerAt(text, i+1+w1)
		if (r1 == 'l' && r2 == 'l') || (r1 != 'l' && r2 == 'e') {
			return 1 + w1 + w2
		}
	}
	return 0
}

// lowerAt decodes the rune at text[i] and lowers it as regexp2's case-insensitive
// matching does (unicode.ToLower). It returns -1 at the end of text.
func lowerAt(text string, i int) (rune, int) {
	if i >= len(text) {
		return -1, 0
	}
	if c := text[i]; c < utf8.RuneSelf {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		return rune(c), 1
	}
	r, w := utf8.DecodeRuneInString(text[i:])
	return unicode.ToLower(r), w
}

// whitespaceEnd handles the three whitespace alternatives, \s*[\r\n]+, \s+(?!\S) and
// \s+, given that text[i] is whitespace (every other character is matched earlier).
func whitespaceEnd(text string, i int) int {
	lastNewline, lastStart := -1, i
	j := i
	for j < len(text) {
		c, w := classAt(text, j)
		if c&classSpace == 0 {
			break
		}
		if c&classNewline != 0 {
			lastNewline = j
		}
		lastStart = j
		j += w
	}
	switch {
	case lastNewline >= 0:
		// \s* gives back characters until [\r\n]+ can match: up to the last newline.
		return lastNewline + 1
	case j == len(text):
		return j
	case lastStart > i:
		// \s+ gives back the last space, so that a non-space does not follow.
		return lastStart
	default:
		return j
	}
}

// nextCl100k returns the end of the cl100k_base piece that starts at i.
func nextCl100k(text string, i int) int {
	if n := contractionLen(text, i); n > 0 {
		return i + n
	}
	c, w := classAt(text, i)
	switch {
	case c&classLetter != 0:
		return runEnd(text, i+w, classLetter)
	case notLetterNumberNewline(c) && i+w < len(text):
		if c2, w2 := classAt(text, i+w); c2&classLetter != 0 {
			return runEnd(text, i+w+w2, classLetter)
		}
	case c&classNumber != 0:
		return numberEnd(text, i)
	}
	if end := symbolsEnd(text, i, c, false); end > 0 {
		return end
	}
	return whitespaceEnd(text, i)
}

// symbolsEnd is ` ?[^\s\p{L}\p{N}]+` followed by [\r\n]* (cl100k) or [\r\n/]*
// (o200k), or -1 when it does not match at i. c is the class of text[i].
func symbolsEnd(text string, i int, c uint8, slash bool) int {
	j := i
	if text[i] == ' ' {
		j++
		if j == len(text) {
			return -1
		}
		c, _ = classAt(text, j)
	}
	if !isSymbol(c) {
		return -1
	}
	for j < len(text) {
		c, w := classAt(text, j)
		if !isSymbol(c) {
			break
		}
		j += w
	}
	for j < len(text) && (text[j] == '\r' || text[j] == '\n' || (slash && text[j] == '/')) {
		j++
	}
	return j
}

// nextO200k returns the end of the o200k_base piece that starts at i.
func nextO200k(text string, i int) int {
	c, w := classAt(text, i)
	prefix := notLetterNumberNewline(c) && i+w < len(text)
	// [^\r\n\p{L}\p{N}]?[upper]*[lower]+(contraction)?: first with the optional
	// character taken, then without it (it may be a mark, which is upper and lower).
	if prefix {
		if end := upperThenLowerEnd(text, i+w); end > 0 {
			return end
		}
	}
	if c&(classUpper|classLower) != 0 {
		if end := upperThenLowerEnd(text, i); end > 0 {
			return end
		}
	}
	// [^\r\n\p{L}\p{N}]?[upper]+[lower]*(contraction)?
	if prefix {
		if end := upperRunEnd(text, i+w); end > 0 {
			return end
		}
	}
	if c&classUpper != 0 {
		return upperRunEnd(text, i)
	}
	if c&classNumber != 0 {
		return numberEnd(text, i)
	}
	if end := symbolsEnd(text, i, c, true); end > 0 {
		return end
	}
	return whitespaceEnd(text, i)
}

// upperThenLowerEnd matches [upper]*[lower]+(contraction)? at i, or returns -1.
func upperThenLowerEnd(text string, i int) int {
	// The greedy [upper]* takes the whole run; if no lower character follows it,
	// it gives back characters until [lower]+ can start, i.e. down to the run's
	// last character that is also lower (Lm, Lo, M), which then matches alone
	// (the characters after it in the run are Lu or Lt, and the one after the
	// run is neither upper nor lower).
	lastLowerEnd := -1
	j := i
	for j < len(text) {
		c, w := classAt(text, j)
		if c&classUpper == 0 {
			if c&classLower != 0 {
				end := runEnd(text, j+w, classLower)
				return end + contractionLen(text, end)
			}
			break
		}
		j += w
		if c&classLower != 0 {
			lastLowerEnd = j
		}
	}
	if lastLowerEnd < 0 {
		return -1
	}
	return lastLowerEnd + contractionLen(text, lastLowerEnd)
}

// upperRunEnd matches [upper]+[lower]*(contraction)? at i, or returns -1.
func upperRunEnd(text string, i int) int {
	j := runEnd(text, i, classUpper)
	if j == i {
		return -1
	}
	end := runEnd(text, j, classLower)
	return end + contractionLen(text, end)
}

// toValidUTF8 replaces each byte of an invalid UTF-8 sequence with U+FFFD, as Go's
// []rune conversion does (and so pkoukk/tiktoken-go, whose regexp2 matches on runes).
func toValidUTF8(text string) string {
	var b strings.Builder
	b.Grow(len(text) + len(text)/2)
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && w == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(text[i : i+w])
		}
		i += w
	}
	return b.String()
}
