package mockupstream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// tinyPNG is a valid 1×1 PNG, the image every generation returns.
var tinyPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
	"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")

// gptImageOutputTokens are gpt-image-1's output tokens per image by quality and
// size, as OpenAI documents them ("auto" generates medium at 1024x1024 here).
var gptImageOutputTokens = map[string]map[string]int64{
	"low":    {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
	"medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
	"high":   {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}

// MockImageInputTokens are the image input tokens the mock reports per uploaded
// image of a gpt-image edit.
const MockImageInputTokens = 323

// imageParams are the parameters of an image request the mock reads.
type imageParams struct {
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
	N              int    `json:"n"`
	Size           string `json:"size"`
	Quality        string `json:"quality"`
	ResponseFormat string `json:"response_format"`
	images         int    // uploaded image files (edits, variations)
}

// imageGenerations answers POST /v1/images/generations.
func (s *Server) imageGenerations(x *exchange) error {
	var p imageParams
	if e := decodeRequest(x.body, &p); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if p.Prompt == "" {
		return x.writeError(http.StatusBadRequest, *missingParam("prompt"))
	}
	return s.answerImages(x, p)
}

// imageEdits answers POST /v1/images/edits and /v1/images/variations
// (multipart): image (or image[]) files, and the fields.
func (s *Server) imageEdits(x *exchange) error {
	variation := strings.HasSuffix(x.r.URL.Path, "/variations")
	_, params, err := mime.ParseMediaType(x.r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid Content-Type header: expected multipart/form-data.", Type: "invalid_request_error"})
	}
	form, err := multipart.NewReader(bytes.NewReader(x.body), params["boundary"]).ReadForm(maxBodyBytes)
	if err != nil {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Could not parse the multipart form: " + err.Error(), Type: "invalid_request_error"})
	}
	field := func(name string) string {
		if v := form.Value[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	p := imageParams{Model: field("model"), Prompt: field("prompt"), Size: field("size"), Quality: field("quality"), ResponseFormat: field("response_format")}
	if n := field("n"); n != "" {
		if p.N, err = strconv.Atoi(n); err != nil {
			return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid value for 'n'.", Type: "invalid_request_error", Param: "n"})
		}
	}
	p.images = len(form.File["image"]) + len(form.File["image[]"])
	if p.images == 0 {
		return x.writeError(http.StatusBadRequest, *missingParam("image"))
	}
	if !variation && p.Prompt == "" {
		return x.writeError(http.StatusBadRequest, *missingParam("prompt"))
	}
	return s.answerImages(x, p)
}

// answerImages writes n images: b64_json or url (dall-e; gpt-image models always
// b64_json), with usage for gpt-image models.
func (s *Server) answerImages(x *exchange, p imageParams) error {
	if p.Model == "" {
		p.Model = "dall-e-2"
	}
	if p.N == 0 {
		p.N = 1
	}
	if p.N < 1 || p.N > 10 {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid value for 'n': expected 1 to 10.", Type: "invalid_request_error", Param: "n"})
	}
	gptImage := strings.HasPrefix(p.Model, "gpt-image")
	type image struct {
		B64JSON       string `json:"b64_json,omitempty"`
		URL           string `json:"url,omitempty"`
		RevisedPrompt string `json:"revised_prompt,omitempty"`
	}
	type details struct {
		TextTokens  int64 `json:"text_tokens"`
		ImageTokens int64 `json:"image_tokens"`
	}
	type usage struct {
		InputTokens        int64   `json:"input_tokens"`
		InputTokensDetails details `json:"input_tokens_details"`
		OutputTokens       int64   `json:"output_tokens"`
		TotalTokens        int64   `json:"total_tokens"`
	}
	resp := struct {
		Created int64   `json:"created"`
		Data    []image `json:"data"`
		Usage   *usage  `json:"usage,omitempty"`
	}{Created: time.Now().Unix()}
	b64 := base64.StdEncoding.EncodeToString(tinyPNG)
	for i := 0; i < p.N; i++ {
		img := image{B64JSON: b64}
		if !gptImage && p.ResponseFormat != "b64_json" {
			img = image{URL: "https://mock-upstream.invalid/images/img-" + strconv.Itoa(i) + ".png"}
		}
		if p.Model == "dall-e-3" {
			img.RevisedPrompt = p.Prompt
		}
		resp.Data = append(resp.Data, img)
	}
	if gptImage && !x.b.NoUsage {
		text, err := encodingFor(p.Model).count(p.Prompt)
		if err != nil {
			return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
		}
		quality, size := p.Quality, p.Size
		if _, ok := gptImageOutputTokens[quality]; !ok {
			quality = "medium"
		}
		if _, ok := gptImageOutputTokens[quality][size]; !ok {
			size = "1024x1024"
		}
		u := usage{InputTokensDetails: details{TextTokens: int64(text), ImageTokens: int64(p.images) * MockImageInputTokens},
			OutputTokens: int64(p.N) * gptImageOutputTokens[quality][size]}
		u.InputTokens = u.InputTokensDetails.TextTokens + u.InputTokensDetails.ImageTokens
		u.TotalTokens = u.InputTokens + u.OutputTokens
		resp.Usage = &u
	}
	data, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return x.answerRaw(data)
}
