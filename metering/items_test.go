package metering

import "testing"

func TestRequestItems(t *testing.T) {
	tests := []struct {
		name        string
		ep          Endpoint
		body        string
		wantParam   string
		wantItems   int
		wantLargest int
	}{
		{name: "chat messages", ep: ChatCompletions, body: `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"user","content":"hello there"}]}`,
			wantParam: "messages", wantItems: 2, wantLargest: len(`{"role":"user","content":"hello there"}`)},
		{name: "completions string", ep: Completions, body: `{"model":"m","prompt":"abc"}`, wantParam: "prompt", wantItems: 1, wantLargest: len(`"abc"`)},
		{name: "completions strings", ep: Completions, body: `{"model":"m","prompt":["a","bcd","ef"]}`, wantParam: "prompt", wantItems: 3, wantLargest: len(`"bcd"`)},
		{name: "completions token ids are one prompt", ep: Completions, body: `{"model":"m","prompt":[1,2,3,4]}`, wantParam: "prompt", wantItems: 1, wantLargest: len(`[1,2,3,4]`)},
		{name: "embeddings token arrays", ep: Embeddings, body: `{"model":"m","input":[[1,2],[3,4,5]]}`, wantParam: "input", wantItems: 2, wantLargest: len(`[3,4,5]`)},
		{name: "responses string", ep: Responses, body: `{"model":"m","input":"hello"}`, wantParam: "input", wantItems: 1, wantLargest: len(`"hello"`)},
		{name: "responses items", ep: Responses, body: `{"model":"m","input":[{"role":"user","content":"a"},{"role":"user","content":"bb"}]}`,
			wantParam: "input", wantItems: 2, wantLargest: len(`{"role":"user","content":"bb"}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest(tc.ep, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.ItemsParam != tc.wantParam || r.Items != tc.wantItems || r.LargestItem != tc.wantLargest {
				t.Fatalf("got %s %d items, largest %d; want %s %d, %d", r.ItemsParam, r.Items, r.LargestItem, tc.wantParam, tc.wantItems, tc.wantLargest)
			}
		})
	}
}

// TestStructuredOutputSchemaIsCounted: a JSON schema the model must follow is part
// of what it reads; its JSON text is counted as prompt.
func TestStructuredOutputSchemaIsCounted(t *testing.T) {
	tok, err := TokenizerFor(O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	schema := `{"type":"object","properties":{"city":{"type":"string"},"temperature":{"type":"number"}},"required":["city","temperature"]}`
	tests := []struct {
		name, plain, withSchema string
		ep                      Endpoint
		counted                 string // the text that must be added
	}{
		{name: "chat json_schema", ep: ChatCompletions,
			plain:      `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"}]}`,
			withSchema: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"}],"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":` + schema + `}}}`,
			counted:    `{"name":"w","schema":` + schema + `}`},
		{name: "chat json_object counts nothing", ep: ChatCompletions,
			plain:      `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"}]}`,
			withSchema: `{"model":"gpt-4o","messages":[{"role":"user","content":"Weather?"}],"response_format":{"type":"json_object"}}`},
		{name: "responses text.format", ep: Responses,
			plain:      `{"model":"gpt-4o","input":"Weather?"}`,
			withSchema: `{"model":"gpt-4o","input":"Weather?","text":{"format":{"type":"json_schema","name":"w","schema":` + schema + `}}}`,
			counted:    schema},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseRequest(tc.ep, []byte(tc.plain))
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseRequest(tc.ep, []byte(tc.withSchema))
			if err != nil {
				t.Fatal(err)
			}
			want := int64(0)
			if tc.counted != "" {
				want = int64(tok.Count(tc.counted))
			}
			if got := b.InputTokens(tok).Input - a.InputTokens(tok).Input; got != want {
				t.Fatalf("the schema added %d tokens, want %d", got, want)
			}
		})
	}
	if _, err := ParseRequest(ChatCompletions, []byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":"json"}`)); err == nil {
		t.Fatal("a response_format that is not an object must be refused")
	}
}
