package bpe

import (
	"sync"
	"sync/atomic"
)

// backtrack encodes piece into stack (reused from its first element) and returns it.
// first is the longest token piece starts with and firstLen its length
// (trie.longest); bits is scratch of at least len(piece)/64+1 words.
//
// It is the bpe crate's backtracking encoder. A token sequence is the BPE encoding of
// its bytes exactly when every adjacent pair is a valid pair, so the encoding is found
// by a depth-first search: append the longest token that fits; if it does not pair
// with the previous token, try its next shorter prefix token; when none is left, pop
// the previous token and mark its end position as a dead end in bits (the encoding of
// a prefix is unique, so a position that failed once always fails). Each position is
// abandoned at most once, which keeps the search linear in practice.
func (v *vocab) backtrack(piece string, first uint32, firstLen int, stack []uint32, bits []uint64) []uint32 {
	steps := 0 // candidate tokens tried, for stepCounter
	words := len(piece)/64 + 1
	for i := range bits[:words] {
		bits[i] = ^uint64(0)
	}
	// A stack entry is a token id and, in its top byte, the length of the longest
	// token at the token's start: if the previous token and a candidate are longer
	// together than that, their bytes are not a token, and validBelow can skip the
	// pair's own lookup.
	stack = stack[:0]
	pos := 0
	next, nextLen, nextLongest := first, firstLen, uint32(firstLen)
	for {
		token, tokenLen, longestHere := next, nextLen, nextLongest
		last, lastLen, lastLongest := noToken, 0, uint32(0)
		if len(stack) > 0 {
			last, lastLongest = stack[len(stack)-1]&idMask, stack[len(stack)-1]>>24
			lastLen = int(v.info[last].len)
		}
		for {
			steps++
			end := pos + tokenLen
			if bits[end>>6]&(1<<(end&63)) != 0 &&
				(last == noToken || v.pairAt(piece, pos, last, token, lastLen+tokenLen > int(lastLongest))) {
				stack = append(stack, token|longestHere<<24)
				pos = end
				if pos == len(piece) {
					for i := range stack {
						stack[i] &= idMask
					}
					if c := stepCounter.Load(); c != nil {
						c.Add(int64(steps))
					}
					return stack
				}
				next, nextLen = v.trie.longest(piece[pos:])
				nextLongest = uint32(nextLen)
				break
			}
			if shorter := v.info[token].prefix; shorter != noToken {
				token, tokenLen = shorter, int(v.info[shorter].len)
				continue
			}
			// Dead end. The stack cannot be empty here: the true encoding's first
			// token is on the prefix chain at position 0 and its end is never a dead
			// end (TestSplitTableMatchesMerging and the differential tests hold this).
			bits[pos>>6] &^= 1 << (pos & 63)
			stack = stack[:len(stack)-1]
			pos -= lastLen
			next, nextLen, nextLongest = last, lastLen, lastLongest
			break
		}
	}
}

// stepCounter, when a test sets it, accumulates the candidate tokens backtrack tries:
// a measure of its work that lets tests check it grows linearly with the input
// without timing anything. It is nil otherwise (one atomic load per piece that needs
// backtracking).
var stepCounter atomic.Pointer[atomic.Int64]

// pairAt reports whether last, which ends at pos in piece, and token, which starts
// there, are a valid pair. notToken says their bytes together are longer than the
// longest token at last's start, so they are not a token. The two shortcuts answer
// most calls without touching the merge table.
func (v *vocab) pairAt(piece string, pos int, last, token uint32, notToken bool) bool {
	if b := int(piece[pos-1])<<8 | int(piece[pos]); v.inside[b>>6]&(1<<(b&63)) == 0 {
		return true
	}
	if notToken {
		return v.validBelow(last, token)
	}
	return v.validPair(last, token)
}

// smallPiece is the longest piece encoded with scratch on the goroutine's stack.
const smallPiece = 64

// scratch is the backtracking encoder's memory for long pieces, pooled so that
// counting does not allocate in steady state.
type scratch struct {
	stack []uint32
	bits  []uint64
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxPooledPiece bounds the scratch kept in the pool, so one huge request does not
// pin megabytes for the life of the process.
const maxPooledPiece = 1 << 20

// countPiece returns the number of tokens of a piece.
func (v *vocab) countPiece(piece string) int {
	switch len(piece) {
	case 1:
		return 1 // every byte is a token
	case 2:
		if v.isTwoByteToken(piece[0], piece[1]) {
			return 1
		}
		return 2 // not a token, so no merge applies
	}
	if len(piece) <= 8 {
		if _, ok := v.short.get(piece); ok { // any token, reachable or not
			return 1
		}
		if len(piece) == 3 {
			// Merging either pair, if one is a token, leaves two parts that do not
			// merge, since the piece is not a token.
			if v.isTwoByteToken(piece[0], piece[1]) || v.isTwoByteToken(piece[1], piece[2]) {
				return 2
			}
			return 3
		}
	}
	first, n := v.trie.longest(piece)
	switch {
	case n == len(piece):
		return 1
	case v.unreachable != nil && v.isUnreachableToken(piece):
		return 1
	case len(piece) <= smallPiece:
		var stack [smallPiece]uint32
		var bits [smallPiece/64 + 1]uint64
		return len(v.backtrack(piece, first, n, stack[:0], bits[:]))
	}
	s := scratchPool.Get().(*scratch)
	s.grow(len(piece))
	s.stack = v.backtrack(piece, first, n, s.stack[:0], s.bits)
	n = len(s.stack)
	if len(piece) <= maxPooledPiece {
		scratchPool.Put(s)
	}
	return n
}

func (v *vocab) isTwoByteToken(a, b byte) bool {
	i := int(a)<<8 | int(b)
	return v.twoByte[i>>6]&(1<<(i&63)) != 0
}

// appendPiece appends the tokens of a piece to out.
func (v *vocab) appendPiece(out []int, piece string) []int {
	first, n := v.trie.longest(piece)
	if n == len(piece) {
		return append(out, int(first))
	}
	if rank, ok := v.unreachable[piece]; ok {
		return append(out, int(rank))
	}
	s := scratchPool.Get().(*scratch)
	s.grow(len(piece))
	s.stack = v.backtrack(piece, first, n, s.stack[:0], s.bits)
	for _, t := range s.stack {
		out = append(out, int(t))
	}
	if len(piece) <= maxPooledPiece {
		scratchPool.Put(s)
	}
	return out
}

func (v *vocab) isUnreachableToken(piece string) bool {
	_, ok := v.unreachable[piece]
	return ok
}

func (s *scratch) grow(n int) {
	if cap(s.stack) < n {
		s.stack = make([]uint32, 0, n)
	}
	if words := n/64 + 1; len(s.bits) < words {
		s.bits = make([]uint64, words)
	}
}
