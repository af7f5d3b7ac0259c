package report

import "testing"

// FuzzParseEventID: whatever parses prints back as itself, and its Next sorts after it.
func FuzzParseEventID(f *testing.F) {
	for _, s := range []string{"0-0", "1712345678901-3", "18446744073709551615-18446744073709551615", "1-", "01-1", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseEventID(s)
		if !ok {
			return
		}
		back, ok2 := ParseEventID(id.String())
		if !ok2 || back != id {
			t.Fatalf("%q parsed as %v, which reparses as %v %v", s, id, back, ok2)
		}
		if id.MS != ^uint64(0) || id.Seq != ^uint64(0) {
			if id.Next().Compare(id) <= 0 {
				t.Fatalf("Next(%v) = %v does not sort after it", id, id.Next())
			}
		}
	})
}
