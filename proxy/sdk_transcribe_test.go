package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
	"github.com/creditgate/creditgate/money"
)

// TestOfficialGoSDKTranscriptions: OpenAI's Go SDK uploads a WAV and an MP3
// made here (the file part first, the model after it) for
// audio.transcriptions.create and audio.translations.create, through the
// proxy, and each is billed exactly: whisper-1 per second of the file's own
// duration, gpt-4o-transcribe by the usage the SDK sees.
func TestOfficialGoSDKTranscriptions(t *testing.T) {
	h := transcribeHarness(t)
	key := h.account("acme", "5.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	wav := audiotest.WAV(24000, 1, 24000*10) // 10 s
	mp3 := audiotest.MP3CBR(1000)            // 26.12 s: 27 s billed

	tr, err := client.Audio.Transcriptions.New(h.ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(wav), "speech.wav", "audio/wav"), Model: openai.AudioModelWhisper1, Language: openai.String("en"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Text == "" || tr.Usage.Type != "duration" || tr.Usage.Seconds != 10 {
		t.Fatalf("whisper-1 transcription %+v", tr)
	}
	if ev := h.lastEvent("acme"); ev.Type != billing.EventUsage || ev.Model != "whisper-1" || ev.Amount != 1000 { // 10 s × 0.006/60 USD
		t.Fatalf("whisper-1 WAV billed %+v; want 0.001000", ev)
	}

	tr, err = client.Audio.Transcriptions.New(h.ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(mp3), "speech.mp3", "audio/mpeg"), Model: openai.AudioModelGPT4oTranscribe,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := tr.Usage
	if u.Type != "tokens" || u.InputTokenDetails.AudioTokens != 27*mockupstream.TranscriptAudioTokensPerSecond || u.OutputTokens != 27*mockupstream.TranscriptWordsPerSecond {
		t.Fatalf("gpt-4o-transcribe usage %+v", u)
	}
	want := tokenCost(u.InputTokens-u.InputTokenDetails.AudioTokens, "2.50", u.InputTokenDetails.AudioTokens, "6.00", u.OutputTokens, "10.00")
	ev := h.lastEvent("acme")
	if ev.Type != billing.EventUsage || ev.Amount != want || ev.PromptTokens != u.InputTokens || ev.AudioPromptTokens != u.InputTokenDetails.AudioTokens ||
		ev.CompletionTokens != u.OutputTokens || ev.TokenSource != billing.TokenSourceUpstream {
		t.Fatalf("gpt-4o-transcribe MP3 billed %+v; want %s by the usage %+v", ev, want, u)
	}

	tl, err := client.Audio.Translations.New(h.ctx, openai.AudioTranslationNewParams{
		File: openai.File(bytes.NewReader(mp3), "speech.mp3", "audio/mpeg"), Model: openai.AudioModelWhisper1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if tl.Text == "" {
		t.Fatalf("translation %+v", tl)
	}
	if ev := h.lastEvent("acme"); ev.Amount != money.Micros(2700) || ev.Endpoint != "/v1/audio/translations" { // 27 s
		t.Fatalf("whisper-1 translation billed %+v; want 0.002700", ev)
	}

	// Streamed (stream=true): relayed event by event, billed by the done event's usage.
	stream := client.Audio.Transcriptions.NewStreaming(h.ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(bytes.NewReader(wav), "speech.wav", "audio/wav"), Model: openai.AudioModelGPT4oMiniTranscribe,
	})
	var deltas strings.Builder
	var done openai.TranscriptionStreamEventUnion
	for stream.Next() {
		switch ev := stream.Current(); ev.Type {
		case "transcript.text.delta":
			deltas.WriteString(ev.Delta)
		case "transcript.text.done":
			done = ev
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	su := done.Usage
	if done.Text == "" || done.Text != deltas.String() || su.InputTokenDetails.AudioTokens != 10*mockupstream.TranscriptAudioTokensPerSecond {
		t.Fatalf("stream: deltas %q, done %+v", deltas.String(), done)
	}
	want = tokenCost(su.InputTokens-su.InputTokenDetails.AudioTokens, "1.25", su.InputTokenDetails.AudioTokens, "3.00", su.OutputTokens, "5.00")
	if ev := h.lastEvent("acme"); ev.Amount != want || ev.TokenSource != billing.TokenSourceUpstream || ev.CompletionTokens != su.OutputTokens {
		t.Fatalf("streamed transcription billed %+v; want %s by its usage %+v", ev, want, su)
	}
}
