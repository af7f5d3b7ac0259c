package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

func mockUpstreamCommand() *cobra.Command {
	var (
		listen, apiKey string
		outputTokens   int
		eventDelay     time.Duration
		batchDelay     time.Duration
		bgDelay        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "mock-upstream",
		Short: "Serve the bundled OpenAI-compatible mock API (for demos, tests and benchmarks)",
		Long: `Serve an OpenAI-compatible mock API under /v1: chat completions, completions,
embeddings, responses (plain and streamed) and models, with deterministic text and
exact tiktoken usage; files, batches (ended --batch-delay after their creation, at the
next look), background responses (queued, ended --background-delay after their
creation, at the next look) and stored responses and chat completions, in memory. Faults can be injected per request with X-Mock-* headers
(X-Mock-Status, X-Mock-Delay, X-Mock-Drop-After, X-Mock-No-Usage, …).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := mockupstream.Preload(); err != nil {
				return err
			}
			m := mockupstream.New()
			m.APIKey, m.OutputTokens, m.EventDelay, m.MaxRecorded, m.BatchDelay = apiKey, outputTokens, eventDelay, 1, batchDelay
			m.BackgroundDelay = bgDelay
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(cmd.OutOrStdout(), "mock upstream listening: base URL http://%s/v1\n", ln.Addr())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9090", "address to listen on")
	cmd.Flags().StringVar(&apiKey, "api-key", "", "require this bearer key (default: accept any)")
	cmd.Flags().IntVar(&outputTokens, "output-tokens", mockupstream.DefaultOutputTokens, "generated tokens per choice")
	cmd.Flags().DurationVar(&eventDelay, "event-delay", 0, "pause between stream events")
	cmd.Flags().DurationVar(&batchDelay, "batch-delay", 30*time.Second, "how long a batch runs (0: until the process ends)")
	cmd.Flags().DurationVar(&bgDelay, "background-delay", 5*time.Second, "how long a background response runs (0: until the process ends)")
	return cmd
}
