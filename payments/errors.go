package payments

import "errors"

// Errors a Provider wraps, so callers choose an answer with errors.Is.
var (
	// ErrBadSignature: a webhook whose signature is missing, malformed, does not
	// match the secret, or whose timestamp is more than WebhookTolerance away from
	// now. The webhook handler answers 400 and credits nothing.
	ErrBadSignature = errors.New("payments: bad webhook signature")
	// ErrInvalidEvent: a correctly signed event creditgate cannot use (another API
	// version, another currency, a missing field). The handler answers 400 (so the
	// provider shows the failure and retries) and logs it for the operator.
	ErrInvalidEvent = errors.New("payments: unusable webhook event")
	// ErrInvalid: the caller's request is wrong (an empty id, an amount that is not
	// a whole number of cents); nothing was sent to the provider.
	ErrInvalid = errors.New("payments: invalid request")
	// ErrRejected: the provider refused the request itself (not a card decline):
	// bad parameters, a missing customer or payment method, an idempotency key
	// reused with other parameters. Retrying the same request cannot succeed.
	ErrRejected = errors.New("payments: rejected by the provider")
	// ErrCurrency: the configured currency cannot be used (see Currency).
	ErrCurrency = errors.New("payments: unsupported currency")
)
