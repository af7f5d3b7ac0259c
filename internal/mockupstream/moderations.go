package mockupstream

import (
	"encoding/json"
	"net/http"
	"strings"
)

// moderationCategories are the categories OpenAI's moderation models report.
var moderationCategories = []string{
	"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
	"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors",
	"violence", "violence/graphic",
}

// moderations answers POST /v1/moderations in OpenAI's shape: one result per
// input, flagged for "violence" when the text contains "kill" (so tests can see
// both answers). Like OpenAI's, the response carries no usage.
func (s *Server) moderations(x *exchange) error {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if req.Model == "" {
		req.Model = "omni-moderation-latest"
	}
	texts, ok := moderationTexts(req.Input)
	if !ok {
		return x.writeError(http.StatusBadRequest, *missingParam("input"))
	}
	type result struct {
		Flagged        bool                `json:"flagged"`
		Categories     map[string]bool     `json:"categories"`
		CategoryScores map[string]float64  `json:"category_scores"`
		AppliedTypes   map[string][]string `json:"category_applied_input_types"`
	}
	results := make([]result, len(texts))
	for i, text := range texts {
		r := result{Categories: map[string]bool{}, CategoryScores: map[string]float64{}, AppliedTypes: map[string][]string{}}
		for _, c := range moderationCategories {
			r.Categories[c], r.CategoryScores[c], r.AppliedTypes[c] = false, 0.0001, []string{"text"}
		}
		if strings.Contains(strings.ToLower(text), "kill") {
			r.Flagged, r.Categories["violence"], r.CategoryScores["violence"] = true, true, 0.93
		}
		results[i] = r
	}
	return x.answer(struct {
		ID      string   `json:"id"`
		Model   string   `json:"model"`
		Results []result `json:"results"`
	}{newID("modr-"), req.Model, results})
}

// moderationTexts reads a moderation input: a string, strings, or parts (an
// image part reads as an empty text). ok is false for no input.
func moderationTexts(raw json.RawMessage) (texts []string, ok bool) {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, true
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		return many, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil || len(parts) == 0 {
		return nil, false
	}
	for _, p := range parts {
		texts = append(texts, p.Text)
	}
	return texts, true
}
