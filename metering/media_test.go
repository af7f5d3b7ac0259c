package metering

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"testing"

	"github.com/creditgate/creditgate/money"
)

var (
	dallE2 = Price{Images: &ImagePrices{DefaultSize: "1024x1024", DefaultQuality: "standard",
		PerImage: map[string]map[string]money.Micros{"standard": {"256x256": 16_000, "512x512": 18_000, "1024x1024": 20_000}}}}
	dallE3 = Price{Images: &ImagePrices{DefaultSize: "1024x1024", DefaultQuality: "standard", PerImage: map[string]map[string]money.Micros{
		"standard": {"1024x1024": 40_000, "1024x1792": 80_000, "1792x1024": 80_000},
		"hd":       {"1024x1024": 80_000, "1024x1792": 120_000, "1792x1024": 120_000}}}}
	gptImage1 = Price{Input: 5_000_000, CachedInput: 1_250_000, ImageInput: 10_000_000, Output: 40_000_000}
	tts1      = Price{Characters: 15_000_000}
	miniTTS   = Price{Input: 600_000, AudioOutput: 12_000_000}
)

// estimateOf parses body for ep, prices it at p and returns its estimate, counting
// text by words.
func estimateOf(t *testing.T, ep Endpoint, body string, p Price) (money.Micros, *Request, Price) {
	t.Helper()
	r, err := ParseRequest(ep, []byte(body))
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	billed, err := r.PriceFor(p)
	if err != nil {
		t.Fatalf("%s: PriceFor: %v", body, err)
	}
	return r.Estimate(billed, r.InputTokens(wordTokenizer)), r, billed
}

// TestImageEstimateIsTheWorstCase: the estimate is n images at the dearest size
// and quality the request allows, so the hold covers whatever the upstream makes.
func TestImageEstimateIsTheWorstCase(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		price Price
		want  money.Micros
	}{
		{"dall-e-2 defaults", `{"prompt":"a b c"}`, dallE2, 20_000},
		{"dall-e-2 n=10 256", `{"prompt":"a","n":10,"size":"256x256"}`, dallE2, 160_000},
		{"dall-e-2 unknown size: the dearest", `{"prompt":"a","n":2,"size":"640x480"}`, dallE2, 40_000},
		{"dall-e-3 default standard 1024", `{"model":"dall-e-3","prompt":"a"}`, dallE3, 40_000},
		{"dall-e-3 hd, default size", `{"model":"dall-e-3","prompt":"a","quality":"hd"}`, dallE3, 80_000},
		{"dall-e-3 auto quality: hd", `{"model":"dall-e-3","prompt":"a","quality":"auto","size":"1792x1024"}`, dallE3, 120_000},
		{"dall-e-3 auto size and quality: the dearest", `{"model":"dall-e-3","prompt":"a","quality":"auto","size":"auto"}`, dallE3, 120_000},
		// gpt-image-1: 2 prompt words at $5/1M, n × output tokens at $40/1M, rounded up once
		{"gpt-image-1 low 1024x1024", `{"model":"gpt-image-1","prompt":"a b","quality":"low","size":"1024x1024"}`, gptImage1, ceilDiv(2*5_000_000+272*40_000_000, 1e6)},
		{"gpt-image-1 medium 1536x1024 n=3", `{"model":"gpt-image-1","prompt":"a b","quality":"medium","size":"1536x1024","n":3}`, gptImage1, ceilDiv(2*5_000_000+3*1568*40_000_000, 1e6)},
		{"gpt-image-1 high 1024x1536", `{"model":"gpt-image-1","prompt":"a b","quality":"high","size":"1024x1536"}`, gptImage1, ceilDiv(2*5_000_000+6240*40_000_000, 1e6)},
		{"gpt-image-1 auto: high, the largest", `{"model":"gpt-image-1","prompt":"a b","quality":"auto","size":"auto","n":2}`, gptImage1, ceilDiv(2*5_000_000+2*6240*40_000_000, 1e6)},
		{"gpt-image-1 absent: high, the largest", `{"model":"gpt-image-1","prompt":"a b"}`, gptImage1, ceilDiv(2*5_000_000+6240*40_000_000, 1e6)},
		{"gpt-image-1 low, size absent: low's largest", `{"model":"gpt-image-1","prompt":"a b","quality":"low"}`, gptImage1, ceilDiv(2*5_000_000+408*40_000_000, 1e6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, r, billed := estimateOf(t, ImageGenerations, tc.body, tc.price)
			if got != tc.want {
				t.Fatalf("estimate %s, want %s", got, tc.want)
			}
			// The limit bills at most the estimate, whatever the response claims.
			lim := r.Limit(billed, r.InputTokens(wordTokenizer), 0, got)
			if c := lim.Bill(Result{Tokens: Tokens{Input: 1 << 40, Output: 1 << 40}, Source: SourceUpstream}).Cost; c != got {
				t.Fatalf("an inflated answer billed %s, want the estimate %s", c, got)
			}
		})
	}
}

func ceilDiv(a, b int64) money.Micros { return money.Micros((a + b - 1) / b) }

// TestImagesResponseBilling: per-image models bill the images returned; token
// models the usage, image input tokens at the image input price; no usage bills
// the estimate.
func TestImagesResponseBilling(t *testing.T) {
	for _, tc := range []struct {
		name, req, resp string
		price           Price
		want            money.Micros
		source          string
	}{
		{"dall-e-2: 2 of 3 returned", `{"prompt":"a","n":3,"size":"512x512"}`, `{"created":1,"data":[{"url":"u"},{"url":"v"}]}`, dallE2, 36_000, SourceUpstream},
		{"dall-e-2: no data, the estimate", `{"prompt":"a","n":3,"size":"512x512"}`, `{"created":1}`, dallE2, 54_000, SourceLocal},
		{"gpt-image-1 usage", `{"model":"gpt-image-1","prompt":"a b","quality":"low"}`,
			`{"data":[{"b64_json":"AA=="}],"usage":{"input_tokens":50,"input_tokens_details":{"text_tokens":20,"image_tokens":30},"output_tokens":272,"total_tokens":322}}`,
			gptImage1, ceilDiv(20*5_000_000+30*10_000_000+272*40_000_000, 1e6), SourceUpstream},
		{"gpt-image-1 no usage: the estimate", `{"model":"gpt-image-1","prompt":"a b","quality":"low","size":"1024x1024"}`, `{"data":[{"b64_json":"AA=="}]}`,
			gptImage1, ceilDiv(2*5_000_000+272*40_000_000, 1e6), SourceLocal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			est, r, billed := estimateOf(t, ImageGenerations, tc.req, tc.price)
			in := r.InputTokens(wordTokenizer)
			m := NewResponseMeter(r, wordTokenizer, in)
			m.Body([]byte(tc.resp))
			res := m.Result()
			bill := r.Limit(billed, in, 0, est).Bill(res)
			if bill.Cost != tc.want || res.Source != tc.source || !res.Done {
				t.Fatalf("billed %s from %s (done %v), want %s from %s", bill.Cost, res.Source, res.Done, tc.want, tc.source)
			}
		})
	}
}

func TestSpeechEstimate(t *testing.T) {
	// tts-1: exactly the characters, at $15/1M.
	got, r, _ := estimateOf(t, Speech, `{"model":"tts-1","input":"héllo wörld","voice":"alloy"}`, tts1)
	if got != 11*15 || r.InputTokens(wordTokenizer).Input != 11 {
		t.Fatalf("tts-1 estimate %s, want 11 characters × 15 micros", got)
	}
	// gpt-4o-mini-tts: 2 words of input + instructions at $0.60/1M, 3 audio tokens per character at $12/1M.
	got, _, _ = estimateOf(t, Speech, `{"model":"gpt-4o-mini-tts","input":"hello world and more text here, long enough","instructions":"calm voice","voice":"alloy"}`, miniTTS)
	chars := int64(len("hello world and more text here, long enough"))
	if want := ceilDiv(10*600_000+3*chars*12_000_000, 1e6); got != want {
		t.Fatalf("gpt-4o-mini-tts estimate %s, want %s", got, want)
	}
	// A short input is bounded below by speechMinAudioTokens.
	got, _, _ = estimateOf(t, Speech, `{"model":"gpt-4o-mini-tts","input":"hi","voice":"alloy"}`, miniTTS)
	if want := ceilDiv(1*600_000+speechMinAudioTokens*12_000_000, 1e6); got != want {
		t.Fatalf("short gpt-4o-mini-tts estimate %s, want %s", got, want)
	}
	for _, body := range []string{`{"model":"tts-1","voice":"alloy"}`, `{"model":"tts-1","input":3}`, `{"model":"tts-1","input":"x","stream_format":"sse"}`, `{"input":"x"}`} {
		if _, err := ParseRequest(Speech, []byte(body)); err == nil {
			t.Errorf("%s parsed", body)
		}
	}
}

func TestModerationsParse(t *testing.T) {
	for _, tc := range []struct {
		body   string
		tokens int64
		model  string
	}{
		{`{"input":"a b c"}`, 3, "omni-moderation-latest"},
		{`{"model":"text-moderation-latest","input":["a b","c"]}`, 3, "text-moderation-latest"},
		{`{"input":[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"https://x"}}]}`, 2 + imageDefaultTokens, "omni-moderation-latest"},
	} {
		r, err := ParseRequest(Moderations, []byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if n := r.InputTokens(wordTokenizer).Input; n != tc.tokens || r.Model != tc.model || r.Estimate(Price{}, Tokens{Input: n}) != 0 {
			t.Fatalf("%s: %d tokens, model %s", tc.body, n, r.Model)
		}
	}
	for _, body := range []string{`{}`, `{"input":[]}`, `{"input":[{"type":"audio"}]}`, `{"input":5}`} {
		if _, err := ParseRequest(Moderations, []byte(body)); err == nil {
			t.Errorf("%s parsed", body)
		}
	}
}

// TestImageFormParsedWhateverTheOrder: the official SDKs write the file parts
// before the fields; the whole form is read, so model, n, size and quality
// price the request wherever they come.
func TestImageFormParsedWhateverTheOrder(t *testing.T) {
	form := func(filesFirst bool) (string, []byte) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		files := func() {
			for i := range 2 {
				fw, _ := w.CreateFormFile("image[]", fmt.Sprintf("%d.png", i))
				fw.Write(bytes.Repeat([]byte{0x89}, 100_000))
			}
		}
		if filesFirst {
			files()
		}
		for _, kv := range [][2]string{{"model", "dall-e-3"}, {"prompt", "a b"}, {"n", "2"}, {"size", "1792x1024"}, {"quality", "hd"}} {
			w.WriteField(kv[0], kv[1])
		}
		if !filesFirst {
			files()
		}
		w.Close()
		return w.FormDataContentType(), b.Bytes()
	}
	for _, first := range []bool{true, false} {
		ct, body := form(first)
		r, err := ParseMultipartRequest(ImageEdits, ct, body)
		if err != nil {
			t.Fatal(err)
		}
		billed, err := r.PriceFor(dallE3)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Estimate(billed, r.InputTokens(wordTokenizer)); got != 240_000 || r.Model != "dall-e-3" || r.media.inputImages != 2 {
			t.Fatalf("files first %v: estimate %s, model %s, %d images", first, got, r.Model, r.media.inputImages)
		}
		out, err := r.Rewrite(body, 0)
		if err != nil || !bytes.Equal(out, body) {
			t.Fatalf("the form is not forwarded as it came: %v", err)
		}
	}
	// gpt-image-1: each uploaded image is estimated at imageInputTokensPerImage at the image input price.
	ct, body := form(true)
	body = bytes.Replace(body, []byte("dall-e-3"), []byte("gpt-image-1"), 1)
	r, err := ParseMultipartRequest(ImageEdits, ct, body)
	if err != nil {
		t.Fatal(err)
	}
	billed, _ := r.PriceFor(gptImage1)
	in := r.InputTokens(wordTokenizer)
	if want := ceilDiv(2*5_000_000+2*imageInputTokensPerImage*10_000_000+2*6240*40_000_000, 1e6); r.Estimate(billed, in) != want {
		t.Fatalf("gpt-image-1 edit estimate %s, want %s", r.Estimate(billed, in), want)
	}
	if _, err := ParseRequest(ImageEdits, body); err == nil {
		t.Fatal("a multipart endpoint parsed as JSON")
	}
	if Batchable(ImageGenerations) || Batchable(Speech) || !Batchable(Moderations) || !Batchable(ChatCompletions) {
		t.Fatal("batchable endpoints")
	}
}

// TestUnitPricedModelsStayOnTheirEndpoints: a model priced per image or per
// character has free token classes; on another endpoint it would be served free,
// so it is refused there.
func TestUnitPricedModelsStayOnTheirEndpoints(t *testing.T) {
	for _, tc := range []struct {
		ep    Endpoint
		body  string
		price Price
		ok    bool
	}{
		{ChatCompletions, `{"model":"tts-1","messages":[{"role":"user","content":"hi"}]}`, tts1, false},
		{ChatCompletions, `{"model":"dall-e-3","messages":[{"role":"user","content":"hi"}]}`, dallE3, false},
		{Embeddings, `{"model":"dall-e-2","input":"x"}`, dallE2, false},
		{Moderations, `{"model":"tts-1","input":"x"}`, tts1, false},
		{Speech, `{"model":"dall-e-3","input":"x"}`, dallE3, false},
		{ImageGenerations, `{"model":"tts-1","prompt":"x"}`, tts1, false},
		{Speech, `{"model":"tts-1","input":"x"}`, tts1, true},
		{ImageGenerations, `{"model":"dall-e-3","prompt":"x"}`, dallE3, true},
		{ChatCompletions, `{"model":"gpt-image-1","messages":[{"role":"user","content":"hi"}]}`, gptImage1, true}, // tokens: priced as tokens
	} {
		r, err := ParseRequest(tc.ep, []byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		_, err = r.PriceFor(tc.price)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s: %v, want ok %v", tc.ep, tc.body, err, tc.ok)
		}
		if re, isRE := err.(*RequestError); err != nil && (!isRE || re.Param != "model") {
			t.Errorf("%s: error %v does not name the model", tc.body, err)
		}
	}
}

// The transcription endpoints build their Request by hand (no spec): a model
// priced per image or per character is refused there too, a token or
// per-minute price passes.
func TestUnitPricedModelsStayOffTranscriptions(t *testing.T) {
	for _, tc := range []struct {
		model string
		price Price
		ok    bool
	}{
		{"tts-1", tts1, false},
		{"dall-e-3", dallE3, false},
		{"whisper-1", Price{AudioMinute: 6000}, true},
		{"gpt-4o-transcribe", Price{Input: 2_500_000, Output: 10_000_000}, true},
	} {
		for _, ep := range []Endpoint{Transcriptions, Translations} {
			r := &Request{Endpoint: ep, Model: tc.model}
			got, err := r.PriceFor(tc.price)
			if (err == nil) != tc.ok {
				t.Errorf("%s %s: %v, want ok %v", ep, tc.model, err, tc.ok)
			}
			if err == nil && got != tc.price {
				t.Errorf("%s %s: priced %+v, want its own price %+v", ep, tc.model, got, tc.price)
			}
		}
	}
}

// TestImageCounter counts the images of a response fed in any pieces, whatever
// their strings hold, as imagesBody does for a whole one.
func TestImageCounter(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int64
	}{
		{`{"created":1,"data":[{"url":"u"},{"url":"v","revised_prompt":"say \"url\": no"}]}`, 2},
		{`{"data":[{"b64_json":"AAAA"},{"b64_json":"BB=="},{"b64_json":"CC"}],"usage":{"url":1}}`, 3},
		{`{"data":[],"note":{"data":[{"url":"x"}]}}`, 0},
		{`{"data" : [ { "b64_json" : "A\\"}, {"urls":"x"} ] }`, 1},
	} {
		for step := 1; step <= len(tc.body); step += 3 {
			var c ImageCounter
			for i := 0; i < len(tc.body); i += step {
				c.Write([]byte(tc.body[i:min(i+step, len(tc.body))]))
			}
			if c.Images() != tc.want {
				t.Fatalf("%s in pieces of %d: %d images, want %d", tc.body, step, c.Images(), tc.want)
			}
		}
	}
}
