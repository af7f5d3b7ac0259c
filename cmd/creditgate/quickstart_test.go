package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/money"
)

// syncBuffer is a bytes.Buffer the command writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// quickstartBanner is what the test reads back of the quickstart's banner.
type quickstartBanner struct {
	baseURL, key, adminURL, adminToken, dashboard, upstream string
}

var bannerFields = map[string]*regexp.Regexp{
	"baseURL":    regexp.MustCompile(`(?m)^  export OPENAI_BASE_URL=(\S+)$`),
	"key":        regexp.MustCompile(`(?m)^  export OPENAI_API_KEY=(\S+)$`),
	"adminURL":   regexp.MustCompile(`(?m)^  export CREDITGATE_ADMIN_URL=(\S+)$`),
	"adminToken": regexp.MustCompile(`(?m)^  export CREDITGATE_ADMIN_TOKEN=(\S+)$`),
	"dashboard":  regexp.MustCompile(`(?m)^  (http://\S+/dashboard/)$`),
	"upstream":   regexp.MustCompile(`(?m)^  upstream:  (.+)$`),
}

func parseBanner(t *testing.T, out string) quickstartBanner {
	t.Helper()
	get := func(name string) string {
		m := bannerFields[name].FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s in the banner:\n%s", name, out)
		}
		return m[1]
	}
	b := quickstartBanner{baseURL: get("baseURL"), key: get("key"), adminURL: get("adminURL"),
		adminToken: get("adminToken"), dashboard: get("dashboard"), upstream: get("upstream")}
	// The curl lines use the same address and key as the SDK exports.
	dataURL := strings.TrimSuffix(b.baseURL, "/v1")
	for _, want := range []string{
		"curl " + dataURL + "/v1/chat/completions",
		`-H "Authorization: Bearer ` + b.key + `"`,
		"curl " + dataURL + "/v1/credits",
		"admin API at " + b.adminURL,
		"metrics at " + b.adminURL + "/metrics",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the banner lacks %q:\n%s", want, out)
		}
	}
	if b.dashboard != b.adminURL+admin.DashboardPath {
		t.Errorf("dashboard %s, admin API %s", b.dashboard, b.adminURL)
	}
	return b
}

// isolateQuickstart clears every CREDITGATE_* and OpenAI variable the
// developer's shell may hold (the quickstart reads them), and points the
// quickstart file at a fresh directory.
func isolateQuickstart(t *testing.T) {
	t.Helper()
	isolateDemo(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix) && !strings.HasPrefix(k, config.EnvPrefix+"TEST_") {
			t.Setenv(k, "") // empty is unset for the configuration
		}
	}
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("OPENAI_BASE_URL", "")
	t.Setenv("CREDITGATE_LOGGING_LEVEL", "error")
}

// fakeOpenAI stands for the real upstream: it answers every chat completion
// with a fixed answer and records the Authorization headers it got.
type fakeOpenAI struct {
	mu    sync.Mutex
	auths []string
}

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"chatcmpl-from-the-real-upstream","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":"real"},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":9,"completion_tokens":1000,"total_tokens":1009}}`)
}

func (f *fakeOpenAI) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auths...)
}

// TestQuickstartCommand runs the real `creditgate quickstart` in-process on
// random ports, follows its banner (a chat completion with the printed key, the
// dashboard, the credits endpoint, the admin token), checks the file it leaves
// for `creditgate demo`, and stops it by cancelling its context.
func TestQuickstartCommand(t *testing.T) {
	const realKey = "sk-test-real-openai-key"
	tests := []struct {
		name      string
		env       map[string]string // besides CREDITGATE_UPSTREAM_BASE_URL: the fake OpenAI
		mock      bool              // the bundled mock upstream serves
		upstream  string            // in the banner's upstream line
		wantAuth  string            // what the fake OpenAI must see ("" = no request)
		wantToken string            // admin token ("" = a random cg-admin-…)
	}{
		{name: "mock upstream", mock: true, upstream: "the bundled mock upstream at http://127.0.0.1:"},
		{name: "OPENAI_API_KEY: the real upstream", env: map[string]string{"OPENAI_API_KEY": realKey},
			upstream: "(a real upstream, with your API key", wantAuth: "Bearer " + realKey},
		{name: "CREDITGATE_UPSTREAM_API_KEY and a fixed admin token", env: map[string]string{
			"CREDITGATE_UPSTREAM_API_KEY": realKey, "OPENAI_API_KEY": "sk-cg-ignored", "CREDITGATE_ADMIN_TOKENS": "fixed-admin-token-0123456789,second-admin-token-0123456789"},
			upstream: "(a real upstream, with your API key", wantAuth: "Bearer " + realKey, wantToken: "fixed-admin-token-0123456789"},
		{name: "OPENAI_API_KEY left from an earlier banner: the mock", mock: true,
			env:      map[string]string{"OPENAI_API_KEY": "sk-cg-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"},
			upstream: "(OPENAI_API_KEY holds a creditgate key, not an OpenAI one)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolateQuickstart(t)
			openai := &fakeOpenAI{}
			fake := httptest.NewServer(openai)
			defer fake.Close()
			// Honoured only with a key: without one the quickstart's mock is the upstream.
			t.Setenv("CREDITGATE_UPSTREAM_BASE_URL", fake.URL+"/v1")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.mock {
				t.Setenv("CREDITGATE_UPSTREAM_BASE_URL", "")
			}

			root := newRootCommand()
			var stdout, stderr syncBuffer
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			root.SetArgs([]string{"quickstart", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
				"--mock-listen", "127.0.0.1:0", "--mock-output-tokens", "20"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx) }()
			stopped := false
			stop := func() error {
				cancel()
				select {
				case err := <-done:
					stopped = true
					return err
				case <-time.After(30 * time.Second):
					t.Fatal("the quickstart did not stop when its context was cancelled")
					return nil
				}
			}
			defer func() {
				if !stopped {
					_ = stop()
				}
			}()
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(stdout.String(), "Press Ctrl-C to stop.") {
				select {
				case err := <-done:
					stopped = true
					t.Fatalf("the quickstart stopped: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("no banner:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
				}
			}
			out := stdout.String()
			b := parseBanner(t, out)
			checkBillingLink(t, out, b)
			if !strings.Contains(b.upstream, tc.upstream) {
				t.Errorf("upstream line %q, want it to contain %q", b.upstream, tc.upstream)
			}
			if !tc.mock && !strings.HasPrefix(b.upstream, fake.URL+"/v1 ") {
				t.Errorf("upstream line %q does not name the upstream %s", b.upstream, fake.URL)
			}
			if !strings.Contains(out, "store:     embedded, in memory") || !strings.Contains(out, `account:   "demo" with $5.00 of credit`) {
				t.Errorf("store or account lines:\n%s", out)
			}
			if !strings.HasPrefix(b.key, "sk-cg-") {
				t.Errorf("key %q", b.key)
			}
			switch {
			case tc.wantToken != "" && b.adminToken != tc.wantToken:
				t.Errorf("admin token %q, want %q", b.adminToken, tc.wantToken)
			case tc.wantToken == "" && !regexp.MustCompile(`^cg-admin-[0-9a-f]{32}$`).MatchString(b.adminToken):
				t.Errorf("admin token %q, want a random one", b.adminToken)
			}

			// The file `creditgate demo` reads names the same quickstart.
			info, ok := readQuickstartInfo()
			want := quickstartInfo{AdminURL: b.adminURL, AdminToken: b.adminToken, DataURL: strings.TrimSuffix(b.baseURL, "/v1"), MockUpstream: tc.mock, PID: os.Getpid()}
			if !ok || info != want {
				t.Fatalf("quickstart file %+v %v, want %+v", info, ok, want)
			}

			// A chat completion through the printed base URL with the printed key.
			body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}`
			req, _ := http.NewRequest(http.MethodPost, b.baseURL+"/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+b.key)
			req.Header.Set("Content-Type", "application/json")
			var answer struct {
				ID    string `json:"id"`
				Usage struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
				} `json:"usage"`
			}
			status, raw := doJSON(t, req, &answer)
			if status != http.StatusOK || answer.Usage.PromptTokens == 0 || answer.Usage.CompletionTokens == 0 {
				t.Fatalf("chat completion: HTTP %d %s", status, raw)
			}
			fromReal := answer.ID == "chatcmpl-from-the-real-upstream"
			if fromReal == tc.mock {
				t.Errorf("answer %s: from the real upstream %v, want %v", raw, fromReal, !tc.mock)
			}
			if tc.mock && answer.Usage.CompletionTokens != 20 {
				t.Errorf("the mock answered %d tokens, want --mock-output-tokens 20", answer.Usage.CompletionTokens)
			}
			if got := openai.seen(); tc.wantAuth == "" && len(got) != 0 || tc.wantAuth != "" && (len(got) != 1 || got[0] != tc.wantAuth) {
				t.Errorf("the real upstream saw %q, want %q", got, tc.wantAuth)
			}

			// The credits endpoint shows the debit.
			req, _ = http.NewRequest(http.MethodGet, b.baseURL+"/credits", nil)
			req.Header.Set("Authorization", "Bearer "+b.key)
			var credits struct {
				Account string       `json:"account"`
				Balance money.Micros `json:"balance"`
			}
			status, raw = doJSON(t, req, &credits)
			if status != http.StatusOK || credits.Account != demoAccount || credits.Balance <= 0 || credits.Balance >= money.MustParse("5.00") {
				t.Fatalf("credits after one request: HTTP %d %s", status, raw)
			}

			// The dashboard answers, and the admin token works on the admin API.
			res, err := http.Get(b.dashboard)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("dashboard %s: HTTP %d", b.dashboard, res.StatusCode)
			}
			acct, err := (&client.Client{BaseURL: b.adminURL, Token: b.adminToken}).GetAccount(context.Background(), demoAccount)
			if err != nil || money.Micros(acct.Balance) != credits.Balance {
				t.Errorf("admin API with the printed token: %+v %v", acct, err)
			}

			if err := stop(); err != nil {
				t.Fatalf("the quickstart stopped with %v\nstderr:\n%s", err, stderr.String())
			}
			if info, ok := readQuickstartInfo(); ok {
				t.Errorf("the quickstart file outlived the quickstart: %+v", info)
			}
			if _, err := http.Get(b.baseURL + "/credits"); err == nil {
				t.Error("the data plane still answers after the quickstart stopped")
			}
		})
	}
}

// doJSON sends req and decodes a JSON answer into v.
func doJSON(t *testing.T, req *http.Request, v any) (int, string) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("HTTP %d, not JSON: %s", res.StatusCode, raw)
	}
	return res.StatusCode, string(raw)
}
