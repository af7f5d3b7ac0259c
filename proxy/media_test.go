package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// newMediaHarness is a harness billing at the built-in price table (the media
// endpoints' prices as shipped), its pricing changed by edit, if given.
func newMediaHarness(t *testing.T, edit func(map[string]metering.Price), opts ...harnessOption) *harness {
	t.Helper()
	h := newHarness(t, opts...)
	models := config.DefaultPricingModels()
	if edit != nil {
		edit(models)
	}
	p, err := metering.NewPricing(models, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := *h.settings.Load()
	s.Pricing = p
	h.settings.Store(&s)
	return h
}

// builtinPrice is a model's built-in price.
func builtinPrice(t *testing.T, model string) metering.Price {
	t.Helper()
	p, ok := config.DefaultPricingModels()[model]
	if !ok {
		t.Fatalf("no built-in price for %s", model)
	}
	return p
}

// usageEvent checks that the account's newest event is a usage event of the
// endpoint and returns it.
func usageEvent(t *testing.T, h *harness, account, endpoint string) billing.Event {
	t.Helper()
	ev := h.lastEvent(account)
	if ev.Type != billing.EventUsage || ev.Endpoint != endpoint {
		t.Fatalf("last event %+v, want a usage event of %s", ev, endpoint)
	}
	return ev
}

func TestModerationsAreMeteredAsAZeroCostUsageEvent(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "5.00")
	before := h.get("acme")
	res := h.post("/v1/moderations", key, `{"input":["I will kill this bug","have a nice day"]}`)
	body := readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	var got struct {
		Model   string `json:"model"`
		Results []struct {
			Flagged bool `json:"flagged"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.Results) != 2 || !got.Results[0].Flagged || got.Results[1].Flagged {
		t.Fatalf("moderation %s: %v", body, err)
	}
	ev := usageEvent(t, h, "acme", "/v1/moderations")
	tok, _ := metering.TokenizerFor(metering.CL100kBase)
	want := int64(tok.Count("I will kill this bug") + tok.Count("have a nice day"))
	if ev.Cost != 0 || ev.Model != "omni-moderation-latest" || ev.PromptTokens != want || ev.TokenSource != billing.TokenSourceLocal {
		t.Fatalf("event %+v, want cost 0, model omni-moderation-latest, %d local prompt tokens", ev, want)
	}
	if after := h.get("acme"); after.Available() != before.Available() {
		t.Fatalf("available %s → %s for a free moderation", before.Available(), after.Available())
	}
	logged := false
	for _, l := range h.requestLogs() {
		if l["endpoint"] == "/v1/moderations" && l["metered"] != false {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("no metered log line for the moderation: %v", h.requestLogs())
	}
}

func TestModerationsPriceIsConfigurable(t *testing.T) {
	h := newMediaHarness(t, func(m map[string]metering.Price) {
		p := m["text-moderation-latest"]
		p.Input, p.CachedInput, p.AudioInput = usd("1000"), usd("1000"), usd("1000")
		m["text-moderation-latest"] = p
	})
	key := h.account("acme", "5.00")
	res := h.post("/v1/moderations", key, `{"model":"text-moderation-latest","input":"hello there"}`)
	if body := readAll(t, res); res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	ev := usageEvent(t, h, "acme", "/v1/moderations")
	tok, _ := metering.TokenizerFor(metering.CL100kBase)
	n := int64(tok.Count("hello there"))
	if want := money.Micros(n * 1000); ev.Cost != want || ev.PromptTokens != n {
		t.Fatalf("event %+v, want %d tokens at $1000/1M = %s", ev, n, want)
	}
}

// TestImageGenerationsExactCost: dall-e billed per image returned at its size
// and quality; gpt-image-1 by the usage its response reports.
func TestImageGenerationsExactCost(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "20.00")
	gptImage := builtinPrice(t, "gpt-image-1")
	for _, tc := range []struct {
		name, body string
		images     int
		format     string // "url" or "b64_json" in each image
		cost       func(u imageUsage) money.Micros
	}{
		{"dall-e-2 three 512x512", `{"model":"dall-e-2","prompt":"a lighthouse","n":3,"size":"512x512"}`, 3, "url",
			func(imageUsage) money.Micros { return 3 * usd("0.018") }},
		{"dall-e-2 default size, base64", `{"prompt":"a lighthouse","n":2,"response_format":"b64_json"}`, 2, "b64_json",
			func(imageUsage) money.Micros { return 2 * usd("0.020") }},
		{"dall-e-3 default", `{"model":"dall-e-3","prompt":"a lighthouse"}`, 1, "url",
			func(imageUsage) money.Micros { return usd("0.040") }},
		{"dall-e-3 hd 1792x1024", `{"model":"dall-e-3","prompt":"a lighthouse","quality":"hd","size":"1792x1024"}`, 1, "url",
			func(imageUsage) money.Micros { return usd("0.120") }},
		{"dall-e-3 standard 1024x1792", `{"model":"dall-e-3","prompt":"a lighthouse","quality":"standard","size":"1024x1792"}`, 1, "url",
			func(imageUsage) money.Micros { return usd("0.080") }},
		{"gpt-image-1 two low 1024x1536", `{"model":"gpt-image-1","prompt":"a lighthouse at dusk","n":2,"quality":"low","size":"1024x1536"}`, 2, "b64_json",
			func(u imageUsage) money.Micros {
				// text at $5/1M, image output at $40/1M, rounded up once
				return money.Micros((u.InputTokensDetails.TextTokens*5_000_000 + u.OutputTokens*40_000_000 + 999_999) / 1_000_000)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.post("/v1/images/generations", key, tc.body)
			body := readAll(t, res)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			var got imagesResponse
			if err := json.Unmarshal(body, &got); err != nil || len(got.Data) != tc.images {
				t.Fatalf("%d images in %.200s: %v", len(got.Data), body, err)
			}
			for _, d := range got.Data {
				if (tc.format == "url") != (d.URL != "") || (tc.format == "b64_json") != (d.B64JSON != "") {
					t.Fatalf("image %+v, want %s", d, tc.format)
				}
			}
			ev := usageEvent(t, h, "acme", "/v1/images/generations")
			if want := tc.cost(got.Usage); ev.Cost != want {
				t.Fatalf("cost %s, want %s (event %+v)", ev.Cost, want, ev)
			}
			if got.Usage.OutputTokens > 0 {
				want := metering.Tokens{Input: got.Usage.InputTokens, Output: got.Usage.OutputTokens}
				if ev.PromptTokens != want.Input || ev.CompletionTokens != want.Output || ev.TokenSource != billing.TokenSourceUpstream ||
					gptImage.Cost(want) != ev.Cost {
					t.Fatalf("event %+v for usage %+v", ev, got.Usage)
				}
			} else if ev.CompletionTokens != int64(tc.images) || ev.TokenSource != billing.TokenSourceUpstream {
				t.Fatalf("event %+v: want %d images counted", ev, tc.images)
			}
		})
	}
}

type imageUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	InputTokensDetails struct {
		TextTokens  int64 `json:"text_tokens"`
		ImageTokens int64 `json:"image_tokens"`
	} `json:"input_tokens_details"`
}

type imagesResponse struct {
	Data []struct {
		URL     string `json:"url"`
		B64JSON string `json:"b64_json"`
	} `json:"data"`
	Usage imageUsage `json:"usage"`
}

// TestImagesWithoutUsageBillTheEstimate: a gpt-image-1 answer without usage is
// billed its estimate (the worst case held), flagged as a local count.
func TestImagesWithoutUsageBillTheEstimate(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "20.00")
	res := h.post("/v1/images/generations", key, `{"model":"gpt-image-1","prompt":"a lighthouse","quality":"medium","size":"1024x1024"}`, "X-Mock-No-Usage", "1")
	if body := readAll(t, res); res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	ev := usageEvent(t, h, "acme", "/v1/images/generations")
	tok, _ := metering.TokenizerFor(metering.O200kBase)
	in := int64(tok.Count("a lighthouse"))
	want := builtinPrice(t, "gpt-image-1").Cost(metering.Tokens{Input: in, Output: 1056})
	if ev.Cost != want || ev.TokenSource != billing.TokenSourceLocal || ev.CompletionTokens != 1056 {
		t.Fatalf("event %+v, want the estimate %s (local)", ev, want)
	}
}

// multipartBody writes a form the way the official SDKs do: the files first,
// then the fields.
func multipartBody(t *testing.T, files map[string]int, fields ...string) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for name, count := range files {
		for i := range count {
			fw, err := w.CreateFormFile(name, fmt.Sprintf("img%d.png", i))
			if err != nil {
				t.Fatal(err)
			}
			fw.Write(append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 2048)...))
		}
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func TestImageEditsAndVariationsExactCost(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "20.00")
	for _, tc := range []struct {
		name, path string
		files      map[string]int
		fields     []string
		images     int
		cost       func(u imageUsage) money.Micros
	}{
		{"dall-e-2 edit, fields after the file", "/v1/images/edits", map[string]int{"image": 1},
			[]string{"prompt", "add a boat", "model", "dall-e-2", "n", "2", "size", "256x256"}, 2,
			func(imageUsage) money.Micros { return 2 * usd("0.016") }},
		{"dall-e-2 variation", "/v1/images/variations", map[string]int{"image": 1},
			[]string{"n", "3", "size", "512x512"}, 3,
			func(imageUsage) money.Micros { return 3 * usd("0.018") }},
		{"gpt-image-1 edit of two images", "/v1/images/edits", map[string]int{"image[]": 2},
			[]string{"prompt", "put them together", "model", "gpt-image-1", "quality", "high", "size", "1024x1024"}, 1,
			func(u imageUsage) money.Micros {
				// text $5, image input $10, image output $40 per 1M, rounded up once
				return money.Micros((u.InputTokensDetails.TextTokens*5_000_000 + u.InputTokensDetails.ImageTokens*10_000_000 + u.OutputTokens*40_000_000 + 999_999) / 1_000_000)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.files, tc.fields...)
			status, resp := h.do(http.MethodPost, tc.path, key, bytes.NewReader(body), "Content-Type", ct)
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, resp)
			}
			var got imagesResponse
			if err := json.Unmarshal(resp, &got); err != nil || len(got.Data) != tc.images {
				t.Fatalf("%d images in %.200s: %v", len(got.Data), resp, err)
			}
			ev := usageEvent(t, h, "acme", tc.path)
			if want := tc.cost(got.Usage); ev.Cost != want {
				t.Fatalf("cost %s, want %s (event %+v, usage %+v)", ev.Cost, want, ev, got.Usage)
			}
			if got.Usage.InputTokensDetails.ImageTokens > 0 && ev.AudioPromptTokens != got.Usage.InputTokensDetails.ImageTokens {
				t.Fatalf("image input tokens %d recorded as %d", got.Usage.InputTokensDetails.ImageTokens, ev.AudioPromptTokens)
			}
			if r := h.mock.Requests(); !bytes.Equal(r[len(r)-1].Body, body) {
				t.Fatal("the upstream did not get the form byte for byte")
			}
		})
	}
}

func TestImageRequestsRefused(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "5.00")
	ct, form := multipartBody(t, nil, "prompt", "no image", "model", "dall-e-2")
	for _, tc := range []struct {
		name, path, ct, body, want string
	}{
		{"no prompt", "/v1/images/generations", "application/json", `{"model":"dall-e-3"}`, "prompt"},
		{"n above 10", "/v1/images/generations", "application/json", `{"prompt":"x","n":11}`, "'n'"},
		{"streamed", "/v1/images/generations", "application/json", `{"model":"gpt-image-1","prompt":"x","stream":true}`, "stream"},
		{"an edit in JSON", "/v1/images/edits", "application/json", `{"prompt":"x"}`, "multipart/form-data"},
		{"an edit without an image", "/v1/images/edits", ct, string(form), "'image'"},
		{"an unpriced image model", "/v1/images/generations", "application/json", `{"model":"imagen-9","prompt":"x"}`, "imagen-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mock.Requests())
			status, body := h.do(http.MethodPost, tc.path, key, strings.NewReader(tc.body), "Content-Type", tc.ct)
			if status != http.StatusBadRequest || !strings.Contains(string(body), tc.want) || !strings.Contains(string(body), "invalid_request_error") {
				t.Fatalf("%d %s, want 400 naming %s", status, body, tc.want)
			}
			if len(h.mock.Requests()) != before {
				t.Fatal("a refused request reached the upstream")
			}
		})
	}
}

// TestImageEditHugeDeclaredUploadIsRefused: a 1 GB declared upload is answered
// 413 at limits.max_body_bytes without being read whole, nor forwarded.
func TestImageEditHugeDeclaredUploadIsRefused(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "5.00")
	r := &countingReader{r: io.LimitReader(zeros{}, 1<<30)}
	req, _ := http.NewRequest(http.MethodPost, h.server.URL+"/v1/images/edits", r)
	req.ContentLength = 1 << 30
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "request_too_large") || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if n := r.n.Load(); n > 16<<20 {
		t.Fatalf("%d bytes read of a refused upload", n)
	}
	if h.upstreamHits("/v1/images/edits") != 0 {
		t.Fatal("a refused upload reached the upstream")
	}
	if evs := h.events("acme"); evs[len(evs)-1].Type == billing.EventUsage {
		t.Fatalf("a refused upload was billed: %+v", evs[len(evs)-1])
	}
}

func TestSpeechExactCost(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "5.00")
	const input = "Metering, per character: ¿qué tal? 🎧"
	chars := int64(utf8.RuneCountInString(input))
	tok, _ := metering.TokenizerFor(metering.O200kBase)
	for _, tc := range []struct {
		model, format string
		magic         string
		cost          money.Micros
		prompt        int64
	}{
		{"tts-1", "", "ID3", money.Micros(chars * 15), chars}, // $15 per 1M characters
		{"tts-1-hd", "opus", "OggS", money.Micros(chars * 30), chars},
		{"tts-1", "flac", "fLaC", money.Micros(chars * 15), chars},
		{"tts-1", "wav", "RIFF", money.Micros(chars * 15), chars},
		{"tts-1", "aac", "\xff\xf1", money.Micros(chars * 15), chars},
		{"tts-1", "pcm", "", money.Micros(chars * 15), chars},
		// text input $0.60/1M, the documented bound of 3 audio tokens per character at $12/1M
		{"gpt-4o-mini-tts", "mp3", "ID3", builtinPrice(t, "gpt-4o-mini-tts").Cost(metering.Tokens{Input: int64(tok.Count(input)), Output: 3 * chars, AudioOutput: 3 * chars}), int64(tok.Count(input))},
	} {
		t.Run(tc.model+" "+tc.format, func(t *testing.T) {
			body := `{"model":"` + tc.model + `","input":"` + input + `","voice":"alloy"`
			if tc.format != "" {
				body += `,"response_format":"` + tc.format + `"`
			}
			res := h.post("/v1/audio/speech", key, body+"}")
			audio := readAll(t, res)
			if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(audio), tc.magic) || int64(len(audio)) != chars*mockupstream.SpeechBytesPerChar {
				t.Fatalf("%d %s, %d bytes %q…", res.StatusCode, res.Header.Get("Content-Type"), len(audio), audio[:min(8, len(audio))])
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "audio/") {
				t.Fatalf("Content-Type %q", ct)
			}
			ev := usageEvent(t, h, "acme", "/v1/audio/speech")
			if ev.Cost != tc.cost || ev.PromptTokens != tc.prompt || ev.Model != tc.model {
				t.Fatalf("event %+v, want cost %s for %d prompt units", ev, tc.cost, tc.prompt)
			}
		})
	}
	res := h.post("/v1/audio/speech", key, `{"model":"tts-1","input":"x","voice":"alloy","stream_format":"sse"}`)
	if body := readAll(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "stream_format") {
		t.Fatalf("stream_format sse: %d %s", res.StatusCode, body)
	}
}

// TestSpeechIsRelayedWithoutBuffering: the upstream writes the first chunk of
// audio and holds the last until the app has received the first, so the test
// passes only if the proxy relays audio as it comes.
func TestSpeechIsRelayedWithoutBuffering(t *testing.T) {
	firstSeen := make(chan struct{})
	lastWritten := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Write(append([]byte("ID3"), bytes.Repeat([]byte{1}, 4093)...))
		w.(http.Flusher).Flush()
		select {
		case <-firstSeen:
		case <-time.After(5 * time.Second):
		}
		w.Write(bytes.Repeat([]byte{2}, 4096))
		close(lastWritten)
	}))
	t.Cleanup(slow.Close)
	h := newMediaHarness(t, nil, func(o *Options) { o.Upstream, _ = url.Parse(slow.URL + "/v1") })
	key := h.account("acme", "5.00")
	res := h.post("/v1/audio/speech", key, `{"model":"tts-1","input":"Hello there","voice":"alloy"}`)
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, readAll(t, res))
	}
	first := make([]byte, 4096)
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lastWritten:
		t.Fatal("the first chunk reached the app only after the last was written: the audio was buffered")
	default:
	}
	close(firstSeen)
	rest, err := io.ReadAll(res.Body)
	if err != nil || len(rest) != 4096 || rest[0] != 2 || string(first[:3]) != "ID3" {
		t.Fatalf("rest %d bytes, %v", len(rest), err)
	}
	ev := usageEvent(t, h, "acme", "/v1/audio/speech")
	if want := money.Micros(int64(len("Hello there")) * 15); ev.Cost != want {
		t.Fatalf("cost %s, want %s", ev.Cost, want)
	}
}

// TestImageWorstCaseIsHeld: the hold is the worst case for n, size and quality,
// so a request whose worst case passes available + grace is refused with the
// 429 and never forwarded (a media request is never clamped), while one that
// fits goes.
func TestImageWorstCaseIsHeld(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "5.00")
	// Leave $0.10 available: with the $0.50 grace, $0.60 may be held.
	if _, err := h.store.Adjust(h.ctx, testPolicy, "acme", billing.AdjustRequest{Amount: -usd("4.90"), Reason: "test spend"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		// 10 × 6240 high-quality output tokens at $40/1M = $2.496
		{"gpt-image-1 auto, n=10", `{"model":"gpt-image-1","prompt":"a","n":10}`, http.StatusTooManyRequests},
		// 10 × $0.080 = $0.80
		{"dall-e-3 auto quality, n=10", `{"model":"dall-e-3","prompt":"a","n":10,"quality":"auto"}`, http.StatusTooManyRequests},
		// 10 × $0.040 = $0.40
		{"dall-e-3 standard, n=10", `{"model":"dall-e-3","prompt":"a","n":10,"quality":"standard","size":"1024x1024"}`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.upstreamHits("/v1/images/generations")
			res := h.post("/v1/images/generations", key, tc.body)
			body := readAll(t, res)
			if res.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.status)
			}
			if forwarded := h.upstreamHits("/v1/images/generations") > before; forwarded != (tc.status == http.StatusOK) {
				t.Fatalf("forwarded: %v", forwarded)
			}
			if tc.status == http.StatusTooManyRequests && !strings.Contains(string(body), "insufficient_quota") {
				t.Fatalf("429 body %s", body)
			}
		})
	}
}

// TestLargeImagesResponseIsBilledByItsImages: a dall-e answer too large to be
// metered whole (two 5 MB base64 images) is billed by the images counted as it
// passed, not by the n it asked for.
func TestLargeImagesResponseIsBilledByItsImages(t *testing.T) {
	big := strings.Repeat("QUFB", 5<<20/4)
	body := `{"created":1,"data":[{"b64_json":"` + big + `"},{"b64_json":"` + big + `"}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(up.Close)
	h := newMediaHarness(t, nil, func(o *Options) { o.Upstream, _ = url.Parse(up.URL + "/v1") })
	key := h.account("acme", "5.00")
	res := h.post("/v1/images/generations", key, `{"prompt":"a","n":3,"response_format":"b64_json"}`)
	if got := readAll(t, res); res.StatusCode != http.StatusOK || len(got) != len(body) {
		t.Fatalf("%d, %d bytes relayed of %d", res.StatusCode, len(got), len(body))
	}
	ev := usageEvent(t, h, "acme", "/v1/images/generations")
	if ev.Cost != 2*usd("0.020") || ev.CompletionTokens != 2 || ev.TokenSource != billing.TokenSourceUpstream {
		t.Fatalf("event %+v, want 2 images × $0.020", ev)
	}
}
