package money

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"
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
		{in: "00000000005.5", want: 5_500_000}, // leading zeros are read by value
		{in: "5-", wantErr: "negative"},
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

// The signed parsers: ParseSigned for amounts callers send (±MaxAmount),
// ParseFigure for figures creditgate computed (±MaxFigure).
func TestParseSigned(t *testing.T) {
	tests := []struct {
		in           string
		signed       Micros
		signedErr    string // "" = accepted
		figure       Micros
		figureErr    string
		alsoUnsigned bool // Parse accepts it too, with the same value
	}{
		{in: "0", alsoUnsigned: true},
		{in: "-0.000000"},
		{in: "-0.300000", signed: -300_000, figure: -300_000},
		{in: "4.998731", signed: 4_998_731, figure: 4_998_731, alsoUnsigned: true},
		{in: "-1.5", signed: -1_500_000, figure: -1_500_000},
		{in: "25", signed: 25 * Dollar, figure: 25 * Dollar, alsoUnsigned: true},
		{in: "-1000000000", signed: -MaxAmount, figure: -MaxAmount},
		{in: "1000000000.000001", signedErr: "beyond the limit of ±1000000000.000000", figure: MaxAmount + 1},
		{in: "-1000000000.000001", signedErr: "beyond the limit", figure: -MaxAmount - 1},
		{in: "-999999999999.999999", signedErr: "beyond the limit", figure: -MaxFigure},
		{in: "999999999999.999999", signedErr: "beyond the limit", figure: MaxFigure},
		{in: "1000000000000", signedErr: "beyond the limit", figureErr: "beyond the limit of ±999999999999.999999"},
		{in: "-", signedErr: "no digits before", figureErr: "no digits before"},
		{in: "--1", signedErr: "only at the start", figureErr: "only at the start"},
		{in: "1-", signedErr: "only at the start", figureErr: "only at the start"},
		{in: "-+1", signedErr: "without a sign", figureErr: "without a sign"},
		{in: "+1", signedErr: "without a sign", figureErr: "without a sign"},
		{in: "-1e3", signedErr: "exponent", figureErr: "exponent"},
		{in: "-0.0000001", signedErr: "more than 6 decimal places", figureErr: "more than 6 decimal places"},
		{in: "- 1", signedErr: "unexpected character", figureErr: "unexpected character"},
		{in: "-.5", signedErr: "no digits before", figureErr: "no digits before"},
		{in: "-5.", signedErr: "no digits after", figureErr: "no digits after"},
		{in: "NaN", signedErr: "unexpected character", figureErr: "unexpected character"},
		{in: "", signedErr: "empty", figureErr: "empty"},
		{in: "-" + strings.Repeat("1", 32), signedErr: "too long", figureErr: "too long"},
	}
	check := func(t *testing.T, name string, parse func(string) (Micros, error), in string, want Micros, wantErr string) {
		t.Helper()
		got, err := parse(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) || !errors.Is(err, ErrSyntax) {
				t.Errorf("%s(%q) = %v, %v; want an error containing %q", name, in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("%s(%q) = %d, %v; want %d", name, in, got, err, want)
		}
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			check(t, "ParseSigned", ParseSigned, tc.in, tc.signed, tc.signedErr)
			check(t, "ParseFigure", ParseFigure, tc.in, tc.figure, tc.figureErr)
			if got, err := Parse(tc.in); (err == nil) != tc.alsoUnsigned || (err == nil && got != tc.signed) {
				t.Errorf("Parse(%q) = %d, %v; accepted: want %v", tc.in, got, err, tc.alsoUnsigned)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    Micros
		wantErr bool
	}{
		{in: `"-1.50"`, want: -1_500_000},
		{in: `-1.5`, want: -1_500_000},
		{in: `2`, want: 2 * Dollar},
		{in: `"2.00"`, want: 2 * Dollar},
		{in: `null`, wantErr: true},
		{in: `-1e3`, wantErr: true},
		{in: `"\x"`, wantErr: true},
		{in: `true`, wantErr: true},
		{in: `"-1.0000001"`, wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseJSON([]byte(tc.in), ParseSigned)
		if (err != nil) != tc.wantErr || got != tc.want || (err != nil && !errors.Is(err, ErrSyntax)) {
			t.Errorf("ParseJSON(%s, ParseSigned) = %d, %v; want %d (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestShortest(t *testing.T) {
	tests := []struct {
		in    Micros
		usd   string
		cents string
	}{
		{0, "0", "0"},
		{1, "0.000001", "0.0001"},
		{-1, "-0.000001", "-0.0001"},
		{100, "0.0001", "0.01"},
		{4_998_731, "4.998731", "499.8731"},
		{10 * Dollar, "10", "1000"},
		{-300_000, "-0.3", "-30"},
		{12_500_001, "12.500001", "1250.0001"},
		{MaxAmount, "1000000000", "100000000000"},
		{math.MinInt64, "-9223372036854.775808", "-922337203685477.5808"},
		{math.MaxInt64, "9223372036854.775807", "922337203685477.5807"},
	}
	for _, tc := range tests {
		if got := tc.in.Shortest(USD); got != tc.usd {
			t.Errorf("%d.Shortest(USD) = %q, want %q", int64(tc.in), got, tc.usd)
		}
		if got := tc.in.Shortest(Cents); got != tc.cents {
			t.Errorf("%d.Shortest(Cents) = %q, want %q", int64(tc.in), got, tc.cents)
		}
	}
}

// Every figure formats, both ways, to text ParseFigure reads back exactly, and
// the shortest form has no trailing zero.
func TestFormatRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := Micros(rapid.OneOf(
			rapid.Int64Range(-int64(MaxFigure), int64(MaxFigure)),
			rapid.Int64Range(-1_000_000, 1_000_000),
			rapid.SampledFrom([]int64{0, 1, -1, int64(MaxAmount), -int64(MaxAmount), int64(MaxFigure), -int64(MaxFigure)}),
		).Draw(t, "m"))
		for _, text := range []string{m.String(), m.Shortest(USD)} {
			back, err := ParseFigure(text)
			if err != nil || back != m {
				t.Fatalf("%d → %q → %d, %v", int64(m), text, back, err)
			}
		}
		if short := m.Shortest(USD); strings.Contains(short, ".") && strings.HasSuffix(short, "0") {
			t.Fatalf("%d.Shortest(USD) = %q has a trailing zero", int64(m), short)
		}
	})
}

// plainDecimal is the grammar every parser accepts, before bounds: an optional
// minus, digits, and optionally a point and one to six digits.
var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,6})?$`)

// FuzzParse: the three parsers never panic and agree with an independent reading
// of the same text (math/big), each within its bounds; whatever they accept
// formats back, in six places, shortest USD and shortest cents, to text that
// parses to the same amount.
//
//	go test -run '^$' -fuzz '^FuzzParse$' ./money
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0", "25.00", "4.998731", "1e3", "-1", "1.0000001", "NaN", "", ".", "1000000000", "00.000001",
		// signed amounts and figures
		"-0.300000", "-", "--1", "-+1", "-1000000000.000000", "-1000000000.000001", "-999999999999.999999", "1000000000000",
		// the shortest forms of the compat endpoints' numbers
		"0.9999", "1000000000.000062", "0.00003", "-0.3", "1250.0001",
	} {
		f.Add(s)
	}
	million := big.NewRat(int64(Dollar), 1)
	f.Fuzz(func(t *testing.T, s string) {
		// The oracle: a plain decimal of at most maxLen characters is worth
		// exactly want micros.
		var want *big.Rat
		if len(s) <= maxLen && plainDecimal.MatchString(s) {
			r, ok := new(big.Rat).SetString(s)
			if !ok {
				t.Fatalf("big.Rat cannot read %q", s)
			}
			want = r.Mul(r, million)
		}
		within := func(limit Micros) bool {
			return want != nil && new(big.Rat).Abs(want).Cmp(big.NewRat(int64(limit), 1)) <= 0
		}
		for _, p := range []struct {
			name   string
			parse  func(string) (Micros, error)
			accept bool
		}{
			{"Parse", Parse, within(MaxAmount) && !strings.HasPrefix(s, "-")},
			{"ParseSigned", ParseSigned, within(MaxAmount)},
			{"ParseFigure", ParseFigure, within(MaxFigure)},
		} {
			m, err := p.parse(s)
			if err != nil {
				if p.accept {
					t.Fatalf("%s(%q): %v; want %s", p.name, s, err, want.FloatString(0))
				}
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("%s(%q): error %v does not wrap ErrSyntax", p.name, s, err)
				}
				continue
			}
			if !p.accept {
				t.Fatalf("%s(%q) = %d, want an error", p.name, s, m)
			}
			if got := big.NewRat(int64(m), 1); got.Cmp(want) != 0 {
				t.Fatalf("%s(%q) = %d, want %s", p.name, s, m, want.FloatString(0))
			}
			for _, text := range []string{m.String(), m.Shortest(USD)} {
				if back, err := p.parse(text); err != nil || back != m {
					t.Fatalf("%s round trip %q → %q → %d, %v", p.name, s, text, back, err)
				}
			}
			// Cents are the same digits with the point two places further right.
			if cents := m.Shortest(Cents); m >= -MaxFigure/100 && m <= MaxFigure/100 {
				if back, err := ParseFigure(cents); err != nil || back != 100*m {
					t.Fatalf("cents of %d: %q reads back as %d, %v", m, cents, back, err)
				}
			}
		}
	})
}
