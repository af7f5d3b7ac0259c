package money

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Micros
		wantErr string // substring of the error
	}{
		{in: "0", want: 0},
		{in: "5", want: 5 * Dollar},
		{in: "25.00", want: 25 * Dollar},
		{in: "4.998731", want: 4_998_731},
		{in: "0.000001", want: 1},
		{in: "0.1", want: 100_000},
		{in: "007.50", want: 7_500_000},
		{in: "1000000000", want: MaxAmount},
		{in: "1000000000.000001", wantErr: "larger than the maximum"},
		{in: "99999999999", wantErr: "larger than the maximum"},
		{in: "1.0000001", wantErr: "more than 6 decimal places"},
		{in: "-5", wantErr: "negative"},
		{in: "+5", wantErr: "without a sign"},
		{in: "1e3", wantErr: "exponent"},
		{in: "1E-3", wantErr: "exponent"},
		{in: "NaN", wantErr: "unexpected character"},
		{in: "Inf", wantErr: "unexpected character"},
		{in: "0x10", wantErr: "unexpected character"},
		{in: "", wantErr: "empty"},
		{in: ".5", wantErr: "no digits before"},
		{in: "5.", wantErr: "no digits after"},
		{in: "1.2.3", wantErr: "more than one decimal point"},
		{in: " 5", wantErr: "unexpected character"},
		{in: "5,00", wantErr: "unexpected character"},
		{in: strings.Repeat("1", 40), wantErr: "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Micros
		want string
	}{
		{0, "0.000000"},
		{1, "0.000001"},
		{4_998_731, "4.998731"},
		{25 * Dollar, "25.000000"},
		{-300_000, "-0.300000"},
		{-1, "-0.000001"},
		{math.MinInt64, "-9223372036854.775808"},
		{math.MaxInt64, "9223372036854.775807"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func TestJSON(t *testing.T) {
	var v struct{ A, B Micros }
	if err := json.Unmarshal([]byte(`{"A":"25.00","B":0.075}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 25*Dollar || v.B != 75_000 {
		t.Fatalf("got %+v", v)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"A":"25.000000","B":"0.075000"}` {
		t.Fatalf("marshal: %s", out)
	}
	for _, bad := range []string{`{"A":1e3}`, `{"A":-1}`, `{"A":null}`, `{"A":"1.0000001"}`, `{"A":true}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
}

func TestFromFloatLiteral(t *testing.T) {
	tests := []struct {
		in      float64
		want    Micros
		wantErr bool
	}{
		{0.15, 150_000, false},
		{0.075, 75_000, false},
		{2.5, 2_500_000, false},
		{10, 10 * Dollar, false},
		{0.0000001, 0, true},
		{-1, 0, true},
		{math.NaN(), 0, true},
		{math.Inf(1), 0, true},
		{1e20, 0, true},
	}
	for _, tc := range tests {
		got, err := FromFloatLiteral(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("FromFloatLiteral(%v) = %v, %v", tc.in, got, err)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts formats back to a string
// that parses to the same amount.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "25.00", "4.998731", "1e3", "-1", "1.0000001", "NaN", "", ".", "1000000000", "00.000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		if m < 0 || m > MaxAmount {
			t.Fatalf("Parse(%q) = %d out of range", s, m)
		}
		back, err := Parse(m.String())
		if err != nil || back != m {
			t.Fatalf("round trip %q → %s → %v, %v", s, m, back, err)
		}
	})
}
