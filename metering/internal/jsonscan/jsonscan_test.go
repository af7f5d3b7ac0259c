package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"strings"
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

// hasSpecialByte, the word-at-a-time test of CheckString, agrees with a byte loop:
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

// Check accepts exactly what encoding/json accepts (below the depth limit).
func TestCheckJSONMatchesEncodingJSON(t *testing.T) {
	pieces := []string{`{`, `}`, `[`, `]`, `"`, `:`, `,`, `\`, `\"`, `\\`, `\u00e9`, `\u12`, `\x`, "\x01", "\x1f", "\t", " ",
		`a`, `é`, `😀`, "\xff", `0`, `-1.5e3`, `true`, `null`, `"plain text of some length"`, `{"k":"v"}`, `[1,2]`}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 40).Draw(rt, "n")
		var b []byte
		for range n {
			b = append(b, pieces[rapid.IntRange(0, len(pieces)-1).Draw(rt, "piece")]...)
		}
		if got, want := Check(b, 64) == nil, json.Valid(b); got != want {
			rt.Fatalf("Check(%q) accepts: %v, encoding/json: %v", b, got, want)
		}
	})
}

// FuzzCheck: Check accepts exactly what encoding/json accepts.
//
//	go test -run '^$' -fuzz '^FuzzCheck$' -fuzztime 30s ./metering/internal/jsonscan
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":"b\u00e9\n"}`, `["x\"y",1,-2.5e3,true,null]`, "\"\x01\"", `"12345678\"12345678"`, `{"k":"` + "plain text that spans words" + `"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Check(b, 1<<20) == nil, json.Valid(b); got != want {
			t.Fatalf("Check(%q) accepts: %v, encoding/json: %v", b, got, want)
		}
	})
}

// Check refuses nesting beyond the depth it is given, naming that limit, and
// accepts it up to the limit.
func TestCheckDepth(t *testing.T) {
	nested := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	tests := []struct {
		levels, depth int
		wantErr       string // "" = accepted
	}{
		{levels: 64, depth: 64},
		{levels: 65, depth: 64, wantErr: "JSON nested deeper than 64 levels at byte offset 64"},
		{levels: 3, depth: 2, wantErr: "JSON nested deeper than 2 levels at byte offset 2"},
		{levels: 512, depth: 512},
	}
	for _, tc := range tests {
		err := Check(nested(tc.levels), tc.depth)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%d levels, depth %d: %v", tc.levels, tc.depth, err)
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("%d levels, depth %d: error %v, want %q", tc.levels, tc.depth, err, tc.wantErr)
		}
	}
}

// Checking and walking a document allocate nothing: the meter reads every stream
// chunk this way.
func TestCheckAndWalkAllocateNothing(t *testing.T) {
	doc := []byte(`{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":{"prompt_tokens":9}}`)
	allocs := testing.AllocsPerRun(100, func() {
		if Check(doc, 512) != nil {
			t.Fatal("rejected")
		}
		it := Members(doc, 0)
		for m, ok := it.Next(); ok; m, ok = it.Next() {
			if m.Is("choices") {
				ct := Elements(doc, m.Start)
				for s, _, ok := ct.Next(); ok; s, _, ok = ct.Next() {
					_ = KindOf(doc, s)
				}
			}
			if m.Is("usage") {
				ut := Members(doc, m.Start)
				for u, ok := ut.Next(); ok; u, ok = ut.Next() {
					if _, res := IntAt(doc, u.Start, u.End); res != IntOK {
						t.Fatal("not an int")
					}
				}
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per document", allocs)
	}
}
