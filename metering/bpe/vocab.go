package bpe

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
)

// noToken marks "no token" in the rank-indexed tables.
const noToken = ^uint32(0)

// vocab is one encoding's mergeable ranks plus the tables the backtracking encoder needs.
// A token's id is its rank, so "formed earlier" and "lower id" are the same thing.
type vocab struct {
	all  string   // every token's bytes, in rank order
	ends []uint32 // ends[t]: the end of token t in all

	// short finds the tokens of up to 8 bytes, which most pieces are, in one
	// cache line; longer pieces go through the trie.
	short shortTable

	// info[t] is what the encoder needs about token t, in one record so that a
	// candidate token costs one cache line.
	info []tokenInfo
	// merges maps each token's split back to the token.
	merges pairTable
	// trie finds the longest reachable token at the start of a byte string.
	trie trie
	// inside has bit a<<8|b set when bytes a, b occur in this order in some token.
	// No merge can join two tokens whose boundary bytes are not inside a token.
	inside [1 << 16 / 64]uint64
	// twoByte has bit a<<8|b set when the two bytes a, b are a token.
	twoByte [1 << 16 / 64]uint64
	// unreachable holds the tokens merging never produces, which the trie omits but
	// a whole piece still matches; nil when there are none (so in both encodings).
	unreachable map[string]uint32
}

// tokenInfo describes a token for the encoder.
type tokenInfo struct {
	// left and right are the two tokens whose merge forms the token when its own
	// bytes are encoded; a single byte splits into itself. Only tokens that BPE can
	// produce ("reachable") have a split; the others hold noToken.
	left, right uint32
	// prefix is the longest reachable token that is a proper prefix of this one.
	prefix uint32
	len    uint8
}

// parseRanks reads a .tiktoken file: one "base64(token) rank" line per token, ranks
// 0, 1, 2, … in order. The loader's files are contiguous; anything else is rejected
// rather than guessed at, since the rank is the token id.
func parseRanks(name string, data []byte) (*vocab, error) {
	lines := bytes.Count(data, []byte{'\n'}) + 1
	arena := make([]byte, 0, len(data)*3/4)
	ends := make([]int, 0, lines)
	for lineNo := 1; len(data) > 0; lineNo++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("bpe: %s line %d: want \"<base64 token> <rank>\"", name, lineNo)
		}
		rank, ok := parseUint(line[sp+1:])
		if !ok {
			return nil, fmt.Errorf("bpe: %s line %d: rank %q is not a number", name, lineNo, line[sp+1:])
		}
		if rank != len(ends) {
			return nil, fmt.Errorf("bpe: %s line %d: rank %d out of order, want %d", name, lineNo, rank, len(ends))
		}
		start := len(arena)
		arena = slices.Grow(arena, base64.StdEncoding.DecodedLen(sp))
		n, err := base64.StdEncoding.Decode(arena[start:start+base64.StdEncoding.DecodedLen(sp)], line[:sp])
		if err != nil {
			return nil, fmt.Errorf("bpe: %s line %d: token: %w", name, lineNo, err)
		}
		if n == 0 || n > 255 {
			return nil, fmt.Errorf("bpe: %s line %d: token of %d bytes, want 1 to 255", name, lineNo, n)
		}
		if len(ends) == maxTokens {
			return nil, fmt.Errorf("bpe: %s line %d: more than %d tokens", name, lineNo, maxTokens)
		}
		arena = arena[:start+n]
		ends = append(ends, len(arena))
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("bpe: %s: no tokens", name)
	}

	v := &vocab{all: string(arena), ends: make([]uint32, len(ends)), info: make([]tokenInfo, len(ends))}
	tokens := make([]string, len(ends))
	ranks := make(map[string]uint32, len(ends))
	for rank, end := range ends {
		v.ends[rank] = uint32(end)
		tok := v.token(uint32(rank))
		if _, dup := ranks[tok]; dup {
			return nil, fmt.Errorf("bpe: %s: token of rank %d appears twice", name, rank)
		}
		ranks[tok] = uint32(rank)
		tokens[rank] = tok
		v.info[rank].len = uint8(len(tok))
	}
	for b := 0; b < 256; b++ {
		// Every byte must be a token, or some text could not be encoded at all.
		if _, ok := ranks[string([]byte{byte(b)})]; !ok {
			return nil, fmt.Errorf("bpe: %s: byte 0x%02x is not a token", name, b)
		}
	}
	v.short = newShortTable(tokens)
	v.buildMergeTables(tokens, ranks)
	return v, nil
}

// token returns the bytes of token t.
func (v *vocab) token(t uint32) string {
	start := uint32(0)
	if t > 0 {
		start = v.ends[t-1]
	}
	return v.all[start:v.ends[t]]
}

// size is the number of tokens.
func (v *vocab) size() int { return len(v.ends) }

func parseUint(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// buildMergeTables reconstructs every token's last merge, the way the bpe crate does:
// going through tokens in rank order, the split of t is the (prefix, rest) pair of
// earlier reachable tokens that BPE would leave as two tokens — at most one split
// qualifies, because a byte string has exactly one BPE encoding over the earlier
// tokens. A multi-byte token without such a split is unreachable: tiktoken still
// matches it when it is a whole piece, but merging never produces it. The test
// TestSplitTableMatchesMerging checks all of this against plain lowest-rank merging.
func (v *vocab) buildMergeTables(tokens []string, ranks map[string]uint32) {
	n := len(tokens)
	v.trie.build(tokens)
	v.merges = newPairTable(n)
	v.trie.prefixLinks(v.info, nil)

	for _, tok := range tokens {
		for i := 1; i < len(tok); i++ {
			b := int(tok[i-1])<<8 | int(tok[i])
			v.inside[b>>6] |= 1 << (b & 63)
		}
		if len(tok) == 2 {
			b := int(tok[0])<<8 | int(tok[1])
			v.twoByte[b>>6] |= 1 << (b & 63)
		}
	}
	reachable := func(t uint32) bool { return v.info[t].left != noToken }
	for id, tok := range tokens {
		t := uint32(id)
		info := &v.info[id]
		if len(tok) == 1 {
			info.left, info.right = t, t
			continue
		}
		info.left, info.right = noToken, noToken
		for left := info.prefix; left != noToken; left = v.info[left].prefix {
			if left >= t || !reachable(left) {
				continue
			}
			right, ok := ranks[tok[len(tokens[left]):]]
			if !ok || right >= t || !reachable(right) {
				continue
			}
			if v.validPair(left, right) {
				info.left, info.right = left, right
				v.merges.put(left, right, t)
				break
			}
		}
	}

	// Unreachable tokens never come out of a merge, so the encoder must not
	// propose them: drop them from the trie and from the prefix chains.
	for id, tok := range tokens {
		if !reachable(uint32(id)) {
			if v.unreachable == nil {
				v.unreachable = map[string]uint32{}
			}
			v.unreachable[tok] = uint32(id)
		}
	}
	v.trie.forget(reachable)
	v.trie.prefixLinks(v.info, reachable)
}

// validPair reports whether BPE encodes the bytes of left followed by the bytes of
// right as exactly [left, right]: whether no merge across their boundary ever wins.
// It replays the two merge trees backwards, latest merge first; at each step the
// tokens facing each other across the boundary could merge into a token m, and that
// merge wins if it comes before the merge that ends their adjacency (limit). Ties go
// to the leftmost pair, hence the +1 when the ending merge is on the right.
func (v *vocab) validPair(left, right uint32) bool {
	if _, ok := v.merges.get(left, right); ok {
		return false
	}
	return v.validBelow(left, right)
}

// validBelow is validPair without its first check, for callers that know the bytes
// of left and right together are not a token.
func (v *vocab) validBelow(left, right uint32) bool {
	limit := noToken
	for {
		if left > right {
			limit = left
			left = v.info[left].right
			if left == limit { // left is a single byte: undo right instead
				limit = right + 1
				right = v.info[right].left
				if right+1 == limit {
					return true
				}
			}
		} else {
			limit = right + 1
			right = v.info[right].left
			if right+1 == limit { // right is a single byte: undo left instead
				limit = left
				left = v.info[left].right
				if left == limit {
					return true
				}
			}
		}
		if m, ok := v.merges.get(left, right); ok && m < limit {
			return false
		}
	}
}

// pairTable maps a token pair to the token its merge forms. Lookups are the encoder's
// main cost and mostly miss, so each slot packs key and value in one word (one cache
// line per probe), and a bitset of eight bits per entry, small enough to stay in
// cache, answers most misses without touching the table.
type pairTable struct {
	slots  []uint64 // 1<<60 | left<<40 | right<<20 | merged; 0 means empty
	filter []uint64 // bit set for the hash of every stored pair
	shift  uint     // 64 - log2(len(slots))
	fshift uint     // 64 - log2(filter bits)
}

// idBits is the width of a token id in a packed pair; maxTokens follows from it.
const (
	idBits    = 20
	maxTokens = 1 << idBits
	idMask    = maxTokens - 1
)

func newPairTable(n int) pairTable {
	size, shift := 1, uint(64)
	for size*3 < n*4 { // load factor up to 3/4: the filter answers most misses
		size <<= 1
		shift--
	}
	fbits, fshift := 64, uint(64-6)
	for fbits < 8*n {
		fbits <<= 1
		fshift--
	}
	return pairTable{slots: make([]uint64, size), filter: make([]uint64, fbits/64), shift: shift, fshift: fshift}
}

func pairKey(left, right uint32) uint64 { return 1<<(2*idBits) | uint64(left)<<idBits | uint64(right) }

func (p *pairTable) put(left, right, merged uint32) {
	key := pairKey(left, right)
	f := (key * 0xD6E8FEB86659FD93) >> p.fshift
	p.filter[f>>6] |= 1 << (f & 63)
	mask := uint64(len(p.slots) - 1)
	for i := (key * 0x9E3779B97F4A7C15) >> p.shift; ; i = (i + 1) & mask {
		if p.slots[i] == 0 || p.slots[i]>>idBits == key {
			p.slots[i] = key<<idBits | uint64(merged)
			return
		}
	}
}

func (p *pairTable) get(left, right uint32) (uint32, bool) {
	key := pairKey(left, right)
	f := (key * 0xD6E8FEB86659FD93) >> p.fshift
	if p.filter[f>>6]&(1<<(f&63)) == 0 {
		return 0, false
	}
	mask := uint64(len(p.slots) - 1)
	for i := (key * 0x9E3779B97F4A7C15) >> p.shift; ; i = (i + 1) & mask {
		slot := p.slots[i]
		if slot>>idBits == key {
			return uint32(slot & idMask), true
		}
		if slot == 0 {
			return 0, false
		}
	}
}

// trie is a byte trie of the tokens in breadth-first order, so a node's children are
// contiguous and their labels sit side by side: node i's children are
// nodes[i].first … nodes[i+1].first-1, sorted by label. Node 0 is the root. A node and
// its successor share a cache line, so a step down costs about two line reads.
type trie struct {
	nodes  []trieNode // one per node, plus a sentinel holding the node count
	label  []byte     // label[i]: the byte on the edge into node i
	depth2 []uint32   // node of each two-byte prefix (b0<<8 | b1), 0 if none
}

type trieNode struct {
	first uint32 // first child
	token uint32 // the token spelled by the path to the node, or noToken
}

func (t *trie) build(tokens []string) {
	// Sort token ids by bytes, comparing the first eight bytes as one number first.
	type sortKey struct {
		head uint64 // first eight bytes, big-endian, zero-padded
		id   uint32
	}
	keys := make([]sortKey, len(tokens))
	for i, tok := range tokens {
		var head [8]byte
		copy(head[:], tok)
		keys[i] = sortKey{binary.BigEndian.Uint64(head[:]), uint32(i)}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if a.head != b.head {
			if a.head < b.head {
				return -1
			}
			return 1
		}
		return strings.Compare(tokens[a.id], tokens[b.id])
	})
	ids := make([]uint32, len(tokens))
	for i, k := range keys {
		ids[i] = k.id
	}

	// A node is the run ids[lo:hi] of tokens sharing its depth-byte prefix; sorting
	// puts the token equal to the prefix, if any, first in the run.
	type run struct{ lo, hi, depth int32 }
	queue := []run{{0, int32(len(ids)), 0}}
	t.label = []byte{0}
	t.nodes = []trieNode{{token: noToken}}
	for node := 0; node < len(queue); node++ {
		r := queue[node]
		t.nodes[node].first = uint32(len(queue))
		lo := r.lo
		if len(tokens[ids[lo]]) == int(r.depth) {
			lo++
		}
		for lo < r.hi {
			c := tokens[ids[lo]][r.depth]
			hi := lo + 1
			for hi < r.hi && tokens[ids[hi]][r.depth] == c {
				hi++
			}
			tok := noToken
			if len(tokens[ids[lo]]) == int(r.depth)+1 {
				tok = ids[lo]
			}
			t.label = append(t.label, c)
			t.nodes = append(t.nodes, trieNode{token: tok})
			queue = append(queue, run{lo, hi, r.depth + 1})
			lo = hi
		}
	}
	t.nodes = append(t.nodes, trieNode{first: uint32(len(queue)), token: noToken})
	t.label = append(t.label, make([]byte, 64)...) // padding for child's 8-byte loads

	t.depth2 = make([]uint32, 1<<16)
	for c0 := t.nodes[0].first; c0 < t.nodes[1].first; c0++ {
		for c1 := t.nodes[c0].first; c1 < t.nodes[c0+1].first; c1++ {
			t.depth2[int(t.label[c0])<<8|int(t.label[c1])] = c1
		}
	}
}

// size is the number of nodes.
func (t *trie) size() int { return len(t.nodes) - 1 }

// forget removes the tokens keep rejects (their nodes stay, as plain prefixes).
func (t *trie) forget(keep func(uint32) bool) {
	for i := range t.nodes {
		if tok := t.nodes[i].token; tok != noToken && !keep(tok) {
			t.nodes[i].token = noToken
		}
	}
}

// prefixLinks sets info[t].prefix, for every token t in the trie, to the longest
// token (accepted by keep, if set) that is a proper prefix of t, or noToken.
func (t *trie) prefixLinks(info []tokenInfo, keep func(uint32) bool) {
	// nearest[i] is the longest accepted token on the path to node i, node i included.
	nearest := make([]uint32, t.size())
	nearest[0] = noToken
	for node := range t.size() {
		for child := t.nodes[node].first; child < t.nodes[node+1].first; child++ {
			tok := t.nodes[child].token
			nearest[child] = nearest[node]
			if tok != noToken {
				info[tok].prefix = nearest[node]
				if keep == nil || keep(tok) {
					nearest[child] = tok
				}
			}
		}
	}
}

// child returns node's child labelled c, or 0.
func (t *trie) child(node uint32, c byte) uint32 {
	lo, hi := t.nodes[node].first, t.nodes[node+1].first
	n := hi - lo
	if n <= 64 {
		// Compare c with eight labels at a time (label is padded so that the loads
		// stay in bounds); a zero byte in x marks a match.
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		for i := uint32(0); i < n; i += 8 {
			x := binary.LittleEndian.Uint64(t.label[lo+i:]) ^ (ones * uint64(c))
			if m := (x - ones) &^ x & highs; m != 0 {
				j := i + uint32(bits.TrailingZeros64(m))/8
				if j < n {
					return lo + j
				}
				return 0
			}
		}
		return 0
	}
	i, found := slices.BinarySearch(t.label[lo:hi], c)
	if !found {
		return 0
	}
	return lo + uint32(i)
}

// longest returns the longest token in the trie that s starts with, and its length.
// s is not empty, and every single byte is a token.
func (t *trie) longest(s string) (uint32, int) {
	node := t.nodes[0].first + uint32(s[0]) // all 256 bytes are children of the root
	best, bestLen := t.nodes[node].token, 1
	if len(s) < 2 {
		return best, bestLen
	}
	node = t.depth2[int(s[0])<<8|int(s[1])]
	if node == 0 {
		return best, bestLen
	}
	if tok := t.nodes[node].token; tok != noToken {
		best, bestLen = tok, 2
	}
	for i := 2; i < len(s); i++ {
		node = t.child(node, s[i])
		if node == 0 {
			break
		}
		if tok := t.nodes[node].token; tok != noToken {
			best, bestLen = tok, i+1
		}
	}
	return best, bestLen
}

// shortTable maps byte strings of 1 to 8 bytes, packed little-endian into a word, to
// token ids. Slots hold only a hash tag, the length and the id, four bytes each, and
// a tag match is confirmed against the token's packed bytes. A bitset in front, small
// enough to stay in cache, turns away most misses (the common case on adversarial
// input, where pieces are rarely tokens) before they touch the slots.
type shortTable struct {
	slots  []uint32 // tag<<28 | len<<20 | id, tag of 4 bits; 0 means empty (len ≥ 1)
	keys   []uint64 // packed bytes of each token of up to 8 bytes, by id
	shift  uint
	filter []uint64 // eight bits per entry, set for every entry's hash
	fshift uint
}

func newShortTable(tokens []string) shortTable {
	n := 0
	for _, tok := range tokens {
		if len(tok) <= 8 {
			n++
		}
	}
	size, shift := 1, uint(64)
	for size < 2*n {
		size <<= 1
		shift--
	}
	fbits, fshift := 64, uint(64-6)
	for fbits < 8*n {
		fbits <<= 1
		fshift--
	}
	t := shortTable{slots: make([]uint32, size), keys: make([]uint64, len(tokens)), shift: shift,
		filter: make([]uint64, fbits/64), fshift: fshift}
	mask := uint64(size - 1)
	for id, tok := range tokens {
		if len(tok) > 8 {
			continue
		}
		key := packShort(tok)
		t.keys[id] = key
		h := t.hash(key, len(tok))
		f := (h * 0xD6E8FEB86659FD93) >> t.fshift
		t.filter[f>>6] |= 1 << (f & 63)
		i := h >> t.shift
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = shortTag(h) | uint32(len(tok))<<idBits | uint32(id)
	}
	return t
}

// packShort packs s (1 to 8 bytes) into a word, little-endian.
func packShort(s string) uint64 {
	switch n := len(s); {
	case n >= 4:
		lo := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
		hi := uint64(s[n-4]) | uint64(s[n-3])<<8 | uint64(s[n-2])<<16 | uint64(s[n-1])<<24
		return lo | hi<<(8*(n-4))
	case n == 3:
		return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16
	case n == 2:
		return uint64(s[0]) | uint64(s[1])<<8
	default:
		return uint64(s[0])
	}
}

// hash mixes a packed key and its length; the top bits pick the slot.
func (t *shortTable) hash(key uint64, n int) uint64 {
	return (key ^ uint64(n)<<60) * 0x9E3779B97F4A7C15
}

// shortTag is a slot's tag, from hash bits that do not pick the slot.
func shortTag(h uint64) uint32 { return (uint32(h>>32) & 15) << 28 }

// get returns the id of token s, 1 to 8 bytes long.
func (t *shortTable) get(s string) (uint32, bool) {
	key := packShort(s)
	h := t.hash(key, len(s))
	if f := (h * 0xD6E8FEB86659FD93) >> t.fshift; t.filter[f>>6]&(1<<(f&63)) == 0 {
		return 0, false
	}
	want := shortTag(h) | uint32(len(s))<<idBits
	mask := uint64(len(t.slots) - 1)
	for i := h >> t.shift; ; i = (i + 1) & mask {
		slot := t.slots[i]
		if slot&^idMask == want && t.keys[slot&idMask] == key {
			return slot & idMask, true
		}
		if slot == 0 {
			return 0, false
		}
	}
}
