package metering

import (
	"encoding/binary"
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

func naiveSpecial(x uint64) bool {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x)
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// hasSpecialByte, the word-at-a-time test of checkString, agrees with a byte loop:
// every byte value at every position of an otherwise plain word, and random words.
func TestHasSpecialByte(t *testing.T) {
	for _, fill := range []byte{'a', ' ', 0x7f, 0x80, 0xff, 0x21, 0x5d} {
		for pos := range 8 {
			for v := range 256 {
				var b [8]byte
				for i := range b {
					b[i] = fill
				}
				b[pos] = byte(v)
				x := binary.LittleEndian.Uint64(b[:])
				if got, want := hasSpecialByte(x), naiveSpecial(x); got != want {
					t.Fatalf("hasSpecialByte(% x) = %v, want %v", b, got, want)
				}
			}
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		x := rapid.Uint64().Draw(rt, "x")
		if got, want := hasSpecialByte(x), naiveSpecial(x); got != want {
			rt.Fatalf("hasSpecialByte(%#x) = %v, want %v", x, got, want)
		}
	})
}

// checkJSON accepts exactly what encoding/json accepts (below the depth limit).
func TestCheckJSONMatchesEncodingJSON(t *testing.T) {
	pieces := []string{`{`, `}`, `[`, `]`, `"`, `:`, `,`, `\`, `\"`, `\\`, `\u00e9`, `\u12`, `\x`, "\x01", "\x1f", "\t", " ",
		`a`, `é`, `😀`, "\xff", `0`, `-1.5e3`, `true`, `null`, `"plain text of some length"`, `{"k":"v"}`, `[1,2]`}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 40).Draw(rt, "n")
		var b []byte
		for range n {
			b = append(b, pieces[rapid.IntRange(0, len(pieces)-1).Draw(rt, "piece")]...)
		}
		if got, want := checkJSON(b, maxDepth) == nil, json.Valid(b); got != want {
			rt.Fatalf("checkJSON(%q) accepts: %v, encoding/json: %v", b, got, want)
		}
	})
}

// FuzzCheckJSON: checkJSON accepts exactly what encoding/json accepts.
//
//	go test -run '^$' -fuzz '^FuzzCheckJSON$' -fuzztime 30s ./metering
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":"b\u00e9\n"}`, `["x\"y",1,-2.5e3,true,null]`, "\"\x01\"", `"12345678\"12345678"`, `{"k":"` + "plain text that spans words" + `"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := checkJSON(b, 1<<20) == nil, json.Valid(b); got != want {
			t.Fatalf("checkJSON(%q) accepts: %v, encoding/json: %v", b, got, want)
		}
	})
}
