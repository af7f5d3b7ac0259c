package metering

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseRequest: ParseRequest never panics; whatever it accepts can be counted,
// and rewriting it gives valid JSON that parses again with the new cap.
func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"n":2,"max_tokens":5,"messages":[{"role":"user","name":"x","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","detail":"high"}}]}],"tools":[{"type":"function","function":{"name":"f","description":"d.","parameters":{"type":"object","properties":{"a":{"type":"string","enum":["x","y"]}}}}}]}`,
		`{"model":"gpt-4o","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`,
		`{"model":"davinci-002","prompt":[[1,2],[3]],"best_of":2,"n":1}`,
		`{"model":"text-embedding-3-small","input":["a","b"]}`,
		`{"model":"o3","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},{"type":"function_call_output","call_id":"c","output":"y"}],"max_output_tokens":9}`,
		`{"model":"m","max\u005ftokens":1,"messages":[{"role":"\ud83d\ude00","content":"\u0000"}]}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"model":"m","messages":[{"role":"user","content":"\ud800"}]`,
		`{"model":1e400}`,
		`{"model":"o3","input":"x","background":true,"store":true,"max_output_tokens":16}`,
		`{"model":"o3","input":"x","previous_response_id":"resp_1","conversation":{"id":"conv_1","id":"conv_2"}}`,
	}
	for _, s := range seeds {
		for _, ep := range []Endpoint{ChatCompletions, Completions, Embeddings, Responses} {
			f.Add(string(ep), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, ep string, body []byte) {
		r, err := ParseRequest(Endpoint(ep), body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if r.Choices < 1 || r.MaxOutput < 0 {
			t.Fatalf("Choices %d, MaxOutput %d", r.Choices, r.MaxOutput)
		}
		if in := r.InputTokens(wordTokenizer); in.Input < 0 {
			t.Fatalf("negative input count %d", in.Input)
		}
		checkInputTokenBound(t, r)
		checkReferencesCover(t, r, body)
		out, err := r.Rewrite(body, 7)
		if err != nil {
			t.Fatalf("Rewrite: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("Rewrite produced invalid JSON: %s", out)
		}
		r2, err := ParseRequest(Endpoint(ep), out)
		if err != nil {
			t.Fatalf("rewritten body does not parse: %v\n%s", err, out)
		}
		if r.capField() != "" && r2.MaxOutput != 7 {
			t.Fatalf("rewritten MaxOutput = %d, want 7\n%s", r2.MaxOutput, out)
		}
		if r2.Stream && (r2.Endpoint == ChatCompletions || r2.Endpoint == Completions) && !r2.IncludeUsage {
			t.Fatalf("rewritten stream request lacks include_usage\n%s", out)
		}
	})
}

// FuzzMultipart: the multipart reader never panics, refuses only with a
// *RequestError, reads the same form whatever the pieces the body arrives in,
// keeps within its limits, locates each file in the body, and agrees with mime/multipart on what both accept.
func FuzzMultipart(f *testing.F) {
	f.Add(form(field("model", "dall-e-2"), file("image", "a.png", "image/png", "\x89PNG\r\n\x1a\n"), field("n", "2")), 3)
	f.Add(form(field("timestamp_granularities[]", "word"), field("timestamp_granularities[]", "segment")), 1)
	f.Add([]byte("pre\r\n--"+testBoundary+"  \r\n"+field("a", "--"+testBoundary)+"\r\n--"+testBoundary+"--epi"), 5)
	f.Add([]byte("--"+testBoundary+"\r\n"+field("a", "x")+"\n--"+testBoundary+"--"), 2)
	f.Add([]byte("--"+testBoundary+"\r\nContent-Disposition: form-data; name*=utf-8''%C3%A9\r\n\r\n\r\n--"+testBoundary+"--"), 4)
	f.Fuzz(func(t *testing.T, body []byte, step int) {
		lim := MultipartLimits{MaxParts: 8, MaxFieldBytes: 64, MaxFieldsBytes: 128, HeadBytes: 16, MaxHeaderBytes: 256}
		whole, errWhole := parseAll(t, body, lim, 0)
		split, errSplit := parseAll(t, body, lim, 1+abs(step)%17)
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v; in pieces: %v", errWhole, errSplit)
		}
		for _, err := range []error{errWhole, errSplit} {
			if _, ok := err.(*RequestError); err != nil && !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
		}
		if errWhole != nil {
			return
		}
		if strings.Join(whole.FieldNames(), "\x00") != strings.Join(split.FieldNames(), "\x00") || len(whole.Files()) != len(split.Files()) {
			t.Fatalf("whole and in pieces differ: %v / %v", whole.FieldNames(), split.FieldNames())
		}
		for _, k := range whole.FieldNames() {
			a, _ := whole.Field(k)
			b, _ := split.Field(k)
			if a != b || len(a) > lim.MaxFieldBytes {
				t.Fatalf("field %q: %q / %q", k, a, b)
			}
		}
		for i, fa := range whole.Files() {
			fb := split.Files()[i]
			if fa.Name != fb.Name || fa.Size != fb.Size || !bytes.Equal(fa.Head, fb.Head) || len(fa.Head) > lim.HeadBytes || !fa.Complete {
				t.Fatalf("file %d: %+v / %+v", i, fa, fb)
			}
			// Offset locates the whole file in the body (what a transcription's
			// duration is read from), whatever the pieces.
			if fa.Offset != fb.Offset || fa.Offset < 0 || fa.Offset+fa.Size > int64(len(body)) ||
				(fa.Size > 0 && !bytes.HasPrefix(body[fa.Offset:fa.Offset+fa.Size], fa.Head)) {
				t.Fatalf("file %d: offset %d / %d, size %d of a %d-byte body", i, fa.Offset, fb.Offset, fa.Size, len(body))
			}
		}
		checkAgainstStdlib(t, body, 0)
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
