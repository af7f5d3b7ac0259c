package mockupstream

import (
	"encoding/json"
	"net/http"
)

// response is the Responses API's response object with the defaults OpenAI reports.
type response struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Background         bool               `json:"background"`
	Error              *struct{}          `json:"error"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int               `json:"max_output_tokens"`
	MaxToolCalls       *int               `json:"max_tool_calls"`
	Model              string             `json:"model"`
	Output             []any              `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Reasoning          reasoningConfig    `json:"reasoning"`
	ServiceTier        string             `json:"service_tier"`
	Store              bool               `json:"store"`
	Temperature        float64            `json:"temperature"`
	Text               textConfig         `json:"text"`
	ToolChoice         string             `json:"tool_choice"`
	Tools              emptyList          `json:"tools"`
	TopLogprobs        int                `json:"top_logprobs"`
	TopP               float64            `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *responseUsage     `json:"usage"`
	User               *string            `json:"user"`
	Metadata           struct{}           `json:"metadata"`
}

type (
	incompleteDetails struct {
		Reason string `json:"reason"`
	}
	reasoningConfig struct {
		Effort  *string `json:"effort"`
		Summary *string `json:"summary"`
	}
	textConfig struct {
		Format struct {
			Type string `json:"type"`
		} `json:"format"`
		Verbosity string `json:"verbosity"`
	}
	responseUsage struct {
		InputTokens         int64               `json:"input_tokens"`
		InputTokensDetails  inputTokensDetails  `json:"input_tokens_details"`
		OutputTokens        int64               `json:"output_tokens"`
		OutputTokensDetails outputTokensDetails `json:"output_tokens_details"`
		TotalTokens         int64               `json:"total_tokens"`
	}
	inputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	}
	outputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	}
	messageItem struct {
		ID      string       `json:"id"`
		Type    string       `json:"type"`
		Status  string       `json:"status"`
		Content []outputText `json:"content"`
		Role    string       `json:"role"`
	}
	outputText struct {
		Type        string    `json:"type"`
		Annotations emptyList `json:"annotations"`
		Logprobs    emptyList `json:"logprobs"`
		Text        string    `json:"text"`
	}
	// reasoningItem stands for the hidden reasoning when reasoning tokens are reported.
	reasoningItem struct {
		ID      string    `json:"id"`
		Type    string    `json:"type"`
		Summary emptyList `json:"summary"`
	}
)

// The streamed events, each with its sequence number.
type (
	responseEvent struct {
		Type           string    `json:"type"`
		SequenceNumber int       `json:"sequence_number"`
		Response       *response `json:"response"`
	}
	itemEvent struct {
		Type           string `json:"type"`
		SequenceNumber int    `json:"sequence_number"`
		OutputIndex    int    `json:"output_index"`
		Item           any    `json:"item"`
	}
	partEvent struct {
		Type           string     `json:"type"`
		SequenceNumber int        `json:"sequence_number"`
		ItemID         string     `json:"item_id"`
		OutputIndex    int        `json:"output_index"`
		ContentIndex   int        `json:"content_index"`
		Part           outputText `json:"part"`
	}
	textEvent struct {
		Type           string    `json:"type"`
		SequenceNumber int       `json:"sequence_number"`
		ItemID         string    `json:"item_id"`
		OutputIndex    int       `json:"output_index"`
		ContentIndex   int       `json:"content_index"`
		Delta          string    `json:"delta,omitempty"`
		Text           *string   `json:"text,omitempty"`
		Logprobs       emptyList `json:"logprobs"`
	}
)

func (s *Server) responses(x *exchange) error {
	var req responseRequest
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if e := firstError(missingModel(req.Model), outOfRange("max_output_tokens", req.MaxOutputTokens, 1, 0)); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if req.Input == nil {
		return x.writeError(http.StatusBadRequest, *missingParam("input"))
	}
	if req.Background && (req.Stream || (req.Store != nil && !*req.Store)) {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Background mode requires store=true and is not streamed by this mock.", Type: "invalid_request_error", Param: "background"})
	}
	// Instructions count as a leading developer message; items without a role (tool
	// calls and outputs) count nothing.
	msgs := make([]message, 0, len(req.Input)+1)
	if req.Instructions != nil {
		msgs = append(msgs, message{Role: "developer", Content: content{*req.Instructions}})
	}
	for _, m := range req.Input {
		if m.Role != "" {
			msgs = append(msgs, m)
		}
	}
	prompt, seed, err := chatPromptTokens(encodingFor(req.Model), msgs)
	if err != nil {
		return x.writeError(http.StatusInternalServerError, apiError{Message: err.Error(), Type: "server_error"})
	}
	g := x.generate(s, "resp_", req.Model, prompt, []uint64{seed}, 1, req.MaxOutputTokens)
	resp := &response{
		ID: g.id, Object: "response", CreatedAt: g.created, Status: "in_progress",
		Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens, Model: g.model,
		Output: []any{}, ParallelToolCalls: true, ServiceTier: "default", Store: req.Store == nil || *req.Store,
		Temperature: 1, ToolChoice: "auto", TopP: 1, Truncation: "disabled",
	}
	resp.Text.Format.Type, resp.Text.Verbosity = "text", "medium"
	final, status := "response.completed", "completed"
	if g.finish == "length" {
		final, status = "response.incomplete", "incomplete"
	}
	var reasoning *reasoningItem
	if g.reasoning > 0 {
		reasoning = &reasoningItem{ID: newID("rs_"), Type: "reasoning"}
	}
	msg := messageItem{ID: newID("msg_"), Type: "message", Status: status, Role: "assistant",
		Content: []outputText{{Type: "output_text", Text: g.texts[0].String()}}}
	finish := func() {
		resp.Status = status
		if status == "incomplete" {
			resp.IncompleteDetails = &incompleteDetails{Reason: "max_output_tokens"}
		}
		if reasoning != nil {
			resp.Output = append(resp.Output, reasoning)
		}
		resp.Output = append(resp.Output, msg)
		if u := g.reportedUsage(x.b); u != nil {
			resp.Usage = &responseUsage{
				InputTokens:         u.PromptTokens,
				InputTokensDetails:  inputTokensDetails{CachedTokens: u.PromptTokensDetails.CachedTokens},
				OutputTokens:        u.CompletionTokens,
				OutputTokensDetails: outputTokensDetails{ReasoningTokens: u.CompletionTokensDetails.ReasoningTokens},
				TotalTokens:         u.TotalTokens,
			}
		}
		if resp.Store {
			s.keepResponse(resp, req.Input)
		}
	}
	if req.Background {
		// Answered queued; the finished response is kept, shown from its end on.
		resp.Background, resp.Status = true, "queued"
		queued, _ := json.Marshal(resp) // a response always marshals
		finish()
		s.background(resp.ID, queued)
		return x.answerRaw(queued)
	}
	if !req.Stream {
		finish()
		return x.answer(resp)
	}
	return streamResponse(x, resp, reasoning, msg, g.texts[0], final, finish)
}

// streamResponse sends the typed events of a response with one output_text.delta per
// word; final is response.completed or response.incomplete, after finish has filled in
// resp. Responses streams have no [DONE].
func streamResponse(x *exchange, resp *response, reasoning *reasoningItem, msg messageItem, t text, final string, finish func()) error {
	if err := x.startStream(); err != nil {
		return err
	}
	// Each event is built with the current seq (from 0); send moves it on.
	seq := 0
	send := func(typ string, v any) error {
		seq++
		return x.event(typ, v)
	}
	if err := send("response.created", &responseEvent{Type: "response.created", SequenceNumber: seq, Response: resp}); err != nil {
		return err
	}
	if err := send("response.in_progress", &responseEvent{Type: "response.in_progress", SequenceNumber: seq, Response: resp}); err != nil {
		return err
	}
	index := 0
	if reasoning != nil {
		for _, typ := range []string{"response.output_item.added", "response.output_item.done"} {
			if err := send(typ, &itemEvent{Type: typ, SequenceNumber: seq, OutputIndex: index, Item: reasoning}); err != nil {
				return err
			}
		}
		index++
	}
	inProgress := messageItem{ID: msg.ID, Type: msg.Type, Status: "in_progress", Content: []outputText{}, Role: msg.Role}
	if err := send("response.output_item.added", &itemEvent{Type: "response.output_item.added", SequenceNumber: seq, OutputIndex: index, Item: inProgress}); err != nil {
		return err
	}
	part := outputText{Type: "output_text"}
	if err := send("response.content_part.added", &partEvent{Type: "response.content_part.added", SequenceNumber: seq, ItemID: msg.ID, OutputIndex: index, Part: part}); err != nil {
		return err
	}
	delta := textEvent{Type: "response.output_text.delta", ItemID: msg.ID, OutputIndex: index}
	for i := range t.n {
		delta.SequenceNumber, delta.Delta = seq, t.delta(i)
		if err := send(delta.Type, &delta); err != nil {
			return err
		}
	}
	full := msg.Content[0]
	if err := send("response.output_text.done", &textEvent{Type: "response.output_text.done", SequenceNumber: seq, ItemID: msg.ID, OutputIndex: index, Text: &full.Text}); err != nil {
		return err
	}
	if err := send("response.content_part.done", &partEvent{Type: "response.content_part.done", SequenceNumber: seq, ItemID: msg.ID, OutputIndex: index, Part: full}); err != nil {
		return err
	}
	if err := send("response.output_item.done", &itemEvent{Type: "response.output_item.done", SequenceNumber: seq, OutputIndex: index, Item: msg}); err != nil {
		return err
	}
	finish()
	if err := send(final, &responseEvent{Type: final, SequenceNumber: seq, Response: resp}); err != nil {
		return err
	}
	return x.endStream()
}
