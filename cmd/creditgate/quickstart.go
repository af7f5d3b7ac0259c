package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/portal"
)

// Quickstart account and grant: fixed ids, so the top-up is idempotent.
const (
	demoAccount = "demo"
	demoGrant   = "grant_quickstart_demo"
)

func quickstartCommand() *cobra.Command {
	var (
		listen, adminListen, mockListen string
		credit                          string
		mockOutput                      int
	)
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Run creditgate with an embedded store, a demo account with $5 and a key, and a mock upstream",
		Long: `Run creditgate for trying it out, with nothing to install:

  - the embedded in-process store (redis.url: memory://, NOT durable), unless
    CREDITGATE_REDIS_URL points at a real Redis;
  - the bundled mock OpenAI upstream, unless OPENAI_API_KEY (or
    CREDITGATE_UPSTREAM_API_KEY) is set, in which case requests go to OpenAI
    (or to CREDITGATE_UPSTREAM_BASE_URL); an OPENAI_API_KEY that is a
    creditgate key (sk-cg-..., as the banner says to export) is ignored;
  - an account "demo" with $5.00 of credit and a fresh app key;
  - an admin token (random unless CREDITGATE_ADMIN_TOKENS is set);
  - payments.provider demo: purchases are paid on a local checkout page that
    says plainly that nobody is charged, and auto-recharge charges a demo card.

It prints what to paste into curl, the OpenAI SDKs and the CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			amount, err := money.Parse(credit)
			if err != nil {
				return fmt.Errorf("--credit: %w", err)
			}
			env := creditgateEnv()
			upstreamKey := firstNonEmpty(env["CREDITGATE_UPSTREAM_API_KEY"], os.Getenv("OPENAI_API_KEY"))
			mockNote := "set OPENAI_API_KEY to use OpenAI"
			if env["CREDITGATE_UPSTREAM_API_KEY"] == "" && strings.HasPrefix(upstreamKey, billing.KeyPrefix) {
				// The shell kept what an earlier quickstart's banner said to export:
				// a creditgate key, which OpenAI would refuse.
				upstreamKey = ""
				mockNote = "OPENAI_API_KEY holds a creditgate key, not an OpenAI one"
			}
			adminToken := strings.Split(env["CREDITGATE_ADMIN_TOKENS"], ",")[0]
			if adminToken == "" {
				adminToken = "cg-admin-" + randomHex(16)
			}
			settings := map[string]any{
				"listen": listen,
				"admin":  map[string]any{"listen": adminListen, "tokens": []string{adminToken}},
				"redis":  map[string]any{"url": "memory://"},
				// The whole purchase flow, charging nobody: the demo checkout page,
				// and its demo card for auto-recharge.
				"payments": map[string]any{"provider": "demo"},
			}
			if u := localURL(listen); u != "" {
				settings["portal"] = map[string]any{"public_url": u}
			}
			var upstreamNote string
			if upstreamKey != "" {
				settings["upstream"] = map[string]any{"api_key": upstreamKey}
			} else {
				mockURL, stopMock, err := startMock(mockListen, mockOutput)
				if err != nil {
					return err
				}
				defer stopMock()
				settings["upstream"] = map[string]any{"base_url": mockURL}
				upstreamNote = "the bundled mock upstream at " + mockURL + " (" + mockNote + ")"
			}
			// JSON is YAML: the generated file quotes every value safely.
			doc, _ := json.Marshal(settings)
			cfg, err := config.LoadBytes(doc, env)
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			if upstreamKey != "" {
				upstreamNote = cfg.Upstream.BaseURL + " (a real upstream, with your API key: requests cost money)"
			}
			// The quickstart's address and token, for `creditgate demo`; removed on exit.
			var forgetQuickstart func()
			defer func() {
				if forgetQuickstart != nil {
					forgetQuickstart()
				}
			}()
			return run(cmd.Context(), cfg, app.Options{}, func(a *app.App) error {
				key, err := seedDemo(cmd.Context(), a, cfg, amount)
				if err != nil {
					return err
				}
				forgetQuickstart, err = writeQuickstartInfo(quickstartInfo{
					AdminURL: "http://" + hostPort(a.AdminAddr()), AdminToken: adminToken,
					DataURL: "http://" + hostPort(a.DataAddr()), MockUpstream: upstreamKey == "", PID: os.Getpid(),
				})
				if err != nil {
					a.Logger().Warn("could not save the quickstart's address for `creditgate demo`; pass it --admin-url and --admin-token", zap.Error(err))
				}
				dataURL := "http://" + hostPort(a.DataAddr())
				return printBanner(cmd.OutOrStdout(), banner{
					DataURL: dataURL, BillingURL: demoBillingLink(cmd.Context(), a, dataURL),
					AdminURL: "http://" + hostPort(a.AdminAddr()),
					Key:      key, AdminToken: adminToken, Credit: credit,
					Upstream: upstreamNote, Embedded: strings.HasPrefix(cfg.Redis.URL, "memory:"),
				})
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", ":8080", "data-plane address")
	cmd.Flags().StringVar(&adminListen, "admin-listen", "127.0.0.1:8081", "admin API address")
	cmd.Flags().StringVar(&mockListen, "mock-listen", "127.0.0.1:0", "mock upstream address (when no OPENAI_API_KEY)")
	cmd.Flags().StringVar(&credit, "credit", "5.00", "credit of the demo account, USD")
	cmd.Flags().IntVar(&mockOutput, "mock-output-tokens", 1000, "tokens the mock upstream generates per answer (fewer when max_tokens says so)")
	return cmd
}

// seedDemo creates the demo account (if needed), credits it once and issues a key.
func seedDemo(ctx context.Context, a *app.App, cfg *config.Config, amount money.Micros) (string, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	st := a.Store()
	if _, err := st.CreateAccount(ctx, demoAccount, cfg.Billing.DefaultTier); err != nil && !errors.Is(err, billing.ErrAccountExists) {
		return "", fmt.Errorf("creating the demo account: %w", err)
	}
	pol := cfg.Policy()
	if _, err := st.TopUp(ctx, pol, billing.TopUpRequest{Account: demoAccount, GrantID: demoGrant, Amount: amount, Source: billing.SourcePurchase}); err != nil {
		return "", fmt.Errorf("crediting the demo account: %w", err)
	}
	_, secret, err := st.CreateKey(ctx, demoAccount, "quickstart")
	if err != nil {
		return "", fmt.Errorf("creating the demo key: %w", err)
	}
	return secret, nil
}

// startMock serves the mock upstream and returns its base URL.
func startMock(addr string, outputTokens int) (string, func(), error) {
	if err := mockupstream.Preload(); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--mock-listen: %w", err)
	}
	m := mockupstream.New()
	m.OutputTokens = outputTokens
	m.MaxRecorded = 1 // the quickstart never reads them
	m.BatchDelay = 30 * time.Second
	m.BackgroundDelay = 5 * time.Second // then billed by the next poller round (a minute)
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/v1", func() { _ = srv.Close() }, nil
}

type banner struct {
	DataURL, AdminURL, Key, AdminToken, Credit, Upstream string
	// BillingURL is a portal link to the demo account's Billing page ("" when
	// the store keeps no portal sessions).
	BillingURL string
	Embedded   bool
}

// demoBillingLink mints a single-use link to the demo account's Billing page,
// or "" (logged) when it cannot.
func demoBillingLink(ctx context.Context, a *app.App, dataURL string) string {
	sessions, ok := any(a.Store()).(billing.PortalStore)
	if !ok {
		return ""
	}
	if ctx == nil {
		ctx = context.Background()
	}
	link, err := portal.NewLink(ctx, sessions, dataURL, billing.PortalLink{Account: demoAccount,
		ExpiresAt: time.Now().Add(portal.DefaultLinkTTL), Actor: "quickstart"})
	if err != nil {
		a.Logger().Warn("could not make a Billing page link for the banner", zap.Error(err))
		return ""
	}
	return link
}

var bannerTemplate = template.Must(template.New("banner").Parse(`
creditgate quickstart is running.
  store:     {{if .Embedded}}embedded, in memory (NOT durable: lost when this process stops){{else}}Redis{{end}}
  upstream:  {{.Upstream}}
  account:   "demo" with ${{.Credit}} of credit

Point any OpenAI client at it:
  export OPENAI_BASE_URL={{.DataURL}}/v1
  export OPENAI_API_KEY={{.Key}}

  curl {{.DataURL}}/v1/chat/completions \
    -H "Authorization: Bearer {{.Key}}" -H "Content-Type: application/json" \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

  curl {{.DataURL}}/v1/credits -H "Authorization: Bearer {{.Key}}"

{{if .BillingURL}}Open the demo account's Billing page (a single-use link, valid 10 minutes):
  {{.BillingURL}}

{{end}}Watch the spend on the dashboard (sign in with the admin token below):
  {{.AdminURL}}/dashboard/
and spend the demo account's credit from another terminal, until the 429:
  make demo        # or: go run ./cmd/creditgate demo

Operate it (admin API at {{.AdminURL}}, metrics at {{.AdminURL}}/metrics):
  export CREDITGATE_ADMIN_URL={{.AdminURL}}
  export CREDITGATE_ADMIN_TOKEN={{.AdminToken}}
  go run ./cmd/creditgate accounts get demo
  go run ./cmd/creditgate credits add demo 5.00
  go run ./cmd/creditgate ledger demo

Press Ctrl-C to stop.
`))

func printBanner(w io.Writer, b banner) error { return bannerTemplate.Execute(w, b) }

// creditgateEnv returns the process's CREDITGATE_* variables.
func creditgateEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, config.EnvPrefix) {
			env[k] = v
		}
	}
	return env
}

func hostPort(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// localURL is the http URL of a listen address on this machine
// ("http://localhost:8080" for ":8080"), or "" when the port is chosen at
// listening (":0").
func localURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
