package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestUnmeteredRequestsAreLogged: the model list, /v1/credits, the billing
// compatibility endpoints and unknown paths each get one request line, with the
// caller when the key was valid, and never the key itself.
func TestUnmeteredRequestsAreLogged(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	tests := []struct {
		method, path string
		key          string
		wantStatus   int
		wantAccount  string
	}{
		{http.MethodGet, "/v1/models", key, http.StatusOK, "acme"},
		{http.MethodGet, "/v1/models", "", http.StatusUnauthorized, ""},
		{http.MethodGet, "/v1/credits", key, http.StatusOK, "acme"},
		{http.MethodGet, "/v1/dashboard/billing/subscription", key, http.StatusOK, "acme"},
		{http.MethodGet, "/v1/no-such-thing", key, http.StatusNotFound, ""},
		{http.MethodDelete, "/v1/models", key, http.StatusNotFound, ""},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.wantStatus), func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.server.URL+tc.path, nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, res)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.wantStatus)
			}
			logs := h.requestLogs()
			if len(logs) != i+1 {
				t.Fatalf("%d request lines after %d requests", len(logs), i+1)
			}
			line := logs[i]
			if line["endpoint"] != tc.path || line["method"] != tc.method || line["status"] != int64(tc.wantStatus) ||
				line["metered"] != false || line["account"] != tc.wantAccount {
				t.Fatalf("log line %v", line)
			}
			if _, ok := line["latency"]; !ok {
				t.Fatalf("log line without latency: %v", line)
			}
			if strings.Contains(fmt.Sprint(line), key) {
				t.Fatalf("the key is logged: %v", line)
			}
		})
	}
}
