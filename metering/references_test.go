package metering

import (
	"encoding/json"
	"slices"
	"testing"
)

// The ids a body points at, each where OpenAI's "param" would name it; a key
// given twice gives a reference for each occurrence (readers upstream differ on
// which one they keep, so both must be the caller's).
func TestRequestReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   Endpoint
		body string
		want []Reference
	}{
		{"previous response", Responses, `{"model":"m","input":"x","previous_response_id":"resp_1"}`,
			[]Reference{{RefResponse, "resp_1", "previous_response_id"}}},
		{"previous response null or empty", Responses, `{"model":"m","input":"x","previous_response_id":null}`, nil},
		{"conversation id", Responses, `{"model":"m","input":"x","conversation":"conv_1"}`,
			[]Reference{{RefConversation, "conv_1", "conversation"}}},
		{"conversation object", Responses, `{"model":"m","input":"x","conversation":{"id":"conv_1"}}`,
			[]Reference{{RefConversation, "conv_1", "conversation.id"}}},
		{"conversation object, id twice", Responses, `{"model":"m","input":"x","conversation":{"id":"conv_1","id":"conv_2"}}`,
			[]Reference{{RefConversation, "conv_1", "conversation.id"}, {RefConversation, "conv_2", "conversation.id"}}},
		{"conversation null", Responses, `{"model":"m","input":"x","conversation":null}`, nil},
		{"input_file", Responses, `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-a"}]}]}`,
			[]Reference{{RefFile, "file-a", "input[0].content[0].file_id"}}},
		{"input_file, file_id twice", Responses, `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-a","file_id":"file-b"}]}]}`,
			[]Reference{{RefFile, "file-a", "input[0].content[0].file_id"}, {RefFile, "file-b", "input[0].content[0].file_id"}}},
		{"chat file part", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-a"}}]}]}`,
			[]Reference{{RefFile, "file-a", "messages[0].content[0].file.file_id"}}},
		{"chat file part, file_id twice", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-a","file_id":"file-b"}}]}]}`,
			[]Reference{{RefFile, "file-a", "messages[0].content[0].file.file_id"}, {RefFile, "file-b", "messages[0].content[0].file.file_id"}}},
		{"chat file part, file twice", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-a"},"file":{"file_id":"file-b"}}]}]}`,
			[]Reference{{RefFile, "file-a", "messages[0].content[0].file.file_id"}, {RefFile, "file-b", "messages[0].content[0].file.file_id"}}},
		{"chat inline file data", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:application/pdf;base64,JVBE","filename":"a.pdf"}}]}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest(tc.ep, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.References, tc.want) {
				t.Errorf("references %+v, want %+v", r.References, tc.want)
			}
		})
	}
	for _, body := range []string{
		`{"model":"m","input":"x","conversation":7}`,
		`{"model":"m","input":"x","conversation":{"id":7}}`,
		`{"model":"m","input":"x","conversation":"a","conversation":"b"}`,
	} {
		if _, err := ParseRequest(Responses, []byte(body)); err == nil {
			t.Errorf("%s parsed; want a 400", body)
		}
	}
}

// checkReferencesCover is FuzzParseRequest's check that every id encoding/json
// reads from a Responses body's previous_response_id and conversation is among
// the request's references: an id the proxy does not see is one it cannot check.
func checkReferencesCover(t *testing.T, r *Request, body []byte) {
	if r.Endpoint != Responses {
		return
	}
	var top struct {
		PreviousResponseID any `json:"previous_response_id"`
		Conversation       any `json:"conversation"`
	}
	if json.Unmarshal(body, &top) != nil {
		return
	}
	has := func(kind ReferenceKind, id string) bool {
		return slices.ContainsFunc(r.References, func(ref Reference) bool { return ref.Kind == kind && ref.ID == id })
	}
	if id, ok := top.PreviousResponseID.(string); ok && id != "" && !has(RefResponse, id) {
		t.Fatalf("previous_response_id %q is not among the references %+v", id, r.References)
	}
	id, ok := top.Conversation.(string)
	if o, isObject := top.Conversation.(map[string]any); isObject {
		id, ok = o["id"].(string)
	}
	if ok && id != "" && !has(RefConversation, id) {
		t.Fatalf("conversation %q is not among the references %+v", id, r.References)
	}
}
