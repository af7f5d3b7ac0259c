// Package money holds creditgate's unit of account: integer micro-USD.
//
// Every amount in the ledger, in Lua and on the wire is a Micros (1 USD = 1,000,000
// micros). There are no floats anywhere: amounts enter as decimal strings ("25.00"),
// are parsed exactly, and leave as decimal strings with six places ("25.000000").
// Parse rejects what a person might mistype or a float might produce (more than six
// decimals, exponent forms, NaN, signs) with an error that says which.
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

// ErrSyntax is wrapped by every Parse error.
var ErrSyntax = errors.New("invalid amount")

// Parse reads a non-negative decimal USD amount such as "5", "25.00" or "0.000001".
// It accepts at most six decimals and at most MaxAmount; it rejects signs, exponents,
// spaces, NaN/Inf, hex and empty strings. The error names the problem.
func Parse(s string) (Micros, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrSyntax)
	}
	if len(s) > 32 {
		return 0, fmt.Errorf("%w %.32q…: too long", ErrSyntax, s)
	}
	var whole, frac int64
	digits, fracDigits := 0, 0
	seenDot := false
	for i := 0; i < len(s); i++ {
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
				if digits > 10 { // 10 integer digits already exceed MaxAmount
					return 0, fmt.Errorf("%w %q: larger than the maximum %s", ErrSyntax, s, MaxAmount)
				}
				whole = whole*10 + int64(c-'0')
			}
		case c == '.':
			if seenDot {
				return 0, fmt.Errorf("%w %q: more than one decimal point", ErrSyntax, s)
			}
			seenDot = true
		case c == '-':
			return 0, fmt.Errorf("%w %q: negative amounts are not allowed", ErrSyntax, s)
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
	if m > MaxAmount {
		return 0, fmt.Errorf("%w %q: larger than the maximum %s", ErrSyntax, s, MaxAmount)
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
func (m Micros) AppendText(b []byte) []byte {
	u := uint64(m)
	if m < 0 {
		b = append(b, '-')
		u = uint64(-m) // correct for MinInt64 too, as uint64 wraps
	}
	b = strconv.AppendUint(b, u/uint64(Dollar), 10)
	frac := u % uint64(Dollar)
	b = append(b, '.')
	for div := uint64(Dollar) / 10; div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
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
// read from its literal text so no float rounding happens.
func (m *Micros) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		return m.UnmarshalText([]byte(s))
	}
	if string(b) == "null" {
		return fmt.Errorf("%w: null", ErrSyntax)
	}
	return m.UnmarshalText(b)
}

// FromFloatLiteral converts a number decoded from YAML into Micros through its
// shortest decimal representation ("0.15" stays 0.15), so operators can write
// prices as bare numbers. It rejects values that need more than six decimals.
func FromFloatLiteral(f float64) (Micros, error) {
	return Parse(strconv.FormatFloat(f, 'f', -1, 64))
}
