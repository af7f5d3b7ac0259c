package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

const adminToken = "test-admin-token-0123456789"

// start runs a whole creditgate on the embedded store in front of the mock upstream.
func start(t *testing.T, extraYAML string) (*App, *mockupstream.Server) {
	t.Helper()
	mock := mockupstream.New()
	mock.OutputTokens = 1000
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	doc := fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: [%q] }
upstream: { base_url: %q }
redis: { url: "memory://" }
%s`, adminToken, up.URL+"/v1", extraYAML)
	cfg, err := config.LoadBytes([]byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveApp(t, cfg, Options{Logger: zap.NewNop()}), mock
}

// serveApp builds an App of cfg and o and serves it until t ends, when it is
// shut down (within 10 s) and its Serve must have returned nil.
func serveApp(t *testing.T, cfg *config.Config, o Options) *App {
	t.Helper()
	a, err := New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a
}

// TestNewUserFlow is the README's promise: create an account, top it up with $5
// through the admin API, call until the balance runs out, and get OpenAI's 429.
func TestNewUserFlow(t *testing.T) {
	a, _ := start(t, "")
	ctx := context.Background()
	c := &client.Client{BaseURL: "http://" + a.AdminAddr().String(), Token: adminToken}
	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCredits(ctx, "acme", "5.00", nil, "first-topup"); err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}

	data := "http://" + a.DataAddr().String()
	var last *http.Response
	var lastBody []byte
	calls := 0
	for ; calls < 500; calls++ {
		req, _ := http.NewRequest(http.MethodPost, data+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4","max_tokens":1000,"messages":[{"role":"user","content":"Hello!"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		lastBody, _ = io.ReadAll(res.Body)
		res.Body.Close()
		last = res
		if res.StatusCode != http.StatusOK {
			break
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || string(lastBody) != proxy.QuotaExceededBody {
		t.Fatalf("after %d calls: %d %s", calls, last.StatusCode, lastBody)
	}
	acct, err := c.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	bal := money.Micros(acct.Balance)
	if bal > 0 || bal < -money.MustParse("0.50") || acct.Reserved != 0 {
		t.Fatalf("balance %s reserved %s after %d calls", acct.Balance, acct.Reserved, calls)
	}
	if calls < 50 || calls > 100 {
		t.Fatalf("$5 of gpt-4 at ~$0.06 a call lasted %d calls", calls)
	}
	ledger, err := c.Ledger(ctx, "acme", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ledger.Data); n != calls+1 {
		t.Fatalf("%d ledger events for 1 top-up and %d calls", n, calls)
	}
	var credits struct{ Balance string }
	req, _ := http.NewRequest(http.MethodGet, data+"/v1/credits", nil)
	req.Header.Set("Authorization", "Bearer "+key.Key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&credits); err != nil || credits.Balance != acct.Balance.String() {
		t.Fatalf("/v1/credits balance %q, admin says %s (%v)", credits.Balance, acct.Balance, err)
	}
}

func TestReadiness(t *testing.T) {
	a, _ := start(t, "")
	res, err := http.Get("http://" + a.AdminAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("readyz %d", res.StatusCode)
	}
}
