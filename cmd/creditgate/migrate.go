package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/pgarchive"
)

func migrateCommand() *cobra.Command {
	var path, url, schema string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the ledger archive's PostgreSQL schema",
		Long: `Apply the ledger archive's migrations (embedded in this binary) to its PostgreSQL
schema, creating the schema if needed: each migration once, in order, under an
advisory lock, so instances starting at the same time are safe. Prints the
versions applied and the schema's version.

The archive comes from --url and --schema, else from the configuration:
ledger.archive.postgres_url and ledger.archive.schema of --config FILE (or
$CREDITGATE_CONFIG) with CREDITGATE_* overrides. Run it before starting
instances that have ledger.archive.migrate: manual.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				if path == "" {
					path = os.Getenv("CREDITGATE_CONFIG")
				}
				cfg, err := config.Load(path)
				if err != nil {
					return fmt.Errorf("configuration: %w", err)
				}
				url = cfg.Ledger.Archive.PostgresURL
				if schema == "" {
					schema = cfg.Ledger.Archive.Schema
				}
			}
			if url == "" {
				return errors.New("no archive: set ledger.archive.postgres_url (CREDITGATE_LEDGER_ARCHIVE_POSTGRES_URL) or pass --url")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			arch, err := pgarchive.Open(ctx, url, schema)
			if err != nil {
				return err
			}
			defer arch.Close()
			applied, err := arch.Migrate(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, v := range applied {
				fmt.Fprintf(out, "applied migration %d\n", v)
			}
			v, err := pgarchive.SchemaVersion(ctx, arch.Pool(), arch.Schema())
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "schema %s is at version %d (%d applied now)\n", arch.Schema(), v, len(applied))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "config", "c", "", "YAML configuration file")
	f.StringVar(&url, "url", "", "the archive's PostgreSQL URL (instead of the configuration's)")
	f.StringVar(&schema, "schema", "", "the archive's schema (default: ledger.archive.schema, creditgate)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}
