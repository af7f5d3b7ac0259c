package metering

import (
	"hash/maphash"
	"sync"
)

// countCache remembers token counts of recent texts. Chat clients resend the whole
// conversation on every turn and apps repeat their system prompts and tool
// definitions, so most texts of a request have been counted before. Keys are a 64-bit
// seeded hash plus the length: a collision (about 2^-64 per pair) would only skew a
// local estimate. Memory is bounded: each shard keeps two generations of at most
// cacheGeneration entries and drops the older one when the newer fills up.
type countCache struct {
	inner  Tokenizer
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards     = 16
	cacheGeneration = 4096 // entries per generation per shard: ≤ 131,072 entries in all
	cacheMinLen     = 8    // shorter texts are cheaper to count than to hash and look up
)

type cacheKey struct {
	hash uint64
	n    int
}

type cacheShard struct {
	mu       sync.Mutex
	cur, old map[cacheKey]int32
}

func newCountCache(inner Tokenizer) *countCache {
	c := &countCache{inner: inner, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].cur = make(map[cacheKey]int32)
	}
	return c
}

// Encoding reports the wrapped tokenizer's encoding, if it knows it.
func (c *countCache) Encoding() string {
	if e, ok := c.inner.(encoder); ok {
		return e.Encoding()
	}
	return ""
}

// TokenEnds asks the wrapped tokenizer, if it can tell (see tokenEnder); token
// boundaries are not cached.
func (c *countCache) TokenEnds(dst []int, text string) []int {
	if e, ok := c.inner.(tokenEnder); ok {
		return e.TokenEnds(dst, text)
	}
	return dst
}

func (c *countCache) Count(text string) int {
	if len(text) < cacheMinLen {
		return c.inner.Count(text)
	}
	h := maphash.String(c.seed, text)
	key := cacheKey{h, len(text)}
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	n, ok := s.cur[key]
	if !ok {
		if n, ok = s.old[key]; ok {
			s.put(key, n) // still in use: keep it through the next rotation
		}
	}
	s.mu.Unlock()
	if ok {
		return int(n)
	}
	count := c.inner.Count(text)
	s.mu.Lock()
	s.put(key, int32(min(count, 1<<31-1)))
	s.mu.Unlock()
	return count
}

// put stores an entry in the current generation, rotating when it is full.
func (s *cacheShard) put(key cacheKey, n int32) {
	if len(s.cur) >= cacheGeneration {
		s.old, s.cur = s.cur, make(map[cacheKey]int32, cacheGeneration)
	}
	s.cur[key] = n
}
