package payments

import (
	"errors"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/money"
)

func TestParseCurrency(t *testing.T) {
	tests := []struct {
		in      string
		want    Currency
		wantErr string // substring; "" = no error
	}{
		{"", "usd", ""},
		{"usd", "usd", ""},
		{"EUR", "eur", ""},
		{"Gbp", "gbp", ""},
		{"jpy", "", "zero-decimal"},
		{"KRW", "", "zero-decimal"},
		{"kwd", "", "three-decimal"},
		{"bhd", "", "three-decimal"},
		{"isk", "", "whole-unit only"},
		{"us", "", "three-letter"},
		{"usdd", "", "three-letter"},
		{"u$d", "", "three-letter"},
		{"ü€", "", "three-letter"},
	}
	for _, tt := range tests {
		got, err := ParseCurrency(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseCurrency(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrCurrency) || !contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseCurrency(%q) error = %v; want ErrCurrency mentioning %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestMinorUnits(t *testing.T) {
	usd := money.MustParse
	tests := []struct {
		micros money.Micros
		minor  int64
		err    bool // ToMinor refuses micros
	}{
		{0, 0, false},
		{usd("0.01"), 1, false},
		{usd("10.00"), 1000, false},
		{usd("4.98"), 498, false},
		{money.MaxAmount, int64(money.MaxAmount / money.Cent), false},
		{usd("4.981190"), 0, true}, // not whole cents
		{usd("0.005"), 0, true},
		{-money.Cent, 0, true},
		{money.MaxAmount + money.Cent, 0, true},
	}
	for _, tt := range tests {
		got, err := ToMinor(tt.micros)
		if tt.err {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("ToMinor(%s) = %d, %v; want ErrInvalid", tt.micros, got, err)
			}
			continue
		}
		if err != nil || got != tt.minor {
			t.Errorf("ToMinor(%s) = %d, %v; want %d", tt.micros, got, err, tt.minor)
		}
		back, err := FromMinor(tt.minor)
		if err != nil || back != tt.micros {
			t.Errorf("FromMinor(%d) = %s, %v; want %s", tt.minor, back, err, tt.micros)
		}
	}
	for _, minor := range []int64{-1, maxMinor + 1, 1<<63 - 1} {
		if m, err := FromMinor(minor); !errors.Is(err, ErrInvalid) {
			t.Errorf("FromMinor(%d) = %s, %v; want ErrInvalid", minor, m, err)
		}
	}
}

// FuzzMinorUnits: the conversion is exact both ways, never overflows, and refuses
// exactly the amounts that are not a whole number of cents in range.
func FuzzMinorUnits(f *testing.F) {
	for _, v := range []int64{0, 1, 9_999, 10_000, 4_981_190, -10_000, int64(money.MaxAmount), 1<<63 - 1, -1 << 63} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		m := money.Micros(v)
		minor, err := ToMinor(m)
		valid := m >= 0 && m <= money.MaxAmount && m%money.Cent == 0
		if valid != (err == nil) {
			t.Fatalf("ToMinor(%d) = %d, %v; valid=%v", v, minor, err, valid)
		}
		if err == nil {
			back, err := FromMinor(minor)
			if err != nil || back != m {
				t.Fatalf("FromMinor(ToMinor(%d)) = %d, %v", v, back, err)
			}
		}
		back, err := FromMinor(v)
		if (v >= 0 && v <= maxMinor) != (err == nil) {
			t.Fatalf("FromMinor(%d) = %d, %v", v, back, err)
		}
		if err == nil {
			if again, err := ToMinor(back); err != nil || again != v {
				t.Fatalf("ToMinor(FromMinor(%d)) = %d, %v", v, again, err)
			}
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
