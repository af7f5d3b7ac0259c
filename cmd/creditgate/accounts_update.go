package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
)

// accountsUpdateCommand is "accounts update ACCOUNT": PATCH of the account's
// settings, only the flags given.
func accountsUpdateCommand(o *clientOptions) *cobra.Command {
	var (
		tier, status, name, email, externalID, spendLimit, alertAt string
		pinned                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "update ACCOUNT",
		Short: "Change an account: tier, pinned tier, status, name, email, external id, monthly spend limit",
		Long: `Change an account's settings; only the flags given change, and the ledger
records each change with the admin token's name.

  creditgate accounts update acme --tier tier-2 --tier-pinned
  creditgate accounts update acme --status suspended
  creditgate accounts update acme --spend-limit 100 --alert-at 80
  creditgate accounts update acme --spend-limit 0        (no limit)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var u admin.UpdateAccountRequest
			for _, s := range []struct {
				flag string
				v    string
				dst  **string
			}{
				{"tier", tier, &u.Tier}, {"status", status, &u.Status}, {"name", name, &u.Name},
				{"email", email, &u.Email}, {"external-id", externalID, &u.ExternalID},
			} {
				if f.Changed(s.flag) {
					v := s.v
					*s.dst = &v
				}
			}
			if f.Changed("tier-pinned") {
				u.TierPinned = &pinned
			}
			switch {
			case f.Changed("spend-limit"):
				u.SpendLimit = &admin.SpendLimitRequest{Monthly: spendLimit, AlertAt: alertAt}
			case f.Changed("alert-at"):
				return errors.New("--alert-at needs --spend-limit: the alert is a share of the monthly limit, set both")
			}
			if u == (admin.UpdateAccountRequest{}) {
				return errors.New("nothing to change: pass one or more of --tier, --tier-pinned, --status, --name, --email, --external-id, --spend-limit")
			}
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			res, err := c.UpdateAccount(cmd.Context(), args[0], u)
			if err != nil {
				return err
			}
			if len(res.Events) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "Nothing changed: every field already had that value.")
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "Updated; the ledger records it in %s.\n", strings.Join(res.Events, ", "))
			}
			return o.print(cmd, res, func(w io.Writer) { printAccount(w, res.Account) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&tier, "tier", "", "move the account to this tier")
	f.BoolVar(&pinned, "tier-pinned", false, "pin the tier (no automatic promotion); --tier-pinned=false unpins")
	f.StringVar(&status, "status", "", "active, or suspended (its keys are refused)")
	f.StringVar(&name, "name", "", `the account's name ("" clears it)`)
	f.StringVar(&email, "email", "", `the account's billing email ("" clears it)`)
	f.StringVar(&externalID, "external-id", "", `your own id of the account ("" clears it)`)
	f.StringVar(&spendLimit, "spend-limit", "", `monthly spend limit in USD, calendar month UTC ("0": none)`)
	f.StringVar(&alertAt, "alert-at", "", "send a notice once the month's usage reaches this (USD, at most --spend-limit)")
	return cmd
}

// whoamiCommand is "whoami": the admin token's name and what it may do.
func whoamiCommand(o *clientOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the admin token's name and what it may do",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			me, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			return o.print(cmd, me, func(w io.Writer) {
				fmt.Fprintf(w, "NAME\t%s\n", me.Name)
				fmt.Fprintf(w, "SCOPES\t%s\n", strings.Join(me.Scopes, ", "))
				for _, sc := range admin.Scopes {
					can := "no"
					if me.Can[string(sc)] {
						can = "yes"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", strings.ToUpper(string(sc)), can, scopeWhat[sc])
				}
			})
		},
	}
}

// scopeWhat says what each scope lets a token do.
var scopeWhat = map[admin.Scope]string{
	admin.ScopeRead:    "read accounts, keys, ledgers, reports, purchases",
	admin.ScopeKeys:    "create and revoke app keys",
	admin.ScopeBilling: "add credits, adjust, set auto-recharge, start purchases, Billing page links",
	admin.ScopeAdmin:   "everything, creating and changing accounts too",
}

// describeSettings are the rows printAccount adds for an account's settings.
func describeSettings(w io.Writer, s admin.AccountSettings) {
	fmt.Fprintf(w, "STATUS\t%s\n", orDash(s.Status))
	if s.TierPinned {
		fmt.Fprintln(w, "TIER-PINNED\tyes (no automatic promotion)")
	}
	for _, f := range []struct{ key, v string }{{"NAME", s.Name}, {"EMAIL", s.Email}, {"EXTERNAL-ID", s.ExternalID}} {
		if f.v != "" {
			fmt.Fprintf(w, "%s\t%s\n", f.key, f.v)
		}
	}
	if l := s.SpendLimit; l != nil {
		alert := ""
		if l.AlertAt > 0 {
			alert = ", alert at " + l.AlertAt.String()
		}
		fmt.Fprintf(w, "SPEND-LIMIT\t%s a month%s\n", l.Monthly, alert)
	}
	paid := s.PaidTotal.String()
	if s.FirstPaidAt != nil {
		paid += " since " + formatTime(*s.FirstPaidAt)
	}
	fmt.Fprintf(w, "PAID\t%s\n", paid)
}
