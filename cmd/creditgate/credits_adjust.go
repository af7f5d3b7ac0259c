package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// negativeArg is an argument that reads as a negative number ("-1.50", "-.5"),
// which flag parsing would otherwise take for a shorthand flag.
var negativeArg = regexp.MustCompile(`^-[0-9.]`)

// escapeMark keeps a negative number away from flag parsing: an argument that
// starts with it is positional. Removed again after parsing.
const escapeMark = "\x00"

// creditsAdjustCommand is "credits adjust ACCOUNT AMOUNT --reason TEXT": an
// operator's correction, positive (credit a grant) or negative (take credit back).
func creditsAdjustCommand(o *clientOptions) *cobra.Command {
	var reason, expiresAt, idemKey string
	cmd := &cobra.Command{
		Use:   "adjust ACCOUNT AMOUNT --reason TEXT",
		Short: "Correct an account's credit by a signed AMOUNT USD (e.g. -1.50 or 2.00)",
		Long: "Record an operator's correction of an account's credit, with a reason that goes into the ledger.\n" +
			"A positive AMOUNT credits a grant of source \"adjustment\" (paying debt first); a negative one\n" +
			"takes credit back from the grants that expire first. It is not a purchase: the minimum purchase\n" +
			"and the tier's maximum top-up and balance do not apply. A claw-back may take at most the credit\n" +
			"not held by in-flight requests (credit − reserved).\n" +
			"The request carries an Idempotency-Key: --idempotency-key, else a new one, printed first.\n" +
			"It is retried with that key while its outcome is unknown (503, no answer); repeating the\n" +
			"command with the same key changes nothing more and prints the original result.",
		Example: "  creditgate credits adjust acme -1.50 --reason \"refund of req_123 (upstream error)\"\n" +
			"  creditgate credits adjust acme 10 --reason \"granted to the wrong account\" --idempotency-key fix-42",
		// Parsed in RunE, where a negative AMOUNT is kept from being read as a flag.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, raw []string) error {
			escaped := make([]string, len(raw))
			for i, a := range raw {
				if negativeArg.MatchString(a) {
					a = escapeMark + a
				}
				escaped[i] = a
			}
			cmd.DisableFlagParsing = false
			err := cmd.ParseFlags(escaped)
			cmd.DisableFlagParsing = true
			if errors.Is(err, pflag.ErrHelp) {
				return cmd.Help()
			}
			if err != nil {
				return err
			}
			if help, _ := cmd.Flags().GetBool("help"); help {
				return cmd.Help()
			}
			unescape := func(s string) string { return strings.TrimPrefix(s, escapeMark) }
			reason, expiresAt, idemKey = unescape(reason), unescape(expiresAt), unescape(idemKey)
			for _, f := range []string{"admin-url", "admin-token", "output"} {
				if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
					_ = fl.Value.Set(unescape(fl.Value.String()))
				}
			}
			args := cmd.Flags().Args()
			for i := range args {
				args[i] = unescape(args[i])
			}
			if len(args) != 2 {
				return fmt.Errorf("accepts 2 arg(s), received %d: ACCOUNT AMOUNT", len(args))
			}
			if strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required: say why the account is adjusted (it goes into the ledger)")
			}
			expires, err := parseExpiresAt(expiresAt)
			if err != nil {
				return err
			}
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			m := newMoneyCall(cmd, c, idemKey)
			res, err := c.Adjust(cmd.Context(), args[0], args[1], reason, expires, m.key)
			if err != nil {
				return m.err(err)
			}
			if res.Replayed {
				fmt.Fprintln(cmd.ErrOrStderr(), m.replayed("changed"))
			}
			return o.print(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "ADJUSTMENT\t%s\n", res.ID)
				fmt.Fprintf(w, "AMOUNT\t%s\n", res.Amount)
				fmt.Fprintf(w, "REASON\t%s\n", res.Reason)
				if res.Grant != nil {
					fmt.Fprintf(w, "GRANT\t%s\n", res.Grant.ID)
					fmt.Fprintf(w, "EXPIRES\t%s\n", formatTime(res.Grant.ExpiresAt))
					fmt.Fprintf(w, "DEBT REPAID\t%s\n", res.DebtRepaid)
				}
				fmt.Fprintf(w, "BALANCE AFTER\t%s\n", res.BalanceAfter)
				fmt.Fprintf(w, "EVENT\t%s\n", res.Event.ID)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the account is adjusted (required; recorded in the ledger)")
	cmd.Flags().StringVar(&expiresAt, "expires-at", "", "expiry of a positive adjustment's grant (RFC 3339); default: the configured credit lifetime")
	cmd.Flags().StringVar(&idemKey, "idempotency-key", "", "makes retries safe: the same key and arguments adjust once (default: a new key, printed)")
	return cmd
}
