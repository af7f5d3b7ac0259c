package metering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"mime"
	"strings"
	"time"

	"github.com/creditgate/creditgate/metering/audiodur"
	"github.com/creditgate/creditgate/money"
)

// Transcriptions and translations (POST /v1/audio/transcriptions and
// /v1/audio/translations): a multipart upload of an audio file, billed either
// per minute of audio (a model whose Price has AudioMinute: whisper-1) or by the
// tokens its response reports (gpt-4o-transcribe, gpt-4o-mini-transcribe). The
// audio's duration is read from the uploaded file's own header (audiodur) —
// never from what the client or the upstream says — and a file whose duration
// cannot be read is refused. The whole upload is at hand when it is parsed (the
// proxy reads it within limits.max_body_bytes), so the form's field order does
// not matter and an M4A whose moov box follows its audio is read too.

// Transcription endpoints.
const (
	Transcriptions Endpoint = "transcriptions"
	Translations   Endpoint = "translations"
)

// TranscriptionEndpointForPath maps /v1/audio/transcriptions and
// /v1/audio/translations (a trailing slash tolerated) to their endpoint.
func TranscriptionEndpointForPath(path string) (Endpoint, bool) {
	switch strings.TrimSuffix(path, "/") {
	case "/v1/audio/transcriptions":
		return Transcriptions, true
	case "/v1/audio/translations":
		return Translations, true
	}
	return "", false
}

// Audio tokens of the GPT-4o transcribe models. OpenAI's audio models count
// about one audio token per 100 ms of audio (10 per second): that nominal rate
// bills a response that reports no usage. The estimate holds twice that, so a
// reported count above the nominal rate is still covered; a count above the
// bound is billed at the bound and the rest logged as excess (Limit.Bill).
const (
	TranscribeAudioTokensPerSecond      = 10
	TranscribeAudioTokensPerSecondBound = 2 * TranscribeAudioTokensPerSecond
	// transcribePromptOverhead covers the framing of the text input besides the
	// client's prompt (the instructions the upstream adds are not billed to us
	// as far as its usage shows; a margin all the same).
	transcribePromptOverhead = 16
)

// Response formats of a transcription.
var transcriptionFormats = map[string]bool{"json": true, "text": true, "srt": true, "verbose_json": true, "vtt": true}

// Transcription is a parsed transcription or translation upload.
type Transcription struct {
	Endpoint       Endpoint
	Model          string
	ResponseFormat string // as sent; "" means json
	Stream         bool   // stream=true: the GPT-4o transcribe models answer SSE
	Prompt         string
	Filename       string
	Format         audiodur.Format // the audio's container, as sniffed
	Duration       time.Duration   // read from the file's header
	FileBytes      int64
}

// ParseTranscription validates a transcription or translation upload (the
// whole body, of the given Content-Type) and reads its audio's duration. Every
// problem is a *RequestError: a form that is not strict multipart/form-data
// (Multipart), a missing file or model, a response_format OpenAI does not
// know, or a file whose duration cannot be read.
func ParseTranscription(ep Endpoint, contentType string, body []byte) (*Transcription, error) {
	m, err := NewMultipart(contentType, MultipartLimits{})
	if err != nil {
		return nil, err
	}
	if _, err := m.Write(body); err != nil {
		return nil, err
	}
	if err := m.Close(); err != nil {
		return nil, err
	}
	f, ok := m.File("file")
	if !ok {
		return nil, missingParam("file")
	}
	if len(m.Files()) > 1 {
		return nil, &RequestError{Message: "Invalid multipart body: more than one file part; a transcription takes one 'file'.", Param: "file"}
	}
	t := &Transcription{Endpoint: ep, Filename: f.Filename, FileBytes: f.Size}
	t.Model, _ = m.Field("model")
	if t.Model == "" {
		return nil, &RequestError{Message: "you must provide a model parameter", Param: "model"}
	}
	t.ResponseFormat, _ = m.Field("response_format")
	if t.ResponseFormat != "" && !transcriptionFormats[t.ResponseFormat] {
		return nil, badValue("response_format", "'%s' is not one of ['json', 'text', 'srt', 'verbose_json', 'vtt'].", snippet([]byte(t.ResponseFormat)))
	}
	if s, ok := m.Field("stream"); ok {
		switch s {
		case "true":
			t.Stream = true
		case "false":
		default:
			return nil, badValue("stream", "expected 'true' or 'false', but got '%s'.", snippet([]byte(s)))
		}
	}
	t.Prompt, _ = m.Field("prompt")
	if f.Size == 0 {
		return nil, &RequestError{Message: "The uploaded audio file '" + snippet([]byte(f.Filename)) + "' is empty.", Param: "file"}
	}
	audio := bytes.NewReader(body[f.Offset : f.Offset+f.Size])
	t.Duration, t.Format, err = audiodur.Duration(audio, f.Size)
	if err != nil {
		return nil, &RequestError{Param: "file", Message: fmt.Sprintf("Could not read the duration of the uploaded audio file '%s' (%s). "+
			"This gateway bills audio by the duration in the file's own header, and reads WAV, MP3, M4A/MP4, OGG (Opus or Vorbis), WebM/Matroska and FLAC files.",
			snippet([]byte(f.Filename)), strings.TrimPrefix(err.Error(), "audiodur: "))}
	}
	return t, nil
}

// Seconds is the audio's duration in whole seconds, rounded up, at least 1:
// what a per-minute price bills.
func (t *Transcription) Seconds() int64 {
	s := int64((t.Duration + time.Second - 1) / time.Second)
	return max(s, 1)
}

// AudioCost is seconds of audio at perMinute micro-USD a minute:
// ceil(seconds × perMinute / 60), saturating at money.MaxAmount.
func AudioCost(perMinute money.Micros, seconds int64) money.Micros {
	if perMinute <= 0 || seconds <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(perMinute), uint64(seconds))
	if hi >= 60 {
		return money.MaxAmount
	}
	q, r := bits.Div64(hi, lo, 60)
	if r != 0 {
		q++
	}
	if q > uint64(money.MaxAmount) {
		return money.MaxAmount
	}
	return money.Micros(q)
}

// PerMinute reports whether p bills transcriptions per minute of audio.
func PerMinute(p Price) bool { return p.AudioMinute > 0 }

// InputBound is the most input a token-billed transcription may report: the
// prompt counted locally plus an overhead, and TranscribeAudioTokensPerSecondBound
// audio tokens per second of audio.
func (t *Transcription) InputBound(tok Tokenizer) Tokens {
	audio := t.Seconds() * TranscribeAudioTokensPerSecondBound
	return Tokens{Input: int64(tok.Count(t.Prompt)) + transcribePromptOverhead + audio, AudioInput: audio}
}

// Estimate is the worst-case cost: the seconds at the per-minute price, or the
// InputBound plus the model's largest output at WorstCase.
func (t *Transcription) Estimate(p Price, input Tokens) money.Micros {
	if PerMinute(p) {
		return AudioCost(p.AudioMinute, t.Seconds())
	}
	return p.WorstCase(input, p.MaxOutput())
}

// Limit bounds what a token-billed transcription's response may be billed: the
// InputBound and the model's largest output, within the hold.
func (t *Transcription) Limit(p Price, input Tokens, hold money.Micros) Limit {
	return Limit{PerChoice: p.MaxOutput(), Choices: 1, Price: p, Input: input, Hold: hold}
}

// transcriptionAnswer is what a transcription's JSON answer says that bills it.
type transcriptionAnswer struct {
	Text     string   `json:"text"`
	Duration *float64 `json:"duration"` // verbose_json
	Usage    *struct {
		Type         string   `json:"type"`
		Seconds      *float64 `json:"seconds"` // type duration (whisper-1)
		InputTokens  int64    `json:"input_tokens"`
		OutputTokens int64    `json:"output_tokens"`
		Details      *struct {
			AudioTokens int64 `json:"audio_tokens"`
		} `json:"input_token_details"`
	} `json:"usage"`
}

// Bill prices a token-billed transcription's 2xx answer (of the given
// Content-Type) within l: by its usage when it reports tokens, else by the
// local count — the InputBound's text part, the audio at the nominal rate and
// the answer's text (the whole body for text, srt and vtt) counted with tok.
func (t *Transcription) Bill(l Limit, contentType string, body []byte, tok Tokenizer) (Bill, Result) {
	text := string(body)
	var usage *Tokens
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/json" {
		var a transcriptionAnswer
		if json.Unmarshal(body, &a) == nil {
			text = a.Text
			usage = a.tokens()
		}
	}
	return t.billTokens(l, usage, int64(tok.Count(text)))
}

// UpstreamAudioSeconds is the audio duration a JSON answer reports (usage
// {"type":"duration","seconds"}, or verbose_json's duration), for a cross-check
// with the file's header; ok is false when it reports none.
func UpstreamAudioSeconds(contentType string, body []byte) (seconds float64, ok bool) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" {
		return 0, false
	}
	var a transcriptionAnswer
	if json.Unmarshal(body, &a) != nil {
		return 0, false
	}
	switch {
	case a.Usage != nil && a.Usage.Type == "duration" && a.Usage.Seconds != nil:
		return *a.Usage.Seconds, true
	case a.Duration != nil:
		return *a.Duration, true
	}
	return 0, false
}

// tokens is the answer's token usage, nil when it reports none.
func (a *transcriptionAnswer) tokens() *Tokens {
	u := a.Usage
	if u == nil || (u.Type != "tokens" && u.Type != "") || (u.InputTokens <= 0 && u.OutputTokens <= 0) {
		return nil
	}
	t := &Tokens{Input: u.InputTokens, Output: u.OutputTokens}
	if u.Details != nil {
		t.AudioInput = u.Details.AudioTokens
	}
	return t
}

// billTokens bills usage, or when nil the local count with output tokens out.
func (t *Transcription) billTokens(l Limit, usage *Tokens, output int64) (Bill, Result) {
	audio := t.Seconds() * TranscribeAudioTokensPerSecond
	local := Tokens{Input: l.Input.Input - l.Input.AudioInput + audio, AudioInput: audio, Output: output}
	res := Result{Tokens: local, Source: SourceLocal, Local: local, Done: true}
	if usage != nil {
		res.Tokens, res.Source = *usage, SourceUpstream
	}
	return l.Bill(res), res
}

// maxTranscriptionEventBytes bounds one SSE line a TranscriptionStream reads;
// a longer one is relayed but not metered.
const maxTranscriptionEventBytes = 1 << 20

// TranscriptionStream meters a streamed transcription (stream=true) as it is
// relayed: the text of each transcript.text.delta event is counted, and the
// transcript.text.done event's text and usage are kept. Its memory is bounded
// by one line of maxTranscriptionEventBytes.
type TranscriptionStream struct {
	tok      Tokenizer
	line     []byte
	skipping bool // the line being read is too long: not metered
	output   int64
	usage    *Tokens
	done     bool
}

// NewTranscriptionStream starts a meter counting text with tok.
func NewTranscriptionStream(tok Tokenizer) *TranscriptionStream {
	return &TranscriptionStream{tok: tok}
}

// Write feeds the next bytes of the stream; it never fails.
func (s *TranscriptionStream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		if !s.skipping {
			s.event(bytes.TrimSuffix(s.line, []byte("\r")))
		}
		s.line, s.skipping, p = s.line[:0], false, p[i+1:]
	}
	return n, nil
}

func (s *TranscriptionStream) add(b []byte) {
	if s.skipping {
		return
	}
	if len(s.line)+len(b) > maxTranscriptionEventBytes {
		s.line, s.skipping = s.line[:0], true
		return
	}
	s.line = append(s.line, b...)
}

// event reads one line: a "data:" line of a delta or done event.
func (s *TranscriptionStream) event(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	var e struct {
		Type  string `json:"type"`
		Delta string `json:"delta"`
		transcriptionAnswer
	}
	if json.Unmarshal(bytes.TrimSpace(data), &e) != nil {
		return
	}
	switch e.Type {
	case "transcript.text.delta":
		s.output += int64(s.tok.Count(e.Delta))
	case "transcript.text.done":
		s.done = true
		if e.Text != "" {
			s.output = int64(s.tok.Count(e.Text))
		}
		s.usage = e.tokens()
	}
}

// Done reports whether the transcript.text.done event was seen.
func (s *TranscriptionStream) Done() bool { return s.done }

// BillStream prices a streamed transcription within l: by the done event's
// usage, else by the local count (the text of the deltas relayed, or of the
// done event).
func (t *Transcription) BillStream(l Limit, s *TranscriptionStream) (Bill, Result) {
	b, res := t.billTokens(l, s.usage, s.output)
	res.Done = s.done
	return b, res
}
