// Package money holds creditgate's unit of account: integer micro-USD.
//
// Every amount in the ledger, in Lua and on the wire is a Micros (1 USD = 1,000,000
// micros). There are no floats anywhere: amounts enter as decimal strings ("25.00"),
// are parsed exactly, and leave as decimal strings with six places ("25.000000"),
// or as the shortest exact decimal where a JSON number is wanted ("25"). This
// package is the one codec: Parse reads an amount a caller sends, ParseSigned a
// signed one (an adjustment), ParseFigure a figure creditgate computed (a balance,
// which may exceed MaxAmount); each rejects what a person might mistype or a float
// might produce (more than six decimals, exponent forms, NaN, a misplaced sign)
// with an error that says which.
package money

import (
	"errors"
	"fmt"
	"strconv"
)

// Micros is an amount of US dollars in millionths (micro-USD).
type Micros int64

// Common amounts.
const (
	Micro  Micros = 1
	Cent   Micros = 10_000
	Dollar Micros = 1_000_000
)

// MaxAmount bounds every amount accepted from outside: one billion dollars
// (1e15 micros). It keeps sums of many amounts far below 2^53, the largest integer
// Redis's Lua (double precision) represents exactly, so the Lua scripts never round.
const MaxAmount Micros = 1_000_000_000 * Dollar

// Decimals is the number of decimal places of a Micros amount.
const Decimals = 6

// MaxFigure bounds a figure creditgate computes rather than accepts: a balance,
// available = credit − debt − reserved, a total. Such a figure combines several
// amounts, so it may exceed MaxAmount, and a reader of creditgate's own answers
// (admin/client) must still be able to read it back. Twelve integer digits (just
// under a trillion dollars) leave a wide margin above any sum of amounts that Lua
// keeps exact (2^53 micros is about nine billion dollars) while keeping parsing
// and negation far inside int64 (about ±9.2e18).
const MaxFigure Micros = 1_000_000_000_000*Dollar - 1

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid amount")

// maxLen bounds the text a parser reads, sign included: the longest figure
// ("-999999999999.999999") is 20 characters, and anything much longer is not a
// mistyped amount but garbage, not worth echoing whole in an error.
const maxLen = 32

// Parse reads a non-negative decimal USD amount such as "5", "25.00" or "0.000001":
// an amount a caller sends (a top-up, a price, a limit). It accepts at most six
// decimals and at most MaxAmount; it rejects signs, exponents, spaces, NaN/Inf,
// hex and empty strings. The error names the problem.
func Parse(s string) (Micros, error) { return parse(s, false, MaxAmount) }

// ParseSigned is Parse for an amount that may be negative, written with a
// leading "-" ("-1.50"): an adjustment's correction. Its magnitude is at most
// MaxAmount, as for every amount a caller sends.
func ParseSigned(s string) (Micros, error) { return parse(s, true, MaxAmount) }

// ParseFigure reads a signed figure as creditgate writes it ("-0.300000"), up to
// ±MaxFigure: a client reading balances back, not a caller sending an amount.
func ParseFigure(s string) (Micros, error) { return parse(s, true, MaxFigure) }

// parse is the one decimal reader behind Parse, ParseSigned and ParseFigure:
// an optional leading "-" when signed, digits, and optionally a point followed by
// one to six digits; the value's magnitude at most limit (which is below 1e18, so
// the integer part is checked against limit before it could overflow).
func parse(s string, signed bool, limit Micros) (Micros, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if len(s) > maxLen {
		return 0, fmt.Errorf("%w %.32q…: too long", ErrSyntax, s)
	}
	tooLarge := func() error {
		if signed {
			return fmt.Errorf("%w %q: beyond the limit of ±%s", ErrSyntax, s, limit)
		}
		return fmt.Errorf("%w %q: larger than the maximum %s", ErrSyntax, s, limit)
	}
	neg := false
	digitsFrom := 0
	if signed && s[0] == '-' {
		neg, digitsFrom = true, 1
	}
	maxWhole := int64(limit / Dollar)
	var whole, frac int64
	digits, fracDigits := 0, 0
	seenDot := false
	for i := digitsFrom; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if seenDot {
				fracDigits++
				if fracDigits > Decimals {
					return 0, fmt.Errorf("%w %q: more than %d decimal places (amounts are in micro-USD)", ErrSyntax, s, Decimals)
				}
				frac = frac*10 + int64(c-'0')
			} else {
				digits++
				whole = whole*10 + int64(c-'0')
				if whole > maxWhole {
					return 0, tooLarge()
				}
			}
		case c == '.':
			if seenDot {
				return 0, fmt.Errorf("%w %q: more than one decimal point", ErrSyntax, s)
			}
			seenDot = true
		case c == '-' && signed:
			return 0, fmt.Errorf("%w %q: a minus sign belongs only at the start", ErrSyntax, s)
		case c == '-':
			return 0, fmt.Errorf("%w %q: negative amounts are not allowed", ErrSyntax, s)
		case c == '+' && signed:
			return 0, fmt.Errorf("%w %q: write a positive amount without a sign, a negative one with a leading \"-\"", ErrSyntax, s)
		case c == '+':
			return 0, fmt.Errorf("%w %q: write the amount without a sign", ErrSyntax, s)
		case c == 'e' || c == 'E':
			return 0, fmt.Errorf("%w %q: exponent notation is not allowed, write a plain decimal such as \"25.00\"", ErrSyntax, s)
		default:
			return 0, fmt.Errorf("%w %q: unexpected character %q, want a decimal such as \"25.00\"", ErrSyntax, s, rune(c))
		}
	}
	if digits == 0 {
		return 0, fmt.Errorf("%w %q: no digits before the decimal point", ErrSyntax, s)
	}
	if seenDot && fracDigits == 0 {
		return 0, fmt.Errorf("%w %q: no digits after the decimal point", ErrSyntax, s)
	}
	for i := fracDigits; i < Decimals; i++ {
		frac *= 10
	}
	m := Micros(whole)*Dollar + Micros(frac)
	if m > limit {
		return 0, tooLarge()
	}
	if neg {
		m = -m
	}
	return m, nil
}

// MustParse is Parse for constants in tests and defaults; it panics on error.
func MustParse(s string) Micros {
	m, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

// String formats m in USD with six decimals: "4.998731", "-0.300000".
func (m Micros) String() string {
	var buf [24]byte
	return string(m.AppendText(buf[:0]))
}

// AppendText appends m formatted as String does.
func (m Micros) AppendText(b []byte) []byte { return appendDecimal(b, m, Decimals, false) }

// Unit is a unit an amount can be written in.
type Unit int

const (
	// USD writes dollars: a micro-USD is the sixth decimal place.
	USD Unit = iota
	// Cents writes US cents: a micro-USD is 0.0001 cent, the fourth place.
	Cents
)

// places is how many decimal places of u a Micros fills.
func (u Unit) places() int {
	if u == Cents {
		return Decimals - 2
	}
	return Decimals
}

// Shortest formats m in u as the shortest exact decimal: no trailing zeros and no
// point for a whole number ("4.998731", "10", "-0.3"; 499.8731 in Cents). It is
// the form of a JSON number in the OpenAI-compatible billing answers, which
// carried USD and cents as numbers.
func (m Micros) Shortest(u Unit) string {
	var buf [24]byte
	return string(appendDecimal(buf[:0], m, u.places(), true))
}

// appendDecimal is the one formatter of amounts: it appends m / 10^places with
// every decimal place, or, when shortest, without trailing zeros (and without
// the point when nothing is left after it).
func appendDecimal(b []byte, m Micros, places int, shortest bool) []byte {
	u := uint64(m)
	if m < 0 {
		b = append(b, '-')
		u = uint64(-m) // correct for MinInt64 too, as uint64 wraps
	}
	scale := uint64(1)
	for range places {
		scale *= 10
	}
	b = strconv.AppendUint(b, u/scale, 10)
	frac := u % scale
	if shortest && frac == 0 {
		return b
	}
	b = append(b, '.')
	for div := scale / 10; div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
		if shortest && frac%div == 0 {
			break // the rest are zeros
		}
	}
	return b
}

// MarshalText encodes m as its decimal string, so JSON carries "25.000000".
func (m Micros) MarshalText() ([]byte, error) { return m.AppendText(nil), nil }

// UnmarshalText parses a non-negative decimal (see Parse).
func (m *Micros) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// UnmarshalJSON accepts a JSON string ("25.00") or a plain JSON number (25.00),
// read as Parse reads them.
func (m *Micros) UnmarshalJSON(b []byte) error {
	v, err := ParseJSON(b, Parse)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseJSON reads a JSON string ("-1.50") or a bare JSON number (-1.50) with
// parse (Parse, ParseSigned or ParseFigure). A number is read from its literal
// text, so no float rounding happens; null is an error.
func ParseJSON(b []byte, parse func(string) (Micros, error)) (Micros, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		return parse(s)
	}
	if string(b) == "null" {
		return 0, fmt.Errorf("%w: null", ErrSyntax)
	}
	return parse(string(b))
}

// FromFloatLiteral converts a number decoded from YAML into Micros through its
// shortest decimal representation ("0.15" stays 0.15), so operators can write
// prices as bare numbers. It rejects values that need more than six decimals.
func FromFloatLiteral(f float64) (Micros, error) {
	return Parse(strconv.FormatFloat(f, 'f', -1, 64))
}
