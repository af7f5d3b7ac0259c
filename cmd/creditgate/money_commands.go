package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/creditgate/creditgate/admin/client"
)

// moneyRetry is how a command that moves money retries while the outcome of a
// try is unknown (tests shorten it).
var moneyRetry = client.DefaultRetry

// moneyCall is what a command that moves money (credits add, credits adjust)
// does around its call. The call always carries an Idempotency-Key: the one
// --idempotency-key gives, else a new one printed first, so that an operator
// can finish the command by hand however it ends. The client retries with that
// key while a try's outcome is unknown (a 503, no answer); each retry is
// printed, and a command whose tries all failed says how to retry it.
type moneyCall struct {
	key string
	// generated: nobody but this command knows key, so a replayed answer is one
	// of its own tries (net/http may resend a request that carries an
	// Idempotency-Key itself, unseen by OnRetry).
	generated bool
	retried   bool
	stderr    io.Writer
}

// newMoneyCall prepares c for one command that moves money with the key of
// --idempotency-key ("" for none).
func newMoneyCall(cmd *cobra.Command, c *client.Client, key string) *moneyCall {
	m := &moneyCall{key: key, stderr: cmd.ErrOrStderr()}
	if m.key == "" {
		m.key, m.generated = client.NewIdempotencyKey(), true
		fmt.Fprintf(m.stderr, "Idempotency-Key: %s (to retry this command by hand, add --idempotency-key %s)\n", m.key, m.key)
	}
	c.Retry = moneyRetry
	c.OnRetry = func(e client.RetryEvent) {
		m.retried = true
		fmt.Fprintf(m.stderr, "Try %d failed: %v; retrying in %s with the same Idempotency-Key.\n", e.Attempt, e.Err, e.Wait.Round(time.Millisecond))
	}
	return m
}

// err is the command's error for the call's err: for one whose outcome is
// unknown, with the command line that finishes it.
func (m *moneyCall) err(err error) error {
	var ue *client.UnconfirmedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%v; after %d tries the outcome is unknown: run the same command again with --idempotency-key %s, which applies it at most once", ue.Err, ue.Attempts, m.key)
	}
	return err
}

// replayed is the note for an answer the server replayed: an earlier try of
// this command whose answer was lost, or an earlier command with the same key.
// done says what the first one did ("credited", "changed").
func (m *moneyCall) replayed(done string) string {
	if m.retried || m.generated {
		return "An earlier try's answer was lost, but the server had applied it: applied once; the result follows."
	}
	return "This idempotency key was already used: nothing more was " + done + "; the original result follows."
}
