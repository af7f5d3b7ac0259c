package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// A body may point at a stored object by id (previous_response_id, a file_id
// in a content part). The upstream would resolve another account's id for
// anyone, so the proxy answers it as an unknown id: 400 naming the parameter,
// nothing held, nothing forwarded. The owner's own ids pass.
func TestReferencesToAnotherAccountsObjectsAreRefused(t *testing.T) {
	h, _ := newObjectHarness(t)
	acme := h.account("acme", "5.00")
	rival := h.account("rival", "5.00")

	res := h.post("/v1/responses", acme, `{"model":"gpt-4o-mini","input":"Hello"}`)
	body := readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("acme's response: %d %s", res.StatusCode, body)
	}
	respID := idOf(t, body)
	fileID := h.upload(acme, "notes.pdf", "user_data", []byte("%PDF-1.4 acme's secret notes"))

	cases := []struct {
		name, path, body string
		param, code      string
	}{
		{"previous response", "/v1/responses",
			fmt.Sprintf(`{"model":"gpt-4o-mini","input":"Go on","previous_response_id":%q}`, respID),
			"previous_response_id", "previous_response_not_found"},
		{"responses input_file", "/v1/responses",
			fmt.Sprintf(`{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_text","text":"Summarise"},{"type":"input_file","file_id":%q}]}]}`, fileID),
			"input[0].content[1].file_id", "invalid_file"},
		{"responses input_image", "/v1/responses",
			fmt.Sprintf(`{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_image","file_id":%q}]}]}`, fileID),
			"input[0].content[0].file_id", "invalid_file"},
		{"chat file part", "/v1/chat/completions",
			fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"Summarise"},{"type":"file","file":{"file_id":%q}}]}]}`, fileID),
			"messages[0].content[1].file.file_id", "invalid_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mock.Requests())
			credit := h.get("rival").Credit

			res := h.post(tc.path, rival, tc.body)
			got := readAll(t, res)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("rival: %d %s, want 400", res.StatusCode, got)
			}
			var e struct {
				Error struct{ Message, Type, Param, Code string }
			}
			if err := json.Unmarshal(got, &e); err != nil {
				t.Fatalf("body %s: %v", got, err)
			}
			if e.Error.Type != "invalid_request_error" || e.Error.Param != tc.param || e.Error.Code != tc.code {
				t.Errorf("error = %+v, want invalid_request_error, param %q, code %q", e.Error, tc.param, tc.code)
			}
			if n := len(h.mock.Requests()); n != before {
				t.Errorf("the upstream got %d requests, want none", n-before)
			}
			if a := h.get("rival"); a.Credit != credit || a.Reserved != 0 {
				t.Errorf("rival: credit %s reserved %s, want %s and nothing held", a.Credit, a.Reserved, credit)
			}

			res = h.post(tc.path, acme, tc.body)
			if got := readAll(t, res); res.StatusCode != http.StatusOK {
				t.Errorf("acme, its own object: %d %s, want 200", res.StatusCode, got)
			}
		})
	}
}

// A Responses request naming a conversation is answered as one naming an
// unknown conversation (404, as OpenAI does), whoever sends it: conversations
// are made with /v1/conversations, which the proxy does not serve, so every
// conversation id is the operator's, or another gateway's, never an account's.
func TestConversationsAreNobodysAccount(t *testing.T) {
	h, _ := newObjectHarness(t)
	acme := h.account("acme", "5.00")
	for _, tc := range []struct{ name, conversation, param string }{
		{"an id", `"conv_68a0c0ffee"`, "conversation"},
		{"an object", `{"id":"conv_68a0c0ffee"}`, "conversation.id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.mock.Requests())
			res := h.post("/v1/responses", acme, `{"model":"gpt-4o-mini","input":"Go on","conversation":`+tc.conversation+`}`)
			got := readAll(t, res)
			var e struct {
				Error struct {
					Message, Type, Param string
					Code                 *string
				}
			}
			if err := json.Unmarshal(got, &e); err != nil || res.StatusCode != http.StatusNotFound {
				t.Fatalf("%d %s (%v), want 404", res.StatusCode, got, err)
			}
			if e.Error.Type != "invalid_request_error" || e.Error.Param != tc.param || e.Error.Message != "Conversation with id 'conv_68a0c0ffee' not found." {
				t.Errorf("error = %+v", e.Error)
			}
			if n := len(h.mock.Requests()); n != before {
				t.Errorf("the upstream got %d requests, want none", n-before)
			}
			if a := h.get("acme"); a.Reserved != 0 || a.Credit != 5_000_000 {
				t.Errorf("acme: credit %s reserved %s, want 5.00 and nothing held", a.Credit, a.Reserved)
			}
		})
	}
	res := h.post("/v1/responses", acme, `{"model":"gpt-4o-mini","input":"Hi","conversation":null}`)
	if got := readAll(t, res); res.StatusCode != http.StatusOK {
		t.Errorf("conversation null: %d %s, want 200 (no conversation)", res.StatusCode, got)
	}
	res = h.post("/v1/responses", acme, `{"model":"gpt-4o-mini","input":"Hi","conversation":7}`)
	if got := readAll(t, res); res.StatusCode != http.StatusBadRequest {
		t.Errorf("conversation 7: %d %s, want 400", res.StatusCode, got)
	}
}
