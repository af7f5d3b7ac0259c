package metering

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRewrite(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name      string
		ep        Endpoint
		body      string
		maxOutput int64
		want      string
	}{
		{"chat adds max_completion_tokens", ChatCompletions,
			`{"model":"gpt-4o",` + msgs + `}`, 100,
			`{"model":"gpt-4o",` + msgs + `,"max_completion_tokens":100}`},
		{"chat clamps max_tokens in place", ChatCompletions,
			`{"model":"gpt-4o","max_tokens": 4096 ,` + msgs + `}`, 100,
			`{"model":"gpt-4o","max_tokens": 100 ,` + msgs + `}`},
		{"chat clamps max_completion_tokens", ChatCompletions,
			`{"model":"o3","max_completion_tokens":4096,` + msgs + `}`, 7,
			`{"model":"o3","max_completion_tokens":7,` + msgs + `}`},
		{"chat clamps both caps", ChatCompletions,
			`{"model":"gpt-4o","max_completion_tokens":4096,"max_tokens":3000,` + msgs + `}`, 7,
			`{"model":"gpt-4o","max_completion_tokens":7,"max_tokens":7,` + msgs + `}`},
		{"chat null cap replaced", ChatCompletions,
			`{"model":"gpt-4o","max_tokens":null,` + msgs + `}`, 5,
			`{"model":"gpt-4o","max_tokens":5,` + msgs + `}`},
		{"escaped cap key clamped", ChatCompletions,
			`{"model":"gpt-4o","max\u005ftokens":4096,` + msgs + `}`, 5,
			`{"model":"gpt-4o","max\u005ftokens":5,` + msgs + `}`},
		{"completions max_tokens", Completions,
			`{"model":"davinci-002","prompt":"a"}`, 16,
			`{"model":"davinci-002","prompt":"a","max_tokens":16}`},
		{"responses max_output_tokens", Responses,
			"{\n  \"model\": \"o3\",\n  \"input\": \"hi\"\n}\n", 2048,
			"{\n  \"model\": \"o3\",\n  \"input\": \"hi\"\n,\"max_output_tokens\":2048}\n"},
		{"responses clamps in place", Responses,
			`{"model":"o3","max_output_tokens":100000,"input":"hi"}`, 2048,
			`{"model":"o3","max_output_tokens":2048,"input":"hi"}`},
		{"responses never gets include_usage", Responses,
			`{"model":"o3","stream":true,"input":"hi"}`, 0,
			`{"model":"o3","stream":true,"input":"hi"}`},
		{"embeddings unchanged", Embeddings,
			`{"model":"text-embedding-3-small","input":"a"}`, 100,
			`{"model":"text-embedding-3-small","input":"a"}`},
		{"adds stream_options", ChatCompletions,
			`{"model":"gpt-4o","stream":true,` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,` + msgs + `,"stream_options":{"include_usage":true}}`},
		{"adds cap and stream_options", ChatCompletions,
			`{"model":"gpt-4o","stream":true,` + msgs + `}`, 9,
			`{"model":"gpt-4o","stream":true,` + msgs + `,"max_completion_tokens":9,"stream_options":{"include_usage":true}}`},
		{"null stream_options replaced", ChatCompletions,
			`{"model":"gpt-4o","stream":true,"stream_options":null,` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`},
		{"empty stream_options", ChatCompletions,
			`{"model":"gpt-4o","stream":true,"stream_options":{ },` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true },` + msgs + `}`},
		{"other stream_options kept", ChatCompletions,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false},` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false},` + msgs + `}`},
		{"include_usage false flipped", ChatCompletions,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1},` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"x":1},` + msgs + `}`},
		{"include_usage already true", ChatCompletions,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`, 0,
			`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`},
		{"not streamed: no stream_options", ChatCompletions,
			`{"model":"gpt-4o",` + msgs + `}`, 0,
			`{"model":"gpt-4o",` + msgs + `}`},
		{"completions stream_options", Completions,
			`{"model":"gpt-3.5-turbo-instruct","prompt":"a","stream":true}`, 0,
			`{"model":"gpt-3.5-turbo-instruct","prompt":"a","stream":true,"stream_options":{"include_usage":true}}`},
		{"numbers, escapes and HTML kept byte for byte", ChatCompletions,
			`{"model":"gpt-4o","temperature":0.10000000000000001,"seed":12345678901234567890,"logit_bias":{"50256":-1e2},` +
				`"messages":[{"role":"user","content":"<b>&amp;</b> \u00e9 \ud83d\ude00 \/"}]}`, 3,
			`{"model":"gpt-4o","temperature":0.10000000000000001,"seed":12345678901234567890,"logit_bias":{"50256":-1e2},` +
				`"messages":[{"role":"user","content":"<b>&amp;</b> \u00e9 \ud83d\ude00 \/"}],"max_completion_tokens":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			r := mustParse(t, tt.ep, tt.body)
			r.body = body // Rewrite is given the parsed body itself, as the proxy does
			got, err := r.Rewrite(body, tt.maxOutput)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Rewrite =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("result is not valid JSON: %s", got)
			}
			if _, err := ParseRequest(tt.ep, got); err != nil {
				t.Errorf("result does not parse: %v", err)
			}
		})
	}
}

// A different body (a copy) is parsed afresh rather than edited at stale offsets.
func TestRewriteOtherBody(t *testing.T) {
	r := mustParse(t, ChatCompletions, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	other := []byte(`{"model":"gpt-4o","max_tokens":900,"messages":[{"role":"user","content":"hello"}]}`)
	got, err := r.Rewrite(other, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := r.Rewrite([]byte(`{"model":`), 10); err == nil || !strings.Contains(err.Error(), "rewrite") {
		t.Errorf("invalid other body: error = %v", err)
	}
}

func TestRewriteNothingToDo(t *testing.T) {
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	r, err := ParseRequest(ChatCompletions, body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Rewrite(body, 0)
	if err != nil || &got[0] != &body[0] {
		t.Errorf("Rewrite with nothing to do: err %v, same slice %v", err, err == nil && &got[0] == &body[0])
	}
}
