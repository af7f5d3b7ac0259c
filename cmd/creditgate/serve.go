package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
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
		Args:  cobra.NoArgs,
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
			fmt.Fprintf(out, "%s: OK (%d priced models, %d tiers)\n", path, len(cfg.Pricing().Models()), len(cfg.Billing.Tiers))
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "", "YAML configuration file")
	return cmd
}
