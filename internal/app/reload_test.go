package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// Log messages of a reload (internal/app's reload and its onError callback).
const (
	msgReloaded    = "config reloaded"
	msgRejected    = "config reload rejected; the running configuration stays in force"
	msgRestartKeys = "config changed keys that only take effect after a restart"
)

// reloadParams are the hot-reloadable values the test edits in the file.
type reloadParams struct {
	AdminToken, UpstreamURL   string
	InputPrice, OutputPrice   string // the model "metered", USD per 1M tokens
	Grace, MaxTopUp, MinTopUp string
	Clamp                     bool
	// Broken, when set, is spliced into the pricing of "metered": a bad edit.
	Broken string
	// Notify, when set, is the file's notify section.
	Notify string
}

var reloadTemplate = template.Must(template.New("config").Parse(`# written by reload_test.go
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: [ "{{.AdminToken}}" ] }
upstream: { base_url: "{{.UpstreamURL}}" }
redis: { url: "memory://" }
billing:
  grace: "{{.Grace}}"
  min_purchase: "{{.MinTopUp}}"
  clamp_max_tokens: {{.Clamp}}
  default_tier: standard
  tiers:
    standard: { max_topup: "{{.MaxTopUp}}", max_balance: "1000.00" }
pricing:
  models:
    metered: { input: "{{.InputPrice}}", output: "{{.OutputPrice}}"{{.Broken}}, max_output_tokens: 4000 }
    # $0.05 a token: an uncapped request costs more than any balance here.
    pricey:  { input: "1.00", output: "50000.00", max_output_tokens: 2000 }
{{.Notify}}
`))

func (p reloadParams) yaml(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := reloadTemplate.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// reloadHarness is a creditgate started from a file that the test edits.
type reloadHarness struct {
	t      *testing.T
	path   string
	params reloadParams
	app    *App
	logs   *observer.ObservedLogs
	admin  *client.Client
	data   string
}

func startFromFile(t *testing.T, p reloadParams) *reloadHarness {
	t.Helper()
	// The file alone decides: CREDITGATE_* overrides in the developer's shell
	// would change what the test expects (empty values are ignored).
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.EnvPrefix) && !strings.HasPrefix(k, config.EnvPrefix+"TEST_") {
			t.Setenv(k, "")
		}
	}
	mock := mockupstream.New()
	mock.OutputTokens = 1000
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	p.AdminToken, p.UpstreamURL = adminToken, up.URL+"/v1"

	h := &reloadHarness{t: t, path: filepath.Join(t.TempDir(), "creditgate.yaml"), params: p}
	if err := os.WriteFile(h.path, p.yaml(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(h.path)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	h.app, err = New(context.Background(), cfg, Options{ConfigPath: h.path, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.app.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.app.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	h.admin = &client.Client{BaseURL: "http://" + h.app.AdminAddr().String(), Token: adminToken}
	h.data = "http://" + h.app.DataAddr().String()
	return h
}

// edit rewrites the file (in place, or by renaming a new file over it as
// editors and Kubernetes do) and waits until the app has reloaded or rejected
// it; it returns the log entry that says which.
func (h *reloadHarness) edit(change func(*reloadParams), byRename bool) observer.LoggedEntry {
	h.t.Helper()
	change(&h.params)
	seen := h.reloadLogs()
	data := h.params.yaml(h.t)
	if byRename {
		tmp := h.path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			h.t.Fatal(err)
		}
		if err := os.Rename(tmp, h.path); err != nil {
			h.t.Fatal(err)
		}
	} else if err := os.WriteFile(h.path, data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	// A generous bound against a hang, not a timing assertion: fsnotify plus the
	// watcher's 100ms debounce usually take a fraction of a second.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if entries := h.reloadLogs(); len(entries) > len(seen) {
			return entries[len(seen)]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no reload logged within 15s of editing %s", h.path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *reloadHarness) reloadLogs() []observer.LoggedEntry {
	return h.logs.Filter(func(e observer.LoggedEntry) bool {
		return e.Message == msgReloaded || e.Message == msgRejected
	}).AllUntimed()
}

// chat sends one chat completion with the key; maxTokens 0 leaves the cap out.
func (h *reloadHarness) chat(key, model string, maxTokens int) (*http.Response, []byte) {
	h.t.Helper()
	capField := ""
	if maxTokens > 0 {
		capField = fmt.Sprintf(`"max_tokens":%d,`, maxTokens)
	}
	req, _ := http.NewRequest(http.MethodPost, h.data+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`",`+capField+`"messages":[{"role":"user","content":"Tell me about prepaid credit."}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, body
}

// usageOf returns the ledger's usage event of a request.
func (h *reloadHarness) usageOf(account, requestID string) admin.Event {
	h.t.Helper()
	page, err := h.admin.Ledger(context.Background(), account, "", admin.MaxLedgerLimit)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, ev := range page.Data {
		if ev.Type == "usage" && ev.RequestID == requestID {
			return ev
		}
	}
	h.t.Fatalf("no usage event for request %s", requestID)
	return admin.Event{}
}

// billedAt sends a capped request for "metered" and checks it was billed at the
// given prices: ceil((prompt × input + completion × output) / 1e6) micro-USD.
func (h *reloadHarness) billedAt(key, input, output string) {
	h.t.Helper()
	res, body := h.chat(key, "metered", 200)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("request: %d %s", res.StatusCode, body)
	}
	ev := h.usageOf("acme", res.Header.Get(proxy.RequestIDHeader))
	in, out := money.MustParse(input), money.MustParse(output)
	total := *ev.PromptTokens*int64(in) + *ev.CompletionTokens*int64(out)
	want := money.Micros((total + 999_999) / 1_000_000)
	if *ev.Cost != want || *ev.CompletionTokens == 0 {
		h.t.Fatalf("%d prompt + %d completion tokens billed %s; at $%s/$%s per 1M that is %s",
			*ev.PromptTokens, *ev.CompletionTokens, ev.Cost, input, output, want)
	}
}

// TestHotReload edits the configuration file of a running creditgate: pricing,
// grace, tiers and clamping change without a restart, and a bad edit is
// rejected with a log line naming the key while the old configuration serves on.
func TestHotReload(t *testing.T) {
	h := startFromFile(t, reloadParams{InputPrice: "1.00", OutputPrice: "10.00", Grace: "0.50",
		MinTopUp: "5.00", MaxTopUp: "10.00", Clamp: false})
	ctx := context.Background()
	if _, err := h.admin.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.AddCredits(ctx, "acme", "10.00", nil, ""); err != nil {
		t.Fatal(err)
	}
	key, err := h.admin.CreateKey(ctx, "acme", "reload")
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name     string
		before   func(t *testing.T)
		edit     func(p *reloadParams)
		byRename bool
		rejected string // the key a rejected edit must name; "" = the edit applies
		after    func(t *testing.T)
	}{
		{
			name:   "a price change bills the next request at the new price",
			before: func(t *testing.T) { h.billedAt(key.Key, "1.00", "10.00") },
			edit:   func(p *reloadParams) { p.OutputPrice = "20.00" },
			after:  func(t *testing.T) { h.billedAt(key.Key, "1.00", "20.00") },
		},
		{
			name:     "a bad edit is rejected naming the key, and the old prices stay",
			edit:     func(p *reloadParams) { p.InputPrice = "3.00"; p.Broken = `, cached_input: "1e3"` },
			rejected: "pricing.models.metered.cached_input",
			after:    func(t *testing.T) { h.billedAt(key.Key, "1.00", "20.00") },
		},
		{
			name:     "the file fixed again applies whole (written by rename, as editors do)",
			edit:     func(p *reloadParams) { p.Broken = "" },
			byRename: true,
			after:    func(t *testing.T) { h.billedAt(key.Key, "3.00", "20.00") },
		},
		{
			name: "grace",
			before: func(t *testing.T) {
				if a, err := h.admin.GetAccount(ctx, "acme"); err != nil || a.Grace != money.MustParse("0.50") {
					t.Fatalf("grace before: %+v %v", a.Grace, err)
				}
			},
			edit: func(p *reloadParams) { p.Grace = "2.00" },
			after: func(t *testing.T) {
				if a, err := h.admin.GetAccount(ctx, "acme"); err != nil || a.Grace != money.MustParse("2.00") {
					t.Fatalf("grace after: %+v %v", a.Grace, err)
				}
			},
		},
		{
			name: "a notice webhook added at run time waits for a restart; the new threshold applies",
			edit: func(p *reloadParams) {
				p.Notify = `notify: { webhook: { url: "http://127.0.0.1:9/hook", secret: "reload-test-secret-0123456789" }, low_balance: "3.00" }`
			},
			after: func(t *testing.T) {
				warned := h.logs.FilterMessage(msgRestartKeys).All()
				if len(warned) == 0 {
					t.Fatal("adding a notice webhook logged no restart warning")
				}
				keys := fmt.Sprint(warned[len(warned)-1].ContextMap()["keys"])
				if !strings.Contains(keys, "notify.webhook.url") || strings.Contains(keys, "notify.low_balance") {
					t.Fatalf("restart warning names %s; want notify.webhook.url and not notify.low_balance", keys)
				}
				s := h.app.settings.Load()
				if s.Triggers.Notices {
					t.Fatal("notices are queued although no notice sender exists until a restart")
				}
				if s.Triggers.LowBalance != money.MustParse("3.00") {
					t.Fatalf("low_balance after reload: %s, want 3.00", s.Triggers.LowBalance)
				}
			},
		},
		{
			name: "tiers: a raised max_topup takes a top-up refused before",
			before: func(t *testing.T) {
				var apiErr *client.APIError
				if _, err := h.admin.AddCredits(ctx, "acme", "20.00", nil, ""); !errors.As(err, &apiErr) || apiErr.Code != "above_max_topup" {
					t.Fatalf("top-up of 20 with max_topup 10: %v", err)
				}
			},
			edit: func(p *reloadParams) { p.MaxTopUp = "50.00" },
			after: func(t *testing.T) {
				if _, err := h.admin.AddCredits(ctx, "acme", "20.00", nil, ""); err != nil {
					t.Fatalf("top-up of 20 with max_topup 50: %v", err)
				}
			},
		},
		{
			name: "clamp: an uncapped request refused without clamping is clamped and served with it",
			before: func(t *testing.T) {
				res, body := h.chat(key.Key, "pricey", 0)
				if res.StatusCode != http.StatusTooManyRequests || res.Header.Get(proxy.ReasonHeader) != "insufficient" {
					t.Fatalf("uncapped pricey request without clamping: %d %s %s", res.StatusCode, res.Header.Get(proxy.ReasonHeader), body)
				}
			},
			edit: func(p *reloadParams) { p.Clamp = true },
			after: func(t *testing.T) {
				res, body := h.chat(key.Key, "pricey", 0)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("uncapped pricey request with clamping: %d %s", res.StatusCode, body)
				}
				ev := h.usageOf("acme", res.Header.Get(proxy.RequestIDHeader))
				if *ev.CompletionTokens <= 0 || *ev.CompletionTokens >= 1000 {
					t.Fatalf("clamped request produced %d completion tokens; the cap should be below the mock's 1000", *ev.CompletionTokens)
				}
				a, err := h.admin.GetAccount(ctx, "acme")
				if err != nil || money.Micros(a.Balance) < -money.MustParse("2.00") {
					t.Fatalf("balance %s after a clamped request: the overdraft must stay within grace (%v)", a.Balance, err)
				}
			},
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			h.t = t
			defer func(parent *testing.T) { h.t = parent }(h.t)
			if s.before != nil {
				s.before(t)
			}
			entry := h.edit(s.edit, s.byRename)
			if s.rejected == "" {
				if entry.Message != msgReloaded {
					t.Fatalf("edit rejected: %v", entry.ContextMap())
				}
			} else {
				cause := fmt.Sprint(entry.ContextMap()["error"])
				if entry.Message != msgRejected || entry.Level != zapcore.ErrorLevel || !strings.Contains(cause, s.rejected) {
					t.Fatalf("bad edit: logged %q at %s with error %q; want a rejection naming %s", entry.Message, entry.Level, cause, s.rejected)
				}
			}
			s.after(t)
		})
	}
	if n := len(h.logs.FilterMessage(msgRejected).All()); n != 1 {
		t.Errorf("%d rejections logged, want exactly the one bad edit", n)
	}
	// The reloads, the refusal and the clamp show in the metrics.
	res, err := http.Get("http://" + h.app.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`creditgate_config_reloads_total{result="ok"} 6`, `creditgate_config_reloads_total{result="failed"} 1`,
		`creditgate_requests_total{endpoint="/v1/chat/completions",model="pricey",status="429"} 1`,
		`creditgate_quota_exceeded_total{reason="insufficient"} 1`, `creditgate_clamped_total{model="pricey"} 1`} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
