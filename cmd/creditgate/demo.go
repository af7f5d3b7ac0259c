package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/proxy"
)

// Defaults of `creditgate demo`.
const (
	defaultDataURL      = "http://localhost:8080"
	defaultDemoModel    = "gpt-4" // $60 per 1M output tokens: $5 lasts about 80 mock answers
	defaultDemoMaxToken = 1000
	defaultDemoRequests = 1000
	defaultDemoInterval = 100 * time.Millisecond // slow enough to watch on the dashboard
	demoRequestTimeout  = 2 * time.Minute
	demoLedgerPage      = admin.MaxLedgerLimit
)

// quickstartInfo is what a running quickstart leaves for local tools such as
// `creditgate demo`, so that the second command of "make run, then make demo"
// needs no copy-pasting. It holds the admin token, so the file is private to
// the user (0600 in a 0700 directory) and removed when the quickstart stops.
type quickstartInfo struct {
	AdminURL   string `json:"admin_url"`
	AdminToken string `json:"admin_token"`
	DataURL    string `json:"data_url"`
	// MockUpstream is true when requests go to the bundled mock (no real money).
	MockUpstream bool `json:"mock_upstream"`
	PID          int  `json:"pid"`
}

// quickstartInfoPath is where the quickstart writes its quickstartInfo.
func quickstartInfoPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "creditgate", "quickstart.json"), nil
}

// writeQuickstartInfo saves info for `creditgate demo`; the returned func
// removes the file (call it when the quickstart stops).
func writeQuickstartInfo(info quickstartInfo) (remove func(), err error) {
	path, err := quickstartInfoPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	// Write a new file and rename it over, so a reader never sees half of it and
	// a file or link planted at the path is replaced rather than written through.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".quickstart-*.json")
	if err != nil {
		return nil, err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o600), os.Rename(tmp.Name(), path)); err != nil {
		os.Remove(tmp.Name())
		return nil, err
	}
	return func() {
		// Only our own file: a newer quickstart may have replaced it.
		if cur, ok := readQuickstartInfo(); ok && cur.PID == info.PID {
			os.Remove(path)
		}
	}, nil
}

// readQuickstartInfo returns what a running quickstart left, if anything.
func readQuickstartInfo() (quickstartInfo, bool) {
	path, err := quickstartInfoPath()
	if err != nil {
		return quickstartInfo{}, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return quickstartInfo{}, false
	}
	var info quickstartInfo
	if err := json.Unmarshal(b, &info); err != nil || info.AdminURL == "" {
		return quickstartInfo{}, false
	}
	return info, true
}

// demoOptions are the flags of `creditgate demo`.
type demoOptions struct {
	clientOptions
	dataURL     string
	account     string
	model       string
	maxTokens   int
	maxRequests int
	interval    time.Duration
	keepKey     bool
	realMoney   bool
}

// addDemoCommand adds `creditgate demo` to root.
func addDemoCommand(root *cobra.Command) {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Drive a running quickstart with requests until the 429, then print the ledger",
		Long: `Drive a running creditgate (the quickstart: make run) until the account runs out.

It creates an app key for the account (default "demo") through the admin API,
sends chat completions to the data plane one after the other, printing each
answer and the balance, until creditgate answers 429 insufficient_quota. Then it
prints the ledger entries of the run and the account's balance, and revokes the
key (unless --keep-key). Open the dashboard meanwhile to watch the spend.

The admin API is found like the other client commands (--admin-url, --admin-token
or CREDITGATE_ADMIN_URL, CREDITGATE_ADMIN_TOKEN); without them, from the running
quickstart on this machine. The running quickstart is also used when the admin
token given is its own (as after exporting what its banner prints) and the admin
URL, if given, is its own: then --url defaults to the quickstart's data plane
rather than ` + defaultDataURL + `. Against a real upstream (the quickstart
started with OPENAI_API_KEY) it spends real money, so it then asks for
--real-money.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.adminURL, "admin-url", defaultAdminURL, "control-plane base URL (env "+envAdminURL+")")
	f.StringVar(&o.adminToken, "admin-token", "", "admin token (env "+envAdminToken+"; default: the running quickstart's)")
	f.StringVar(&o.dataURL, "url", defaultDataURL, "data-plane base URL (default: the running quickstart's, else "+defaultDataURL+")")
	f.StringVar(&o.account, "account", demoAccount, "account to spend")
	f.StringVar(&o.model, "model", defaultDemoModel, "model to request")
	f.IntVar(&o.maxTokens, "max-tokens", defaultDemoMaxToken, "max_tokens of each request")
	f.IntVar(&o.maxRequests, "max-requests", defaultDemoRequests, "stop after this many requests even without a 429")
	f.DurationVar(&o.interval, "interval", defaultDemoInterval, "pause between requests")
	f.BoolVar(&o.keepKey, "keep-key", false, "keep the key the demo creates (it is revoked at the end otherwise)")
	f.BoolVar(&o.realMoney, "real-money", false, "drive a quickstart whose upstream is real (OpenAI), spending real money")
	root.AddCommand(cmd)
}

func runDemo(cmd *cobra.Command, o *demoOptions) error {
	if o.maxTokens < 1 || o.maxRequests < 1 || o.interval < 0 {
		return errors.New("--max-tokens and --max-requests must be at least 1, --interval not negative")
	}
	out := cmd.OutOrStdout()
	o.output = "table"
	var c *client.Client
	qs, haveQS := readQuickstartInfo()
	adminFromQS := haveQS && usesQuickstart(cmd, o, qs)
	if adminFromQS {
		// Talk to the quickstart running on this machine.
		adminURL := qs.AdminURL
		if v := os.Getenv(envAdminURL); v != "" && !cmd.Flags().Changed("admin-url") {
			adminURL = v
		} else if cmd.Flags().Changed("admin-url") {
			adminURL = o.adminURL
		}
		if !cmd.Flags().Changed("url") && qs.DataURL != "" {
			o.dataURL = qs.DataURL
		}
		c = &client.Client{BaseURL: adminURL, Token: qs.AdminToken}
	} else {
		var err error
		if c, err = o.client(cmd); err != nil {
			return fmt.Errorf("%w (or start the quickstart first: make run)", err)
		}
	}
	cmd.SilenceUsage = true
	if adminFromQS && !qs.MockUpstream && !o.realMoney {
		return errors.New("the running quickstart forwards to a real upstream (OPENAI_API_KEY is set): the demo would spend real money until the account is empty; pass --real-money to go ahead")
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}

	acct, err := c.GetAccount(ctx, o.account)
	if err != nil {
		return demoHint(err, o)
	}
	cursor, err := ledgerEnd(ctx, c, o.account)
	if err != nil {
		return err
	}
	key, err := c.CreateKey(ctx, o.account, "demo "+time.Now().UTC().Format("2006-01-02 15:04:05"))
	if err != nil {
		return err
	}
	if !o.keepKey {
		defer func() {
			if err := c.RevokeKey(context.WithoutCancel(ctx), o.account, key.ID); err == nil {
				fmt.Fprintf(out, "Revoked the demo key %s.\n", key.ID)
			}
		}()
	}
	fmt.Fprintf(out, "Account %q has %s available. Created key %s (%s) for the demo.\n", o.account, acct.Available, key.ID, key.Hint)
	fmt.Fprintf(out, "Sending %s requests (max_tokens %d) to %s until the money runs out.\n", o.model, o.maxTokens, o.dataURL)
	if !adminFromQS {
		fmt.Fprintln(out, "(If this creditgate forwards to a real upstream, these requests cost real money.)")
	}
	fmt.Fprintf(out, "Watch it live: %s%s\n\n", strings.TrimSuffix(c.BaseURL, "/"), admin.DashboardPath)

	httpc := &http.Client{Timeout: demoRequestTimeout}
	limited := false
	for i := 1; ; i++ {
		if i > o.maxRequests {
			limited = true
			break
		}
		res, err := demoRequest(ctx, httpc, o, key.Key)
		if err != nil {
			return fmt.Errorf("request %d: %w (is creditgate listening at %s?)", i, err, o.dataURL)
		}
		if res.status == http.StatusTooManyRequests {
			fmt.Fprintf(out, "%4d  429 %s (reason: %s): %s\n", i, res.code, orDash(res.reason), res.message)
			break
		}
		if res.status != http.StatusOK {
			return fmt.Errorf("request %d: HTTP %d %s: %s", i, res.status, res.code, res.message)
		}
		balance := "?"
		if a, err := c.GetAccount(ctx, o.account); err == nil {
			balance = a.Balance.String()
		}
		fmt.Fprintf(out, "%4d  200 %s  %5d prompt + %5d completion tokens   balance %s\n", i, res.model, res.promptTokens, res.completionTokens, balance)
		if o.interval > 0 {
			select {
			case <-time.After(o.interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if limited {
		fmt.Fprintf(out, "Stopped after --max-requests %d without a 429.\n", o.maxRequests)
	}

	events, err := ledgerAfter(ctx, c, o.account, cursor)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nLedger of account %q during the demo (%d events, oldest first):\n", o.account, len(events))
	tw := newTable(out)
	fmt.Fprintln(tw, "ID\tTYPE\tAT\tAMOUNT\tBALANCE AFTER\tDETAILS")
	for _, ev := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.Type, formatTime(ev.At), ev.Amount, ev.BalanceAfter, eventDetails(ev))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	final, err := c.GetAccount(ctx, o.account)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nBalance %s (credit %s, debt %s). Top up to go on: creditgate credits add %s 5.00\n",
		final.Balance, final.Credit, final.Debt, o.account)
	return nil
}

// usesQuickstart reports whether the demo drives the running quickstart that
// left qs: when no admin token is given, or when the one given (--admin-token or
// CREDITGATE_ADMIN_TOKEN, as the quickstart's banner suggests exporting) is the
// quickstart's and the admin URL, if given, is the quickstart's too.
func usesQuickstart(cmd *cobra.Command, o *demoOptions, qs quickstartInfo) bool {
	token := os.Getenv(envAdminToken)
	if cmd.Flags().Changed("admin-token") {
		token = o.adminToken
	}
	if token == "" {
		return true
	}
	if token != qs.AdminToken {
		return false
	}
	adminURL := os.Getenv(envAdminURL)
	if cmd.Flags().Changed("admin-url") {
		adminURL = o.adminURL
	}
	return adminURL == "" || strings.TrimSuffix(adminURL, "/") == strings.TrimSuffix(qs.AdminURL, "/")
}

// demoHint adds what to do to the error of the first admin call.
func demoHint(err error, o *demoOptions) error {
	var apiErr *client.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
		return fmt.Errorf("%w: start the quickstart (make run), which creates it, or pick another with --account", err)
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		return fmt.Errorf("%w: use the admin token the quickstart printed (%s)", err, envAdminToken)
	case errors.As(err, &apiErr):
		return err
	}
	return fmt.Errorf("%w (is creditgate running? start it with: make run)", err)
}

// demoResult is what the demo reads of one answer.
type demoResult struct {
	status                         int
	model                          string
	promptTokens, completionTokens int64
	code, message, reason          string
}

func demoRequest(ctx context.Context, httpc *http.Client, o *demoOptions, key string) (demoResult, error) {
	body, _ := json.Marshal(map[string]any{
		"model":      o.model,
		"max_tokens": o.maxTokens,
		"messages":   []map[string]string{{"role": "user", "content": "Tell me about prepaid API credits."}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.dataURL, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return demoResult{}, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := httpc.Do(req)
	if err != nil {
		return demoResult{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return demoResult{}, err
	}
	var answer struct {
		Model string `json:"model"`
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
		Error *struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	r := demoResult{status: res.StatusCode, reason: res.Header.Get(proxy.ReasonHeader)}
	if err := json.Unmarshal(raw, &answer); err != nil {
		r.message = strings.TrimSpace(string(raw))
		return r, nil
	}
	r.model, r.promptTokens, r.completionTokens = answer.Model, answer.Usage.PromptTokens, answer.Usage.CompletionTokens
	if answer.Error != nil {
		r.message = answer.Error.Message
		if answer.Error.Code != nil {
			r.code = fmt.Sprint(answer.Error.Code)
		}
	}
	return r, nil
}

// ledgerEnd returns the id of account's last ledger event ("" for none): the
// demo's ledger starts after it.
func ledgerEnd(ctx context.Context, c *client.Client, account string) (string, error) {
	last := ""
	for {
		page, err := c.Ledger(ctx, account, last, demoLedgerPage)
		if err != nil {
			return "", err
		}
		if len(page.Data) > 0 {
			last = page.Data[len(page.Data)-1].ID
		}
		if !page.HasMore {
			return last, nil
		}
	}
}

// ledgerAfter returns account's events after the event id cursor ("" = all).
func ledgerAfter(ctx context.Context, c *client.Client, account, cursor string) ([]admin.Event, error) {
	var events []admin.Event
	for {
		page, err := c.Ledger(ctx, account, cursor, demoLedgerPage)
		if err != nil {
			return nil, err
		}
		events = append(events, page.Data...)
		if len(page.Data) > 0 {
			cursor = page.Data[len(page.Data)-1].ID
		}
		if !page.HasMore || len(page.Data) == 0 {
			return events, nil
		}
	}
}
