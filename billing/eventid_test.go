package billing_test

import (
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/report"
)

func TestValidEventID(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"0-0", true}, {"1712345678901-3", true}, {"18446744073709551615-18446744073709551615", true},
		{"", false}, {"1", false}, {"-1", false}, {"1-", false}, {"1-2-3", false}, {"a-1", false},
		{"1-+1", false}, {" 1-1", false}, {"18446744073709551616-0", false}, {"+", false}, {"-", false},
	} {
		if got := billing.ValidEventID(c.id); got != c.ok {
			t.Errorf("ValidEventID(%q) = %v, want %v", c.id, got, c.ok)
		}
	}
}

// FuzzValidEventID: the ledger's cursor check agrees with the reports' parser
// (what one accepts the other can seek by), and a valid id sorts equal to
// itself only.
func FuzzValidEventID(f *testing.F) {
	for _, s := range []string{"0-0", "1712345678901-3", "1-", "01-1", "a-b", "1-2-3", "18446744073709551616-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, parsed := report.ParseEventID(s)
		if valid := billing.ValidEventID(s); valid != parsed {
			t.Fatalf("ValidEventID(%q) = %v, report.ParseEventID ok = %v", s, valid, parsed)
		}
		if parsed && billing.CompareEventIDs(s, id.String()) != 0 {
			t.Fatalf("%q does not compare equal to its parse %v", s, id)
		}
	})
}
