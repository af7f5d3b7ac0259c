package metering

import (
	"bytes"
	"testing"
)

// checkMediaRequest: what a media parser accepts is priced at every price kind
// without error, its estimate is non-negative, any response is billed at most
// the estimate, and the body is forwarded unchanged.
func checkMediaRequest(t *testing.T, r *Request, body, resp []byte, prices ...Price) {
	t.Helper()
	for _, p := range prices {
		billed, err := r.PriceFor(p)
		if err != nil {
			t.Fatalf("PriceFor: %v", err)
		}
		in := r.InputTokens(wordTokenizer)
		est := r.Estimate(billed, in)
		if est < 0 || in.Input < 0 || r.outputBound < 0 {
			t.Fatalf("estimate %s, input %d, bound %d", est, in.Input, r.outputBound)
		}
		m := NewResponseMeter(r, wordTokenizer, in)
		m.Body(resp)
		if c := r.Limit(billed, in, 0, est).Bill(m.Result()).Cost; c < 0 || c > est {
			t.Fatalf("billed %s beyond the estimate %s", c, est)
		}
	}
	out, err := r.Rewrite(body, 0)
	if err != nil || !bytes.Equal(out, body) {
		t.Fatalf("Rewrite changed the body: %v", err)
	}
}

// FuzzImageRequest: the images parser (JSON generations) never panics, refuses
// only with a *RequestError, and keeps the bill within the estimate.
func FuzzImageRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"dall-e-3","prompt":"a","n":1,"size":"1024x1792","quality":"hd"}`,
		`{"prompt":"a","n":10,"size":"256x256","response_format":"b64_json"}`,
		`{"model":"gpt-image-1","prompt":"a b","quality":"auto","size":"auto","n":3}`,
		`{"model":"gpt-image-1","prompt":"x","stream":true}`,
		`{"prompt":null,"n":0,"size":5}`,
	} {
		f.Add([]byte(s), []byte(`{"data":[{"url":"u"}],"usage":{"input_tokens":5,"output_tokens":99999999}}`))
	}
	f.Fuzz(func(t *testing.T, body, resp []byte) {
		r, err := ParseRequest(ImageGenerations, body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if r.media.n < 1 || r.media.n > maxImages {
			t.Fatalf("n = %d", r.media.n)
		}
		checkMediaRequest(t, r, body, resp, dallE2, dallE3, gptImage1)
	})
}

// FuzzSpeechRequest: the speech parser never panics, refuses only with a
// *RequestError, bills tts-1 exactly its characters and keeps the bill within
// the estimate.
func FuzzSpeechRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"tts-1","input":"hello","voice":"alloy"}`,
		`{"model":"gpt-4o-mini-tts","input":"h\u00e9llo","instructions":"calm","voice":{"id":"v"},"response_format":"wav"}`,
		`{"model":"tts-1","input":"x","stream_format":"sse"}`,
		`{"model":"tts-1","input":["x"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(Speech, body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		checkMediaRequest(t, r, body, nil, miniTTS)
		billed, _ := r.PriceFor(tts1)
		want := (Price{Input: tts1.Characters}).Cost(Tokens{Input: r.media.chars})
		if got := r.Estimate(billed, r.InputTokens(wordTokenizer)); got != want {
			t.Fatalf("tts-1 estimate %s, want %s for %d characters", got, want, r.media.chars)
		}
	})
}

// FuzzImageForm: an image edit's form, parsed whole, never panics, refuses only
// with a *RequestError, and keeps the bill within the estimate; the form is
// forwarded unchanged.
func FuzzImageForm(f *testing.F) {
	f.Add(form(file("image", "a.png", "image/png", "\x89PNG\r\n\x1a\n"), field("prompt", "a b"), field("model", "gpt-image-1"), field("n", "3"), field("quality", "high")))
	f.Add(form(field("model", "dall-e-2"), file("image[]", "a.png", "image/png", "x"), file("image[]", "b.png", "image/png", "y"), field("prompt", "p"), field("size", "256x256")))
	f.Add(form(file("image", "a.png", "", "x"), field("n", "11")))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseMultipartRequest(ImageEdits, "multipart/form-data; boundary="+testBoundary, body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if r.media.n < 1 || r.media.n > maxImages || r.media.inputImages < 1 {
			t.Fatalf("n = %d, %d images", r.media.n, r.media.inputImages)
		}
		checkMediaRequest(t, r, body, []byte(`{"data":[{"b64_json":"AA=="}],"usage":{"input_tokens":99,"output_tokens":5}}`), dallE2, gptImage1)
	})
}
