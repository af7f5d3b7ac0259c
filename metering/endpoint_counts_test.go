package metering

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestInputTokensByEndpointRealEncodings pins the local input formula of completions,
// embeddings and responses with the real o200k_base and cl100k_base counters (which
// count with metering/bpe). The expected values are computed in the test by
// pkoukk/tiktoken-go's own encoder (rawCount: unsegmented EncodeOrdinary) plus the
// documented overheads, written out as literals so that a changed constant shows:
//   - completions and embeddings: the sum of the input strings; token arrays count by
//     their length; no framing.
//   - responses: instructions as a message (3 + "system" + text), input as messages
//     (3 + role + content, a string input being a "user" message), function calls by
//     3 + name + arguments, their outputs by 3 + output, and 3 to prime the reply.
func TestInputTokensByEndpointRealEncodings(t *testing.T) {
	// Texts chosen to tokenize differently in the two encodings (non-Latin scripts,
	// long words, digits, code, whitespace runs, escapes).
	texts := []string{
		"Say this is a test",
		"お誕生日おめでとう — 生日快乐! Счастливого дня рождения.",
		"antidisestablishmentarianism 1234567890 3.14159",
		"func main() {\n\tfmt.Println(\"héllo\")\n}\n",
		"    indented\t\ttabs   and  spaces\r\n",
		"emoji 🎉🚀 and <|endoftext|> as plain text",
	}
	instructions := "You are a terse assistant. Répondez en français si possible."
	quote := func(s string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	list := func(ss ...string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ",") + "]"
	}

	totals := map[string]map[string]int64{} // case → encoding → count
	for _, enc := range []string{O200kBase, CL100kBase} {
		tok, ref := tokenizer(t, enc), segmenter(t, enc)
		n := func(s string) int64 { return int64(rawCount(ref, s)) }
		sum := func(ss ...string) int64 {
			var total int64
			for _, s := range ss {
				total += n(s)
			}
			return total
		}
		tests := []struct {
			name string
			ep   Endpoint
			body string
			want int64
		}{
			// completions
			{"completions string", Completions,
				`{"model":"gpt-3.5-turbo-instruct","prompt":` + quote(texts[1]) + `}`, n(texts[1])},
			{"completions strings", Completions,
				`{"model":"gpt-3.5-turbo-instruct","prompt":` + list(texts...) + `}`, sum(texts...)},
			{"completions escaped string", Completions,
				`{"model":"gpt-3.5-turbo-instruct","prompt":"caf\u00e9\nna\u00efve \"quoted\" \ud83c\udf89"}`, n("café\nnaïve \"quoted\" 🎉")},
			{"completions token array", Completions,
				`{"model":"gpt-3.5-turbo-instruct","prompt":[1212,318,257,1332,13]}`, 5},
			{"completions token arrays", Completions,
				`{"model":"gpt-3.5-turbo-instruct","prompt":[[1212,318],[257,1332,13,0,100]]}`, 2 + 5},
			// embeddings
			{"embeddings string", Embeddings,
				`{"model":"text-embedding-3-small","input":` + quote(texts[3]) + `}`, n(texts[3])},
			{"embeddings strings", Embeddings,
				`{"model":"text-embedding-3-small","input":` + list(texts...) + `}`, sum(texts...)},
			{"embeddings token array", Embeddings,
				`{"model":"text-embedding-3-small","input":[5,6,7,8]}`, 4},
			{"embeddings token arrays", Embeddings,
				`{"model":"text-embedding-3-small","input":[[5,6,7],[8],[9,10]]}`, 3 + 1 + 2},
			// responses
			{"responses string input", Responses,
				`{"model":"gpt-4o","input":` + quote(texts[1]) + `}`,
				(3 + n("user") + n(texts[1])) + 3},
			{"responses string input with instructions", Responses,
				`{"model":"gpt-4o","instructions":` + quote(instructions) + `,"input":` + quote(texts[2]) + `}`,
				(3 + n("system") + n(instructions)) + (3 + n("user") + n(texts[2])) + 3},
			{"responses items with instructions", Responses,
				`{"model":"gpt-4o","instructions":` + quote(instructions) + `,"input":[
					{"role":"user","content":` + quote(texts[0]) + `},
					{"type":"message","role":"assistant","content":[{"type":"output_text","text":` + quote(texts[1]) + `}]},
					{"role":"developer","content":[{"type":"input_text","text":` + quote(texts[3]) + `},{"type":"input_text","text":` + quote(texts[4]) + `}]},
					{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Zürich\"}"},
					{"type":"function_call_output","call_id":"call_1","output":` + quote(texts[5]) + `},
					{"type":"reasoning","id":"rs_1","summary":[]}]}`,
				(3 + n("system") + n(instructions)) +
					(3 + n("user") + n(texts[0])) +
					(3 + n("assistant") + n(texts[1])) +
					(3 + n("developer") + n(texts[3]) + n(texts[4])) +
					(3 + n("get_weather") + n(`{"city":"Zürich"}`)) +
					(3 + n(texts[5])) +
					3},
		}
		for _, tc := range tests {
			t.Run(enc+"/"+tc.name, func(t *testing.T) {
				r := mustParse(t, tc.ep, tc.body)
				if got := r.InputTokens(tok); got != (Tokens{Input: tc.want}) {
					t.Errorf("InputTokens = %+v, want Input %d (tiktoken-go plus the documented overhead)", got, tc.want)
				}
				if totals[tc.name] == nil {
					totals[tc.name] = map[string]int64{}
				}
				totals[tc.name][enc] = tc.want
			})
		}
	}
	// The texts must tell the encodings apart, or a request counted in the wrong
	// encoding would pass.
	for _, name := range []string{"completions strings", "embeddings strings", "responses items with instructions"} {
		if c := totals[name]; c[O200kBase] == c[CL100kBase] {
			t.Errorf("%s: both encodings count %d; the test texts do not tell them apart", name, c[O200kBase])
		}
	}
}
