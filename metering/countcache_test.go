package metering

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCountCache(t *testing.T) {
	var calls atomic.Int64
	inner := fakeTokenizer{count: func(s string) int { calls.Add(1); return len(s) }, encoding: CL100kBase}
	c := newCountCache(inner)
	if c.Encoding() != CL100kBase {
		t.Errorf("Encoding = %q", c.Encoding())
	}
	text := "a system prompt that every request repeats"
	for range 5 {
		if got := c.Count(text); got != len(text) {
			t.Fatalf("Count = %d, want %d", got, len(text))
		}
	}
	if calls.Load() != 1 {
		t.Errorf("inner tokenizer called %d times for one text, want 1", calls.Load())
	}
	c.Count("short") // below cacheMinLen: counted every time
	c.Count("short")
	if calls.Load() != 3 {
		t.Errorf("short texts: inner calls %d, want 3", calls.Load())
	}
}

// The cache stays bounded, and entries still in use survive rotation.
func TestCountCacheBounded(t *testing.T) {
	c := newCountCache(fakeTokenizer{count: func(s string) int { return len(s) }})
	hot := "the hot system prompt, asked for again and again"
	for i := range 20 * cacheShards * cacheGeneration {
		if got := c.Count(fmt.Sprintf("distinct text number %d", i)); got != len(fmt.Sprintf("distinct text number %d", i)) {
			t.Fatalf("wrong count %d", got)
		}
		if i%1000 == 0 {
			c.Count(hot)
		}
	}
	for i := range c.shards {
		s := &c.shards[i]
		if len(s.cur) > cacheGeneration || len(s.old) > cacheGeneration {
			t.Fatalf("shard %d holds %d + %d entries", i, len(s.cur), len(s.old))
		}
	}
	var calls int
	c.inner = fakeTokenizer{count: func(s string) int { calls++; return len(s) }}
	c.Count(hot)
	if calls != 0 {
		t.Errorf("the hot text was evicted")
	}
}

func TestCountCacheConcurrent(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	texts := []string{"The quick brown fox jumps over the lazy dog.", "Hello, world! How are you today?", "お誕生日おめでとう and more"}
	want := make([]int, len(texts))
	for i, s := range texts {
		want[i] = uncached(t, O200kBase).Count(s)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				k := (g + i) % len(texts)
				if got := tok.Count(texts[k]); got != want[k] {
					t.Errorf("Count(%q) = %d, want %d", texts[k], got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}
