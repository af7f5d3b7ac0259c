// Package jsonscan is the small JSON scanner metering reads requests and responses
// with. Check validates a document (syntax and nesting depth) in one pass without
// allocating and rejects nothing encoding/json accepts; the walkers (Members,
// Elements and the value readers) then read it by byte offsets, so the request
// parser learns where each member's bytes are (the rewrite splices them, and a
// parser can reject a duplicate key by comparing keys unescaped) and a response chunk
// is read without being unmarshalled, allocating nothing per chunk. The walkers
// expect a document that Check accepted, but never index out of bounds on any input.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// jsonError is a syntax error at byte offset off.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return e.msg + " at byte offset " + strconv.Itoa(e.off) }

// tooDeep is CheckValue's message for nesting beyond its depth; Check, which knows
// the limit, names it.
const tooDeep = "JSON nested too deeply"

// Check reports whether b holds exactly one JSON value nested at most depth deep.
func Check(b []byte, depth int) error {
	i := SkipSpace(b, 0)
	end, err := CheckValue(b, i, depth)
	if err != nil {
		if e, ok := err.(*jsonError); ok && e.msg == tooDeep {
			e.msg = "JSON nested deeper than " + strconv.Itoa(depth) + " levels"
		}
		return err
	}
	if end = SkipSpace(b, end); end != len(b) {
		return &jsonError{end, "unexpected data after the JSON value"}
	}
	return nil
}

// SkipSpace returns the offset of the first byte at or after b[i] that is not JSON
// white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// CheckValue checks the value starting at b[i], nested at most depth deep, and
// returns its end.
func CheckValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, &jsonError{i, "unexpected end of JSON input"}
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth <= 0 {
			return i, &jsonError{i, tooDeep}
		}
		return checkContainer(b, i, depth-1)
	case '"':
		return CheckString(b, i)
	case 't':
		return checkLiteral(b, i, "true")
	case 'f':
		return checkLiteral(b, i, "false")
	case 'n':
		return checkLiteral(b, i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return checkNumber(b, i)
		}
		return i, &jsonError{i, "invalid character " + strconv.QuoteRune(rune(c)) + " looking for the beginning of a value"}
	}
}

func checkContainer(b []byte, i, depth int) (int, error) {
	isObject := b[i] == '{'
	closer := byte(']')
	if isObject {
		closer = '}'
	}
	i = SkipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		var err error
		if isObject {
			if i >= len(b) || b[i] != '"' {
				return i, &jsonError{i, "expected a string object key"}
			}
			if i, err = CheckString(b, i); err != nil {
				return i, err
			}
			if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, &jsonError{i, "expected ':' after an object key"}
			}
			i = SkipSpace(b, i+1)
		}
		if i, err = CheckValue(b, i, depth); err != nil {
			return i, err
		}
		i = SkipSpace(b, i)
		if i >= len(b) {
			return i, &jsonError{i, "unexpected end of JSON input"}
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case closer:
			return i + 1, nil
		default:
			return i, &jsonError{i, "expected ',' or '" + string(closer) + "'"}
		}
	}
}

// CheckString checks the string whose quote is b[i] and returns its end.
func CheckString(b []byte, i int) (int, error) {
	start := i
	i++
	for {
		// Skip 8 plain bytes at a time: most of a request body is text. A word that
		// holds a special byte is then looked at byte by byte, once.
		for i+8 <= len(b) && !hasSpecialByte(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for end := min(i+8, len(b)); i < end; i++ {
			if c := b[i]; c < 0x20 || c == '"' || c == '\\' {
				break
			}
		}
		if i >= len(b) {
			return i, &jsonError{start, "unterminated string"}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
			if i >= len(b) {
				return i, &jsonError{start, "unterminated string"}
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return i, &jsonError{i, "invalid \\u escape in string"}
				}
				i += 4
			default:
				return i, &jsonError{i, "invalid escape in string"}
			}
			i++
		case c < 0x20:
			return i, &jsonError{i, "invalid control character in string"}
		default:
			// a plain byte: the 8-byte window ended without a special one
		}
	}
}

// hasSpecialByte reports whether any of the 8 bytes of x is a control character
// (< 0x20), '"' or '\\': the bytes a JSON string scanner must look at. These are the
// exact "has a byte less than n" and "has a zero byte" word tests (Bit Twiddling
// Hacks, S. E. Anderson), which are exact about whether such a byte exists.
func hasSpecialByte(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (x - ones*0x20) & ^x & highs
	q := x ^ (ones * '"')
	quote := (q - ones) & ^q & highs
	bs := x ^ (ones * '\\')
	backslash := (bs - ones) & ^bs & highs
	return less|quote|backslash != 0
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func checkLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, &jsonError{i, "invalid literal, expected " + lit}
	}
	return i + len(lit), nil
}

func checkNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return i, &jsonError{start, "invalid number"}
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return i, &jsonError{start, "invalid number"}
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return i, &jsonError{start, "invalid number"}
		}
		i = j
	}
	return i, nil
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// SkipValue returns the end of the value starting at b[i] (i past any space).
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return len(b)
	}
}

// skipString returns the end of the string starting at the quote b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		// The quote is escaped if an odd number of backslashes precede it.
		bs := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return len(b)
}

// A Member is one object member: the raw key (between its quotes) and the value's
// offsets in the document.
type Member struct {
	Key        []byte
	KeyEscaped bool
	Start, End int // value
}

// Present reports whether the member was found (its value is not empty).
func (m *Member) Present() bool { return m.End > m.Start }

// Is reports whether the member's key, unescaped, equals name.
func (m *Member) Is(name string) bool {
	if !m.KeyEscaped {
		return string(m.Key) == name
	}
	return Unquote(m.Key) == name
}

// Name returns the unescaped key.
func (m *Member) Name() string {
	if !m.KeyEscaped {
		return string(m.Key)
	}
	return Unquote(m.Key)
}

// NameView is Name without a copy when the key has no escapes: it shares the
// document's memory (see textAt).
func (m *Member) NameView() string {
	if !m.KeyEscaped {
		return View(m.Key)
	}
	return Unquote(m.Key)
}

// cursor is where an iterator resumes: just inside its object or array, then after
// each value it returned; at len(b) it is done.
type cursor struct {
	b []byte
	i int
}

// open is a cursor inside the object or array whose bracket is at b[start]; anything
// else gives a cursor that is done.
func open(b []byte, start int, bracket byte) cursor {
	if start >= len(b) || b[start] != bracket {
		return cursor{b: b, i: len(b)}
	}
	return cursor{b: b, i: start + 1}
}

// next is where the next member or element starts, past the comma before it.
func (c *cursor) next() int {
	i := SkipSpace(c.b, c.i)
	if i < len(c.b) && c.b[i] == ',' {
		i = SkipSpace(c.b, i+1)
	}
	return i
}

// MemberIter walks the members of the object whose '{' is at b[start].
type MemberIter struct{ cursor }

// Members walks the object whose '{' is at b[start]; anything else has no members.
func Members(b []byte, start int) MemberIter { return MemberIter{open(b, start, '{')} }

// Next returns the next member; ok is false after the last.
func (it *MemberIter) Next() (m Member, ok bool) {
	b := it.b
	i := it.next()
	if i >= len(b) || b[i] != '"' {
		it.i = len(b)
		return m, false
	}
	keyEnd := skipString(b, i)
	if keyEnd-1 <= i {
		it.i = len(b)
		return m, false
	}
	m.Key = b[i+1 : keyEnd-1]
	for _, c := range m.Key {
		if c == '\\' {
			m.KeyEscaped = true
			break
		}
	}
	i = SkipSpace(b, keyEnd)
	if i < len(b) && b[i] == ':' {
		i++
	}
	m.Start = SkipSpace(b, i)
	m.End = SkipValue(b, m.Start)
	it.i = m.End
	return m, m.Start < len(b)
}

// ElementIter walks the elements of the array whose '[' is at b[start].
type ElementIter struct{ cursor }

// Elements walks the array whose '[' is at b[start]; anything else has no elements.
func Elements(b []byte, start int) ElementIter { return ElementIter{open(b, start, '[')} }

// Next returns the offsets of the next element; ok is false after the last.
func (it *ElementIter) Next() (start, end int, ok bool) {
	b := it.b
	i := it.next()
	if i >= len(b) || b[i] == ']' {
		it.i = len(b)
		return 0, 0, false
	}
	end = SkipValue(b, i)
	if end <= i {
		it.i = len(b)
		return 0, 0, false
	}
	it.i = end
	return i, end, true
}

// KindOf names the JSON type of the value starting at b[i], for error messages.
func KindOf(b []byte, i int) string {
	if i >= len(b) {
		return "nothing"
	}
	switch b[i] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// StringAt decodes the string value at b[start:end] (quotes included); ok is false
// when the value is not a string.
func StringAt(b []byte, start, end int) (string, bool) {
	if start >= end || end > len(b) || b[start] != '"' || end-start < 2 {
		return "", false
	}
	return Unquote(b[start+1 : end-1]), true
}

// TextAt is StringAt without a copy when the string has no escapes (most texts): the
// result then shares b's memory, so b must not change while the string is in use. The
// metering's request parser uses it for the texts a Request keeps, whose body is immutable.
func TextAt(b []byte, start, end int) (string, bool) {
	raw, escaped, ok := RawStringAt(b, start, end)
	switch {
	case !ok:
		return "", false
	case escaped:
		return Unquote(raw), true
	}
	return View(raw), true
}

// View returns b's bytes as a string without copying them; b must not change while
// the string is in use.
func View(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// RawStringAt returns the undecoded content of the string at b[start:end] and
// whether it contains escapes.
func RawStringAt(b []byte, start, end int) (raw []byte, escaped, ok bool) {
	if start >= end || end > len(b) || b[start] != '"' || end-start < 2 {
		return nil, false, false
	}
	raw = b[start+1 : end-1]
	return raw, bytes.IndexByte(raw, '\\') >= 0, true
}

// Unquote decodes the content of a JSON string. Invalid escapes and unpaired
// surrogates become U+FFFD, as encoding/json does; it never fails.
func Unquote(s []byte) string {
	i := 0
	for i < len(s) && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return string(s)
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:i]...)
	for i < len(s) {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := hex4(s, i+1)
			if n == 0 {
				out = utf8.AppendRune(out, utf8.RuneError)
				break
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, n2 := rune(-1), 0
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2, n2 = hex4(s, i+3)
				}
				if dec := utf16.DecodeRune(r, r2); n2 != 0 && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, s[i])
		}
		i++
	}
	return string(out)
}

func hex4(s []byte, i int) (rune, int) {
	if i+4 > len(s) {
		return 0, 0
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, 0
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}

// Results of IntAt.
const (
	IntOK         = iota // an integer in [0, 2^63)
	IntNotNumber         // not a number at all
	IntNotInteger        // a number with a fraction or an exponent
	IntNegative          // an integer below zero
	IntTooLarge          // an integer of 2^63 or more
)

// IntAt reads the integer literal at b[start:end]. Only plain integer literals count
// ("3", not "3.0" or "3e0"): numbers are never round-tripped through float64.
func IntAt(b []byte, start, end int) (int64, int) {
	if start >= end || end > len(b) {
		return 0, IntNotNumber
	}
	s := b[start:end]
	if c := s[0]; c != '-' && (c < '0' || c > '9') {
		return 0, IntNotNumber
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, IntNotNumber
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, IntNotInteger
		}
		if n > (1<<63-1-9)/10 {
			if neg {
				return 0, IntNegative
			}
			return 0, IntTooLarge
		}
		n = n*10 + int64(c-'0')
	}
	if neg && n != 0 {
		return 0, IntNegative
	}
	return n, IntOK
}
