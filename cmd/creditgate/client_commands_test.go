package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/money"
)

// Fakes of the billing interfaces: structs with one function field per method
// (a nil field fails the call, which the admin API answers with a 500).

// The billing fakes are shared: see billing/billingtest.
type (
	fakeLedger = billingtest.Ledger
	fakeKeys   = billingtest.Keys
)

const testToken = "adm-0123456789abcdef"

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() billing.Policy {
	return billing.Policy{
		Grace: money.MustParse("0.50"), MinPurchase: money.MustParse("5"), DefaultTier: "tier-1",
		Tiers:           map[string]billing.Tier{"tier-1": {MaxTopUp: money.MustParse("100")}},
		AutoRechargeMin: money.MustParse("5"),
	}
}

func sampleAccount() billing.Account {
	return billing.Account{
		ID: "acme", Tier: "tier-1", CreatedAt: testNow, Credit: money.MustParse("4.998731"), Reserved: money.MustParse("5.2"),
		Grants: []billing.Grant{{ID: "grant_a", Amount: money.MustParse("5"), Remaining: money.MustParse("4.998731"),
			GrantedAt: testNow, ExpiresAt: testNow.AddDate(1, 0, 0), Source: billing.SourcePurchase}},
		AutoRecharge: billing.AutoRecharge{Enabled: true, Threshold: money.MustParse("1"), Amount: money.MustParse("5"), MonthlyLimit: money.MustParse("50")},
	}
}

// ledgerEvents is a ledger of five events the fake pages through by index.
var ledgerEvents = []billing.Event{
	{ID: "1-0", Type: billing.EventTopUp, At: testNow, Amount: 5 * money.Dollar, BalanceAfter: 5 * money.Dollar, CreditAfter: 5 * money.Dollar, GrantID: "grant_a"},
	{ID: "2-0", Type: billing.EventUsage, At: testNow.Add(time.Minute), Amount: 1269, BalanceAfter: 4_998_731, CreditAfter: 4_998_731,
		HoldID: "hold_1", RequestID: "req_1", KeyID: "key_1", Model: "gpt-4o-mini", Endpoint: "/v1/chat/completions",
		PromptTokens: 1200, CompletionTokens: 1815, CachedTokens: 1024, TokenSource: billing.TokenSourceUpstream, Cost: 1269, FromCredit: 1269},
	{ID: "3-0", Type: billing.EventRelease, At: testNow.Add(2 * time.Minute), Amount: 7000, BalanceAfter: 4_998_731, CreditAfter: 4_998_731, HoldID: "hold_2"},
	{ID: "4-0", Type: billing.EventAdjustment, At: testNow.Add(3 * time.Minute), Amount: -money.Dollar, BalanceAfter: 3_998_731, CreditAfter: 3_998_731, Note: "goodwill reversal"},
	{ID: "5-0", Type: billing.EventExpire, At: testNow.Add(4 * time.Minute), Amount: 3_998_731, GrantID: "grant_a"},
}

func pagedEvents(_ context.Context, account, after string, limit int) (billing.EventPage, error) {
	if account != "acme" {
		return billing.EventPage{}, billing.ErrAccountNotFound
	}
	start := 0
	for i, ev := range ledgerEvents {
		if ev.ID == after {
			start = i + 1
		}
	}
	end := min(start+limit, len(ledgerEvents))
	page := billing.EventPage{Events: ledgerEvents[start:end]}
	if end < len(ledgerEvents) {
		page.Next = ledgerEvents[end-1].ID
	}
	return page, nil
}

// startAdmin serves admin.Server over fakes that answer for account "acme".
func startAdmin(t *testing.T) string {
	t.Helper()
	l := &fakeLedger{
		CreateAccountFunc: func(_ context.Context, id, tier string) (billing.Account, error) {
			if id == "acme" {
				return billing.Account{}, billing.ErrAccountExists
			}
			return billing.Account{ID: id, Tier: tier, CreatedAt: testNow}, nil
		},
		GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
			if id != "acme" {
				return billing.Account{}, billing.ErrAccountNotFound
			}
			return sampleAccount(), nil
		},
		ListAccountsFunc: func(context.Context) ([]billing.Account, error) {
			return []billing.Account{sampleAccount(), {ID: "broke", Tier: "tier-1", CreatedAt: testNow, Debt: 300_000}}, nil
		},
		TopUpFunc: func(_ context.Context, p billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
			if r.Amount < p.MinPurchase {
				return billing.TopUpResult{}, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: p.MinPurchase, Amount: r.Amount}
			}
			exp := r.ExpiresAt
			if exp.IsZero() {
				exp = testNow.AddDate(1, 0, 0)
			}
			return billing.TopUpResult{
				Grant:      billing.Grant{ID: "grant_b", Amount: r.Amount, Remaining: r.Amount - 300_000, GrantedAt: testNow, ExpiresAt: exp, Source: r.Source},
				DebtRepaid: 300_000, BalanceAfter: r.Amount - 300_000, EventID: "6-0",
				Replayed: r.IdempotencyKey == "used-key",
			}, nil
		},
		SetAutoRechargeFunc: func(context.Context, string, billing.AutoRecharge) error { return nil },
		EventsFunc:          pagedEvents,
	}
	k := &fakeKeys{
		CreateKeyFunc: func(_ context.Context, account, name string) (billing.APIKey, string, error) {
			return billing.APIKey{ID: "key_2", Account: account, Name: name, CreatedAt: testNow, Hint: "sk-cg-abc…wxyz"}, "sk-cg-abcSECRETwxyz", nil
		},
		ListKeysFunc: func(context.Context, string) ([]billing.APIKey, error) {
			return []billing.APIKey{
				{ID: "key_1", Name: "ci", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz"},
				{ID: "key_2", CreatedAt: testNow.Add(time.Hour), Hint: "sk-cg-def…1234"},
			}, nil
		},
		RevokeKeyFunc: func(_ context.Context, _, keyID string) error {
			if keyID != "key_1" {
				return billing.ErrKeyNotFound
			}
			return nil
		},
	}
	s := &admin.Server{Ledger: l, Keys: k, Policy: testPolicy, Now: func() time.Time { return testNow },
		Tokens: func() []string { return []string{testToken} }}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// runCLI runs the client commands with args and returns stdout, stderr and the
// error Execute returned (main exits non-zero on it).
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := &cobra.Command{Use: "creditgate"}
	addClientCommands(root)
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	return stdout.String(), stderr.String(), err
}

// isolateEnv clears the variables the commands read, so the machine's
// environment cannot change a test's outcome.
func isolateEnv(t *testing.T) {
	t.Setenv(envAdminURL, "")
	t.Setenv(envAdminToken, "")
}

func TestClientCommandsTable(t *testing.T) {
	isolateEnv(t)
	url := startAdmin(t)
	flags := []string{"--admin-url", url, "--admin-token", testToken}
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantStderr string // substring
	}{
		{
			name: "accounts get",
			args: []string{"accounts", "get", "acme"},
			wantOut: `ID             acme
TIER           tier-1
CREATED        2025-03-01T12:00:00Z
BALANCE        4.998731
CREDIT         4.998731
DEBT           0.000000
RESERVED       5.200000
AVAILABLE      -0.201269
GRACE          0.500000
AUTO-RECHARGE  on: below 1.000000 buy 5.000000, at most 50.000000 a month
STATUS         active
PAID           0.000000

GRANT    AMOUNT    REMAINING  GRANTED               EXPIRES               SOURCE
grant_a  5.000000  4.998731   2025-03-01T12:00:00Z  2026-03-01T12:00:00Z  purchase
`,
		},
		{
			name: "accounts create",
			args: []string{"accounts", "create", "globex", "--tier", "tier-1"},
			wantOut: `ID             globex
TIER           tier-1
CREATED        2025-03-01T12:00:00Z
BALANCE        0.000000
CREDIT         0.000000
DEBT           0.000000
RESERVED       0.000000
AVAILABLE      0.000000
GRACE          0.500000
AUTO-RECHARGE  off
STATUS         active
PAID           0.000000

no grants
`,
		},
		{
			name: "accounts list",
			args: []string{"accounts", "list"},
			wantOut: `ID     TIER    BALANCE    AVAILABLE  DEBT      RESERVED  CREATED               STATUS
acme   tier-1  4.998731   -0.201269  0.000000  5.200000  2025-03-01T12:00:00Z  active
broke  tier-1  -0.300000  -0.300000  0.300000  0.000000  2025-03-01T12:00:00Z  active
`,
		},
		{
			name: "keys create",
			args: []string{"keys", "create", "acme", "--name", "ci"},
			wantOut: `ID       key_2
NAME     ci
KEY      sk-cg-abcSECRETwxyz
CREATED  2025-03-01T12:00:00Z
`,
			wantStderr: "cannot be shown again",
		},
		{
			name: "keys list",
			args: []string{"keys", "list", "acme"},
			wantOut: `ID     NAME  HINT            CREATED               LIMIT  EXPIRES  MODELS  RPM/TPM  STATE
key_1  ci    sk-cg-abc…wxyz  2025-03-01T12:00:00Z  none   never    all     0/0      enabled
key_2  -     sk-cg-def…1234  2025-03-01T13:00:00Z  none   never    all     0/0      enabled
`,
		},
		{
			name:    "keys revoke",
			args:    []string{"keys", "revoke", "acme", "key_1"},
			wantOut: "revoked key key_1 of account acme\n",
		},
		{
			name: "credits add",
			args: []string{"credits", "add", "acme", "25.00"},
			wantOut: `GRANT          grant_b
AMOUNT         25.000000
EXPIRES        2026-03-01T12:00:00Z
SOURCE         purchase
DEBT REPAID    0.300000
BALANCE AFTER  24.700000
EVENT          6-0
`,
		},
		{
			name: "credits add promo, replayed",
			args: []string{"credits", "add", "acme", "10", "--expires-at", "2025-06-01T00:00:00+02:00", "--idempotency-key", "used-key"},
			wantOut: `GRANT          grant_b
AMOUNT         10.000000
EXPIRES        2025-05-31T22:00:00Z
SOURCE         promo
DEBT REPAID    0.300000
BALANCE AFTER  9.700000
EVENT          6-0
`,
			wantStderr: "already used",
		},
		{
			name: "ledger first page",
			args: []string{"ledger", "acme", "--limit", "2"},
			wantOut: `ID   TYPE   AT                    AMOUNT    BALANCE AFTER  DETAILS
1-0  topup  2025-03-01T12:00:00Z  5.000000  5.000000       grant=grant_a
2-0  usage  2025-03-01T12:01:00Z  0.001269  4.998731       model=gpt-4o-mini endpoint=/v1/chat/completions prompt=1200 completion=1815 cached=1024 cost=0.001269 hold=hold_1 key=key_1 request=req_1
`,
			wantStderr: "--after 2-0",
		},
		{
			name: "ledger all pages",
			args: []string{"ledger", "acme", "--limit", "2", "--all"},
			wantOut: `ID   TYPE        AT                    AMOUNT     BALANCE AFTER  DETAILS
1-0  topup       2025-03-01T12:00:00Z  5.000000   5.000000       grant=grant_a
2-0  usage       2025-03-01T12:01:00Z  0.001269   4.998731       model=gpt-4o-mini endpoint=/v1/chat/completions prompt=1200 completion=1815 cached=1024 cost=0.001269 hold=hold_1 key=key_1 request=req_1
3-0  release     2025-03-01T12:02:00Z  0.007000   4.998731       hold=hold_2
4-0  adjustment  2025-03-01T12:03:00Z  -1.000000  3.998731       note="goodwill reversal"
5-0  expire      2025-03-01T12:04:00Z  3.998731   0.000000       grant=grant_a
`,
		},
		{
			name: "ledger after a cursor",
			args: []string{"ledger", "acme", "--after", "4-0"},
			wantOut: `ID   TYPE    AT                    AMOUNT    BALANCE AFTER  DETAILS
5-0  expire  2025-03-01T12:04:00Z  3.998731  0.000000       grant=grant_a
`,
		},
		{
			name: "auto-recharge set",
			args: []string{"auto-recharge", "set", "acme", "--threshold", "2", "--amount", "10", "--monthly-limit", "100"},
			wantOut: `ENABLED        true
THRESHOLD      2.000000
AMOUNT         10.000000
MONTHLY LIMIT  100.000000
`,
		},
		{
			name: "auto-recharge disable",
			args: []string{"auto-recharge", "disable", "acme"},
			wantOut: `ENABLED        false
THRESHOLD      0.000000
AMOUNT         0.000000
MONTHLY LIMIT  0.000000
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append(tt.args, flags...)...)
			if err != nil {
				t.Fatalf("error %v; stderr %s", err, stderr)
			}
			if stdout != tt.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.wantOut)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

// TestClientCommandsJSON checks that -o json prints the API's own JSON, indented.
func TestClientCommandsJSON(t *testing.T) {
	isolateEnv(t)
	url := startAdmin(t)
	tests := []struct {
		name   string
		args   []string
		method string
		path   string
		body   string
	}{
		{"accounts get", []string{"accounts", "get", "acme"}, "GET", "/admin/v1/accounts/acme", ""},
		{"accounts list", []string{"accounts", "list"}, "GET", "/admin/v1/accounts", ""},
		{"accounts create", []string{"accounts", "create", "globex"}, "POST", "/admin/v1/accounts", `{"id":"globex"}`},
		{"keys list", []string{"keys", "list", "acme"}, "GET", "/admin/v1/accounts/acme/keys", ""},
		{"keys create", []string{"keys", "create", "acme"}, "POST", "/admin/v1/accounts/acme/keys", `{}`},
		{"credits add", []string{"credits", "add", "acme", "25"}, "POST", "/admin/v1/accounts/acme/credits", `{"amount":"25"}`},
		{"ledger page", []string{"ledger", "acme", "--limit", "3"}, "GET", "/admin/v1/accounts/acme/ledger?limit=3", ""},
		{"ledger all", []string{"ledger", "acme", "--all"}, "GET", "/admin/v1/accounts/acme/ledger", ""},
		{"auto-recharge", []string{"auto-recharge", "set", "acme", "--threshold", "2", "--amount", "10", "--monthly-limit", "100"},
			"PUT", "/admin/v1/accounts/acme/auto-recharge", `{"enabled":true,"threshold":"2","amount":"10","monthly_limit":"100"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append(tt.args, "--admin-url", url, "--admin-token", testToken, "-o", "json")...)
			if err != nil {
				t.Fatalf("error %v; stderr %s", err, stderr)
			}
			raw := fetch(t, url, tt.method, tt.path, tt.body)
			var want bytes.Buffer
			if err := json.Indent(&want, raw, "", "  "); err != nil {
				t.Fatal(err)
			}
			if stdout != want.String()+"\n" {
				t.Errorf("stdout:\n%s\nwant the API's JSON:\n%s", stdout, want.String())
			}
		})
	}
}

func fetch(t *testing.T, url, method, path, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return bytes.TrimSpace(b)
}

func TestClientCommandsRevokeJSONPrintsNothing(t *testing.T) {
	isolateEnv(t)
	url := startAdmin(t)
	stdout, _, err := runCLI(t, "keys", "revoke", "acme", "key_1", "--admin-url", url, "--admin-token", testToken, "-o", "json")
	if err != nil || stdout != "" {
		t.Fatalf("got %q, %v; want no output and no error", stdout, err)
	}
}

func TestClientCommandsErrors(t *testing.T) {
	isolateEnv(t)
	url := startAdmin(t)
	flags := []string{"--admin-url", url, "--admin-token", testToken}
	tests := []struct {
		name       string
		args       []string
		wantErr    string // in the error, which cobra prints as "Error: …" on stderr
		wantUsage  bool   // command-line mistakes show the usage, server errors do not
		noDefaults bool   // don't append the URL and token flags
	}{
		{name: "below minimum", args: []string{"credits", "add", "acme", "1"}, wantErr: "amount 1.000000 is below the minimum purchase of 5.000000 (HTTP 400, below_minimum_purchase)"},
		{name: "exponent amount", args: []string{"credits", "add", "acme", "1e3"}, wantErr: "exponent notation is not allowed"},
		{name: "negative amount", args: []string{"credits", "add", "--admin-url", url, "--admin-token", testToken, "acme", "--", "-5"}, wantErr: "negative amounts are not allowed", noDefaults: true},
		{name: "too many decimals", args: []string{"credits", "add", "acme", "1.0000001"}, wantErr: "more than 6 decimal places"},
		{name: "NaN amount", args: []string{"credits", "add", "acme", "NaN"}, wantErr: "invalid_amount"},
		{name: "bad expiry flag", args: []string{"credits", "add", "acme", "10", "--expires-at", "tomorrow"}, wantErr: "invalid --expires-at", wantUsage: true},
		{name: "unknown account", args: []string{"accounts", "get", "nobody"}, wantErr: "(HTTP 404, account_not_found)"},
		{name: "existing account", args: []string{"accounts", "create", "acme"}, wantErr: "(HTTP 409, account_exists)"},
		{name: "bad account id", args: []string{"accounts", "create", "a:b"}, wantErr: "(HTTP 400, invalid_value)"},
		{name: "unknown tier", args: []string{"accounts", "create", "x", "--tier", "gold"}, wantErr: "unknown tier"},
		{name: "unknown key", args: []string{"keys", "revoke", "acme", "key_9"}, wantErr: "(HTTP 404, key_not_found)"},
		{name: "ledger limit", args: []string{"ledger", "acme", "--limit", "5000"}, wantErr: "limit must be an integer from 1 to 1000"},
		{name: "auto-recharge flags missing", args: []string{"auto-recharge", "set", "acme", "--amount", "10"}, wantErr: "--threshold is required", wantUsage: true},
		{name: "auto-recharge below minimum", args: []string{"auto-recharge", "set", "acme", "--threshold", "1", "--amount", "1", "--monthly-limit", "10"}, wantErr: "below_minimum_purchase"},
		{name: "bad output format", args: []string{"accounts", "list", "-o", "yaml"}, wantErr: `invalid --output "yaml"`, wantUsage: true},
		{name: "wrong token", args: []string{"accounts", "list", "--admin-url", url, "--admin-token", "nope"}, wantErr: "(HTTP 401, invalid_admin_token)", noDefaults: true},
		{name: "no token", args: []string{"accounts", "list", "--admin-url", url}, wantErr: "no admin token", noDefaults: true},
		{name: "unreachable server", args: []string{"accounts", "list", "--admin-url", "http://127.0.0.1:1", "--admin-token", testToken}, wantErr: "creditgate admin client", noDefaults: true},
		{name: "missing argument", args: []string{"credits", "add", "acme"}, wantErr: "accepts 2 arg(s)", wantUsage: true},
		{name: "extra argument", args: []string{"accounts", "list", "x"}, wantErr: "unknown command", wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !tt.noDefaults {
				args = append(args, flags...)
			}
			stdout, stderr, err := runCLI(t, args...)
			if err == nil {
				t.Fatalf("no error; stdout %s", stdout)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if !strings.Contains(stderr, "Error: "+err.Error()) {
				t.Errorf("stderr %q does not print the error", stderr)
			}
			// Cobra prints the usage to the command's output, which the test captures as stdout.
			if got := strings.Contains(stdout, "Usage:"); got != tt.wantUsage {
				t.Errorf("usage printed = %v, want %v", got, tt.wantUsage)
			}
			if !tt.wantUsage && stdout != "" {
				t.Errorf("stdout %q, want nothing on error", stdout)
			}
			if strings.Contains(stderr, testToken) {
				t.Errorf("stderr shows the admin token")
			}
		})
	}
}

func TestClientCommandsEnvironment(t *testing.T) {
	isolateEnv(t)
	url := startAdmin(t)
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(envAdminURL, url)
		t.Setenv(envAdminToken, testToken)
		stdout, _, err := runCLI(t, "keys", "revoke", "acme", "key_1")
		if err != nil || stdout != "revoked key key_1 of account acme\n" {
			t.Fatalf("got %q, %v", stdout, err)
		}
	})
	t.Run("flags override the environment", func(t *testing.T) {
		t.Setenv(envAdminURL, "http://127.0.0.1:1")
		t.Setenv(envAdminToken, "wrong")
		_, _, err := runCLI(t, "keys", "revoke", "acme", "key_1", "--admin-url", url, "--admin-token", testToken)
		if err != nil {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("default URL", func(t *testing.T) {
		root := &cobra.Command{Use: "creditgate"}
		addClientCommands(root)
		cmd, _, err := root.Find([]string{"ledger"})
		if err != nil {
			t.Fatal(err)
		}
		if got := cmd.PersistentFlags().Lookup("admin-url").DefValue; got != defaultAdminURL {
			t.Errorf("default --admin-url = %q, want %q", got, defaultAdminURL)
		}
		if got := cmd.PersistentFlags().Lookup("admin-token").DefValue; got != "" {
			t.Errorf("--admin-token has default %q; the help would show it", got)
		}
	})
}

func TestClientCommandsAreRegistered(t *testing.T) {
	root := &cobra.Command{Use: "creditgate"}
	addClientCommands(root)
	for _, path := range [][]string{
		{"accounts", "create"}, {"accounts", "list"}, {"accounts", "get"},
		{"keys", "create"}, {"keys", "list"}, {"keys", "revoke"},
		{"credits", "add"}, {"ledger"}, {"auto-recharge", "set"}, {"auto-recharge", "disable"},
	} {
		cmd, rest, err := root.Find(path)
		if err != nil || len(rest) != 0 || cmd.Name() != path[len(path)-1] {
			t.Errorf("%v: found %v (rest %v, err %v)", path, cmd.Name(), rest, err)
			continue
		}
		for _, flag := range []string{"admin-url", "admin-token", "output"} {
			if cmd.Flag(flag) == nil {
				t.Errorf("%v lacks --%s", path, flag)
			}
		}
	}
	if root.PersistentFlags().Lookup("admin-url") != nil {
		t.Error("--admin-url leaked onto the root command")
	}
}
