package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// startReportsAdmin serves the admin API on a real Redis ledger with two accounts:
// acme (a top-up and three requests on two models and two keys) and broke (the
// same, then its stored debt tampered with).
func startReportsAdmin(t *testing.T) string {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"acme", "broke"} {
		if _, err := store.CreateAccount(ctx, id, "tier-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := store.TopUp(ctx, testPolicy(), billing.TopUpRequest{Account: id, GrantID: "g1", Amount: money.MustParse("20"), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for i, u := range []billing.Usage{
			{Model: "gpt-4o-mini", KeyID: "key_1", PromptTokens: 1200, CachedTokens: 1024, CompletionTokens: 300},
			{Model: "gpt-4o", KeyID: "key_2", PromptTokens: 50, CompletionTokens: 800, ReasoningTokens: 512},
			{Model: "gpt-4o-mini", KeyID: "key_1", PromptTokens: 10, CompletionTokens: 5},
		} {
			hold := fmt.Sprintf("req_%s_%d", id, i)
			if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: money.MustParse("1"), TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			u.RequestID, u.TokenSource = hold, billing.TokenSourceUpstream
			if _, err := store.Settle(ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: money.Micros(1000 * (i + 1)), Usage: u}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Client.HSet(ctx, r.Prefix+"{acct:broke}:acct", "debt", "7")
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: testPolicy,
		Tokens: func() []string { return []string{testToken} }}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func runReportsCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runReportsCLIWith(&stdout, &stderr, args...)
	return stdout.String(), stderr.String(), err
}

func runReportsCLIWith(stdout, stderr io.Writer, args ...string) error {
	root := &cobra.Command{Use: "creditgate", SilenceErrors: true}
	addClientCommands(root)
	addReportCommands(root)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	return root.Execute()
}

// ttyBuffer is a buffer that fakeTerminals reports as a terminal.
type ttyBuffer struct{ bytes.Buffer }

// fakeTerminals makes isTerminal true exactly for *ttyBuffer writers, for the
// rest of the test.
func fakeTerminals(t *testing.T) {
	restore := isTerminal
	t.Cleanup(func() { isTerminal = restore })
	isTerminal = func(w io.Writer) bool { _, ok := w.(*ttyBuffer); return ok }
}

// output returns a writer for a command's stdout or stderr, a terminal or a pipe.
func output(tty bool) interface {
	io.Writer
	String() string
} {
	if tty {
		return &ttyBuffer{}
	}
	return &bytes.Buffer{}
}

const clearLine = "\r\033[K"

func TestUsageCommand(t *testing.T) {
	isolateEnv(t)
	flags := []string{"--admin-url", startReportsAdmin(t), "--admin-token", testToken}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"usage", "acme"}, `MODEL        REQUESTS  PROMPT  CACHED  COMPLETION  REASONING  COST
gpt-4o       1         50      0       800         512        0.002000
gpt-4o-mini  2         1210    1024    305         0          0.004000
TOTAL        3         1260    1024    1105        512        0.006000
`},
		{[]string{"usage", "acme", "--group-by", "key"}, `KEY    REQUESTS  PROMPT  CACHED  COMPLETION  REASONING  COST
key_1  2         1210    1024    305         0          0.004000
key_2  1         50      0       800         512        0.002000
TOTAL  3         1260    1024    1105        512        0.006000
`},
		{[]string{"usage", "acme", "--group-by", "day", "--to", "2020-01-01"}, `DAY    REQUESTS  PROMPT  CACHED  COMPLETION  REASONING  COST
TOTAL  0         0       0       0           0          0.000000
`},
	}
	// Several groupings: one column each, in --group-by's order (the events are today's).
	day := time.Now().UTC().Format(time.DateOnly)
	tests = append(tests, []struct {
		args []string
		want string
	}{
		{[]string{"usage", "acme", "--group-by", "day,model"}, `DAY         MODEL        REQUESTS  PROMPT  CACHED  COMPLETION  REASONING  COST
` + day + `  gpt-4o       1         50      0       800         512        0.002000
` + day + `  gpt-4o-mini  2         1210    1024    305         0          0.004000
TOTAL                    3         1260    1024    1105        512        0.006000
`},
		{[]string{"usage", "acme", "--group-by", "model, key"}, `MODEL        KEY    REQUESTS  PROMPT  CACHED  COMPLETION  REASONING  COST
gpt-4o       key_2  1         50      0       800         512        0.002000
gpt-4o-mini  key_1  2         1210    1024    305         0          0.004000
TOTAL               3         1260    1024    1105        512        0.006000
`},
	}...)
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, stderr, err := runReportsCLI(t, append(tc.args, flags...)...)
			if err != nil || out != tc.want {
				t.Fatalf("err %v, stderr %q, stdout:\n%s\nwant:\n%s", err, stderr, out, tc.want)
			}
		})
	}
	out, _, err := runReportsCLI(t, append([]string{"usage", "acme", "-o", "json", "--group-by", "day"}, flags...)...)
	var rep admin.UsageReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.GroupBy != "day" || len(rep.Data) != 1 || rep.Data[0].Group != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("json: %v %s", err, out)
	}
	for _, bad := range [][]string{{"usage", "acme", "--group-by", "hour"}, {"usage", "acme", "--group-by", "day,day"}, {"usage", "acme", "--group-by", "day,"},
		{"usage", "acme", "--from", "soon"}, {"usage", "nobody"}} {
		if _, _, err := runReportsCLI(t, append(bad, flags...)...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}

func TestLedgerExportCommand(t *testing.T) {
	isolateEnv(t)
	flags := []string{"--admin-url", startReportsAdmin(t), "--admin-token", testToken}
	out, stderr, err := runReportsCLI(t, append([]string{"ledger", "export", "acme"}, flags...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 4 || stderr != "" {
		t.Fatalf("jsonl export: %v, stderr %q, %d lines:\n%s", err, stderr, len(lines), out)
	}
	var first admin.ExportedEvent
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Type != "topup" || first.Source != billing.SourcePurchase {
		t.Fatalf("first line %s: %v", lines[0], err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "acme.csv")
	restore := isTerminal
	isTerminal = func(io.Writer) bool { return true }
	defer func() { isTerminal = restore }()
	out, stderr, err = runReportsCLI(t, append([]string{"ledger", "export", "acme", "--format", "csv", "--out", file}, flags...)...)
	if err != nil || out != "" || !strings.Contains(stderr, "exported 4 events of acme to "+file) {
		t.Fatalf("csv export: %v, stdout %q, stderr %q", err, out, stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 5 || rows[0][0] != "id" || rows[3][12] != "gpt-4o" || rows[3][17] != "512" {
		t.Fatalf("csv rows %v %v", rows, err)
	}

	// A failed export leaves no file behind.
	missing := filepath.Join(dir, "nobody.jsonl")
	if _, _, err := runReportsCLI(t, append([]string{"ledger", "export", "nobody", "--out", missing}, flags...)...); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("export of a missing account: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left in the output directory: %v", entries)
	}
	if _, _, err := runReportsCLI(t, append([]string{"ledger", "export", "acme", "--format", "xml"}, flags...)...); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Fatalf("bad format: %v", err)
	}
	// The existing ledger command still works next to its new subcommand.
	if out, _, err := runReportsCLI(t, append([]string{"ledger", "acme"}, flags...)...); err != nil || !strings.Contains(out, "usage") {
		t.Fatalf("ledger ACCOUNT: %v %s", err, out)
	}
}

func TestAuditCommand(t *testing.T) {
	isolateEnv(t)
	flags := []string{"--admin-url", startReportsAdmin(t), "--admin-token", testToken}
	out, stderr, err := runReportsCLI(t, append([]string{"audit", "--account", "acme"}, flags...)...)
	if err != nil || !strings.Contains(out, "acme     ok      4       -") || !strings.Contains(stderr, "all 1 accounts reconcile") {
		t.Fatalf("audit acme: %v\n%s\n%s", err, out, stderr)
	}
	out, _, err = runReportsCLI(t, append([]string{"audit"}, flags...)...)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 accounts do not reconcile: broke") {
		t.Fatalf("audit of all: err %v", err)
	}
	if !strings.Contains(out, "broke    MISMATCH  4       state: stored balance is 19.993993; the ledger replays to 19.994000") {
		t.Fatalf("audit table:\n%s", out)
	}
	out, _, err = runReportsCLI(t, append([]string{"audit", "-o", "json"}, flags...)...)
	var reps []admin.AuditReport
	if err == nil || json.Unmarshal([]byte(out), &reps) != nil || len(reps) != 2 || reps[1].OK || reps[1].Problems[0].Check != "state" {
		t.Fatalf("json audit: %v %s", err, out)
	}
	if _, _, err := runReportsCLI(t, append([]string{"audit", "--account", "nobody"}, flags...)...); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("audit of a missing account: %v", err)
	}
}

// TestProgressOnlyOnTerminal: long work reports progress on stderr when it is a
// terminal, and writes nothing there otherwise.
func TestProgressOnlyOnTerminal(t *testing.T) {
	restore := isTerminal
	defer func() { isTerminal = restore }()
	for _, tty := range []bool{true, false} {
		isTerminal = func(io.Writer) bool { return tty }
		var stderr, sink bytes.Buffer
		cmd := &cobra.Command{}
		cmd.SetErr(&stderr)
		cw := &countingWriter{w: &sink, p: newProgress(cmd), account: "acme"}
		for i := 0; i < 2500; i++ {
			fmt.Fprintf(cw, "{\"id\":\"%d-0\"}\n", i)
		}
		cw.p.done()
		got := stderr.String()
		if tty && (!strings.Contains(got, "exporting acme: 1000 lines") || !strings.Contains(got, "exporting acme: 2000 lines")) {
			t.Fatalf("terminal progress %q", got)
		}
		if !tty && got != "" {
			t.Fatalf("progress written to a non-terminal: %q", got)
		}
		if cw.records("jsonl") != 2500 || cw.records("csv") != 2499 {
			t.Fatalf("records %d/%d", cw.records("jsonl"), cw.records("csv"))
		}
	}
}

// TestAuditProgressOnlyOnTerminal: audit names the account it is on in a status
// line on stderr when stderr is a terminal, clears it before the report, and
// writes no progress to a pipe; the report on stdout never holds any.
func TestAuditProgressOnlyOnTerminal(t *testing.T) {
	isolateEnv(t)
	fakeTerminals(t)
	flags := []string{"--admin-url", startReportsAdmin(t), "--admin-token", testToken}
	for _, tc := range []struct {
		name                 string
		stdoutTTY, stderrTTY bool
		args                 []string
		wantErr              bool // broke does not reconcile
		wantProgress         []string
	}{
		{name: "stderr a terminal, stdout piped", stderrTTY: true, args: []string{"audit"}, wantErr: true,
			wantProgress: []string{"auditing 1/2: acme", "auditing 2/2: broke"}},
		{name: "both the terminal", stdoutTTY: true, stderrTTY: true, args: []string{"audit", "--account", "acme"},
			wantProgress: []string{"auditing 1/1: acme"}},
		{name: "both piped", args: []string{"audit"}, wantErr: true},
		{name: "stderr piped, stdout the terminal", stdoutTTY: true, args: []string{"audit", "--account", "acme"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr := output(tc.stdoutTTY), output(tc.stderrTTY)
			err := runReportsCLIWith(stdout, stderr, append(tc.args, flags...)...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("audit: %v", err)
			}
			out, errOut := stdout.String(), stderr.String()
			if !strings.HasPrefix(out, "ACCOUNT  RESULT") || strings.ContainsAny(out, "\r\033") {
				t.Fatalf("report %q", out)
			}
			if len(tc.wantProgress) == 0 {
				if strings.ContainsAny(errOut, "\r\033") || strings.Contains(errOut, "auditing") {
					t.Fatalf("progress written to a pipe: %q", errOut)
				}
				return
			}
			var want strings.Builder
			for _, p := range tc.wantProgress {
				want.WriteString(clearLine + p)
			}
			want.WriteString(clearLine) // cleared before anything else is written
			if !strings.HasPrefix(errOut, want.String()) {
				t.Fatalf("terminal progress %q, want it to start with %q", errOut, want.String())
			}
		})
	}
}

// TestExportProgressNotOverData: `ledger export` shows progress on a terminal
// stderr only when its data does not go to the terminal too (where the status
// line and the data would overwrite each other), and never in the data.
func TestExportProgressNotOverData(t *testing.T) {
	isolateEnv(t)
	fakeTerminals(t)
	var data strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&data, "{\"id\":\"%d-0\"}\n", i)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/acme/ledger/export") {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, data.String())
	}))
	defer srv.Close()
	flags := []string{"--admin-url", srv.URL, "--admin-token", testToken}
	for _, tc := range []struct {
		name                 string
		stdoutTTY, stderrTTY bool
		toFile               bool
		wantProgress         bool
	}{
		{name: "stdout piped, stderr the terminal", stderrTTY: true, wantProgress: true},
		{name: "both the terminal", stdoutTTY: true, stderrTTY: true},
		{name: "both the terminal, --out FILE", stdoutTTY: true, stderrTTY: true, toFile: true, wantProgress: true},
		{name: "both piped"},
		{name: "stderr piped, --out FILE", toFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr := output(tc.stdoutTTY), output(tc.stderrTTY)
			args := append([]string{"ledger", "export", "acme"}, flags...)
			file := filepath.Join(t.TempDir(), "acme.jsonl")
			if tc.toFile {
				args = append(args, "--out", file)
			}
			if err := runReportsCLIWith(stdout, stderr, args...); err != nil {
				t.Fatal(err)
			}
			got := stdout.String()
			if tc.toFile {
				b, err := os.ReadFile(file)
				if err != nil || got != "" {
					t.Fatalf("--out: %v, stdout %q", err, got)
				}
				got = string(b)
			}
			if got != data.String() {
				t.Fatalf("exported %d bytes, want the %d served (progress in the data?)", len(got), data.Len())
			}
			errOut := stderr.String()
			if tc.toFile {
				errOut = strings.TrimSuffix(errOut, "exported 2500 events of acme to "+file+"\n")
			}
			if !tc.wantProgress {
				if errOut != "" {
					t.Fatalf("stderr %q, want no progress", errOut)
				}
				return
			}
			// Status lines as the chunks arrive, then the line cleared.
			if !regexp.MustCompile(`^(\r\x1b\[Kexporting acme: \d+ lines, \d+\.\d MB)+\r\x1b\[K$`).MatchString(errOut) {
				t.Fatalf("progress %q", errOut)
			}
		})
	}
}
