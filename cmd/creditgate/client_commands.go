package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
)

// Where the client commands find the control plane unless told otherwise.
const (
	defaultAdminURL = "http://127.0.0.1:8081"
	envAdminURL     = "CREDITGATE_ADMIN_URL"
	envAdminToken   = "CREDITGATE_ADMIN_TOKEN"
)

// ledgerPageForAll is the page size of "ledger --all" when --limit is not given:
// the server's maximum, so a long ledger takes few round trips.
const ledgerPageForAll = admin.MaxLedgerLimit

// addClientCommands adds the commands that call the control-plane API (accounts,
// keys, credits, ledger, auto-recharge, purchases, portal) to root. Each group gets the persistent
// flags --admin-url, --admin-token and -o/--output.
func addClientCommands(root *cobra.Command) {
	o := &clientOptions{}
	for _, cmd := range []*cobra.Command{
		accountsCommand(o),
		keysCommand(o),
		creditsCommand(o),
		ledgerCommand(o),
		autoRechargeCommand(o),
		purchasesCommand(o),
		portalCommand(o),
		whoamiCommand(o),
	} {
		o.addFlags(cmd)
		root.AddCommand(cmd)
	}
}

// clientOptions are the flags every client command shares.
type clientOptions struct {
	adminURL   string
	adminToken string
	output     string
}

func (o *clientOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.adminURL, "admin-url", defaultAdminURL, "control-plane base URL (env "+envAdminURL+")")
	// No default from the environment here: help output would print the token.
	f.StringVar(&o.adminToken, "admin-token", "", "admin token (env "+envAdminToken+", preferred: flags are visible in ps)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
}

// client validates the shared flags and returns a client configured by flags,
// then environment, then defaults. It also silences usage: from here on, errors
// are the server's, not the command line's.
func (o *clientOptions) client(cmd *cobra.Command) (*client.Client, error) {
	if o.output != "table" && o.output != "json" {
		return nil, fmt.Errorf("invalid --output %q: want table or json", o.output)
	}
	cmd.SilenceUsage = true
	baseURL := o.adminURL
	if v, ok := os.LookupEnv(envAdminURL); ok && v != "" && !cmd.Flags().Changed("admin-url") {
		baseURL = v
	}
	token := o.adminToken
	if v, ok := os.LookupEnv(envAdminToken); ok && !cmd.Flags().Changed("admin-token") {
		token = v
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: set %s or pass --admin-token", envAdminToken)
	}
	return &client.Client{BaseURL: baseURL, Token: token}, nil
}

// print writes v as the API's JSON (indented) or, for table output, with table.
func (o *clientOptions) print(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	if o.output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	tw := newTable(out)
	table(tw)
	return tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func accountsCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "accounts", Short: "Create, list, inspect and change accounts"}

	var tier string
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create an account",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			acct, err := c.CreateAccount(cmd.Context(), args[0], tier)
			if err != nil {
				return err
			}
			return o.print(cmd, acct, func(w io.Writer) { printAccount(w, acct) })
		},
	}
	create.Flags().StringVar(&tier, "tier", "", "trust tier (default: the configured default tier)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts with their balances",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			accounts, err := c.ListAccounts(cmd.Context())
			if err != nil {
				return err
			}
			return o.print(cmd, accounts, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tTIER\tBALANCE\tAVAILABLE\tDEBT\tRESERVED\tCREATED\tSTATUS")
				for _, a := range accounts.Data {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Tier, a.Balance, a.Available, a.Debt, a.Reserved, formatTime(a.CreatedAt), orDash(a.Status))
				}
			})
		},
	}

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an account: balance, grants, auto-recharge",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			acct, err := c.GetAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.print(cmd, acct, func(w io.Writer) { printAccount(w, acct) })
		},
	}
	cmd.AddCommand(create, list, get, accountsUpdateCommand(o))
	return cmd
}

func printAccount(w io.Writer, a admin.Account) {
	fmt.Fprintf(w, "ID\t%s\n", a.ID)
	fmt.Fprintf(w, "TIER\t%s\n", a.Tier)
	fmt.Fprintf(w, "CREATED\t%s\n", formatTime(a.CreatedAt))
	fmt.Fprintf(w, "BALANCE\t%s\n", a.Balance)
	fmt.Fprintf(w, "CREDIT\t%s\n", a.Credit)
	fmt.Fprintf(w, "DEBT\t%s\n", a.Debt)
	fmt.Fprintf(w, "RESERVED\t%s\n", a.Reserved)
	fmt.Fprintf(w, "AVAILABLE\t%s\n", a.Available)
	fmt.Fprintf(w, "GRACE\t%s\n", a.Grace)
	fmt.Fprintf(w, "AUTO-RECHARGE\t%s\n", describeAutoRecharge(a.AutoRecharge))
	describeSettings(w, a.AccountSettings)
	// A blank line ends the block, so the grants table aligns on its own.
	fmt.Fprintln(w)
	if len(a.Grants) == 0 {
		fmt.Fprintln(w, "no grants")
		return
	}
	fmt.Fprintln(w, "GRANT\tAMOUNT\tREMAINING\tGRANTED\tEXPIRES\tSOURCE")
	for _, g := range a.Grants {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.Amount, g.Remaining, formatTime(g.GrantedAt), formatTime(g.ExpiresAt), g.Source)
	}
}

func describeAutoRecharge(ar admin.AutoRecharge) string {
	if !ar.Enabled {
		return "off"
	}
	return fmt.Sprintf("on: below %s buy %s, at most %s a month", ar.Threshold, ar.Amount, ar.MonthlyLimit)
}

func keysCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Issue, list, change and revoke app API keys"}

	var name string
	var rpm, tpm int64
	var settings keySettingFlags
	create := &cobra.Command{
		Use:   "create ACCOUNT",
		Short: "Issue an API key (the secret is shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			req := admin.CreateKeyRequest{Name: name, RPM: rpm, TPM: tpm}
			if err := settings.create(&req); err != nil {
				return err
			}
			key, err := c.CreateKeyWith(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			// On stderr, so stdout stays just the key's data for scripts.
			fmt.Fprintln(cmd.ErrOrStderr(), "Save this key now: it cannot be shown again.")
			return o.print(cmd, key, func(w io.Writer) {
				fmt.Fprintf(w, "ID\t%s\n", key.ID)
				fmt.Fprintf(w, "NAME\t%s\n", orDash(key.Name))
				fmt.Fprintf(w, "KEY\t%s\n", key.Key)
				fmt.Fprintf(w, "CREATED\t%s\n", formatTime(key.CreatedAt))
				if key.RPM > 0 || key.TPM > 0 {
					fmt.Fprintf(w, "RATE LIMITS\t%d rpm, %d tpm (0: the tier's)\n", key.RPM, key.TPM)
				}
				if hasKeySettings(key.KeySettings) {
					printKeySettings(w, key.KeySettings)
				}
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "a label for the key")
	create.Flags().Int64Var(&rpm, "rpm", 0, "the key's own requests per minute (0: the tier's only; a key limit applies when lower than the tier's)")
	create.Flags().Int64Var(&tpm, "tpm", 0, "the key's own tokens per minute (prompt + max output), as --rpm")
	settings.register(create.Flags(), false)

	list := &cobra.Command{
		Use:   "list ACCOUNT",
		Short: "List an account's API keys (without secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.ListKeys(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.print(cmd, keys, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tHINT\tCREATED\tLIMIT\tEXPIRES\tMODELS\tRPM/TPM\tSTATE")
				for _, k := range keys.Data {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.ID, orDash(k.Name), k.Hint, formatTime(k.CreatedAt), keySettingsRow(k))
				}
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ACCOUNT KEY_ID",
		Short: "Revoke an API key",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeKey(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			// The API answers 204 with no body, so JSON output has nothing to print.
			if o.output == "table" {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked key %s of account %s\n", args[1], args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, keysUpdateCommand(o), revoke)
	return cmd
}

func creditsCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "credits", Short: "Add or adjust prepaid credits"}

	var expiresAt, idemKey, externalID, note string
	add := &cobra.Command{
		Use:   "add ACCOUNT AMOUNT",
		Short: "Add a credit grant of AMOUNT USD (e.g. 25.00)",
		Long: "Add a credit grant of AMOUNT USD (a decimal such as 25.00, at most six decimals).\n" +
			"The request carries an Idempotency-Key: --idempotency-key, else a new one, printed first.\n" +
			"It is retried with that key while its outcome is unknown (503, no answer); repeating the\n" +
			"command with the same key credits nothing more and prints the original result.\n" +
			"--external-id (your own payment or invoice id) and --note are kept on the ledger's\n" +
			"top-up event as payment_ref and note.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			expires, err := parseExpiresAt(expiresAt)
			if err != nil {
				return err
			}
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			req := admin.AddCreditsRequest{Amount: args[1], ExpiresAt: expires, ExternalID: externalID, Note: note}
			if cmd.Flags().Changed("external-id") && externalID == "" {
				return fmt.Errorf("--external-id must not be empty")
			}
			m := newMoneyCall(cmd, c, idemKey)
			res, err := c.AddCreditsWith(cmd.Context(), args[0], req, m.key)
			if err != nil {
				return m.err(err)
			}
			if res.Replayed {
				fmt.Fprintln(cmd.ErrOrStderr(), m.replayed("credited"))
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "GRANT\t%s\n", res.Grant.ID)
				fmt.Fprintf(w, "AMOUNT\t%s\n", res.Grant.Amount)
				fmt.Fprintf(w, "EXPIRES\t%s\n", formatTime(res.Grant.ExpiresAt))
				fmt.Fprintf(w, "SOURCE\t%s\n", res.Grant.Source)
				fmt.Fprintf(w, "DEBT REPAID\t%s\n", res.DebtRepaid)
				fmt.Fprintf(w, "BALANCE AFTER\t%s\n", res.BalanceAfter)
				fmt.Fprintf(w, "EVENT\t%s\n", res.EventID)
			})
		},
	}
	add.Flags().StringVar(&expiresAt, "expires-at", "", "expiry of a promotional grant (RFC 3339); default: the configured credit lifetime")
	add.Flags().StringVar(&idemKey, "idempotency-key", "", "makes retries safe: the same key and arguments credit once (default: a new key, printed)")
	add.Flags().StringVar(&externalID, "external-id", "", "your own reference for the payment (kept on the ledger event as payment_ref)")
	add.Flags().StringVar(&note, "note", "", "a note kept on the ledger event (one line, at most 500 bytes)")
	cmd.AddCommand(add, creditsAdjustCommand(o))
	return cmd
}

func ledgerCommand(o *clientOptions) *cobra.Command {
	var (
		limit         int
		after, before string
		all, recent   bool
	)
	cmd := &cobra.Command{
		Use:   "ledger ACCOUNT",
		Short: "Show an account's ledger events, oldest first (--recent: newest first)",
		Long: "Show an account's ledger events. By default the oldest come first, a page at a time\n" +
			"(--after continues from a page's cursor). With --recent the newest come first\n" +
			"(--before continues towards older ones). --all follows the cursor to the end.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case recent && after != "":
				return errors.New("--after pages oldest first; with --recent use --before")
			case !recent && before != "":
				return errors.New("--before pages newest first: add --recent")
			}
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if all && limit == 0 {
				limit = ledgerPageForAll
			}
			page := func(cursor string) (admin.EventList, error) {
				if recent {
					return c.RecentLedger(cmd.Context(), args[0], cursor, limit)
				}
				return c.Ledger(cmd.Context(), args[0], cursor, limit)
			}
			cursor := after
			if recent {
				cursor = before
			}
			list, err := page(cursor)
			if err != nil {
				return err
			}
			for all && list.HasMore {
				cursor := list.Next
				next, err := page(cursor)
				if err != nil {
					return err
				}
				if next.HasMore && next.Next == cursor {
					return errors.New("the server returned the same ledger cursor twice; stopping")
				}
				list.Data = append(list.Data, next.Data...)
				list.Next, list.HasMore = next.Next, next.HasMore
			}
			if list.HasMore && o.output == "table" {
				if recent {
					fmt.Fprintf(cmd.ErrOrStderr(), "Older events follow: run again with --recent --before %s (or use --all).\n", list.Next)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "More events follow: run again with --after %s (or use --all).\n", list.Next)
				}
			}
			return o.print(cmd, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tTYPE\tAT\tAMOUNT\tBALANCE AFTER\tDETAILS")
				for _, ev := range list.Data {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.Type, formatTime(ev.At), ev.Amount, ev.BalanceAfter, eventDetails(ev))
				}
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "events per page, 1 to 1000 (default: the server's, 100)")
	cmd.Flags().BoolVar(&recent, "recent", false, "newest events first")
	cmd.Flags().StringVar(&after, "after", "", "start after this event id (a previous page's next cursor)")
	cmd.Flags().StringVar(&before, "before", "", "with --recent: start below this event id (a previous page's next cursor)")
	cmd.Flags().BoolVar(&all, "all", false, "follow the cursor to the end of the ledger (its start, with --recent)")
	return cmd
}

// eventDetails summarises the type-specific fields of an event on one line.
func eventDetails(ev admin.Event) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	addInt := func(k string, v *int64) {
		if v != nil {
			add(k, strconv.FormatInt(*v, 10))
		}
	}
	add("model", ev.Model)
	add("endpoint", ev.Endpoint)
	addInt("prompt", ev.PromptTokens)
	addInt("completion", ev.CompletionTokens)
	if ev.CachedTokens != nil && *ev.CachedTokens != 0 {
		addInt("cached", ev.CachedTokens)
	}
	if ev.ReasoningTokens != nil && *ev.ReasoningTokens != 0 {
		addInt("reasoning", ev.ReasoningTokens)
	}
	if ev.TokenSource == "local" {
		add("tokens", "local")
	}
	if ev.Cost != nil {
		add("cost", ev.Cost.String())
	}
	if p := ev.Prices; p != nil { // USD per 1M tokens: input/cached/output
		add("prices", unitPrice(p.Input)+"/"+unitPrice(p.CachedInput)+"/"+unitPrice(p.Output))
	}
	if ev.ToDebt != nil && *ev.ToDebt != 0 {
		add("to_debt", ev.ToDebt.String())
	}
	add("grant", ev.GrantID)
	add("hold", ev.HoldID)
	add("key", ev.KeyID)
	add("request", ev.RequestID)
	if ev.Note != "" {
		add("note", strconv.Quote(ev.Note))
	}
	return orDash(strings.Join(parts, " "))
}

func autoRechargeCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "auto-recharge", Short: "Configure automatic top-ups"}

	var (
		enabled                         bool
		threshold, amount, monthlyLimit string
	)
	set := &cobra.Command{
		Use:   "set ACCOUNT --threshold X --amount Y --monthly-limit Z",
		Short: "Buy --amount whenever the balance drops below --threshold, at most --monthly-limit a month",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.AutoRechargeRequest{Enabled: enabled, Threshold: threshold, Amount: amount, MonthlyLimit: monthlyLimit}
			if enabled {
				for _, f := range []struct{ flag, value string }{
					{"threshold", threshold}, {"amount", amount}, {"monthly-limit", monthlyLimit},
				} {
					if f.value == "" {
						return fmt.Errorf("--%s is required with --enabled", f.flag)
					}
				}
			}
			return o.setAutoRecharge(cmd, args[0], req)
		},
	}
	set.Flags().BoolVar(&enabled, "enabled", true, "turn auto-recharge on (--enabled=false turns it off)")
	set.Flags().StringVar(&threshold, "threshold", "", "recharge when the balance drops below this (USD)")
	set.Flags().StringVar(&amount, "amount", "", "amount bought each time (USD, at least the configured minimum)")
	set.Flags().StringVar(&monthlyLimit, "monthly-limit", "", "most auto-recharged per calendar month (USD)")

	disable := &cobra.Command{
		Use:   "disable ACCOUNT",
		Short: "Turn auto-recharge off",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.setAutoRecharge(cmd, args[0], admin.AutoRechargeRequest{Enabled: false})
		},
	}
	cmd.AddCommand(set, disable)
	return cmd
}

func (o *clientOptions) setAutoRecharge(cmd *cobra.Command, account string, req admin.AutoRechargeRequest) error {
	c, err := o.client(cmd)
	if err != nil {
		return err
	}
	ar, err := c.SetAutoRecharge(cmd.Context(), account, req)
	if err != nil {
		return err
	}
	return o.print(cmd, ar, func(w io.Writer) {
		fmt.Fprintf(w, "ENABLED\t%t\n", ar.Enabled)
		fmt.Fprintf(w, "THRESHOLD\t%s\n", ar.Threshold)
		fmt.Fprintf(w, "AMOUNT\t%s\n", ar.Amount)
		fmt.Fprintf(w, "MONTHLY LIMIT\t%s\n", ar.MonthlyLimit)
	})
}

// formatTime shows times in UTC to the second; "-" for an unset time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseExpiresAt reads a --expires-at flag: "" is none (the server's default
// lifetime), anything else an RFC 3339 time.
func parseExpiresAt(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("invalid --expires-at %q: want an RFC 3339 time such as 2030-01-31T00:00:00Z", s)
	}
	return &t, nil
}
