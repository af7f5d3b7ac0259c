package metering

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// A small JSON scanner. checkJSON validates a document (syntax and nesting depth) in
// one pass without allocating; the walkers below then read it by byte offsets, so
// the request parser learns where each field's bytes are (Rewrite splices them) and
// response chunks are read without unmarshalling them. The walkers expect a document
// that checkJSON accepted but never index out of bounds on any input.

// maxDepth bounds the nesting of arrays and objects in a request body.
const maxDepth = 64

type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return e.msg + " at byte offset " + strconv.Itoa(e.off) }

// checkJSON reports whether b holds exactly one JSON value nested at most depth deep.
func checkJSON(b []byte, depth int) error {
	i := skipSpace(b, 0)
	end, err := checkValue(b, i, depth)
	if err != nil {
		return err
	}
	if end = skipSpace(b, end); end != len(b) {
		return &jsonError{end, "unexpected data after the JSON value"}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
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

func checkValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, &jsonError{i, "unexpected end of JSON input"}
	}
	switch c := b[i]; c {
	case '{', '[':
		if depth <= 0 {
			return i, &jsonError{i, "JSON nested deeper than " + strconv.Itoa(maxDepth) + " levels"}
		}
		return checkContainer(b, i, depth-1)
	case '"':
		return checkString(b, i)
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
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, nil
	}
	for {
		var err error
		if isObject {
			if i >= len(b) || b[i] != '"' {
				return i, &jsonError{i, "expected a string object key"}
			}
			if i, err = checkString(b, i); err != nil {
				return i, err
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, &jsonError{i, "expected ':' after an object key"}
			}
			i = skipSpace(b, i+1)
		}
		if i, err = checkValue(b, i, depth); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, &jsonError{i, "unexpected end of JSON input"}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case closer:
			return i + 1, nil
		default:
			return i, &jsonError{i, "expected ',' or '" + string(closer) + "'"}
		}
	}
}

func checkString(b []byte, i int) (int, error) {
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

// skipValue returns the end of the value starting at b[i] (i past any space).
func skipValue(b []byte, i int) int {
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

// A member is one object member: the raw key (between its quotes) and the value's
// offsets in the document.
type member struct {
	key        []byte
	keyEscaped bool
	start, end int // value
}

// present reports whether the member was found (its value is not empty).
func (m *member) present() bool { return m.end > m.start }

// is reports whether the member's key, unescaped, equals name.
func (m *member) is(name string) bool {
	if !m.keyEscaped {
		return string(m.key) == name
	}
	return unquoteBytes(m.key) == name
}

// name returns the unescaped key.
func (m *member) name() string {
	if !m.keyEscaped {
		return string(m.key)
	}
	return unquoteBytes(m.key)
}

// nameView is name without a copy when the key has no escapes: it shares the
// document's memory (see textAt).
func (m *member) nameView() string {
	if !m.keyEscaped {
		return view(m.key)
	}
	return unquoteBytes(m.key)
}

// objectIter walks the members of the object whose '{' is at b[start].
type objectIter struct {
	b []byte
	i int
}

func iterObject(b []byte, start int) objectIter {
	if start >= len(b) || b[start] != '{' {
		return objectIter{b: b, i: len(b)}
	}
	return objectIter{b: b, i: start + 1}
}

func (it *objectIter) next() (m member, ok bool) {
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		it.i = len(b)
		return m, false
	}
	keyEnd := skipString(b, i)
	if keyEnd-1 <= i {
		it.i = len(b)
		return m, false
	}
	m.key = b[i+1 : keyEnd-1]
	for _, c := range m.key {
		if c == '\\' {
			m.keyEscaped = true
			break
		}
	}
	i = skipSpace(b, keyEnd)
	if i < len(b) && b[i] == ':' {
		i++
	}
	m.start = skipSpace(b, i)
	m.end = skipValue(b, m.start)
	it.i = m.end
	return m, m.start < len(b)
}

// arrayIter walks the elements of the array whose '[' is at b[start].
type arrayIter struct {
	b []byte
	i int
}

func iterArray(b []byte, start int) arrayIter {
	if start >= len(b) || b[start] != '[' {
		return arrayIter{b: b, i: len(b)}
	}
	return arrayIter{b: b, i: start + 1}
}

func (it *arrayIter) next() (start, end int, ok bool) {
	b := it.b
	i := skipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] == ']' {
		it.i = len(b)
		return 0, 0, false
	}
	end = skipValue(b, i)
	if end <= i {
		it.i = len(b)
		return 0, 0, false
	}
	it.i = end
	return i, end, true
}

// kindOf names the JSON type of the value starting at b[i], for error messages.
func kindOf(b []byte, i int) string {
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

// stringAt decodes the string value at b[start:end] (quotes included); ok is false
// when the value is not a string.
func stringAt(b []byte, start, end int) (string, bool) {
	if start >= end || end > len(b) || b[start] != '"' || end-start < 2 {
		return "", false
	}
	return unquoteBytes(b[start+1 : end-1]), true
}

// textAt is stringAt without a copy when the string has no escapes (most texts): the
// result then shares b's memory, so b must not change while the string is in use. The
// request parser uses it for the texts a Request keeps, whose body is immutable.
func textAt(b []byte, start, end int) (string, bool) {
	raw, escaped, ok := rawStringAt(b, start, end)
	switch {
	case !ok:
		return "", false
	case escaped:
		return unquoteBytes(raw), true
	}
	return view(raw), true
}

// view returns b's bytes as a string without copying them; b must not change while
// the string is in use.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// rawStringAt returns the undecoded content of the string at b[start:end] and
// whether it contains escapes.
func rawStringAt(b []byte, start, end int) (raw []byte, escaped, ok bool) {
	if start >= end || end > len(b) || b[start] != '"' || end-start < 2 {
		return nil, false, false
	}
	raw = b[start+1 : end-1]
	return raw, bytes.IndexByte(raw, '\\') >= 0, true
}

// unquoteBytes decodes the content of a JSON string. Invalid escapes and unpaired
// surrogates become U+FFFD, as encoding/json does; it never fails.
func unquoteBytes(s []byte) string {
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

// Results of intAt.
const (
	intOK = iota
	intNotNumber
	intNotInteger
	intNegative
	intTooLarge
)

// intAt reads the integer literal at b[start:end]. Only plain integer literals count
// ("3", not "3.0" or "3e0"): numbers are never round-tripped through float64.
func intAt(b []byte, start, end int) (int64, int) {
	if start >= end || end > len(b) {
		return 0, intNotNumber
	}
	s := b[start:end]
	if c := s[0]; c != '-' && (c < '0' || c > '9') {
		return 0, intNotNumber
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, intNotNumber
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, intNotInteger
		}
		if n > (1<<63-1-9)/10 {
			if neg {
				return 0, intNegative
			}
			return 0, intTooLarge
		}
		n = n*10 + int64(c-'0')
	}
	if neg && n != 0 {
		return 0, intNegative
	}
	return n, intOK
}
