package metering

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/money"
)

func batchPricing(t testing.TB) *Pricing {
	t.Helper()
	mini := Price{Input: 150_000, CachedInput: 75_000, AudioInput: 150_000, Output: 600_000, Reasoning: 600_000, AudioOutput: 600_000, MaxOutputTokens: 16384}
	emb := Price{Input: 20_000, CachedInput: 20_000, AudioInput: 20_000}
	p, err := NewPricing(map[string]Price{"gpt-4o-mini": mini, "gpt-4o": {Input: 2_500_000, Output: 10_000_000}, "text-embedding-3-small": emb},
		map[string]string{"mini": "gpt-4o-mini"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func chatLine(id, body string) string {
	return `{"custom_id":"` + id + `","method":"POST","url":"/v1/chat/completions","body":` + body + "}\n"
}

var batchLimits = BatchLimits{MaxBytes: 1 << 20, MaxLine: 64 << 10, MaxRequests: 100}

// The worst case of a batch is the sum of each line's, as the proxy estimates
// that line on its own (ParseRequest, InputTokens, Estimate).
func TestEstimateBatch(t *testing.T) {
	pricing := batchPricing(t)
	bodies := []string{
		`{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"Say hello."}]}`,
		`{"model":"mini","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"And again."}]}`, // no cap: the model's largest output
		`{"model":"gpt-4o-mini-2024-07-18","n":3,"max_completion_tokens":7,"messages":[{"role":"user","content":"Three ways."}]}`,
	}
	var file strings.Builder
	var want money.Micros
	_, price, _ := pricing.Resolve("gpt-4o-mini")
	tok := tokenizer(t, O200kBase)
	for i, b := range bodies {
		file.WriteString(chatLine(fmt.Sprint("r", i), b))
		if i == 1 {
			file.WriteString("\r\n   \n") // blank lines are skipped
		}
		req := mustParse(t, ChatCompletions, b)
		want += req.Estimate(price, req.InputTokens(tok))
	}
	got, err := EstimateBatch(iotest.OneByteReader(strings.NewReader(file.String())), ChatCompletions, pricing, batchLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "gpt-4o-mini" || got.Price != price || got.Requests != 3 || got.Estimate != want || want <= 0 {
		t.Fatalf("estimate %+v, want %s for 3 requests of gpt-4o-mini", got, want)
	}

	emb, err := EstimateBatch(strings.NewReader(`{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":["a b c","d"]}}`),
		Embeddings, pricing, batchLimits)
	if err != nil || emb.Requests != 1 || emb.Estimate <= 0 {
		t.Fatalf("embeddings: %+v %v", emb, err)
	}
}

func TestEstimateBatchRefusals(t *testing.T) {
	pricing := batchPricing(t)
	ok := `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, file string
		lim        BatchLimits
		line       int
		want       string
	}{
		{"empty", "", batchLimits, 0, "has no requests"},
		{"blank", "\n\n \n", batchLimits, 0, "has no requests"},
		{"not JSON", chatLine("a", ok) + "{nope\n", batchLimits, 2, "not a JSON object"},
		{"an array", "[1]\n", batchLimits, 1, "not a JSON object"},
		{"no custom_id", `{"method":"POST","url":"/v1/chat/completions","body":` + ok + "}\n", batchLimits, 1, "'custom_id' is missing"},
		{"custom_id twice", chatLine("a", ok) + chatLine("a", ok), batchLimits, 2, "used twice"},
		{"custom_id not a string", `{"custom_id":1,"method":"POST","url":"/v1/chat/completions","body":` + ok + "}\n", batchLimits, 1, "'custom_id'"},
		{"GET", `{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":` + ok + "}\n", batchLimits, 1, "'method'"},
		{"another url", `{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":` + ok + "}\n", batchLimits, 1, "'url'"},
		{"no body", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions"}` + "\n", batchLimits, 1, "'body' is missing"},
		{"body not an object", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":"x"}` + "\n", batchLimits, 1, "'body' must be"},
		{"bad body", chatLine("a", `{"model":"gpt-4o-mini","max_tokens":-1,"messages":[]}`), batchLimits, 1, "max_tokens"},
		{"streamed", chatLine("a", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}]}`), batchLimits, 1, "cannot stream"},
		{"unpriced", chatLine("a", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`), batchLimits, 1, "has no price"},
		{"two models", chatLine("a", ok) + chatLine("b", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`), batchLimits, 2, "one model"},
		{"too many", chatLine("a", ok) + chatLine("b", ok), BatchLimits{MaxBytes: 1 << 20, MaxLine: 1 << 10, MaxRequests: 1}, 0, "more than 1 requests"},
		{"line too long", chatLine("a", ok), BatchLimits{MaxBytes: 1 << 20, MaxLine: 20, MaxRequests: 10}, 1, "longer than 20 bytes"},
		{"file too large", chatLine("a", ok) + chatLine("b", ok), BatchLimits{MaxBytes: 150, MaxLine: 1 << 10, MaxRequests: 10}, 0, "larger than 150 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EstimateBatch(strings.NewReader(tc.file), ChatCompletions, pricing, tc.lim)
			var be *BatchInputError
			if !errors.As(err, &be) || be.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (%#v), want line %d saying %q", err, be, tc.line, tc.want)
			}
		})
	}
	if _, err := EstimateBatch(strings.NewReader(chatLine("a", ok)), "images.nothing", pricing, batchLimits); err == nil {
		t.Fatal("an unmetered endpoint accepted")
	}
	if _, err := EstimateBatch(iotest.ErrReader(errors.New("boom")), ChatCompletions, pricing, batchLimits); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("read error: %v", err)
	}
}

// The usage of an output file is the sum of its 2xx answers' usage objects, each
// read as its endpoint's body is.
func TestBatchUsage(t *testing.T) {
	answer := func(status int, body string) string {
		return fmt.Sprintf(`{"id":"batch_req_1","custom_id":"c","response":{"status_code":%d,"request_id":"r","body":%s},"error":null}`+"\n", status, body)
	}
	chat := func(in, out, cached, reasoning int) string {
		return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d},"completion_tokens_details":{"reasoning_tokens":%d}}}`,
			in, out, in+out, cached, reasoning)
	}
	file := answer(200, chat(10, 5, 4, 2)) + answer(200, chat(20, 7, 0, 0)) + "\n" +
		answer(400, `{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}`) +
		`{"id":"batch_req_3","custom_id":"d","response":null,"error":{"code":"batch_expired","message":"x"}}` + "\n" +
		answer(200, `{"id":"chatcmpl-2","object":"chat.completion","choices":[]}`)
	got, err := BatchUsage(iotest.HalfReader(strings.NewReader(file)), ChatCompletions, 1<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchResult{Tokens: Tokens{Input: 30, CachedInput: 4, Output: 12, Reasoning: 2}, Answered: 2, Unmetered: 1, Failed: 2}
	if got != want {
		t.Fatalf("usage %+v, want %+v", got, want)
	}
	resp := answer(200, `{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":8,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1},"total_tokens":11}}`)
	if got, err := BatchUsage(strings.NewReader(resp), Responses, 1<<20, 4096); err != nil || got.Tokens != (Tokens{Input: 8, Output: 3, Reasoning: 1}) || got.Answered != 1 {
		t.Fatalf("responses: %+v %v", got, err)
	}
	for _, bad := range []string{"{\n", "[]\n", answer(200, chat(1, 1, 0, 0)) + "x\n"} {
		if _, err := BatchUsage(strings.NewReader(bad), ChatCompletions, 1<<20, 4096); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := BatchUsage(strings.NewReader(file), ChatCompletions, 100, 4096); err == nil {
		t.Error("a file over its bound accepted")
	}
}

// DiscountedCost at the whole price is Cost; at any share it is the exact
// ceil(Σ tokens × price × share / 10^12), computed once.
func TestDiscountedCost(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		price := func(name string) money.Micros {
			return money.Micros(rapid.Int64Range(0, 100_000_000).Draw(rt, name))
		}
		p := Price{Input: price("in"), CachedInput: price("cached"), AudioInput: price("audio_in"), Output: price("out"), Reasoning: price("reasoning"), AudioOutput: price("audio_out")}
		count := func(name string) int64 { return rapid.Int64Range(-5, 10_000_000).Draw(rt, name) }
		tk := Tokens{Input: count("i"), CachedInput: count("c"), AudioInput: count("ai"), Output: count("o"), Reasoning: count("r"), AudioOutput: count("ao")}
		if got, want := DiscountedCost(p, tk, 1_000_000), p.Cost(tk); got != want {
			rt.Fatalf("whole price: %s, Cost %s", got, want)
		}
		share := rapid.Int64Range(1, 1_000_000).Draw(rt, "share")
		// The exact value, from Cost's own sum: Cost rounds once, so Cost at
		// prices scaled by 10^6 is the exact sum in 10^-12 dollars … computed here
		// with rationals instead.
		exact := new(big.Rat)
		in, out := max(tk.Input, 0), max(tk.Output, 0)
		cached := min(max(tk.CachedInput, 0), in)
		audioIn := min(max(tk.AudioInput, 0), in-cached)
		reasoning := min(max(tk.Reasoning, 0), out)
		audioOut := min(max(tk.AudioOutput, 0), out-reasoning)
		for _, c := range [][2]int64{{in - cached - audioIn, int64(p.Input)}, {cached, int64(p.CachedInput)}, {audioIn, int64(p.AudioInput)},
			{out - reasoning - audioOut, int64(p.Output)}, {reasoning, int64(p.Reasoning)}, {audioOut, int64(p.AudioOutput)}} {
			exact.Add(exact, new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(c[0]), big.NewInt(c[1])), big.NewInt(1_000_000)))
		}
		exact.Mul(exact, new(big.Rat).SetFrac64(share, 1_000_000))
		ceil := new(big.Int).Quo(exact.Num(), exact.Denom())
		if new(big.Rat).SetInt(ceil).Cmp(exact) < 0 {
			ceil.Add(ceil, big.NewInt(1))
		}
		if got := DiscountedCost(p, tk, share); int64(got) != ceil.Int64() {
			rt.Fatalf("share %d: %s, want %s", share, got, ceil)
		}
		if DiscountedCost(p, tk, share) > p.Cost(tk) {
			rt.Fatalf("a discount costs more than the list price")
		}
	})
	if got := DiscountedAmount(money.MaxAmount, 1_000_000); got != money.MaxAmount {
		t.Fatalf("saturation: %s", got)
	}
	if got := DiscountedAmount(3, 500_000); got != 2 {
		t.Fatalf("ceil(3/2) = %s", got)
	}
	if got := DiscountedPrice(Price{Input: 150_000, Output: 600_001}, 500_000); got.Input != 75_000 || got.Output != 300_001 {
		t.Fatalf("discounted price %+v", got)
	}
}

func TestStores(t *testing.T) {
	for _, tc := range []struct {
		ep   Endpoint
		body string
		want bool
	}{
		{Responses, `{"model":"m","input":"x"}`, true},
		{Responses, `{"model":"m","input":"x","store":false}`, false},
		{Responses, `{"model":"m","input":"x","store":null}`, true},
		{Responses, `{"model":"m","input":"x","store":false,"store":true}`, true}, // the last one, as the upstream reads it
		{ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, false},
		{ChatCompletions, `{"model":"m","store":true,"messages":[{"role":"user","content":"x"}]}`, true},
		{ChatCompletions, `{"model":"m","metadata":{"store":true},"messages":[{"role":"user","content":"x"}]}`, false},
		{Embeddings, `{"model":"m","input":"x","store":true}`, false},
	} {
		r, err := ParseRequest(tc.ep, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Stores(); got != tc.want {
			t.Errorf("%s %s: stores %v, want %v", tc.ep, tc.body, got, tc.want)
		}
	}
}

// FuzzEstimateBatch: an input file never panics the estimate, an error is a
// *BatchInputError naming a line within the file, and an accepted file's
// estimate is the sum of its lines' (which each parse on their own).
func FuzzEstimateBatch(f *testing.F) {
	ok := `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	for _, s := range []string{chatLine("a", ok), chatLine("a", ok) + chatLine("b", ok), "\n", "{", chatLine("a", `{"model":"nope"}`),
		`{"custom_id":"\u0041","method":"POST","url":"/v1/chat/completions/","body":` + ok + `,"body":{}}`} {
		f.Add([]byte(s))
	}
	pricing := batchPricing(f)
	f.Fuzz(func(t *testing.T, file []byte) {
		got, err := EstimateBatch(strings.NewReader(string(file)), ChatCompletions, pricing, BatchLimits{MaxBytes: 1 << 16, MaxLine: 1 << 12, MaxRequests: 50})
		if err != nil {
			var be *BatchInputError
			if !errors.As(err, &be) || be.Line < 0 || be.Line > strings.Count(string(file), "\n")+1 {
				t.Fatalf("error %v", err)
			}
			return
		}
		if got.Requests < 1 || got.Estimate < 0 || got.Model == "" {
			t.Fatalf("accepted %+v", got)
		}
	})
}

// FuzzBatchUsage: an output file never panics the meter, and what it sums is
// never negative.
func FuzzBatchUsage(f *testing.F) {
	f.Add([]byte(`{"custom_id":"c","response":{"status_code":200,"body":{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}},"error":null}` + "\n"))
	f.Add([]byte(`{"response":{"status_code":200,"body":{"usage":{"prompt_tokens":-1}}}}`))
	f.Add([]byte("{}\n\n{\"response\":null}"))
	f.Fuzz(func(t *testing.T, file []byte) {
		got, err := BatchUsage(strings.NewReader(string(file)), ChatCompletions, 1<<16, 1<<12)
		if err != nil {
			return
		}
		tk := got.Tokens
		if tk.Input < 0 || tk.Output < 0 || tk.CachedInput < 0 || tk.Reasoning < 0 || got.Answered < 0 || got.Unmetered < 0 || got.Failed < 0 {
			t.Fatalf("negative usage %+v", got)
		}
	})
}

func TestAliases(t *testing.T) {
	if got := batchPricing(t).Aliases(); len(got) != 1 || got[0] != (Alias{Name: "mini", Model: "gpt-4o-mini"}) {
		t.Fatalf("aliases %v", got)
	}
}
