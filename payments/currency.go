package payments

import (
	"fmt"

	"github.com/creditgate/creditgate/money"
)

// Currency is an ISO 4217 code in Stripe's lowercase spelling ("usd", "eur") of a
// currency with two decimal places, whose minor unit (the cent) is 10,000 micros.
//
// creditgate's ledger counts micro-units (money.Micros) and converts them to the
// provider's minor units at exactly 10,000 per minor unit. Only two-decimal
// currencies satisfy that. Zero-decimal currencies (JPY, KRW, …: Stripe's minor
// unit is the whole yen) would credit 100 times the price, three-decimal ones (KWD,
// BHD, …) a tenth of it, and Stripe's special cases (ISK, UGX: two decimals on the
// wire but only whole units chargeable) would refuse most amounts; ParseCurrency
// refuses them all rather than convert any amount wrongly. With a currency other
// than usd, the ledger's "USD" amounts (prices, limits, balances) are read in that
// currency: configure prices in it.
type Currency string

// DefaultCurrency is payments.currency's default.
const DefaultCurrency Currency = "usd"

// MicrosPerMinorUnit is the value of one cent in micros.
const MicrosPerMinorUnit = money.Cent

// notTwoDecimal are the currencies Stripe does not charge in hundredths.
var notTwoDecimal = map[string]string{
	// zero-decimal: the minor unit is the whole unit
	"bif": "zero-decimal", "clp": "zero-decimal", "djf": "zero-decimal", "gnf": "zero-decimal",
	"jpy": "zero-decimal", "kmf": "zero-decimal", "krw": "zero-decimal", "mga": "zero-decimal",
	"pyg": "zero-decimal", "rwf": "zero-decimal", "vnd": "zero-decimal", "vuv": "zero-decimal",
	"xaf": "zero-decimal", "xof": "zero-decimal", "xpf": "zero-decimal",
	// three-decimal: the minor unit is a thousandth
	"bhd": "three-decimal", "jod": "three-decimal", "kwd": "three-decimal", "omr": "three-decimal",
	"tnd": "three-decimal",
	// two decimals on the wire, but Stripe only charges whole units
	"isk": "whole-unit only", "ugx": "whole-unit only",
}

// ParseCurrency checks a payments.currency value: three letters (any case),
// naming a two-decimal currency. An empty string is DefaultCurrency.
func ParseCurrency(s string) (Currency, error) {
	if s == "" {
		return DefaultCurrency, nil
	}
	if len(s) != 3 {
		return "", fmt.Errorf("%w %q: want a three-letter ISO 4217 code such as \"usd\"", ErrCurrency, s)
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		default:
			return "", fmt.Errorf("%w %q: want a three-letter ISO 4217 code such as \"usd\"", ErrCurrency, s)
		}
	}
	code := string(b)
	if kind, ok := notTwoDecimal[code]; ok {
		return "", fmt.Errorf("%w %q: it is a %s currency, and creditgate converts credit to payments at 100 minor units per unit (two-decimal currencies only)", ErrCurrency, s, kind)
	}
	return Currency(code), nil
}

// maxMinor is the largest minor-unit amount FromMinor accepts: money.MaxAmount.
const maxMinor = int64(money.MaxAmount / MicrosPerMinorUnit)

// ToMinor converts an amount to minor units (cents). It refuses negative amounts,
// amounts above money.MaxAmount and amounts that are not a whole number of cents,
// because a payment cannot carry a fraction of a cent and rounding would make the
// credit differ from the price.
func ToMinor(m money.Micros) (int64, error) {
	if m < 0 {
		return 0, fmt.Errorf("%w: amount %s is negative", ErrInvalid, m)
	}
	if m > money.MaxAmount {
		return 0, fmt.Errorf("%w: amount %s is above the maximum %s", ErrInvalid, m, money.MaxAmount)
	}
	if m%MicrosPerMinorUnit != 0 {
		return 0, fmt.Errorf("%w: amount %s is not a whole number of cents", ErrInvalid, m)
	}
	return int64(m / MicrosPerMinorUnit), nil
}

// FromMinor converts a provider's minor-unit amount to micros, refusing negative
// amounts and amounts above money.MaxAmount.
func FromMinor(minor int64) (money.Micros, error) {
	if minor < 0 {
		return 0, fmt.Errorf("%w: amount of %d minor units is negative", ErrInvalid, minor)
	}
	if minor > maxMinor {
		return 0, fmt.Errorf("%w: amount of %d minor units is above the maximum %s", ErrInvalid, minor, money.MaxAmount)
	}
	return money.Micros(minor) * MicrosPerMinorUnit, nil
}
