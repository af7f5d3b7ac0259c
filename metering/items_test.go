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
