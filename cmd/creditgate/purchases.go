package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin"
)

// purchasesCommand is `creditgate purchases create|list`: purchases of credit
// through the payment provider (payments.provider).
func purchasesCommand(o *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "purchases", Short: "Start and list purchases of credit through the payment provider"}

	var (
		saveCard                       bool
		successURL, cancelURL, idemKey string
	)
	create := &cobra.Command{
		Use:   "create ACCOUNT AMOUNT",
		Short: "Start a purchase of AMOUNT USD and print its checkout page's URL",
		Long: "Start a purchase of AMOUNT USD (a whole number of cents, e.g. 10.00) through the payment\n" +
			"provider and print the checkout page's URL to send the customer to. The credit is added\n" +
			"when the provider reports the payment. With --idempotency-key, repeating the command with\n" +
			"the same key prints the same purchase and checkout.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			req := admin.CreatePurchaseRequest{Amount: args[1], SaveCard: saveCard, SuccessURL: successURL, CancelURL: cancelURL}
			p, err := c.CreatePurchase(cmd.Context(), args[0], req, idemKey)
			if err != nil {
				return err
			}
			if p.Replayed {
				fmt.Fprintln(cmd.ErrOrStderr(), "This idempotency key already started this purchase; it follows as it stands.")
			}
			return o.print(cmd, p, func(w io.Writer) { printPurchase(w, p) })
		},
	}
	create.Flags().BoolVar(&saveCard, "save-card", false, "the customer consents to keep the card for auto-recharge")
	create.Flags().StringVar(&successURL, "success-url", "", "where the checkout sends the customer after paying (default: the Billing page)")
	create.Flags().StringVar(&cancelURL, "cancel-url", "", "where the checkout sends the customer after cancelling (default: the Billing page)")
	create.Flags().StringVar(&idemKey, "idempotency-key", "", "makes retries safe: the same key and arguments start one purchase")

	var limit int
	list := &cobra.Command{
		Use:   "list ACCOUNT",
		Short: "List an account's purchases, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			ps, err := c.ListPurchases(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			return o.print(cmd, ps, func(w io.Writer) {
				if len(ps.Data) == 0 {
					fmt.Fprintln(w, "no purchases")
					return
				}
				fmt.Fprintln(w, "ID\tSTATUS\tAMOUNT\tPAID\tTAKEN BACK\tPROVIDER\tCREATED\tPAYMENT")
				for _, p := range ps.Data {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Status, p.Amount, p.PaidAmount, p.TakenBack, p.Provider,
						formatTime(p.CreatedAt), orDash(p.PaymentRef))
				}
			})
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "at most this many, 1 to 1000 (default: the server's, 100)")
	cmd.AddCommand(create, list)
	return cmd
}

func printPurchase(w io.Writer, p admin.Purchase) {
	fmt.Fprintf(w, "ID\t%s\n", p.ID)
	fmt.Fprintf(w, "ACCOUNT\t%s\n", p.Account)
	fmt.Fprintf(w, "STATUS\t%s\n", p.Status)
	fmt.Fprintf(w, "AMOUNT\t%s\n", p.Amount)
	fmt.Fprintf(w, "PROVIDER\t%s\n", p.Provider)
	fmt.Fprintf(w, "SAVE CARD\t%t\n", p.SaveCard)
	if p.URL != "" {
		fmt.Fprintf(w, "CHECKOUT URL\t%s\n", p.URL)
	}
	if p.ExpiresAt != nil {
		fmt.Fprintf(w, "EXPIRES\t%s\n", formatTime(*p.ExpiresAt))
	}
	if p.Reason != "" {
		fmt.Fprintf(w, "REASON\t%s\n", p.Reason)
	}
}

// portalCommand is `creditgate portal ACCOUNT`: a single-use link to the
// account's Billing page.
func portalCommand(o *clientOptions) *cobra.Command {
	var returnURL string
	cmd := &cobra.Command{
		Use:   "portal ACCOUNT",
		Short: "Print a single-use link to an account's Billing page",
		Long: "Print a single-use link that opens ACCOUNT's Billing page (balance, usage, purchases,\n" +
			"auto-recharge) for its holder. It works once, until it expires (portal.link_ttl, 10m by\n" +
			"default). It is a credential: give it to the account's holder only.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.CreatePortalSession(cmd.Context(), args[0], returnURL)
			if err != nil {
				return err
			}
			if o.output == "json" {
				return o.print(cmd, s, nil)
			}
			// The link alone on stdout, so that scripts can open or send it.
			fmt.Fprintf(cmd.ErrOrStderr(), "Single-use link to %s's Billing page, valid until %s:\n", args[0], formatTime(s.ExpiresAt))
			_, err = fmt.Fprintln(cmd.OutOrStdout(), s.URL)
			return err
		},
	}
	cmd.Flags().StringVar(&returnURL, "return-url", "", "where the Billing page's \"Back\" link goes (your app)")
	return cmd
}
