package mockupstream

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"slices"
	"strings"
)

func (s *Server) embeddings(x *exchange) error {
	var req embeddingRequest
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if e := missingModel(req.Model); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if len(req.Input) == 0 {
		return x.writeError(http.StatusBadRequest, *missingParam("input"))
	}
	dims := 1536
	if strings.Contains(req.Model, "-large") {
		dims = 3072
	}
	if req.Dimensions != nil {
		if strings.Contains(req.Model, "ada-002") {
			return x.writeError(http.StatusBadRequest, apiError{
				Message: "This model does not support specifying dimensions.", Type: "invalid_request_error", Param: "dimensions",
			})
		}
		if e := outOfRange("dimensions", req.Dimensions, 1, dims); e != nil {
			return x.writeError(http.StatusBadRequest, *e)
		}
		dims = *req.Dimensions
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		return x.writeError(http.StatusBadRequest, apiError{
			Message: "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
			Type:    "invalid_request_error", Param: "encoding_format", Code: "invalid_value",
		})
	}
	type embedding struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"` // []float32, or a base64 string of little-endian float32s
	}
	type embeddingUsage struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	}
	resp := struct {
		Object string          `json:"object"`
		Data   []embedding     `json:"data"`
		Model  string          `json:"model"`
		Usage  *embeddingUsage `json:"usage,omitempty"`
	}{Object: "list", Data: make([]embedding, len(req.Input)), Model: req.Model}
	enc := encodingFor(req.Model)
	var tokens int64
	for i, in := range req.Input {
		if in.tokens == nil && in.text == "" || in.tokens != nil && len(in.tokens) == 0 {
			return x.writeError(http.StatusBadRequest, apiError{
				Message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
				Type:    "invalid_request_error", Param: "input",
			})
		}
		n, err := inputTokens(enc, in)
		if err != nil {
			return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
		}
		tokens += n
		v := vector(inputSeed(in), dims)
		resp.Data[i] = embedding{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			resp.Data[i].Embedding = encodeBase64(v)
		}
	}
	if x.b.PromptTokens > 0 {
		tokens = x.b.PromptTokens
	}
	if k := int64(x.b.InflateUsage); k > 1 {
		tokens *= k
	}
	if !x.b.NoUsage {
		resp.Usage = &embeddingUsage{PromptTokens: tokens, TotalTokens: tokens}
	}
	return x.answer(resp)
}

// vector is a deterministic unit vector of dims float32s drawn from seed (splitmix64).
func vector(seed uint64, dims int) []float32 {
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		f := float64(z>>11)/(1<<53)*2 - 1
		v[i] = float32(f)
		norm += f * f
	}
	scale := 1 / math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) * scale)
	}
	return v
}

func encodeBase64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// defaultModels are listed by GET /v1/models besides Server.Models.
var defaultModels = []string{
	"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "o4-mini", "gpt-5-mini",
	"gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-embedding-3-large",
}

// modelCreated is a fixed creation time, so listings are deterministic.
const modelCreated = 1715367049

type model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) models() []model {
	ids := append(slices.Clone(defaultModels), s.Models...)
	var out []model
	for i, id := range ids {
		if id != "" && !slices.Contains(ids[:i], id) {
			out = append(out, model{ID: id, Object: "model", Created: modelCreated, OwnedBy: "system"})
		}
	}
	return out
}

func (s *Server) listModels(x *exchange) error {
	return x.answer(struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", s.models()})
}

func (s *Server) getModel(x *exchange, id string) error {
	for _, m := range s.models() {
		if m.ID == id {
			return x.answer(m)
		}
	}
	return x.writeError(http.StatusNotFound, apiError{
		Message: "The model `" + id + "` does not exist or you do not have access to it.",
		Type:    "invalid_request_error", Code: "model_not_found",
	})
}
