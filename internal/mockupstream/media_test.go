package mockupstream_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

func TestModerationsShape(t *testing.T) {
	_, ts := start(t, nil)
	resp := post(t, context.Background(), ts.URL+"/v1/moderations", `{"input":["kill it","hello"]}`)
	data := readAll(t, resp)
	var got struct {
		ID, Model string
		Results   []struct {
			Flagged        bool               `json:"flagged"`
			Categories     map[string]bool    `json:"categories"`
			CategoryScores map[string]float64 `json:"category_scores"`
		} `json:"results"`
		Usage any `json:"usage"`
	}
	if err := json.Unmarshal(data, &got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s: %v", resp.StatusCode, data, err)
	}
	if !strings.HasPrefix(got.ID, "modr-") || got.Model != "omni-moderation-latest" || len(got.Results) != 2 || got.Usage != nil ||
		!got.Results[0].Flagged || !got.Results[0].Categories["violence"] || got.Results[1].Flagged || len(got.Results[1].CategoryScores) != 13 {
		t.Fatalf("moderation %s", data)
	}
}

func TestImagesShapes(t *testing.T) {
	_, ts := start(t, nil)
	ctx := context.Background()
	type image struct {
		URL     string `json:"url"`
		B64JSON string `json:"b64_json"`
	}
	type usage struct {
		InputTokens        int64 `json:"input_tokens"`
		OutputTokens       int64 `json:"output_tokens"`
		InputTokensDetails struct {
			TextTokens  int64 `json:"text_tokens"`
			ImageTokens int64 `json:"image_tokens"`
		} `json:"input_tokens_details"`
	}
	decode := func(data []byte) (out struct {
		Created int64   `json:"created"`
		Data    []image `json:"data"`
		Usage   *usage  `json:"usage"`
	}) {
		if err := json.Unmarshal(data, &out); err != nil || out.Created == 0 {
			t.Fatalf("images %s: %v", data, err)
		}
		return out
	}
	got := decode(readAll(t, post(t, ctx, ts.URL+"/v1/images/generations", `{"prompt":"a","n":2}`)))
	if len(got.Data) != 2 || got.Data[0].URL == "" || got.Usage != nil {
		t.Fatalf("dall-e-2 default: url images, no usage: %+v", got)
	}
	got = decode(readAll(t, post(t, ctx, ts.URL+"/v1/images/generations", `{"model":"dall-e-3","prompt":"a","response_format":"b64_json"}`)))
	if png, err := base64.StdEncoding.DecodeString(got.Data[0].B64JSON); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("b64_json is not a PNG: %v", err)
	}
	got = decode(readAll(t, post(t, ctx, ts.URL+"/v1/images/generations", `{"model":"gpt-image-1","prompt":"a lighthouse","n":3,"quality":"high","size":"1536x1024"}`)))
	if got.Usage == nil || got.Usage.OutputTokens != 3*6208 || got.Usage.InputTokens != got.Usage.InputTokensDetails.TextTokens || got.Data[2].B64JSON == "" {
		t.Fatalf("gpt-image-1: %+v", got)
	}
	// An edit: the images uploaded count as image input tokens.
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for range 2 {
		fw, _ := w.CreateFormFile("image[]", "a.png")
		fw.Write([]byte("\x89PNG"))
	}
	w.WriteField("model", "gpt-image-1")
	w.WriteField("prompt", "merge")
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/images/edits", &b)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	got = decode(readAll(t, resp))
	if got.Usage == nil || got.Usage.InputTokensDetails.ImageTokens != 2*mockupstream.MockImageInputTokens {
		t.Fatalf("edit usage %+v", got.Usage)
	}
}

func TestSpeechFormats(t *testing.T) {
	_, ts := start(t, func(s *mockupstream.Server) { s.EventDelay = time.Millisecond })
	for format, want := range map[string]struct{ ct, magic string }{
		"": {"audio/mpeg", "ID3"}, "mp3": {"audio/mpeg", "ID3"}, "opus": {"audio/opus", "OggS"}, "aac": {"audio/aac", "\xff\xf1"},
		"flac": {"audio/flac", "fLaC"}, "wav": {"audio/wav", "RIFF"}, "pcm": {"audio/pcm", ""},
	} {
		body := `{"model":"tts-1","input":"` + strings.Repeat("speak ", 10) + `","voice":"alloy"`
		if format != "" {
			body += `,"response_format":"` + format + `"`
		}
		resp := post(t, context.Background(), ts.URL+"/v1/audio/speech", body+"}")
		audio := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want.ct || !strings.HasPrefix(string(audio), want.magic) ||
			len(audio) != 60*mockupstream.SpeechBytesPerChar || resp.ContentLength != -1 {
			t.Errorf("%q: %d %s, %d bytes (length %d)", format, resp.StatusCode, resp.Header.Get("Content-Type"), len(audio), resp.ContentLength)
		}
	}
	resp := post(t, context.Background(), ts.URL+"/v1/audio/speech", `{"model":"tts-1","input":"x","voice":"alloy","response_format":"ogg"}`)
	if data := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), "response_format") {
		t.Fatalf("unknown format: %d %s", resp.StatusCode, data)
	}
}
