package metering

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/metering/audiodur"
	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
	"github.com/creditgate/creditgate/money"
)

func TestMultipartFileOffset(t *testing.T) {
	content := string(audiotest.WAV(8000, 1, 3000))
	body := form(field("model", "whisper-1"), file("file", "a.wav", "audio/wav", content), field("language", "en"))
	for _, step := range []int{0, 1, 7, 100, 4096} {
		m, err := parseAll(t, body, MultipartLimits{HeadBytes: 16}, step)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		f, _ := m.File("file")
		if got := string(body[f.Offset : f.Offset+f.Size]); got != content {
			t.Fatalf("step %d: body[%d:+%d] is not the file's content", step, f.Offset, f.Size)
		}
	}
}

func TestParseTranscription(t *testing.T) {
	wav := string(audiotest.WAV(16000, 1, 16000*61+8000)) // 61.5 s
	mp3 := string(audiotest.MP3CBR(100))
	tests := []struct {
		name     string
		body     []byte
		model    string
		format   audiodur.Format
		duration time.Duration
		seconds  int64
	}{
		{"file before model (the SDK's order)", form(file("file", "a.wav", "audio/wav", wav), field("model", "whisper-1")), "whisper-1", audiodur.WAV, 61500 * time.Millisecond, 62},
		{"mp3, text format, prompt", form(field("model", "gpt-4o-transcribe"), field("response_format", "text"), field("prompt", "names: Ada"), file("file", "a.mp3", "audio/mpeg", mp3)),
			"gpt-4o-transcribe", audiodur.MP3, audiotest.MP3CBRDuration(100), 3},
		{"stream false is fine", form(field("model", "whisper-1"), field("stream", "false"), file("file", "x", "", wav)), "whisper-1", audiodur.WAV, 61500 * time.Millisecond, 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTranscription(Transcriptions, testContentType, tt.body)
			if err != nil {
				t.Fatalf("ParseTranscription: %v", err)
			}
			if tr.Model != tt.model || tr.Format != tt.format || tr.Duration != tt.duration || tr.Seconds() != tt.seconds {
				t.Errorf("got model %q format %s duration %v seconds %d; want %q %s %v %d", tr.Model, tr.Format, tr.Duration, tr.Seconds(), tt.model, tt.format, tt.duration, tt.seconds)
			}
		})
	}
}

func TestParseTranscriptionErrors(t *testing.T) {
	wav := string(audiotest.WAV(8000, 1, 800))
	tests := []struct {
		name, param, says string
		body              []byte
	}{
		{"no file", "file", "Missing required parameter: 'file'", form(field("model", "whisper-1"))},
		{"no model", "model", "model parameter", form(file("file", "a.wav", "audio/wav", wav))},
		{"empty model", "model", "model parameter", form(field("model", ""), file("file", "a.wav", "audio/wav", wav))},
		{"unreadable audio", "file", "Could not read the duration of the uploaded audio file 'notes.txt'", form(field("model", "whisper-1"), file("file", "notes.txt", "text/plain", "hello"))},
		{"truncated wav", "file", "wav: the file ends inside", form(field("model", "whisper-1"), file("file", "a.wav", "audio/wav", wav[:20]))},
		{"empty file", "file", "is empty", form(field("model", "whisper-1"), file("file", "a.wav", "audio/wav", ""))},
		{"two files", "file", "more than one file", form(field("model", "whisper-1"), file("file", "a.wav", "audio/wav", wav), file("file2", "b.wav", "audio/wav", wav))},
		{"stream not a boolean", "stream", "expected 'true' or 'false'", form(field("model", "gpt-4o-transcribe"), field("stream", "yes"), file("file", "a.wav", "audio/wav", wav))},
		{"response format", "response_format", "is not one of", form(field("model", "whisper-1"), field("response_format", "xml"), file("file", "a.wav", "audio/wav", wav))},
		{"no closing boundary", "", "closing boundary", form(field("model", "whisper-1"), file("file", "a.wav", "audio/wav", wav))[:200]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTranscription(Transcriptions, testContentType, tt.body)
			var re *RequestError
			if !errors.As(err, &re) || re.Param != tt.param || !strings.Contains(re.Message, tt.says) {
				t.Fatalf("err = %v (%#v); want param %q saying %q", err, err, tt.param, tt.says)
			}
		})
	}
	if _, err := ParseTranscription(Transcriptions, "application/json", []byte("{}")); err == nil {
		t.Error("a JSON body was accepted")
	}
}

func TestAudioCost(t *testing.T) {
	perMinute := money.MustParse("0.006") // 6000 µUSD
	tests := []struct {
		seconds int64
		want    money.Micros
	}{
		{1, 100}, {59, 5900}, {60, 6000}, {61, 6100}, {62, 6200}, {3600, 360000},
		{0, 0},
	}
	for _, tt := range tests {
		if got := AudioCost(perMinute, tt.seconds); got != tt.want {
			t.Errorf("AudioCost(%s, %d) = %s; want %s", perMinute, tt.seconds, got, tt.want)
		}
	}
	if got := AudioCost(7, 1); got != 1 { // 7/60 µUSD rounds up
		t.Errorf("AudioCost(7, 1) = %s; want 0.000001", got)
	}
	if got := AudioCost(money.MaxAmount, 1<<40); got != money.MaxAmount {
		t.Errorf("AudioCost saturates at %s, got %s", money.MaxAmount, got)
	}
}

// transcribePrice is gpt-4o-transcribe's built-in price.
var transcribePrice = Price{Input: 2_500_000, CachedInput: 2_500_000, AudioInput: 6_000_000, Output: 10_000_000, Reasoning: 10_000_000, AudioOutput: 10_000_000, MaxOutputTokens: 2000}

func TestTranscriptionBill(t *testing.T) {
	tok, err := TokenizerFor(O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transcription{Duration: 9500 * time.Millisecond, Prompt: ""} // 10 s billed
	input := tr.InputBound(tok)
	if input.AudioInput != 200 || input.Input != 200+transcribePromptOverhead {
		t.Fatalf("InputBound = %+v", input)
	}
	est := tr.Estimate(transcribePrice, input)
	// 16 text × 2.50 + 200 audio × 6.00 + 2000 output × 10.00, per 1M: 0.00004 + 0.0012 + 0.02
	if est != 21240 {
		t.Fatalf("Estimate = %s; want 0.02124", est)
	}
	l := tr.Limit(transcribePrice, input, est)
	tests := []struct {
		name, contentType, body string
		cost                    money.Micros
		source                  string
		excess                  bool
	}{
		{"usage", "application/json", `{"text":"Hello there.","usage":{"type":"tokens","input_tokens":114,"input_token_details":{"text_tokens":14,"audio_tokens":100},"output_tokens":45,"total_tokens":159}}`,
			35 + 600 + 450, SourceUpstream, false}, // 14×2.5 + 100×6 + 45×10 µUSD
		{"no usage: text format", "text/plain; charset=utf-8", "Hello there.", // 16 text + 100 audio (nominal) + 3 output
			40 + 600 + 30, SourceLocal, false},
		{"usage beyond the bound", "application/json", `{"text":"x","usage":{"type":"tokens","input_tokens":1000000,"input_token_details":{"audio_tokens":1000000},"output_tokens":10}}`,
			est, SourceUpstream, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bill, res := tr.Bill(l, tt.contentType, []byte(tt.body), tok)
			if tt.excess && bill.Cost <= tt.cost && bill.Cost > tt.cost-100 {
				tt.cost = bill.Cost // cut down to fit the hold: the input, to the token
			}
			if bill.Cost != tt.cost || res.Source != tt.source || (bill.Excess > 0) != tt.excess {
				t.Errorf("Bill = cost %s source %s excess %s; want %s %s excess %v", bill.Cost, res.Source, bill.Excess, tt.cost, tt.source, tt.excess)
			}
		})
	}
}

func TestTranscriptionEndpointForPath(t *testing.T) {
	for path, want := range map[string]Endpoint{"/v1/audio/transcriptions": Transcriptions, "/v1/audio/translations/": Translations, "/v1/audio/speech": "", "/v1/audio/transcriptions/x": ""} {
		got, ok := TranscriptionEndpointForPath(path)
		if got != want || ok != (want != "") {
			t.Errorf("%s → %q, %v", path, got, ok)
		}
	}
	if _, ok := EndpointForPath("/v1/audio/transcriptions"); ok {
		t.Error("transcriptions are not JSON endpoints")
	}
}

func TestTranscriptionStream(t *testing.T) {
	tok, err := TokenizerFor(O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transcription{Duration: 2 * time.Second}
	input := tr.InputBound(tok)
	l := tr.Limit(transcribePrice, input, tr.Estimate(transcribePrice, input))
	deltas := "data: {\"type\":\"transcript.text.delta\",\"delta\":\"Hello\"}\n\n" +
		"data: {\"type\":\"transcript.text.delta\",\"delta\":\" there\"}\r\n\r\n"
	done := "data: {\"type\":\"transcript.text.done\",\"text\":\"Hello there\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":25,\"input_token_details\":{\"text_tokens\":5,\"audio_tokens\":20},\"output_tokens\":2,\"total_tokens\":27}}\n\n"
	tests := []struct {
		name, sse string
		cost      money.Micros
		source    string
		done      bool
	}{
		{"done with usage", deltas + done, 13 + 120 + 20, SourceUpstream, true}, // 5×2.5 + 20×6 + 2×10 µUSD
		{"cut before done: the deltas relayed", deltas, 40 + 120 + 20, SourceLocal, false},
		{"a line too long is not metered", "data: " + strings.Repeat("x", maxTranscriptionEventBytes) + "\n" + deltas, 40 + 120 + 20, SourceLocal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 5, 1 << 20} {
				s := NewTranscriptionStream(tok)
				for b := []byte(tt.sse); len(b) > 0; {
					k := min(step, len(b))
					_, _ = s.Write(b[:k])
					b = b[k:]
				}
				bill, res := tr.BillStream(l, s)
				if bill.Cost != tt.cost || res.Source != tt.source || s.Done() != tt.done {
					t.Fatalf("step %d: cost %s source %s done %v; want %s %s %v", step, bill.Cost, res.Source, s.Done(), tt.cost, tt.source, tt.done)
				}
			}
		})
	}
}

func TestUpstreamAudioSeconds(t *testing.T) {
	for _, tt := range []struct {
		ct, body string
		want     float64
		ok       bool
	}{
		{"application/json", `{"text":"x","usage":{"type":"duration","seconds":62}}`, 62, true},
		{"application/json; charset=utf-8", `{"task":"transcribe","duration":8.47,"text":"x"}`, 8.47, true},
		{"application/json", `{"text":"x","usage":{"type":"tokens","input_tokens":3}}`, 0, false},
		{"text/plain", `62`, 0, false},
	} {
		if got, ok := UpstreamAudioSeconds(tt.ct, []byte(tt.body)); got != tt.want || ok != tt.ok {
			t.Errorf("UpstreamAudioSeconds(%s) = %v, %v; want %v, %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseTranscription: a transcription upload never panics the parser, is
// refused only with a *RequestError, and a duration read is never negative.
func FuzzParseTranscription(f *testing.F) {
	f.Add(form(file("file", "a.wav", "audio/wav", string(audiotest.WAV(8000, 1, 800))), field("model", "whisper-1")))
	f.Add(form(field("model", "gpt-4o-transcribe"), field("stream", "true"), file("file", "a.mp3", "audio/mpeg", string(audiotest.MP3CBR(3)))))
	f.Add(form(field("model", "whisper-1"), file("file", "a", "", "RIFF\x00\x00\x00\x00WAVE")))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := ParseTranscription(Transcriptions, testContentType, body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			return
		}
		if tr.Duration < 0 || tr.Seconds() < 1 || tr.Model == "" || tr.FileBytes <= 0 {
			t.Fatalf("accepted %+v", tr)
		}
	})
}
