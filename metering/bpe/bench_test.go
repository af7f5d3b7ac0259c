package bpe

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

const mib = 1 << 20

// repeatTo repeats s until it is at least n bytes long.
func repeatTo(s string, n int) string {
	return strings.Repeat(s, n/len(s)+1)
}

func corpusFile(b *testing.B, name string) string {
	data, err := os.ReadFile("testdata/corpus/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}

func randomString(n int, seed uint64, next func(*rand.Rand) string) string {
	rng := rand.New(rand.NewPCG(seed, seed))
	var sb strings.Builder
	sb.Grow(n + 8)
	for sb.Len() < n {
		sb.WriteString(next(rng))
	}
	return sb.String()
}

// realisticInputs are the corpus's prose, code, JSON, multilingual text and emoji,
// each repeated to about 64 KiB.
func realisticInputs(b *testing.B) []namedInput {
	return []namedInput{
		{"prose", repeatTo(corpusFile(b, "prose_en.txt"), 64<<10)},
		{"code", repeatTo(corpusFile(b, "code.txt"), 64<<10)},
		{"json", repeatTo(corpusFile(b, "json.txt"), 64<<10)},
		{"multilingual", repeatTo(corpusFile(b, "multilingual.txt"), 64<<10)},
		{"emoji-text", repeatTo(corpusFile(b, "emoji.txt"), 64<<10)},
	}
}

type namedInput struct{ name, text string }

// validPrefix cuts valid UTF-8 s to at most n bytes, at a rune boundary.
func validPrefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// loopCPU runs f in b.Loop on one locked OS thread and reports, besides the wall-clock
// figures, the thread's CPU time per op (cpu-ns/op) and throughput (cpu-MB/s), which
// depend much less than wall time on what else runs on a shared machine.
func loopCPU(b *testing.B, bytes int, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(int64(bytes))
	n := 0
	start := threadCPU()
	for b.Loop() {
		f()
		n++
	}
	if cpu := threadCPU() - start; cpu > 0 && n > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
		b.ReportMetric(float64(bytes)*float64(n)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}

// adversarialInputs are n bytes without spaces, built to make pieces huge.
func adversarialInputs(n int) []namedInput {
	return []namedInput{
		{"random-letters", randomString(n, 1, func(r *rand.Rand) string { return string(rune('a' + r.IntN(26))) })},
		{"random-mixed-case", randomString(n, 2, func(r *rand.Rand) string {
			return string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[r.IntN(52)])
		})},
		{"one-letter", strings.Repeat("a", n)},
		{"digits", randomString(n, 3, func(r *rand.Rand) string { return string(rune('0' + r.IntN(10))) })},
		{"emoji", strings.Repeat("🎉", n/4)},
		{"zwj-family", repeatTo("👨‍👩‍👧‍👦", n)[:n/25*25]},
		{"random-bytes", validPrefix(toValidUTF8(randomString(n, 4, func(r *rand.Rand) string { return string([]byte{byte(r.Uint32())}) })), n)},
		{"random-runes", randomString(n, 5, func(r *rand.Rand) string {
			for {
				if c := rune(r.IntN(0x30000)); c > ' ' && (c < 0xD800 || c > 0xDFFF) {
					return string(c)
				}
			}
		})},
		{"punctuation", randomString(n, 6, func(r *rand.Rand) string { return string(".,;:!?-_=+*&^%$#@~`|<>{}[]()"[r.IntN(28)]) })},
	}
}

// BenchmarkCount measures Count, one goroutine, bytes per second via SetBytes.
//
//	go test ./metering/bpe -run '^$' -bench 'Count' -benchtime 2s
func BenchmarkCount(b *testing.B) {
	for _, name := range encodingNames {
		e := mustGet(b, name)
		inputs := append(realisticInputs(b), adversarialInputs(mib)...)
		for _, in := range inputs {
			b.Run(name+"/"+in.name, func(b *testing.B) {
				b.ReportAllocs()
				loopCPU(b, len(in.text), func() { e.Count(in.text) })
			})
		}
	}
}

// shortPieces names the adversarial inputs that the pre-tokenizers cut into short
// pieces, on which pkoukk/tiktoken-go stays linear and finishes 1 MiB in seconds.
var shortPieces = map[string]bool{"digits": true, "random-bytes": true, "random-runes": true}

func sizeName(n int) string {
	if n >= mib {
		return strconv.Itoa(n/mib) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// BenchmarkTiktoken measures pkoukk/tiktoken-go's EncodeOrdinary on the realistic
// inputs, and on the adversarial ones at sizes it finishes in reasonable time (its
// merge is quadratic in the piece length, so 1 MiB pieces would take hours).
//
//	go test ./metering/bpe -run '^$' -bench 'Tiktoken' -benchtime 3x
func BenchmarkTiktoken(b *testing.B) {
	for _, name := range encodingNames {
		ref := reference(b, name)
		for _, in := range realisticInputs(b) {
			b.Run(name+"/"+in.name, func(b *testing.B) {
				loopCPU(b, len(in.text), func() { ref.EncodeOrdinary(in.text) })
			})
		}
		for _, size := range []int{4 << 10, 16 << 10, mib} {
			for _, in := range adversarialInputs(size) {
				if size == mib && !shortPieces[in.name] {
					continue // hours: pkoukk's merge is quadratic in the piece length
				}
				b.Run(name+"/"+in.name+"-"+sizeName(size), func(b *testing.B) {
					loopCPU(b, len(in.text), func() { ref.EncodeOrdinary(in.text) })
				})
			}
		}
	}
}

// BenchmarkCountScaling shows Count is linear on adversarial input: ns/byte stays flat
// from 4 KiB to 1 MiB. Compare with BenchmarkTiktoken's sizes.
func BenchmarkCountScaling(b *testing.B) {
	for _, name := range encodingNames {
		e := mustGet(b, name)
		for _, size := range []int{4 << 10, 16 << 10, 64 << 10} {
			for _, in := range adversarialInputs(size) {
				b.Run(name+"/"+in.name+"-"+sizeName(size), func(b *testing.B) {
					loopCPU(b, len(in.text), func() { e.Count(in.text) })
				})
			}
		}
	}
}

// BenchmarkCountParallel measures throughput with all cores counting.
func BenchmarkCountParallel(b *testing.B) {
	for _, name := range encodingNames {
		e := mustGet(b, name)
		text := repeatTo(corpusFile(b, "prose_en.txt"), 64<<10)
		b.Run(name+"/prose", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e.Count(text)
				}
			})
		})
	}
}

// BenchmarkLoad measures building an encoding from its embedded rank file (what the
// first Get of a name costs, besides reading the embedded file) and the heap the
// result keeps (retained-MB).
//
//	go test ./metering/bpe -run '^$' -bench Load -benchtime 5x
func BenchmarkLoad(b *testing.B) {
	loadClassTable()
	for _, name := range encodingNames {
		data, err := assets.Assets.ReadFile(name + ".tiktoken")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			loopCPU(b, len(data), func() {
				if _, err := parseRanks(name, data); err != nil {
					b.Fatal(err)
				}
			})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			v, _ := parseRanks(name, data)
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(v)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "retained-MB")
		})
	}
}
