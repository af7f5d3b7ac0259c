package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
)

const demoTestToken = "demo-test-admin-token-0123456789"

// isolateDemo points the quickstart file and the admin environment at nothing
// the developer's machine has.
func isolateDemo(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv(envAdminURL, "")
	t.Setenv(envAdminToken, "")
}

// startQuickstart runs what `creditgate quickstart` runs: the embedded store,
// the mock upstream and the demo account with $5 and a key.
func startQuickstart(t *testing.T) (*app.App, string) {
	t.Helper()
	mock := mockupstream.New()
	mock.OutputTokens = 1000
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	doc, _ := json.Marshal(map[string]any{
		"listen":   "127.0.0.1:0",
		"admin":    map[string]any{"listen": "127.0.0.1:0", "tokens": []string{demoTestToken}},
		"redis":    map[string]any{"url": "memory://"},
		"upstream": map[string]any{"base_url": up.URL + "/v1"},
	})
	cfg, err := config.LoadBytes(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{Logger: zap.NewNop()})
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
	if _, err := seedDemo(context.Background(), a, cfg, money.MustParse("5.00")); err != nil {
		t.Fatal(err)
	}
	return a, "http://" + a.AdminAddr().String()
}

func runDemoCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "creditgate", SilenceErrors: true}
	addDemoCommand(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"demo"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestDemo drives a quickstart to the 429 the way `make run` then `make demo`
// do: the demo finds the quickstart through the file it leaves, and with
// explicit flags too.
func TestDemo(t *testing.T) {
	tests := []struct {
		name    string
		handoff bool // the quickstart left its file
		flags   func(adminURL, dataURL string) []string
	}{
		{name: "found through the quickstart's file", handoff: true,
			flags: func(string, string) []string { return []string{"--interval", "0"} }},
		{name: "told by flags", flags: func(adminURL, dataURL string) []string {
			return []string{"--interval", "0", "--admin-url", adminURL, "--admin-token", demoTestToken, "--url", dataURL}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolateDemo(t)
			a, adminURL := startQuickstart(t)
			dataURL := "http://" + a.DataAddr().String()
			if tc.handoff {
				remove, err := writeQuickstartInfo(quickstartInfo{AdminURL: adminURL, AdminToken: demoTestToken, DataURL: dataURL, MockUpstream: true, PID: os.Getpid()})
				if err != nil {
					t.Fatal(err)
				}
				defer remove()
			}
			out, err := runDemoCommand(t, tc.flags(adminURL, dataURL)...)
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out)
			}
			served := regexp.MustCompile(`(?m)^\s*\d+  200 gpt-4`).FindAllString(out, -1)
			if !strings.Contains(out, "429 insufficient_quota") {
				t.Fatalf("no 429 in the output:\n%s", out)
			}
			// $5 of gpt-4 at $60 per 1M output tokens, 1000 tokens an answer: ~80 answers.
			if len(served) < 70 || len(served) > 95 {
				t.Fatalf("%d answers before the 429:\n%s", len(served), out)
			}
			usage := regexp.MustCompile(`(?m)^\S+\s+usage\s`).FindAllString(out, -1)
			if len(usage) != len(served) {
				t.Fatalf("the ledger shows %d usage events for %d answers:\n%s", len(usage), len(served), out)
			}
			if strings.Contains(out, " topup ") {
				t.Errorf("the ledger of the run shows the earlier top-up:\n%s", out)
			}
			c := &client.Client{BaseURL: adminURL, Token: demoTestToken}
			acct, err := c.GetAccount(context.Background(), demoAccount)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "Balance "+acct.Balance.String()) || money.Micros(acct.Balance) > 0 {
				t.Errorf("final balance %s:\n%s", acct.Balance, out)
			}
			keys, err := c.ListKeys(context.Background(), demoAccount)
			if err != nil || len(keys.Data) != 1 || !strings.Contains(out, "Revoked the demo key") {
				t.Errorf("the demo's key was not revoked: %+v %v\n%s", keys.Data, err, out)
			}
			if !strings.Contains(out, adminURL+"/dashboard/") {
				t.Errorf("no dashboard link:\n%s", out)
			}
		})
	}
}

func TestDemoRefusals(t *testing.T) {
	tests := []struct {
		name    string
		info    func(adminURL, dataURL string) *quickstartInfo
		args    func(adminURL string) []string
		wantErr string
	}{
		{
			name: "real upstream without --real-money",
			info: func(adminURL, dataURL string) *quickstartInfo {
				return &quickstartInfo{AdminURL: adminURL, AdminToken: demoTestToken, DataURL: dataURL, PID: os.Getpid()}
			},
			args:    func(string) []string { return nil },
			wantErr: "--real-money",
		},
		{
			name:    "no quickstart and no token",
			args:    func(string) []string { return nil },
			wantErr: "make run",
		},
		{
			name: "an account that does not exist",
			args: func(adminURL string) []string {
				return []string{"--admin-url", adminURL, "--admin-token", demoTestToken, "--account", "nobody"}
			},
			wantErr: "--account",
		},
		{
			name: "a wrong token",
			args: func(adminURL string) []string {
				return []string{"--admin-url", adminURL, "--admin-token", "wrong-token-0123456789"}
			},
			wantErr: envAdminToken,
		},
		{
			name:    "bad flags",
			args:    func(adminURL string) []string { return []string{"--admin-url", adminURL, "--max-tokens", "0"} },
			wantErr: "--max-tokens",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolateDemo(t)
			a, adminURL := startQuickstart(t)
			if tc.info != nil {
				remove, err := writeQuickstartInfo(*tc.info(adminURL, "http://"+a.DataAddr().String()))
				if err != nil {
					t.Fatal(err)
				}
				defer remove()
			}
			out, err := runDemoCommand(t, tc.args(adminURL)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one mentioning %q\n%s", err, tc.wantErr, out)
			}
			keys, err := (&client.Client{BaseURL: adminURL, Token: demoTestToken}).ListKeys(context.Background(), demoAccount)
			if err != nil || len(keys.Data) != 1 {
				t.Errorf("a refused demo created keys: %+v %v", keys.Data, err)
			}
		})
	}
}

func TestQuickstartInfoFile(t *testing.T) {
	isolateDemo(t)
	if _, ok := readQuickstartInfo(); ok {
		t.Fatal("found a quickstart file in an empty cache directory")
	}
	mine := quickstartInfo{AdminURL: "http://127.0.0.1:8081", AdminToken: "tok", DataURL: "http://localhost:8080", MockUpstream: true, PID: 41}
	remove, err := writeQuickstartInfo(mine)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := quickstartInfoPath()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("quickstart file %s: %v %v, want mode 0600", path, st.Mode(), err)
	}
	if got, ok := readQuickstartInfo(); !ok || got != mine {
		t.Fatalf("read back %+v %v", got, ok)
	}
	// A newer quickstart replaced the file: the older one's removal leaves it.
	newer := mine
	newer.PID, newer.AdminToken = 42, "tok2"
	removeNewer, err := writeQuickstartInfo(newer)
	if err != nil {
		t.Fatal(err)
	}
	remove()
	if got, ok := readQuickstartInfo(); !ok || got != newer {
		t.Fatalf("after the old quickstart stopped: %+v %v", got, ok)
	}
	removeNewer()
	if _, ok := readQuickstartInfo(); ok {
		t.Fatal("the file outlived its quickstart")
	}
	// Garbage is ignored rather than trusted.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := readQuickstartInfo(); ok {
		t.Fatalf("read %+v from garbage", got)
	}
}

// TestDemoWithExportedAdminToken: after exporting what the quickstart's banner
// prints (CREDITGATE_ADMIN_URL and CREDITGATE_ADMIN_TOKEN), the demo still finds
// the quickstart's data plane and knows whether its upstream is real; a token
// that is not the quickstart's leaves the saved file out of it.
func TestDemoWithExportedAdminToken(t *testing.T) {
	tests := []struct {
		name     string
		info     func(adminURL, dataURL string) quickstartInfo
		env      func(adminURL string) map[string]string
		args     func(adminURL, dataURL string) []string
		wantErr  string // "" = the demo runs
		wantData string // "quickstart": the data URL of the running quickstart
	}{
		{
			name: "the banner's exports",
			env: func(adminURL string) map[string]string {
				return map[string]string{envAdminURL: adminURL, envAdminToken: demoTestToken}
			},
			wantData: "quickstart",
		},
		{
			name: "the quickstart's token as a flag, with its admin URL",
			args: func(adminURL, _ string) []string {
				return []string{"--admin-token", demoTestToken, "--admin-url", adminURL + "/"}
			},
			wantData: "quickstart",
		},
		{
			name: "the banner's exports and an explicit --url",
			info: func(adminURL, _ string) quickstartInfo {
				return quickstartInfo{AdminURL: adminURL, AdminToken: demoTestToken, DataURL: "http://127.0.0.1:1", MockUpstream: true, PID: os.Getpid()}
			},
			env: func(adminURL string) map[string]string {
				return map[string]string{envAdminURL: adminURL, envAdminToken: demoTestToken}
			},
			args:     func(_, dataURL string) []string { return []string{"--url", dataURL} },
			wantData: "quickstart",
		},
		{
			name: "the banner's exports, a real upstream",
			info: func(adminURL, dataURL string) quickstartInfo {
				return quickstartInfo{AdminURL: adminURL, AdminToken: demoTestToken, DataURL: dataURL, PID: os.Getpid()}
			},
			env: func(adminURL string) map[string]string {
				return map[string]string{envAdminURL: adminURL, envAdminToken: demoTestToken}
			},
			wantErr: "--real-money",
		},
		{
			name: "another creditgate's token: the file is not used",
			info: func(adminURL, _ string) quickstartInfo {
				// A real upstream would make the file's quickstart ask for --real-money.
				return quickstartInfo{AdminURL: adminURL, AdminToken: "another-quickstart-token-0123", DataURL: "http://127.0.0.1:1", PID: os.Getpid()}
			},
			env: func(adminURL string) map[string]string {
				return map[string]string{envAdminURL: adminURL, envAdminToken: demoTestToken}
			},
			args:     func(_, dataURL string) []string { return []string{"--url", dataURL} },
			wantData: "flag",
		},
		{
			name: "the quickstart's token for another admin URL: the file is not used",
			info: func(adminURL, _ string) quickstartInfo {
				return quickstartInfo{AdminURL: "http://127.0.0.1:1", AdminToken: demoTestToken, DataURL: "http://127.0.0.1:1", PID: os.Getpid()}
			},
			env: func(adminURL string) map[string]string {
				return map[string]string{envAdminURL: adminURL, envAdminToken: demoTestToken}
			},
			args:     func(_, dataURL string) []string { return []string{"--url", dataURL} },
			wantData: "flag",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			isolateDemo(t)
			a, adminURL := startQuickstart(t)
			dataURL := "http://" + a.DataAddr().String()
			info := quickstartInfo{AdminURL: adminURL, AdminToken: demoTestToken, DataURL: dataURL, MockUpstream: true, PID: os.Getpid()}
			if tc.info != nil {
				info = tc.info(adminURL, dataURL)
			}
			remove, err := writeQuickstartInfo(info)
			if err != nil {
				t.Fatal(err)
			}
			defer remove()
			if tc.env != nil {
				for k, v := range tc.env(adminURL) {
					t.Setenv(k, v)
				}
			}
			args := []string{"--interval", "0", "--max-requests", "2"}
			if tc.args != nil {
				args = append(args, tc.args(adminURL, dataURL)...)
			}
			out, err := runDemoCommand(t, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q\n%s", err, tc.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out)
			}
			if !strings.Contains(out, "requests (max_tokens 1000) to "+dataURL+" until") || !strings.Contains(out, "Stopped after --max-requests 2") {
				t.Fatalf("the demo did not drive %s:\n%s", dataURL, out)
			}
			// The real-money caveat is printed only when the file does not say.
			if caveat := strings.Contains(out, "cost real money"); caveat != (tc.wantData == "flag") {
				t.Errorf("real-money caveat %v with the data URL from the %s:\n%s", caveat, tc.wantData, out)
			}
		})
	}
}
