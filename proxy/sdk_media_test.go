package proxy

import (
	"bytes"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// TestMediaEndpointsThroughTheSDK calls images.generate, images.edit,
// audio.speech.create and moderations.create with OpenAI's official Go SDK
// through the proxy, and checks each usage event's exact cost.
func TestMediaEndpointsThroughTheSDK(t *testing.T) {
	h := newMediaHarness(t, nil)
	key := h.account("acme", "20.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))

	t.Run("images.generate dall-e-3 hd", func(t *testing.T) {
		r, err := client.Images.Generate(h.ctx, openai.ImageGenerateParams{Model: openai.ImageModelDallE3, Prompt: "a lighthouse",
			Quality: openai.ImageGenerateParamsQualityHD, Size: openai.ImageGenerateParamsSize1024x1792})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 1 || r.Data[0].URL == "" {
			t.Fatalf("images %+v", r.Data)
		}
		if ev := usageEvent(t, h, "acme", "/v1/images/generations"); ev.Cost != usd("0.120") || ev.CompletionTokens != 1 {
			t.Fatalf("event %+v, want $0.120 for one hd 1024x1792 image", ev)
		}
	})
	t.Run("images.generate gpt-image-1", func(t *testing.T) {
		r, err := client.Images.Generate(h.ctx, openai.ImageGenerateParams{Model: openai.ImageModelGPTImage1, Prompt: "a lighthouse at dusk",
			N: openai.Int(2), Quality: openai.ImageGenerateParamsQualityHigh, Size: openai.ImageGenerateParamsSize1024x1024})
		if err != nil {
			t.Fatal(err)
		}
		u := r.Usage
		if len(r.Data) != 2 || r.Data[0].B64JSON == "" || u.OutputTokens != 2*4160 {
			t.Fatalf("images %d, usage %+v", len(r.Data), u)
		}
		want := money.Micros((u.InputTokensDetails.TextTokens*5_000_000 + u.OutputTokens*40_000_000 + 999_999) / 1_000_000)
		if ev := usageEvent(t, h, "acme", "/v1/images/generations"); ev.Cost != want || ev.TokenSource != billing.TokenSourceUpstream {
			t.Fatalf("event %+v, want %s", ev, want)
		}
	})
	t.Run("images.edit gpt-image-1", func(t *testing.T) {
		png := func() io.Reader { return bytes.NewReader(append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 4096)...)) }
		r, err := client.Images.Edit(h.ctx, openai.ImageEditParams{Model: openai.ImageModelGPTImage1, Prompt: "merge them",
			Image: openai.ImageEditParamsImageUnion{OfFileArray: []io.Reader{png(), png()}}, Quality: openai.ImageEditParamsQualityLow})
		if err != nil {
			t.Fatal(err)
		}
		u := r.Usage
		if u.InputTokensDetails.ImageTokens != 2*mockupstream.MockImageInputTokens {
			t.Fatalf("usage %+v: the upstream did not get two images", u)
		}
		want := money.Micros((u.InputTokensDetails.TextTokens*5_000_000 + u.InputTokensDetails.ImageTokens*10_000_000 + u.OutputTokens*40_000_000 + 999_999) / 1_000_000)
		if ev := usageEvent(t, h, "acme", "/v1/images/edits"); ev.Cost != want {
			t.Fatalf("event %+v, want %s", ev, want)
		}
	})
	t.Run("images.edit dall-e-2", func(t *testing.T) {
		r, err := client.Images.Edit(h.ctx, openai.ImageEditParams{Model: openai.ImageModelDallE2, Prompt: "add a boat", N: openai.Int(2),
			Image: openai.ImageEditParamsImageUnion{OfFile: bytes.NewReader([]byte("\x89PNG\r\n\x1a\nfake"))}, Size: openai.ImageEditParamsSize512x512})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data) != 2 {
			t.Fatalf("%d images", len(r.Data))
		}
		if ev := usageEvent(t, h, "acme", "/v1/images/edits"); ev.Cost != 2*usd("0.018") {
			t.Fatalf("event %+v, want 2 × $0.018", ev)
		}
	})
	t.Run("audio.speech.create", func(t *testing.T) {
		const input = "Creditgate relays speech as it comes."
		res, err := client.Audio.Speech.New(h.ctx, openai.AudioSpeechNewParams{Model: openai.SpeechModelTTS1HD, Input: input,
			Voice: openai.AudioSpeechNewParamsVoiceUnion{OfString: openai.String("alloy")}, ResponseFormat: openai.AudioSpeechNewParamsResponseFormatWAV})
		if err != nil {
			t.Fatal(err)
		}
		audio := readAll(t, res)
		if string(audio[:4]) != "RIFF" || len(audio) != utf8.RuneCountInString(input)*mockupstream.SpeechBytesPerChar {
			t.Fatalf("%d bytes %q", len(audio), audio[:4])
		}
		if ev := usageEvent(t, h, "acme", "/v1/audio/speech"); ev.Cost != money.Micros(30*len(input)) {
			t.Fatalf("event %+v, want %d characters at $30/1M", ev, len(input))
		}
	})
	t.Run("moderations.create", func(t *testing.T) {
		r, err := client.Moderations.New(h.ctx, openai.ModerationNewParams{Model: openai.ModerationModelOmniModerationLatest,
			Input: openai.ModerationNewParamsInputUnion{OfString: openai.String("I will kill the lights")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Results) != 1 || !r.Results[0].Flagged || !r.Results[0].Categories.Violence {
			t.Fatalf("results %+v", r.Results)
		}
		ev := usageEvent(t, h, "acme", "/v1/moderations")
		tok, _ := metering.TokenizerFor(metering.CL100kBase)
		if ev.Cost != 0 || ev.PromptTokens != int64(tok.Count("I will kill the lights")) {
			t.Fatalf("event %+v", ev)
		}
	})
}
