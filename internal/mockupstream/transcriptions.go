package mockupstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/creditgate/creditgate/metering/audiodur"
)

// Speech to text: POST /v1/audio/transcriptions and /v1/audio/translations.
// The audio's duration is read from the uploaded file's header (audiodur), as
// OpenAI decodes the file; the transcript is TranscriptWordsPerSecond words per
// second of it (at least one), each one token. whisper-1 answers json
// ({"text"}, with usage {"type":"duration","seconds"} as OpenAI now adds),
// verbose_json (task, language, duration, text, segments, usage), text, srt
// and vtt; the gpt-4o transcribe models answer json with token usage
// (input_tokens = the prompt's tokens + TranscriptAudioTokensPerSecond audio
// tokens per second, output_tokens = the transcript's) or text without usage,
// and with stream=true stream it (transcript.text.delta events, then
// transcript.text.done with the usage).
// Translations, as at OpenAI, take whisper-1 only. Behavior's NoUsage,
// PromptTokens, CompletionTokens and InflateUsage apply to the token usage.
const (
	TranscriptWordsPerSecond       = 2
	TranscriptAudioTokensPerSecond = 10
	maxTranscriptWords             = 2000
)

// transcriptionForm is what the mock reads of the upload.
type transcriptionForm struct {
	model, format, prompt, language string
	audio                           []byte
	haveFile, stream                bool
}

func readTranscriptionForm(r *http.Request, body []byte) (transcriptionForm, *apiError) {
	var f transcriptionForm
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return f, &apiError{Message: "The request must be multipart/form-data with a file and a model.", Type: "invalid_request_error"}
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return f, &apiError{Message: "Malformed multipart body: " + err.Error(), Type: "invalid_request_error"}
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return f, &apiError{Message: "Malformed multipart body: " + err.Error(), Type: "invalid_request_error"}
		}
		switch part.FormName() {
		case "file":
			f.audio, f.haveFile = data, true
		case "model":
			f.model = string(data)
		case "response_format":
			f.format = string(data)
		case "prompt":
			f.prompt = string(data)
		case "language":
			f.language = string(data)
		case "stream":
			f.stream = string(data) == "true"
		}
	}
}

func (s *Server) transcriptions(x *exchange) error { return s.speechToText(x, "transcribe") }
func (s *Server) translations(x *exchange) error   { return s.speechToText(x, "translate") }

func (s *Server) speechToText(x *exchange, task string) error {
	f, e := readTranscriptionForm(x.r, x.body)
	switch {
	case e != nil:
		return x.writeError(http.StatusBadRequest, *e)
	case !f.haveFile:
		return x.writeError(http.StatusBadRequest, *missingParam("file"))
	case f.model == "":
		return x.writeError(http.StatusBadRequest, *missingModel(f.model))
	case task == "translate" && f.model != "whisper-1":
		return x.writeError(http.StatusBadRequest, apiError{Message: "The model '" + f.model + "' does not support translations: use whisper-1.",
			Type: "invalid_request_error", Param: "model", Code: "invalid_value"})
	}
	whisper := strings.HasPrefix(f.model, "whisper")
	if f.format == "" {
		f.format = "json"
	}
	if formats := "json text srt verbose_json vtt"; !whisper {
		if f.format != "json" && f.format != "text" {
			return x.writeError(http.StatusBadRequest, apiError{Message: "response_format '" + f.format + "' is not compatible with model '" + f.model + "'. Use 'json' or 'text'.",
				Type: "invalid_request_error", Param: "response_format", Code: "unsupported_value"})
		}
	} else if !strings.Contains(" "+formats+" ", " "+f.format+" ") {
		return x.writeError(http.StatusBadRequest, apiError{Message: "'" + f.format + "' is not one of ['json', 'text', 'srt', 'verbose_json', 'vtt'] - 'response_format'",
			Type: "invalid_request_error", Param: "response_format"})
	}
	d, _, err := audiodur.Duration(bytes.NewReader(f.audio), int64(len(f.audio)))
	if err != nil {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Audio file might be corrupted or unsupported",
			Type: "invalid_request_error", Param: "file", Code: "invalid_value"})
	}
	seconds := int64(math.Ceil(d.Seconds()))
	n := int(min(max(seconds*TranscriptWordsPerSecond, 1), maxTranscriptWords))
	words := newText(fnv(fnvOffset, string(f.audio[:min(len(f.audio), 4096)])), 0, n)
	transcript := words.String()

	streamed := f.stream && !whisper && f.format == "json"
	if !streamed && x.b.DropAfter > 0 { // a plain answer has no events: the faults strike before it
		return x.drop()
	}
	if !streamed && x.b.StallAfter > 0 {
		return x.stall()
	}
	switch f.format {
	case "text":
		return x.writeText("text/plain; charset=utf-8", transcript+"\n")
	case "srt":
		return x.writeText("application/x-subrip", "1\n00:00:00,000 --> "+srtTime(d, ",")+"\n"+transcript+"\n\n")
	case "vtt":
		return x.writeText("text/vtt; charset=utf-8", "WEBVTT\n\n00:00:00.000 --> "+srtTime(d, ".")+"\n"+transcript+"\n\n")
	}
	if whisper {
		usage := map[string]any{"type": "duration", "seconds": seconds}
		if f.format == "json" {
			return x.answer(map[string]any{"text": transcript, "usage": usage})
		}
		language := f.language
		if language == "" || task == "translate" {
			language = "english"
		}
		segment := map[string]any{"id": 0, "seek": 0, "start": 0.0, "end": d.Seconds(), "text": transcript, "tokens": []int{50364},
			"temperature": 0.0, "avg_logprob": -0.25, "compression_ratio": 1.2, "no_speech_prob": 0.01}
		return x.answer(map[string]any{"task": task, "language": language, "duration": d.Seconds(), "text": transcript,
			"segments": []any{segment}, "usage": usage})
	}
	promptTokens := int64(0)
	if f.prompt != "" {
		c, err := encodingFor(f.model).count(f.prompt)
		if err != nil {
			return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
		}
		promptTokens = int64(c)
	}
	audio, output := seconds*TranscriptAudioTokensPerSecond, int64(n)
	if x.b.PromptTokens > 0 {
		promptTokens, audio = 0, x.b.PromptTokens
	}
	if x.b.CompletionTokens > 0 {
		output = x.b.CompletionTokens
	}
	if k := int64(x.b.InflateUsage); k > 1 {
		promptTokens, audio, output = promptTokens*k, audio*k, output*k
	}
	resp := map[string]any{"text": transcript}
	if !x.b.NoUsage {
		resp["usage"] = map[string]any{"type": "tokens", "input_tokens": promptTokens + audio,
			"input_token_details": map[string]int64{"text_tokens": promptTokens, "audio_tokens": audio},
			"output_tokens":       output, "total_tokens": promptTokens + audio + output}
	}
	if streamed {
		return x.streamTranscript(words, resp)
	}
	return x.answer(resp)
}

// streamTranscript streams a transcript as OpenAI does for stream=true: a
// transcript.text.delta event per word, then transcript.text.done with the
// text and the usage of done (no [DONE]).
func (x *exchange) streamTranscript(t text, done map[string]any) error {
	if err := x.startStream(); err != nil {
		return err
	}
	for i := range t.n {
		if err := x.event("", map[string]any{"type": "transcript.text.delta", "delta": t.delta(i)}); err != nil {
			return err
		}
	}
	done["type"] = "transcript.text.done"
	if err := x.event("", done); err != nil {
		return err
	}
	return x.endStream()
}

// writeText answers 200 with a text body.
func (x *exchange) writeText(contentType, body string) error {
	h := x.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Request-Id", newID("req_"))
	x.w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(x.w, body); err != nil {
		return errClientGone
	}
	return nil
}

// srtTime is d as SRT ("00:00:08,470") or WebVTT ("00:00:08.470") write it.
func srtTime(d time.Duration, sep string) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d%s%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}
