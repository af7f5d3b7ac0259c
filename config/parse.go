package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Every value reaches these parsers as the literal text written in the YAML file
// or the environment, so a number such as 0.075 is read digit by digit and never
// passes through a float.

var (
	durationType = reflect.TypeFor[time.Duration]()
	microsType   = reflect.TypeFor[money.Micros]()
	byteSizeType = reflect.TypeFor[ByteSize]()
	// adminTokensType (admin.tokens) is one key: a list of bare strings or
	// {token, name, scopes} mappings in the file, a comma list in the environment.
	adminTokensType = reflect.TypeFor[[]AdminToken]()
	fractionType    = reflect.TypeFor[Fraction]()
)

// isValueType reports whether t is read from a single YAML value (or a list of
// strings), as opposed to a section.
func isValueType(t reflect.Type) bool {
	switch t {
	case durationType, microsType, byteSizeType, adminTokensType, fractionType:
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int64, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	case reflect.Pointer:
		return t.Elem() == microsType
	}
	return false
}

// setValue parses raw (a string, a list of strings, or nil for "zero") into v.
func setValue(v reflect.Value, raw any) error {
	if raw == nil {
		v.SetZero()
		return nil
	}
	if v.Type() == adminTokensType {
		if entries, ok := raw.([]AdminToken); ok {
			v.Set(reflect.ValueOf(append([]AdminToken(nil), entries...)))
			return nil
		}
		list, err := toList(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(BareTokens(list...)))
		return nil
	}
	if v.Kind() == reflect.Slice {
		list, err := toList(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	s, ok := raw.(string)
	if !ok {
		return errors.New("expected a single value, got a list")
	}
	switch v.Type() {
	case durationType:
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case microsType:
		m, err := money.Parse(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(m))
		return nil
	case byteSizeType:
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(n))
		return nil
	case fractionType:
		f, err := parseFraction(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(f))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer: // *money.Micros: present means set
		m, err := money.Parse(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&m))
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q: want true or false", s)
		}
		v.SetBool(b)
	case reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q: want a whole number such as 4096", s)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("invalid number %q: want a decimal such as 0.10", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("config: no parser for %s", v.Type()) // a schema bug, caught by tests
	}
	return nil
}

// toList reads a YAML list as is, or a single string (an environment variable)
// as a comma-separated list whose blank items are dropped.
func toList(raw any) ([]string, error) {
	switch r := raw.(type) {
	case []string:
		return append([]string(nil), r...), nil
	case []any: // viper may hand a list back untyped
		out := make([]string, 0, len(r))
		for _, x := range r {
			s, ok := x.(string)
			if !ok {
				return nil, errors.New("expected a list of strings")
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		var out []string
		for item := range strings.SplitSeq(r, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	}
	return nil, errors.New("expected a list of strings")
}

// formatValue is the inverse of setValue: the literal that parses back to v.
// Defaults are registered in viper in this form, so they take the same path as
// values from the file and the environment.
func formatValue(v reflect.Value) any {
	switch v.Type() {
	case durationType:
		return time.Duration(v.Int()).String()
	case microsType:
		return money.Micros(v.Int()).String()
	case byteSizeType:
		return strconv.FormatInt(v.Int(), 10)
	case adminTokensType:
		if v.IsNil() {
			return nil
		}
		return append([]AdminToken(nil), v.Interface().([]AdminToken)...)
	case fractionType:
		return Fraction(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		return append([]string(nil), v.Interface().([]string)...)
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return money.Micros(v.Elem().Int()).String()
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	}
	return nil
}

// maxDays keeps a day count within time.Duration (about 292 years).
const maxDays = math.MaxInt64 / int64(24*time.Hour)

// parseDuration reads a Go duration ("15m", "8760h") optionally led by whole
// days ("365d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	bad := func() error {
		return fmt.Errorf("invalid duration %q: want a duration such as \"30s\", \"15m\", \"8760h\" or \"365d\"", s)
	}
	if i := strings.IndexByte(s, 'd'); i > 0 && isDigits(s[:i]) {
		days, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || days > maxDays {
			return 0, bad()
		}
		d := time.Duration(days) * 24 * time.Hour
		rest := s[i+1:]
		if rest == "" {
			return d, nil
		}
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 || r > math.MaxInt64-d {
			return 0, bad()
		}
		return d + r, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad()
	}
	return d, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// sizeUnits are the accepted size suffixes, matched case-insensitively.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1000, "mb": 1000 * 1000, "gb": 1000 * 1000 * 1000,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// parseSize reads a byte count: "16777216", "16MiB", "512 KB".
func parseSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("invalid size %q: want a byte count such as 16777216 or \"16MiB\" (units B, KB, MB, GB, KiB, MiB, GiB)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return ByteSize(n * unit), nil
}
