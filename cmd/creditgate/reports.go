package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
)

// addReportCommands adds the reporting commands, clients of the admin API like
// the others: `usage`, `audit`, and `ledger export` under the existing `ledger`
// command (call it after addClientCommands; without a `ledger` command it adds
// one that only has `export`).
func addReportCommands(root *cobra.Command) {
	o := &clientOptions{}
	for _, cmd := range []*cobra.Command{usageCommand(o), auditCommand(o)} {
		o.addFlags(cmd)
		root.AddCommand(cmd)
	}
	var ledger *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "ledger" {
			ledger = c
		}
	}
	if ledger == nil {
		ledger = &cobra.Command{Use: "ledger", Short: "Export an account's ledger"}
		(&clientOptions{}).addFlags(ledger)
		root.AddCommand(ledger)
	}
	ledger.AddCommand(exportCommand())
}

// inheritedOptions reads the shared client flags a parent command declared
// (--admin-url, --admin-token, -o), for a subcommand added from this file.
func inheritedOptions(cmd *cobra.Command) *clientOptions {
	o := &clientOptions{adminURL: defaultAdminURL, output: "table"}
	for name, dst := range map[string]*string{"admin-url": &o.adminURL, "admin-token": &o.adminToken, "output": &o.output} {
		if f := cmd.Flags().Lookup(name); f != nil {
			*dst = f.Value.String()
		}
	}
	return o
}

// isTerminal reports whether w is a terminal: progress is shown only there, so
// scripts and pipes get clean output (and `ledger export` shows none when its
// data goes to the terminal). A variable so tests can pretend.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress rewrites one status line on a terminal, and does nothing elsewhere.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(cmd *cobra.Command) *progress {
	w := cmd.ErrOrStderr()
	return &progress{w: w, on: isTerminal(w)}
}

func (p *progress) show(format string, args ...any) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func usageCommand(o *clientOptions) *cobra.Command {
	var q client.UsageQuery
	cmd := &cobra.Command{
		Use:   "usage ACCOUNT",
		Short: "Show an account's usage: requests, tokens by class and cost, grouped by model, day or key",
		Long: "Show an account's settled requests, tokens by class and cost in a time range, grouped\n" +
			"by model, UTC day or API key, or by several at once (--group-by day,model: one row\n" +
			"per day and model, sorted by day, then model). --from and --to take RFC 3339 times\n" +
			"or dates (2026-03-01); a date --to includes that whole day. Default: everything up\n" +
			"to now.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			groups, err := parseGroupBy(q.GroupBy)
			if err != nil {
				return err
			}
			q.GroupBy = strings.Join(groups, ",")
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			rep, err := c.Usage(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			return o.print(cmd, rep, func(w io.Writer) { printUsage(w, groups, rep) })
		},
	}
	cmd.Flags().StringVar(&q.From, "from", "", "start of the range, inclusive (RFC 3339 or YYYY-MM-DD)")
	cmd.Flags().StringVar(&q.To, "to", "", "end of the range, exclusive; a date includes that day (default: now)")
	cmd.Flags().StringVar(&q.GroupBy, "group-by", admin.GroupByModel, "model, day or key, or several joined by commas (day,model)")
	return cmd
}

// parseGroupBy reads --group-by: one or more of model, day and key, separated
// by commas, none twice.
func parseGroupBy(s string) ([]string, error) {
	var groups []string
	for _, g := range strings.Split(s, ",") {
		g = strings.TrimSpace(g)
		switch g {
		case admin.GroupByModel, admin.GroupByDay, admin.GroupByKey:
		default:
			return nil, fmt.Errorf("invalid --group-by %q: want model, day or key, or several joined by commas (day,model)", s)
		}
		if slices.Contains(groups, g) {
			return nil, fmt.Errorf("invalid --group-by %q: %s is named twice", s, g)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// printUsage writes a usage report as a table: one column per grouping, in
// --group-by's order, then the sums; the total last.
func printUsage(w io.Writer, groups []string, rep admin.UsageReport) {
	head := make([]string, len(groups))
	for i, g := range groups {
		head[i] = strings.ToUpper(g)
	}
	fmt.Fprintf(w, "%s\tREQUESTS\tPROMPT\tCACHED\tCOMPLETION\tREASONING\tCOST\n", strings.Join(head, "\t"))
	row := func(r admin.UsageRow, cells []string) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", strings.Join(cells, "\t"), r.Requests, r.PromptTokens, r.CachedTokens, r.CompletionTokens, r.ReasoningTokens, r.Cost)
	}
	for _, r := range rep.Data {
		cells := make([]string, len(groups))
		for i, g := range groups {
			v := r.Group
			if len(groups) > 1 {
				v = r.By[g]
			}
			cells[i] = orDash(v)
		}
		row(r, cells)
	}
	total := make([]string, len(groups))
	total[0] = "TOTAL"
	row(rep.Total, total)
}

func exportCommand() *cobra.Command {
	var (
		q   client.ExportQuery
		out string
	)
	cmd := &cobra.Command{
		Use:   "export ACCOUNT",
		Short: "Export an account's ledger as JSON Lines or CSV, streamed",
		Long: "Export an account's ledger events, oldest first, as JSON Lines (one event per line,\n" +
			"the ledger command's JSON) or CSV with a header row. The export is streamed, so a\n" +
			"ledger of any length takes constant memory. With --out the file appears only when\n" +
			"the export is complete; an interrupted export is an error and leaves no file.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.Format != admin.FormatJSONL && q.Format != admin.FormatCSV {
				return fmt.Errorf("invalid --format %q: want jsonl or csv", q.Format)
			}
			o := inheritedOptions(cmd)
			o.output = "table" // -o does not apply: --format does
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			p := newProgress(cmd)
			var dst io.Writer = cmd.OutOrStdout()
			if out == "" && isTerminal(dst) {
				// The data scrolls on the terminal: a status line there would be
				// overwritten by it, and the data is progress enough.
				p.on = false
			}
			var tmp *os.File
			if out != "" {
				// Written next to the target and renamed at the end, so FILE is
				// never a partial export.
				tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*")
				if err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
				defer tmp.Close()
				dst = tmp
			}
			cw := &countingWriter{w: dst, p: p, account: args[0]}
			_, err = c.ExportLedger(cmd.Context(), args[0], q, cw)
			p.done()
			if err != nil {
				return err
			}
			if tmp != nil {
				if err := tmp.Sync(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := tmp.Close(); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d events of %s to %s\n", cw.records(q.Format), args[0], out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&q.Format, "format", admin.FormatJSONL, "jsonl or csv")
	cmd.Flags().StringVar(&q.From, "from", "", "start of the range, inclusive (RFC 3339 or YYYY-MM-DD)")
	cmd.Flags().StringVar(&q.To, "to", "", "end of the range, exclusive; a date includes that day (default: now)")
	cmd.Flags().StringVar(&out, "out", "", "write to this file instead of stdout")
	return cmd
}

// countingWriter counts bytes and lines going through, for progress.
type countingWriter struct {
	w       io.Writer
	p       *progress
	account string
	bytes   int64
	lines   int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.bytes += int64(n)
	before := c.lines
	for _, x := range b[:n] {
		if x == '\n' {
			c.lines++
		}
	}
	if c.lines/1000 != before/1000 {
		c.p.show("exporting %s: %d lines, %.1f MB", c.account, c.lines, float64(c.bytes)/1e6)
	}
	return n, err
}

// records is the number of events written: lines, less the CSV header. (CSV
// fields never hold newlines here: notes are single-line.)
func (c *countingWriter) records(format string) int64 {
	if format == admin.FormatCSV && c.lines > 0 {
		return c.lines - 1
	}
	return c.lines
}

func auditCommand(o *clientOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "audit [--account ID]",
		Short: "Replay every account's ledger and check it against the stored balances",
		Long: "Replay each account's ledger (or one, with --account) on the server and check the\n" +
			"ledger invariants against the stored state: balances after every event, debt,\n" +
			"grants credited once, holds settled once, conservation of every micro-dollar.\n" +
			"Exits non-zero naming each account that does not reconcile.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			ids := []string{account}
			if account == "" {
				list, err := c.ListAccounts(cmd.Context())
				if err != nil {
					return err
				}
				ids = ids[:0]
				for _, a := range list.Data {
					ids = append(ids, a.ID)
				}
			}
			p := newProgress(cmd)
			reports := make([]admin.AuditReport, 0, len(ids))
			var failed []string
			for i, id := range ids {
				p.show("auditing %d/%d: %s", i+1, len(ids), id)
				rep, err := c.Audit(cmd.Context(), id)
				if err != nil {
					var apiErr *client.APIError
					if account != "" || !errors.As(err, &apiErr) || apiErr.Status >= 500 {
						p.done()
						return fmt.Errorf("auditing %s: %w", id, err)
					}
					// Deleted since the listing: nothing to reconcile.
					continue
				}
				reports = append(reports, rep)
				if !rep.OK {
					failed = append(failed, id)
				}
			}
			p.done()
			if err := o.print(cmd, reports, func(w io.Writer) {
				fmt.Fprintln(w, "ACCOUNT\tRESULT\tEVENTS\tFIRST MISMATCH")
				for _, r := range reports {
					result, first := "ok", "-"
					if !r.OK {
						result = "MISMATCH"
						pr := r.Problems[0]
						first = pr.Check + ": " + pr.Message
						if pr.EventID != "" {
							first = "event " + pr.EventID + ": " + first
						}
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.Account, result, r.Events, first)
				}
			}); err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("audit: %d of %d accounts do not reconcile: %s", len(failed), len(reports), strings.Join(failed, ", "))
			}
			if o.output == "table" {
				fmt.Fprintf(cmd.ErrOrStderr(), "audit: all %d accounts reconcile\n", len(reports))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "audit only this account")
	return cmd
}
