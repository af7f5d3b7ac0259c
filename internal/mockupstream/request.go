package mockupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The request bodies, reduced to what the mock reads; other fields are ignored.
type (
	chatRequest struct {
		Model               string         `json:"model"`
		Messages            []message      `json:"messages"`
		N                   *int           `json:"n"`
		MaxTokens           *int           `json:"max_tokens"`
		MaxCompletionTokens *int           `json:"max_completion_tokens"`
		Stream              bool           `json:"stream"`
		StreamOptions       *streamOptions `json:"stream_options"`
		// Store keeps a non-streamed completion (stored.go), with Metadata.
		Store    bool              `json:"store"`
		Metadata map[string]string `json:"metadata"`
	}
	completionRequest struct {
		Model         string         `json:"model"`
		Prompt        inputs         `json:"prompt"`
		N             *int           `json:"n"`
		MaxTokens     *int           `json:"max_tokens"`
		Stream        bool           `json:"stream"`
		StreamOptions *streamOptions `json:"stream_options"`
	}
	responseRequest struct {
		Model           string        `json:"model"`
		Input           responseInput `json:"input"`
		Instructions    *string       `json:"instructions"`
		MaxOutputTokens *int          `json:"max_output_tokens"`
		Stream          bool          `json:"stream"`
		// Store (default true, as OpenAI's) keeps the response (stored.go).
		Store *bool `json:"store"`
		// Background answers queued at once; the response ends later (stored.go).
		Background bool `json:"background"`
	}
	embeddingRequest struct {
		Model          string `json:"model"`
		Input          inputs `json:"input"`
		Dimensions     *int   `json:"dimensions"`
		EncodingFormat string `json:"encoding_format"`
	}
	streamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	}
	// message is a chat message or a Responses input item; items without a role
	// (function calls and their outputs) are skipped when counting.
	message struct {
		Role    string  `json:"role"`
		Name    string  `json:"name"`
		Content content `json:"content"`
	}
)

// checkChoices checks the parameters chat completions and completions share, in the
// order OpenAI reports them.
func checkChoices(model string, n, maxTokens *int) *apiError {
	return firstError(
		missingModel(model),
		outOfRange("n", n, 1, 128),
		outOfRange("max_tokens", maxTokens, 1, 0),
	)
}

// includeUsage reports whether a stream is to end with a usage chunk (o may be nil).
func (o *streamOptions) includeUsage() bool { return o != nil && o.IncludeUsage }

// content is a message's text: a string, or the text of each part of an array.
type content []string

func (c *content) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = content{s}
	case '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		*c = make(content, 0, len(parts))
		for _, p := range parts {
			*c = append(*c, p.Text)
		}
	case 'n':
		*c = nil
	default:
		return errors.New("content must be a string or an array of content parts")
	}
	return nil
}

// responseInput is the Responses API input: a string (one user message) or items.
type responseInput []message

func (in *responseInput) UnmarshalJSON(b []byte) error {
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*in = responseInput{{Role: "user", Content: content{s}}}
		return nil
	}
	return json.Unmarshal(b, (*[]message)(in))
}

// input is one prompt or embedding input: a text, or an array of token ids.
type input struct {
	text   string
	tokens []int
}

// inputs is OpenAI's string | string[] | int[] | int[][] prompt and embedding input.
type inputs []input

func (in *inputs) UnmarshalJSON(b []byte) error {
	const want = "must be a string, an array of strings, an array of tokens or an array of token arrays"
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*in = inputs{{text: s}}
		return nil
	case '[':
	case 'n':
		*in = nil
		return nil
	default:
		return errors.New(want)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	if len(items) > 0 && (items[0][0] == '-' || items[0][0] >= '0' && items[0][0] <= '9') {
		var tokens []int
		if err := json.Unmarshal(b, &tokens); err != nil {
			return errors.New(want)
		}
		*in = inputs{{tokens: tokens}}
		return nil
	}
	*in = make(inputs, len(items))
	for i, item := range items {
		var err error
		switch item[0] {
		case '"':
			err = json.Unmarshal(item, &(*in)[i].text)
		case '[':
			err = json.Unmarshal(item, &(*in)[i].tokens)
			if (*in)[i].tokens == nil {
				(*in)[i].tokens = []int{}
			}
		default:
			err = errors.New(want)
		}
		if err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}

// decodeRequest reads a JSON body into v, or returns the 400 OpenAI would send.
func decodeRequest(body []byte, v any) *apiError {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) || len(bytes.TrimSpace(body)) == 0 {
		return &apiError{
			Message: "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
			Type:    "invalid_request_error",
		}
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return &apiError{
			Message: fmt.Sprintf("Invalid type for '%s': expected %s, but got %s.", typ.Field, typ.Type, typ.Value),
			Type:    "invalid_request_error", Param: typ.Field, Code: "invalid_type",
		}
	}
	return &apiError{Message: "Invalid request body: " + err.Error(), Type: "invalid_request_error"}
}

// The validation errors below use OpenAI's wording, codes and params.

func missingModel(model string) *apiError {
	if model != "" {
		return nil
	}
	return &apiError{Message: "you must provide a model parameter", Type: "invalid_request_error"}
}

func missingParam(param string) *apiError {
	return &apiError{
		Message: "Missing required parameter: '" + param + "'.",
		Type:    "invalid_request_error", Param: param, Code: "missing_required_parameter",
	}
}

// outOfRange checks an optional integer parameter against [lo, hi] (hi 0: no bound).
func outOfRange(param string, v *int, lo, hi int) *apiError {
	switch {
	case v == nil:
		return nil
	case *v < lo:
		return &apiError{
			Message: fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= %d, but got %d instead.", param, lo, *v),
			Type:    "invalid_request_error", Param: param, Code: "integer_below_min_value",
		}
	case hi > 0 && *v > hi:
		return &apiError{
			Message: fmt.Sprintf("Invalid '%s': integer above maximum value. Expected a value <= %d, but got %d instead.", param, hi, *v),
			Type:    "invalid_request_error", Param: param, Code: "integer_above_max_value",
		}
	}
	return nil
}

// firstError returns the first non-nil error.
func firstError(errs ...*apiError) *apiError {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
