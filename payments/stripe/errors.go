package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	stripego "github.com/stripe/stripe-go/v85"

	"github.com/creditgate/creditgate/payments"
)

// apiError turns a library error into one that is safe to log: Stripe's type,
// code, status, request id and message, never the raw error (whose JSON can carry a
// PaymentIntent's client secret). A 4xx other than a lock or key-in-use conflict
// wraps payments.ErrRejected: sending it again cannot succeed.
func apiError(op string, err error) error {
	var se *stripego.Error
	if !errors.As(err, &se) {
		// Network errors and context cancellation: the outcome is unknown.
		return fmt.Errorf("stripe %s: %w", op, err)
	}
	msg := fmt.Sprintf("stripe %s: %s", op, describe(se))
	if transient(se) {
		return errors.New(msg)
	}
	return fmt.Errorf("%w: %s", payments.ErrRejected, msg)
}

// describe is "type/code (HTTP status, request req_…): message".
func describe(se *stripego.Error) string {
	kind := string(se.Type)
	if se.Code != "" {
		kind += "/" + string(se.Code)
	}
	if se.DeclineCode != "" {
		kind += "/" + string(se.DeclineCode)
	}
	where := fmt.Sprintf("HTTP %d", se.HTTPStatusCode)
	if se.RequestID != "" {
		where += ", request " + se.RequestID
	}
	if se.Param != "" {
		where += ", param " + se.Param
	}
	return fmt.Sprintf("%s (%s): %s", kind, where, se.Msg)
}

// transient reports whether a Stripe error may go away if the request is resent.
func transient(se *stripego.Error) bool {
	return se.HTTPStatusCode >= 500 || se.HTTPStatusCode == http.StatusTooManyRequests ||
		se.HTTPStatusCode == http.StatusConflict || se.Code == stripego.ErrorCodeIdempotencyKeyInUse
}

func keyInUse(err error) bool {
	var se *stripego.Error
	return errors.As(err, &se) && (se.Code == stripego.ErrorCodeIdempotencyKeyInUse ||
		se.HTTPStatusCode == http.StatusConflict && se.Type == stripego.ErrorTypeIdempotency)
}

// keyInUseAttempts bounds how often a request is resent while another request
// holds its Idempotency-Key (waits of 0.1, 0.2, 0.4, 0.8, 1.6 s by default).
const keyInUseAttempts = 6

// sendIdempotent runs call, resending it (same key) while Stripe answers that
// another request with its Idempotency-Key is still running: two concurrent calls
// for one purchase or account then both get the first one's answer.
func sendIdempotent[T any](ctx context.Context, p *Provider, call func() (T, error)) (T, error) {
	wait := p.keyInUseWait
	for attempt := 1; ; attempt++ {
		v, err := call()
		if err == nil || !keyInUse(err) || attempt == keyInUseAttempts {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}
