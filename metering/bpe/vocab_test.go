package bpe

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// mergeReference is tiktoken's byte-pair merge written plainly (quadratic): merge the
// adjacent pair whose concatenation has the lowest rank, the leftmost on ties, until no
// pair is a token. It also returns the last merge made, or noToken twice if none.
func mergeReference(v *vocab, piece string) (tokens []uint32, last tokenPair) {
	ranks := ranksOf(v)
	last = tokenPair{noToken, noToken}
	bounds := make([]int, len(piece)+1)
	for i := range bounds {
		bounds[i] = i
	}
	for {
		best, at := noToken, -1
		for i := 0; i+2 < len(bounds); i++ {
			if r, ok := ranks[piece[bounds[i]:bounds[i+2]]]; ok && r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		last = tokenPair{ranks[piece[bounds[at]:bounds[at+1]]], ranks[piece[bounds[at+1]:bounds[at+2]]]}
		bounds = append(bounds[:at+1], bounds[at+2:]...)
	}
	for i := 0; i+1 < len(bounds); i++ {
		tokens = append(tokens, ranks[piece[bounds[i]:bounds[i+1]]])
	}
	return tokens, last
}

type tokenPair struct{ left, right uint32 }

var rankMaps sync.Map // *vocab -> map[string]uint32

// ranksOf returns a map from token bytes to rank, built once per vocab.
func ranksOf(v *vocab) map[string]uint32 {
	if m, ok := rankMaps.Load(v); ok {
		return m.(map[string]uint32)
	}
	m := make(map[string]uint32, v.size())
	for t := range v.size() {
		m[v.token(uint32(t))] = uint32(t)
	}
	rankMaps.Store(v, m)
	return m
}

func testVocab(t testing.TB, name string) *vocab {
	t.Helper()
	e, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return e.v
}

// TestSplitTableMatchesMerging checks the reconstructed merge trees against plain
// merging for every token of both encodings: a token is reachable exactly when merging
// its bytes gives the token itself, and its split is the last merge made.
func TestSplitTableMatchesMerging(t *testing.T) {
	if testing.Short() {
		t.Skip("merges every token of both encodings")
	}
	for _, name := range []string{Cl100kBase, O200kBase} {
		v := testVocab(t, name)
		unreachable := 0
		for id := range v.size() {
			tok := v.token(uint32(id))
			got, last := mergeReference(v, tok)
			reachable := len(got) == 1 && got[0] == uint32(id)
			if !reachable {
				unreachable++
			}
			split := tokenPair{v.info[id].left, v.info[id].right}
			if (split.left != noToken) != reachable {
				t.Errorf("%s token %d %q: merging gives %v, split table says reachable=%v",
					name, id, tok, got, split.left != noToken)
				continue
			}
			if reachable && len(tok) > 1 && split != last {
				t.Errorf("%s token %d %q: last merge %v, split table %v", name, id, tok, last, split)
			}
		}
		t.Logf("%s: %d tokens, %d unreachable by merging, %d trie nodes", name, v.size(), unreachable, v.trie.size())
	}
}

// TestBacktrackMatchesMerging compares the backtracking encoder with plain merging on
// random byte strings made to provoke merges across token boundaries: runs of one
// byte, concatenated tokens, token fragments and random bytes.
func TestBacktrackMatchesMerging(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 30000
	if testing.Short() {
		n = 3000
	}
	for _, name := range []string{Cl100kBase, O200kBase} {
		v := testVocab(t, name)
		for range n {
			piece := randomBytes(rng, v)
			if piece == "" {
				continue
			}
			want, _ := mergeReference(v, piece)
			bits := make([]uint64, len(piece)/64+1)
			first, n := v.trie.longest(piece)
			got := v.backtrack(piece, first, n, nil, bits)
			if !slicesEqual(got, want) {
				t.Fatalf("%s %q: backtracking %v, merging %v", name, piece, got, want)
			}
		}
	}
}

func randomBytes(rng *rand.Rand, v *vocab) string {
	var b strings.Builder
	for parts := rng.IntN(6) + 1; parts > 0; parts-- {
		switch rng.IntN(5) {
		case 0: // a run of one byte or one token
			unit := v.token(uint32(rng.IntN(v.size())))
			if rng.IntN(2) == 0 {
				unit = unit[:1]
			}
			b.WriteString(strings.Repeat(unit, rng.IntN(12)+1))
		case 1, 2: // a whole token
			b.WriteString(v.token(uint32(rng.IntN(v.size()))))
		case 3: // a fragment of a token
			tok := v.token(uint32(rng.IntN(v.size())))
			i := rng.IntN(len(tok))
			b.WriteString(tok[i : i+rng.IntN(len(tok)-i)+1])
		default: // random bytes
			for k := rng.IntN(8); k >= 0; k-- {
				b.WriteByte(byte(rng.IntN(256)))
			}
		}
	}
	return b.String()
}

func rankFile(tokens ...string) []byte {
	var b strings.Builder
	for i, tok := range tokens {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte(tok)), i)
	}
	return []byte(b.String())
}

func allBytes() []string {
	out := make([]string, 256)
	for i := range out {
		out[i] = string([]byte{byte(i)})
	}
	return out
}

func TestParseRanks(t *testing.T) {
	good := rankFile(append(allBytes(), "ab", "abc")...)
	tests := []struct {
		name    string
		data    []byte
		wantErr string // empty: must parse
	}{
		{"ok", good, ""},
		{"ok without final newline", good[:len(good)-1], ""},
		{"empty", nil, "no tokens"},
		{"no rank", []byte("YQ==\n"), `line 1: want "<base64 token> <rank>"`},
		{"bad rank", []byte("YQ== x1\n"), `line 1: rank "x1" is not a number`},
		{"huge rank", []byte("YQ== 12345678901\n"), `line 1: rank "12345678901" is not a number`},
		{"rank out of order", []byte("YQ== 1\n"), "line 1: rank 1 out of order, want 0"},
		{"bad base64", []byte("Y!== 0\n"), "line 1: token: illegal base64"},
		{"empty token", []byte(" 0\n"), "line 1: token of 0 bytes, want 1 to 255"},
		{"duplicate", rankFile("a", "a"), "token of rank 1 appears twice"},
		{"missing byte", rankFile("a", "b"), "byte 0x00 is not a token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseRanks("test.tiktoken", tt.data)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got := ranksOf(v)["abc"]; got != 257 || v.token(256) != "ab" {
					t.Fatalf("ranks wrong: abc=%d, token 256=%q", got, v.token(256))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "test.tiktoken") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// FuzzParseRanks feeds arbitrary rank files to the parser: it must fail cleanly or
// produce tables consistent with the file.
func FuzzParseRanks(f *testing.F) {
	f.Add(rankFile(append(allBytes(), "ab", "abc", "bc", "abcbc")...))
	f.Add(rankFile(append(allBytes(), "aa", "aaa", "aaaa")...))
	f.Add([]byte("YQ== 0\nYg== 1\n"))
	f.Add([]byte("YQ== 0\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseRanks("fuzz", data)
		if err != nil {
			return
		}
		for rank := range v.size() {
			tok := v.token(uint32(rank))
			if got, ok := v.short.get(tok); len(tok) <= 8 && (!ok || got != uint32(rank)) {
				t.Fatalf("token %q of rank %d: short table gives %d, %v", tok, rank, got, ok)
			}
			if s := v.info[rank]; s.left != noToken && len(tok) > 1 && v.token(s.left)+v.token(s.right) != tok {
				t.Fatalf("token %q splits into %q + %q", tok, v.token(s.left), v.token(s.right))
			}
		}
	})
}
