package portal

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzFormAmount: the dollar-amount parser of the forms accepts only whole
// cents within money's range, and what it accepts reads back as the same amount.
func FuzzFormAmount(f *testing.F) {
	for _, s := range []string{"10", "25.50", "$5", " 7.1 ", "0.001", "-3", "1e3", "NaN", "", "99999999999", "1,000", "0x10", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest("POST", "/billing/purchases", strings.NewReader(url.Values{"amount": {s}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		m, e := formAmount(r, "amount", "an amount")
		if e != nil {
			if e.status != 400 || e.field != "amount" || e.message == "" {
				t.Fatalf("%q: refusal %+v", s, e)
			}
			return
		}
		if m < 0 || m%10_000 != 0 {
			t.Fatalf("%q accepted as %s", s, m)
		}
		r2 := httptest.NewRequest("POST", "/", strings.NewReader(url.Values{"amount": {m.String()}}.Encode()))
		r2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if back, e := formAmount(r2, "amount", "an amount"); e != nil || back != m {
			t.Fatalf("%q → %s reads back as %s (%v)", s, m, back, e)
		}
	})
}
