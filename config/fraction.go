package config

import (
	"fmt"

	"github.com/creditgate/creditgate/money"
)

// Fraction is a share of a whole in millionths (1000000 is all of it), written
// in YAML as a decimal of at most six places ("0.5", "0.25") and parsed exactly,
// digit by digit, as money is: never through a float.
type Fraction int64

// FractionOne is the whole: a Fraction of 1.
const FractionOne Fraction = 1_000_000

// parseFraction reads a decimal such as "0.5" (at most six places, not
// negative) into millionths.
func parseFraction(s string) (Fraction, error) {
	m, err := money.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("invalid fraction %q: want a decimal of at most six places such as 0.5", s)
	}
	return Fraction(m), nil
}

// String writes f as the shortest decimal that parses back to it ("0.5", "1").
func (f Fraction) String() string {
	s := money.Micros(f).String() // six places
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
