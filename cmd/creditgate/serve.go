package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

func serveCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy (data plane) and the admin API",
		Long: `Run the metering proxy and the admin API.

The configuration comes from --config FILE (or $CREDITGATE_CONFIG), overlaid with
CREDITGATE_* environment variables; without a file, defaults plus the environment
are used. Pricing, tiers, grace and clamping reload when the file changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				path = os.Getenv("CREDITGATE_CONFIG")
			}
			cfg, err := config.Load(path)
			if err != nil {
				return fmt.Errorf("configuration: %w", err)
			}
			return run(cmd.Context(), cfg, app.Options{ConfigPath: path}, nil)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	return cmd
}

// run starts an App, calls ready (if any) once it listens, and serves until SIGINT
// or SIGTERM, then shuts down gracefully.
func run(ctx context.Context, cfg *config.Config, o app.Options, ready func(*app.App) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, o)
	if err != nil {
		return err
	}
	if ready != nil {
		if err := ready(a); err != nil {
			_ = a.Shutdown(context.Background())
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve() }()
	select {
	case err := <-errc:
		_ = a.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	// Shutdown bounds itself: shutdown_timeout for in-flight requests and streams,
	// then a short wait for their settlements and the spool flush.
	a.Logger().Info("shutting down: finishing in-flight requests", zap.Duration("deadline", cfg.ShutdownTimeout))
	if err := a.Shutdown(context.Background()); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return <-errc
}

func checkConfigCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate a configuration file (and CREDITGATE_* overrides) without serving",
		Long: `Validate a configuration file, with CREDITGATE_* overrides, without serving: every
problem is reported at once, each naming its key. A valid file prints its warnings,
then the resolved price table (the built-in table with pricing.models and
pricing.aliases merged over it: each model's prices in USD per 1M tokens, its
max output tokens, the encoding it is counted with, and whether the row comes from
the built-in table or the file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return errors.New("check-config needs --config FILE")
			}
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(out, "warning:", w)
			}
			rows := cfg.PriceTable()
			if err := printPriceTable(out, rows); err != nil {
				return err
			}
			aliases := 0
			for _, r := range rows {
				if r.AliasOf != "" {
					aliases++
				}
			}
			builtin := "built-in prices off"
			if cfg.Prices.Builtin {
				builtin = "built-in prices checked " + config.BuiltinPricesChecked
			}
			fmt.Fprintf(out, "%s: OK (%d priced models, %s, %s; %s)\n", path, len(cfg.Pricing().Models()),
				plural(aliases, "alias", "aliases"), plural(len(cfg.Billing.Tiers), "tier", "tiers"), builtin)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	return cmd
}

// printPriceTable writes the resolved price table, one row per model or alias.
func printPriceTable(w io.Writer, rows []config.PricedModel) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "MODEL\tINPUT\tCACHED\tOUTPUT\tMAX OUTPUT\tENCODING\tSOURCE")
	for _, r := range rows {
		p := r.Price
		maxOut := strconv.FormatInt(p.MaxOutputTokens, 10)
		switch {
		case p.MaxOutputTokens == 0 && p.Output == 0:
			maxOut = "-" // embeddings: no output
		case p.MaxOutputTokens == 0:
			maxOut = strconv.FormatInt(metering.DefaultMaxOutputTokens, 10) + " (default)"
		}
		enc := p.Encoding
		if enc == "" {
			enc = "by name"
		}
		source := r.Source
		if r.AliasOf != "" {
			source += ", alias of " + r.AliasOf
		}
		if p.AudioMinute > 0 { // whisper-1: priced per minute of audio, not per token
			source += ", audio " + unitPrice(p.AudioMinute) + "/min"
		}
		if units := mediaUnits(p); units != "" {
			source += "; " + units
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, unitPrice(p.Input), unitPrice(p.CachedInput), unitPrice(p.Output), maxOut, enc, source)
	}
	return tw.Flush()
}

// mediaUnits describes the prices of a model not billed by text tokens alone
// (README "Images, speech and moderations"): per image, per 1M characters,
// image input and audio output tokens; "" for none.
func mediaUnits(p metering.Price) string {
	var parts []string
	if p.Images != nil {
		var entries []string
		for q, sizes := range p.Images.PerImage {
			for size, price := range sizes {
				entries = append(entries, q+" "+size+" "+unitPrice(price))
			}
		}
		sort.Strings(entries)
		parts = append(parts, "per image: "+strings.Join(entries, ", "))
	}
	if p.Characters > 0 {
		parts = append(parts, unitPrice(p.Characters)+" per 1M characters")
	}
	if p.ImageInput > 0 {
		parts = append(parts, "image input "+unitPrice(p.ImageInput))
	}
	if p.AudioOutput != p.Output {
		parts = append(parts, "audio output "+unitPrice(p.AudioOutput))
	}
	return strings.Join(parts, "; ")
}

// unitPrice writes a price per 1M tokens in USD the way price lists do: at
// least two decimals, and every significant one ("2.50", "0.075", "10.00").
func unitPrice(m money.Micros) string {
	s := m.String() // six decimals
	for strings.HasSuffix(s, "0") && len(s)-strings.IndexByte(s, '.') > 3 {
		s = s[:len(s)-1]
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
