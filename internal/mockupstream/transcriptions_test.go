package mockupstream_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
)

// postForm posts a multipart form: fields (name, value pairs), then the file.
func postForm(t *testing.T, url string, audio []byte, fields ...string) (int, string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = mw.WriteField(fields[i], fields[i+1])
	}
	fw, _ := mw.CreateFormFile("file", "audio.bin")
	_, _ = fw.Write(audio)
	_ = mw.Close()
	res, err := http.Post(url, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return res.StatusCode, res.Header.Get("Content-Type"), readAll(t, res)
}

func TestTranscriptions(t *testing.T) {
	_, ts := start(t, nil)
	wav := audiotest.WAV(16000, 1, 16000*5/2) // 2.5 s: billed 3 s, 6 words (mockupstream.TranscriptWordsPerSecond)
	tests := []struct {
		name, path string
		fields     []string
		wantType   string
		check      func(t *testing.T, body []byte)
	}{
		{"whisper json", "/v1/audio/transcriptions", []string{"model", "whisper-1"}, "application/json", func(t *testing.T, body []byte) {
			var v struct {
				Text  string
				Usage struct {
					Type    string
					Seconds int64
				}
			}
			strict(t, body, &v)
			if len(strings.Fields(v.Text)) != 6 || v.Usage.Type != "duration" || v.Usage.Seconds != 3 {
				t.Errorf("answer %s", body)
			}
		}},
		{"whisper verbose_json", "/v1/audio/translations", []string{"model", "whisper-1", "response_format", "verbose_json"}, "application/json", func(t *testing.T, body []byte) {
			hasKeys(t, body, "task", "language", "duration", "text", "segments", "usage")
			var v struct {
				Task     string
				Duration float64
			}
			_ = json.Unmarshal(body, &v)
			if v.Task != "translate" || v.Duration != 2.5 {
				t.Errorf("answer %s", body)
			}
		}},
		{"whisper srt", "/v1/audio/transcriptions", []string{"model", "whisper-1", "response_format", "srt"}, "application/x-subrip", func(t *testing.T, body []byte) {
			if !strings.HasPrefix(string(body), "1\n00:00:00,000 --> 00:00:02,500\n") {
				t.Errorf("answer %q", body)
			}
		}},
		{"whisper vtt", "/v1/audio/transcriptions", []string{"model", "whisper-1", "response_format", "vtt"}, "text/vtt; charset=utf-8", func(t *testing.T, body []byte) {
			if !strings.HasPrefix(string(body), "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n") {
				t.Errorf("answer %q", body)
			}
		}},
		{"gpt-4o-transcribe usage", "/v1/audio/transcriptions", []string{"model", "gpt-4o-transcribe", "prompt", "hello world"}, "application/json", func(t *testing.T, body []byte) {
			var v struct {
				Text  string
				Usage struct {
					Type              string
					InputTokens       int64 `json:"input_tokens"`
					OutputTokens      int64 `json:"output_tokens"`
					TotalTokens       int64 `json:"total_tokens"`
					InputTokenDetails struct {
						TextTokens  int64 `json:"text_tokens"`
						AudioTokens int64 `json:"audio_tokens"`
					} `json:"input_token_details"`
				}
			}
			strict(t, body, &v)
			u := v.Usage
			if u.Type != "tokens" || u.InputTokenDetails.AudioTokens != 30 || u.InputTokenDetails.TextTokens != 2 || u.InputTokens != 32 ||
				u.OutputTokens != countTokens(t, "gpt-4o-mini", v.Text) || u.OutputTokens != 6 || u.TotalTokens != 38 {
				t.Errorf("answer %s", body)
			}
		}},
		{"gpt-4o-transcribe stream", "/v1/audio/transcriptions", []string{"model", "gpt-4o-transcribe", "stream", "true"}, "text/event-stream; charset=utf-8", func(t *testing.T, body []byte) {
			events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
			if len(events) != 7 || strings.Count(string(body), `"type":"transcript.text.delta"`) != 6 ||
				!strings.Contains(events[6], `"type":"transcript.text.done"`) || !strings.Contains(events[6], `"audio_tokens":30`) {
				t.Errorf("stream %q", body)
			}
		}},
		{"gpt-4o-mini-transcribe text", "/v1/audio/transcriptions", []string{"model", "gpt-4o-mini-transcribe", "response_format", "text"}, "text/plain; charset=utf-8", func(t *testing.T, body []byte) {
			if len(strings.Fields(string(body))) != 6 {
				t.Errorf("answer %q", body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ct, body := postForm(t, ts.URL+tt.path, wav, tt.fields...)
			if status != http.StatusOK || ct != tt.wantType {
				t.Fatalf("status %d type %q: %s", status, ct, body)
			}
			tt.check(t, body)
		})
	}
}

func TestTranscriptionErrors(t *testing.T) {
	_, ts := start(t, nil)
	wav := audiotest.WAV(8000, 1, 8000)
	for _, tt := range []struct {
		name, path string
		audio      []byte
		fields     []string
		param      string
	}{
		{"not audio", "/v1/audio/transcriptions", []byte("hello"), []string{"model", "whisper-1"}, "file"},
		{"no model", "/v1/audio/transcriptions", wav, nil, ""},
		{"translation with gpt-4o-transcribe", "/v1/audio/translations", wav, []string{"model", "gpt-4o-transcribe"}, "model"},
		{"srt from gpt-4o-transcribe", "/v1/audio/transcriptions", wav, []string{"model", "gpt-4o-transcribe", "response_format", "srt"}, "response_format"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := postForm(t, ts.URL+tt.path, tt.audio, tt.fields...)
			var v struct{ Error struct{ Param *string } }
			if status != http.StatusBadRequest || json.Unmarshal(body, &v) != nil || (v.Error.Param != nil) != (tt.param != "") {
				t.Fatalf("status %d: %s", status, body)
			}
		})
	}
}
