package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// GET /v1/models lists what the gateway prices, aliases included, in OpenAI's
// shape — not the upstream's list; GET /v1/models/{id} answers what it would
// bill and 404s what it would refuse.
func TestModelCatalogue(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	status, body := h.do(http.MethodGet, "/v1/models", key, nil)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || status != http.StatusOK || list.Object != "list" {
		t.Fatalf("%d %s", status, body)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.Created <= 0 || m.OwnedBy != "creditgate" {
			t.Errorf("entry %+v", m)
		}
	}
	if got := strings.Join(ids, " "); got != "dear gpt-4o gpt-4o-mini mini text-embedding-3-small" {
		t.Fatalf("models %q: want the priced models and the alias, sorted", got)
	}
	if h.upstreamHits("/v1/models") != 0 {
		t.Fatal("the catalogue asked the upstream")
	}
	for _, tc := range []struct {
		id     string
		status int
	}{
		{"gpt-4o-mini", http.StatusOK},
		{"mini", http.StatusOK},                         // an alias
		{"gpt-4o-2024-08-06", http.StatusOK},            // a dated snapshot of a priced family
		{"gpt-3.5-turbo-instruct", http.StatusNotFound}, // the upstream has it; the gateway does not price it
		{"o1", http.StatusNotFound},
	} {
		status, body := h.do(http.MethodGet, "/v1/models/"+tc.id, key, nil)
		if status != tc.status {
			t.Errorf("%s: %d %s", tc.id, status, body)
		}
		if tc.status == http.StatusNotFound && (!strings.Contains(string(body), `"code": "model_not_found"`) || !strings.Contains(string(body), "`"+tc.id+"`")) {
			t.Errorf("%s: %s", tc.id, body)
		}
		if tc.status == http.StatusOK && !strings.Contains(string(body), `"id":"`+tc.id+`"`) {
			t.Errorf("%s: %s", tc.id, body)
		}
	}
	if status, _ := h.do(http.MethodGet, "/v1/models", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d", status)
	}

	// The official SDK reads both.
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	page, err := client.Models.List(h.ctx)
	if err != nil || len(page.Data) != 5 || page.Data[3].ID != "mini" {
		t.Fatalf("models.list: %v %+v", err, page)
	}
	m, err := client.Models.Get(h.ctx, "mini")
	if err != nil || m.ID != "mini" || m.OwnedBy != "creditgate" {
		t.Fatalf("models.retrieve: %v %+v", err, m)
	}
	_, err = client.Models.Get(h.ctx, "o1")
	var apiErr *openai.Error
	if !asOpenAIError(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" {
		t.Fatalf("models.retrieve of an unpriced model: %v", err)
	}
}

// The Realtime API is refused, saying why, with a status the SDKs do not retry.
func TestRealtimeRefused(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	for _, tc := range []struct{ method, path, key string }{
		{http.MethodGet, "/v1/realtime?model=gpt-4o-realtime-preview", key},
		{http.MethodPost, "/v1/realtime/sessions", key},
		{http.MethodPost, "/v1/realtime/client_secrets", ""},
	} {
		req, _ := http.NewRequest(tc.method, h.server.URL+tc.path, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, res)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code": "unsupported_endpoint"`) ||
			!strings.Contains(string(body), "does not meter realtime sessions") || res.Header.Get("Upgrade") != "" {
			t.Fatalf("%s %s: %d %v %s", tc.method, tc.path, res.StatusCode, res.Header, body)
		}
	}
	if len(h.mock.Requests()) != 0 {
		t.Fatal("a realtime request reached the upstream")
	}
}

func asOpenAIError(err error, target **openai.Error) bool { return errors.As(err, target) }
