package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin/client"
)

// TestLogsHoldNoSecrets runs creditgate through everything it logs about —
// admin calls, plain and streamed requests on every metered endpoint, refusals
// (bad keys, bad bodies, oversized bodies, no credit), upstream errors, an app
// hanging up mid-stream, Redis failing at admission and at settlement (the
// spool), recovery and shutdown — with the production JSON logger writing into a
// buffer, then scans every line for the keys, the admin token, the prompts and
// the completions. None may appear.
func TestLogsHoldNoSecrets(t *testing.T) {
	f := newFixture(t)
	fp := f.behindFaultProxy()
	f.doc["logging"] = `{ level: debug }`
	f.doc["limits"] = `{ max_body_bytes: 64KiB }`
	f.start()
	ctx := context.Background()

	adm := &client.Client{BaseURL: "http://" + f.app.AdminAddr().String(), Token: adminToken}
	if _, err := adm.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AddCredits(ctx, "acme", "5.00", nil, "topup-1"); err != nil {
		t.Fatal(err)
	}
	k, err := adm.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := adm.CreateKey(ctx, "acme", "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.RevokeKey(ctx, "acme", revoked.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.GetAccount(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Ledger(ctx, "acme", "", 10); err != nil {
		t.Fatal(err)
	}
	const wrongAdminToken = "wrong-admin-token-CANARY-7d1e"
	if _, err := (&client.Client{BaseURL: adm.BaseURL, Token: wrongAdminToken}).ListAccounts(ctx); err == nil {
		t.Fatal("a wrong admin token was accepted")
	}

	const (
		promptCanary    = "PROMPT-CANARY-the-quick-brown-fox-3f9a"
		embedCanary     = "EMBED-CANARY-lorem-ipsum-dolor-77c2"
		wrongAppKey     = "sk-cg-WRONGCANARYkey0123456789abcdefghijklmnop"
		foreignKey      = "sk-proj-FOREIGNCANARY0123456789"
		instructionsCan = "INSTRUCTIONS-CANARY-be-brief-19be"
	)
	completions := map[string]bool{}
	call := func(path, key, body string, header ...string) outcome {
		req, _ := http.NewRequest(http.MethodPost, f.data+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := loadClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return outcome{status: res.StatusCode, body: b}
	}
	keepCompletion := func(o outcome) {
		var plain struct {
			Choices []struct {
				Message struct{ Content string }
				Text    string
			}
		}
		if json.Unmarshal(o.body, &plain) == nil {
			for _, c := range plain.Choices {
				completions[c.Message.Content+c.Text] = true
			}
			return
		}
		var text strings.Builder // a stream: the deltas
		for _, line := range strings.Split(string(o.body), "\n") {
			var chunk struct {
				Choices []struct{ Delta struct{ Content string } }
				Delta   string
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(d), &chunk) == nil {
				for _, c := range chunk.Choices {
					text.WriteString(c.Delta.Content)
				}
				text.WriteString(chunk.Delta)
			}
		}
		completions[text.String()] = true
	}
	chatBody := `{"model":"gpt-4o-mini","max_tokens":24,"messages":[{"role":"system","content":"` + instructionsCan + `"},{"role":"user","content":"` + promptCanary + `"}]`
	steps := []struct {
		name       string
		path, key  string
		body       string
		header     []string
		want       int
		completion bool
	}{
		{"chat", "/v1/chat/completions", k.Key, chatBody + "}", nil, 200, true},
		{"chat stream", "/v1/chat/completions", k.Key, chatBody + `,"stream":true}`, nil, 200, true},
		{"completions", "/v1/completions", k.Key, `{"model":"gpt-4o-mini","max_tokens":24,"prompt":"` + promptCanary + `"}`, nil, 200, true},
		{"responses", "/v1/responses", k.Key, `{"model":"gpt-4o-mini","max_output_tokens":24,"instructions":"` + instructionsCan + `","input":"` + promptCanary + `"}`, nil, 200, false},
		{"responses stream", "/v1/responses", k.Key, `{"model":"gpt-4o-mini","max_output_tokens":24,"stream":true,"input":"` + promptCanary + `"}`, nil, 200, true},
		{"embeddings", "/v1/embeddings", k.Key, `{"model":"gpt-4o-mini","input":["` + embedCanary + `"]}`, nil, 200, false},
		{"wrong key", "/v1/chat/completions", wrongAppKey, chatBody + "}", nil, 401, false},
		{"foreign key", "/v1/chat/completions", foreignKey, chatBody + "}", nil, 401, false},
		{"revoked key", "/v1/chat/completions", revoked.Key, chatBody + "}", nil, 401, false},
		{"malformed JSON", "/v1/chat/completions", k.Key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + promptCanary + `"}`, nil, 400, false},
		{"wrong type", "/v1/chat/completions", k.Key, `{"model":"gpt-4o-mini","max_tokens":"` + promptCanary + `","messages":[]}`, nil, 400, false},
		{"too large", "/v1/chat/completions", k.Key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat(promptCanary, 2000) + `"}]}`, nil, 413, false},
		{"upstream error", "/v1/chat/completions", k.Key, chatBody + "}", []string{"X-Mock-Status", "500"}, 500, false},
		{"upstream drops the stream", "/v1/chat/completions", k.Key, chatBody + `,"stream":true}`, []string{"X-Mock-Drop-After", "3"}, 200, false},
	}
	for _, s := range steps {
		o := call(s.path, s.key, s.body, s.header...)
		if o.status != s.want {
			t.Fatalf("%s: %d %s", s.name, o.status, o.body)
		}
		if s.completion {
			keepCompletion(o)
		}
	}
	// An app that hangs up mid-stream.
	hangUp(t, f.data, k.Key, chatBody+`,"stream":true}`)

	// Redis fails at settlement (spooled), then at admission (503), then recovers.
	got := make(chan outcome, 1)
	go func() { got <- call("/v1/chat/completions", k.Key, chatBody+"}", "X-Mock-Delay", "300ms") }()
	waitFor(t, "the request upstream", 10*time.Second, func() bool { return f.app.inflight.count() == 1 && len(f.mock.Requests()) > 0 })
	time.Sleep(50 * time.Millisecond)
	fp.Stop()
	if o := <-got; o.status != 200 {
		t.Fatalf("settle during the outage: %d", o.status)
	} else {
		keepCompletion(o)
	}
	if o := call("/v1/chat/completions", k.Key, chatBody+"}"); o.status != http.StatusServiceUnavailable {
		t.Fatalf("admission during the outage: %d", o.status)
	}
	if err := fp.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spool to drain", 30*time.Second, func() bool { return f.app.SpoolDepth() == 0 })
	f.stop()

	logs := f.logs.Bytes()
	secrets := map[string]string{
		"app key": k.Key, "app key (body)": k.Key[len("sk-cg-") : len("sk-cg-")+20],
		"revoked key": revoked.Key, "wrong app key": wrongAppKey, "foreign key": foreignKey,
		"admin token": adminToken, "wrong admin token": wrongAdminToken, "upstream key": upstreamKey,
		"prompt": promptCanary, "instructions": instructionsCan, "embedding input": embedCanary,
	}
	n := 0
	for c := range completions {
		if len(c) >= 24 {
			secrets["completion "+string(rune('A'+n))] = c
			n++
		}
	}
	if n < 3 {
		t.Fatalf("only %d completions collected to look for", n)
	}
	scanLogs(t, logs, secrets)
	for _, want := range []string{`"msg":"request"`, `settlement spooled`, `"status":401`, `"status":413`, `"status":503`} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("the logs lack %s: the run did not cover what it should", want)
		}
	}
	t.Logf("scanned %d log lines for %d secrets", strings.Count(string(logs), "\n"), len(secrets))
}

// hangUp starts a stream and closes the connection after the first bytes.
func hangUp(t *testing.T, base, key, body string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
		"\r\nContent-Type: application/json\r\nX-Mock-Event-Delay: 50ms\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func itoa(n int) string { return strconv.Itoa(n) }
