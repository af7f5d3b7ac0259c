package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// openAIErrorBody is the exact body writeError answers for a refusal with a null param.
func openAIErrorBody(message, typ, param, code string) string {
	p := "null"
	if param != "" {
		p = `"` + param + `"`
	}
	return "{\n    \"error\": {\n        \"message\": \"" + message + "\",\n        \"type\": \"" + typ + "\",\n        \"param\": " + p +
		",\n        \"code\": \"" + code + "\"\n    }\n}\n"
}

func ptrTo[T any](v T) *T { return &v }

// TestKeySettingsRefuse: an expired key, a disabled key, a suspended account and
// a model outside the key's allowlist each get their exact status, code and
// body in OpenAI's shape, with nothing held, booked or forwarded; an allowlist
// entry and a request model match through aliases either way.
func TestKeySettingsRefuse(t *testing.T) {
	clock := &testClock{t: time.Now().UTC()}
	h := newHarness(t, func(o *Options) { o.Now = clock.Now })
	expiresAt := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	cases := []struct {
		name    string
		spec    billing.KeySpec
		suspend bool
		model   string
		status  int
		body    string
	}{
		{name: "expired", spec: billing.KeySpec{ExpiresAt: expiresAt}, model: "gpt-4o-mini", status: http.StatusUnauthorized,
			body: openAIErrorBody("The API key provided expired at "+expiresAt.Format(time.RFC3339)+". Ask for a new key or a later expiry.", "invalid_request_error", "", "key_expired")},
		{name: "disabled", spec: billing.KeySpec{Disabled: true}, model: "gpt-4o-mini", status: http.StatusUnauthorized,
			body: openAIErrorBody("The API key provided is disabled. Ask the operator to enable it again.", "invalid_request_error", "", "key_disabled")},
		{name: "suspended", suspend: true, model: "gpt-4o-mini", status: http.StatusForbidden,
			body: openAIErrorBody("The account of this API key is suspended. Contact the operator of this gateway.", "invalid_request_error", "", "account_suspended")},
		{name: "model not allowed", spec: billing.KeySpec{Models: []string{"gpt-4o", "text-embedding-3-small"}}, model: "mini", status: http.StatusForbidden,
			body: openAIErrorBody("The model `mini` is not allowed for this API key.", "invalid_request_error", "model", "model_not_allowed")},
		{name: "allowed alias entry", spec: billing.KeySpec{Models: []string{"mini"}}, model: "gpt-4o-mini", status: http.StatusOK},
		{name: "allowed alias request", spec: billing.KeySpec{Models: []string{"gpt-4o", "gpt-4o-mini"}}, model: "mini", status: http.StatusOK},
	}
	// The expiry passes once every key is made (the store refuses a past one).
	clock.Advance(2 * time.Hour)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			account := "acct" + string(rune('a'+i))
			if _, err := h.store.CreateAccount(h.ctx, account, "tier-1"); err != nil {
				t.Fatal(err)
			}
			if _, err := h.store.TopUp(h.ctx, testPolicy, billing.TopUpRequest{Account: account, GrantID: billing.NewID("grant_"), Amount: usd("5.00")}); err != nil {
				t.Fatal(err)
			}
			_, secret, err := h.store.CreateKeyWith(h.ctx, account, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if tc.suspend {
				if _, err := h.store.UpdateAccount(h.ctx, account, billing.AccountUpdate{Status: ptrTo(billing.StatusSuspended)}); err != nil {
					t.Fatal(err)
				}
			}
			forwarded := len(h.mock.Requests())
			before := len(h.events(account))
			res := h.post("/v1/chat/completions", secret, chatBody(tc.model, false, ""))
			body := string(readAll(t, res))
			if res.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", res.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusOK {
				return
			}
			if body != tc.body || res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("body\n%s\nwant\n%s", body, tc.body)
			}
			if a := h.get(account); a.Reserved != 0 || len(h.events(account)) != before || len(h.mock.Requests()) != forwarded {
				t.Fatalf("a refused request held %s, booked %d events, forwarded %d", a.Reserved, len(h.events(account))-before, len(h.mock.Requests())-forwarded)
			}
			if tc.model == "mini" {
				return // the allowlist is the metered endpoints' (a model to check)
			}
			// Every endpoint a key reaches refuses it alike.
			status, b := h.do(http.MethodGet, "/v1/credits", secret, nil)
			if status != tc.status || string(b) != tc.body {
				t.Fatalf("GET /v1/credits: %d %s", status, b)
			}
		})
	}
}

// TestKeySettingsReachEveryProxyWithinTTL: two proxies sharing Redis, each with
// its key cache (TTL 5s on one fake clock): a suspension, a reactivation and a
// PATCHed key setting answer as before on both until the TTL passes, then as
// the new setting says on both.
func TestKeySettingsReachEveryProxyWithinTTL(t *testing.T) {
	const ttl = 5 * time.Second
	clock := &testClock{t: time.Now().UTC()}
	h := newHarness(t, func(o *Options) { o.Now = clock.Now; o.KeyCacheTTL = ttl })
	key := h.account("acme", "20.00")
	keys, err := h.store.ListKeys(h.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := New(h.proxy.opts)
	if err != nil {
		t.Fatal(err)
	}
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.inflight.Add(1)
		defer h.inflight.Done()
		p2.ServeHTTP(w, r)
	}))
	t.Cleanup(second.Close)
	expect := func(step string, status int, code string) {
		t.Helper()
		for _, base := range []string{h.server.URL, second.URL} {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini", false, `"max_tokens":5`)))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := readAll(t, res)
			if res.StatusCode != status || (code != "" && !strings.Contains(string(b), `"code": "`+code+`"`)) {
				t.Fatalf("%s, proxy %s: %d %s, want %d %s", step, base, res.StatusCode, b, status, code)
			}
		}
	}
	expect("at first", http.StatusOK, "")
	steps := []struct {
		name   string
		change func() error
		status int
		code   string
	}{
		{"suspended", func() error {
			_, err := h.store.UpdateAccount(h.ctx, "acme", billing.AccountUpdate{Status: ptrTo(billing.StatusSuspended)})
			return err
		}, http.StatusForbidden, "account_suspended"},
		{"active again", func() error {
			_, err := h.store.UpdateAccount(h.ctx, "acme", billing.AccountUpdate{Status: ptrTo(billing.StatusActive)})
			return err
		}, http.StatusOK, ""},
		{"allowlist", func() error {
			_, err := h.store.UpdateKey(h.ctx, "acme", keys[0].ID, billing.KeyUpdate{Models: &[]string{"gpt-4o"}})
			return err
		}, http.StatusForbidden, "model_not_allowed"},
		{"disabled", func() error {
			_, err := h.store.UpdateKey(h.ctx, "acme", keys[0].ID, billing.KeyUpdate{Models: &[]string{}, Disabled: ptrTo(true)})
			return err
		}, http.StatusUnauthorized, "key_disabled"},
	}
	prev, prevCode := http.StatusOK, ""
	for _, st := range steps {
		if err := st.change(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(ttl - time.Millisecond)
		expect(st.name+", within the TTL", prev, prevCode)
		clock.Advance(time.Millisecond)
		expect(st.name+", after the TTL", st.status, st.code)
		prev, prevCode = st.status, st.code
	}
}

// TestBatchModelAllowlist: a batch whose input file runs a model outside the
// key's allowlist is refused with 403 model_not_allowed, nothing held; one in
// the allowlist (through an alias entry) is created.
func TestBatchModelAllowlist(t *testing.T) {
	h, _ := newObjectHarness(t)
	h.account("acme", "20.00")
	_, narrow, err := h.store.CreateKeyWith(h.ctx, "acme", billing.KeySpec{Models: []string{"gpt-4o"}})
	if err != nil {
		t.Fatal(err)
	}
	_, wide, err := h.store.CreateKeyWith(h.ctx, "acme", billing.KeySpec{Models: []string{"mini"}})
	if err != nil {
		t.Fatal(err)
	}
	_, status, body := newBatch(t, h, narrow, batchFile(2), "")
	if status != http.StatusForbidden || !strings.Contains(string(body), `"code": "model_not_allowed"`) || !strings.Contains(string(body), "gpt-4o-mini") {
		t.Fatalf("narrow key: %d %s", status, body)
	}
	if a := h.get("acme"); a.Reserved != 0 {
		t.Fatalf("a refused batch held %s", a.Reserved)
	}
	if _, status, body := newBatch(t, h, wide, batchFile(2), ""); status != http.StatusOK {
		t.Fatalf("allowed key: %d %s", status, body)
	}
}

// TestModelsListTheKeysAllowlist: GET /v1/models lists, for a key with an
// allowlist, only the models (and aliases) it may use; another model's
// GET /v1/models/{id} is 404 model_not_found; a key without one sees all.
func TestModelsListTheKeysAllowlist(t *testing.T) {
	h := newHarness(t)
	all := h.account("acme")
	_, narrow, err := h.store.CreateKeyWith(h.ctx, "acme", billing.KeySpec{Models: []string{"mini", "gpt-4o"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(key string) string {
		status, body := h.do(http.MethodGet, "/v1/models", key, nil)
		var list modelList
		if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
			t.Fatalf("%d %s", status, body)
		}
		var out []string
		for _, m := range list.Data {
			out = append(out, m.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(narrow); got != "gpt-4o,gpt-4o-mini,mini" {
		t.Fatalf("the narrow key lists %s", got)
	}
	if got := ids(all); got != "dear,gpt-4o,gpt-4o-mini,mini,text-embedding-3-small" {
		t.Fatalf("the plain key lists %s", got)
	}
	if status, body := h.do(http.MethodGet, "/v1/models/dear", narrow, nil); status != http.StatusNotFound || !strings.Contains(string(body), `"code": "model_not_found"`) {
		t.Fatalf("another model: %d %s", status, body)
	}
	if status, _ := h.do(http.MethodGet, "/v1/models/mini", narrow, nil); status != http.StatusOK {
		t.Fatalf("an allowed alias: %d", status)
	}
}
