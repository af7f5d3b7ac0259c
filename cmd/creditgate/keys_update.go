package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/creditgate/creditgate/admin"
)

// keySettingFlags are the key settings "keys create" and "keys update" share.
type keySettingFlags struct {
	flags                        *pflag.FlagSet
	limit, limitReset, expiresAt string
	models                       string
	disabled                     bool
}

func (k *keySettingFlags) register(f *pflag.FlagSet, update bool) {
	k.flags = f
	clear := ""
	if update {
		clear = `; "" removes it`
	}
	f.StringVar(&k.limit, "limit", "", `what the key may spend per --limit-reset period, USD such as 20.00 ("0": no limit)`)
	f.StringVar(&k.limitReset, "limit-reset", "", "when the limit starts again: daily, weekly, monthly (calendar periods in UTC, weeks from Monday) or never")
	f.StringVar(&k.expiresAt, "expires-at", "", "when the key stops working, RFC 3339 such as 2030-01-31T00:00:00Z"+clear)
	f.StringVar(&k.models, "models", "", "the only models the key may use, comma-separated (aliases resolve first)"+clear)
	f.BoolVar(&k.disabled, "disabled", false, "refuse the key (401) until enabled again"+map[bool]string{true: "; --disabled=false enables it"}[update])
}

func (k *keySettingFlags) modelList() []string {
	var out []string
	for _, m := range strings.Split(k.models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

func (k *keySettingFlags) create(req *admin.CreateKeyRequest) error {
	expires, err := parseExpiresAt(k.expiresAt)
	if err != nil {
		return err
	}
	req.Limit, req.LimitReset, req.ExpiresAt, req.Models, req.Disabled = k.limit, k.limitReset, expires, k.modelList(), k.disabled
	return nil
}

// update sets the fields of req whose flags were given.
func (k *keySettingFlags) update(req *admin.UpdateKeyRequest) error {
	f := k.flags
	if f.Changed("limit") {
		req.Limit = &k.limit
	}
	if f.Changed("limit-reset") {
		req.LimitReset = &k.limitReset
	}
	if f.Changed("expires-at") {
		if k.expiresAt == "" {
			req.ClearExpiresAt = true
		} else {
			t, err := time.Parse(time.RFC3339, k.expiresAt)
			if err != nil {
				return fmt.Errorf("invalid --expires-at %q: want an RFC 3339 time such as 2030-01-31T00:00:00Z, or \"\" for none", k.expiresAt)
			}
			req.ExpiresAt = &t
		}
	}
	if f.Changed("models") {
		m := k.modelList()
		if m == nil {
			m = []string{}
		}
		req.Models = &m
	}
	if f.Changed("disabled") {
		req.Disabled = &k.disabled
	}
	return nil
}

// keysUpdateCommand is "keys update ACCOUNT KEY_ID": PATCH of the key's
// settings, only the flags given.
func keysUpdateCommand(o *clientOptions) *cobra.Command {
	var (
		name     string
		rpm, tpm int64
		settings keySettingFlags
	)
	cmd := &cobra.Command{
		Use:   "update ACCOUNT KEY_ID",
		Short: "Change an API key: name, limit, limit reset, expiry, models, rpm, tpm, disabled",
		Long: `Change an API key's settings; only the flags given change. Every proxy
sees the change within auth.key_cache_ttl.

  creditgate keys update acme key_123 --limit 20 --limit-reset monthly
  creditgate keys update acme key_123 --models gpt-4o,gpt-4o-mini --rpm 60
  creditgate keys update acme key_123 --expires-at ""      (never expires)
  creditgate keys update acme key_123 --disabled`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var req admin.UpdateKeyRequest
			if f.Changed("name") {
				req.Name = &name
			}
			if f.Changed("rpm") {
				req.RPM = &rpm
			}
			if f.Changed("tpm") {
				req.TPM = &tpm
			}
			if err := settings.update(&req); err != nil {
				return err
			}
			if req == (admin.UpdateKeyRequest{}) {
				return errors.New("nothing to change: pass one or more of --name, --limit, --limit-reset, --expires-at, --models, --rpm, --tpm, --disabled")
			}
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			key, err := c.UpdateKey(cmd.Context(), args[0], args[1], req)
			if err != nil {
				return err
			}
			return o.print(cmd, key, func(w io.Writer) {
				fmt.Fprintf(w, "ID\t%s\n", key.ID)
				fmt.Fprintf(w, "NAME\t%s\n", orDash(key.Name))
				fmt.Fprintf(w, "HINT\t%s\n", key.Hint)
				fmt.Fprintf(w, "RATE LIMITS\t%d rpm, %d tpm (0: the tier's)\n", key.RPM, key.TPM)
				printKeySettings(w, key.KeySettings)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", `a label for the key ("" clears it)`)
	cmd.Flags().Int64Var(&rpm, "rpm", 0, "the key's own requests per minute (0: the tier's only)")
	cmd.Flags().Int64Var(&tpm, "tpm", 0, "the key's own tokens per minute (0: the tier's only)")
	settings.register(cmd.Flags(), true)
	return cmd
}

// hasKeySettings reports whether s is other than a plain key's.
func hasKeySettings(s admin.KeySettings) bool {
	return s.Limit != nil || s.ExpiresAt != nil || len(s.Models) > 0 || s.Disabled
}

// printKeySettings prints a key's limits as rows of a key's table.
func printKeySettings(w io.Writer, s admin.KeySettings) {
	fmt.Fprintf(w, "LIMIT\t%s\n", describeLimit(s))
	fmt.Fprintf(w, "EXPIRES\t%s\n", describeExpiry(s))
	fmt.Fprintf(w, "MODELS\t%s\n", describeModels(s))
	fmt.Fprintf(w, "STATE\t%s\n", describeState(s))
}

// keySettingsRow is the LIMIT, EXPIRES, MODELS, RPM/TPM and STATE cells of keys list.
func keySettingsRow(k admin.Key) string {
	return strings.Join([]string{describeLimit(k.KeySettings), describeExpiry(k.KeySettings), describeModels(k.KeySettings),
		fmt.Sprintf("%d/%d", k.RPM, k.TPM), describeState(k.KeySettings)}, "\t")
}

func describeLimit(s admin.KeySettings) string {
	if s.Limit == nil {
		return "none"
	}
	return s.Limit.String() + " " + s.LimitReset
}

func describeExpiry(s admin.KeySettings) string {
	if s.ExpiresAt == nil {
		return "never"
	}
	return formatTime(*s.ExpiresAt)
}

func describeModels(s admin.KeySettings) string {
	if len(s.Models) == 0 {
		return "all"
	}
	return strings.Join(s.Models, ",")
}

func describeState(s admin.KeySettings) string {
	if s.Disabled {
		return "disabled"
	}
	return "enabled"
}
