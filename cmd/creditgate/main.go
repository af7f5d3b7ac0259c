// Command creditgate is the metering proxy and its operator CLI: `serve` runs the
// proxy, `quickstart` runs it with an embedded store, a demo account and a mock
// upstream, `check-config` validates a configuration file, `migrate` creates or
// upgrades the ledger archive's schema, `demo` spends a
// quickstart's demo account, and the `accounts`, `keys`, `credits`, `ledger`
// (with `ledger export`), `auto-recharge`, `usage` and `audit` commands are clients
// of the admin API. The command only parses flags and wires packages together.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if err := newRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "creditgate",
		Short:         "A metering reverse proxy with prepaid credits for OpenAI-compatible APIs",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(serveCommand(), quickstartCommand(), checkConfigCommand(), mockUpstreamCommand(), versionCommand())
	root.AddCommand(healthcheckCommand(), migrateCommand())
	addClientCommands(root)
	addReportCommands(root)
	addDemoCommand(root)
	return root
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := version
			if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "creditgate %s (%s, %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
