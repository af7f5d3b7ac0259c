package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"time"
)

// A call that moves money (AddCredits, Adjust) can fail after the server applied
// it: the answer was lost, or the server answered 503 because the store failed
// midway or could not confirm the change on its replicas. Such a call is sent
// with an Idempotency-Key (one is generated when the caller gives none) and
// retried with the same key, so the change is applied at most once however
// often it is sent; when no try gets a definite answer, the error is an
// *UnconfirmedError naming the key, for the caller to retry with later.

// Retry bounds the retries of a call that moves money.
type Retry struct {
	// Attempts is the most tries of one call: 0 means DefaultRetry's, 1 never
	// retries.
	Attempts int
	// Backoff is the longest pause after the first failed try; each later pause
	// may be twice the one before, up to MaxBackoff. A pause is drawn between half
	// its bound and the bound, so that clients retrying at once spread out. Zero
	// means DefaultRetry's.
	Backoff, MaxBackoff time.Duration
}

// DefaultRetry is Client.Retry's zero value: 6 tries over about 5 s at most,
// which outlasts a Sentinel failover of a few seconds.
var DefaultRetry = Retry{Attempts: 6, Backoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second}

// RetryEvent tells Client.OnRetry that a try failed and another follows.
type RetryEvent struct {
	Attempt int           // the try that failed, 1 for the first
	Err     error         // why
	Key     string        // the Idempotency-Key every try carries
	Wait    time.Duration // the pause before the next try
}

// UnconfirmedError is the error of a call that moves money when no try got a
// definite answer: each ended in a 502, 503 or 504, or without an answer, so the
// change may or may not have been applied. Calling again with Key applies it at
// most once.
type UnconfirmedError struct {
	Key      string // the Idempotency-Key every try carried
	Attempts int    // tries made
	Err      error  // the last try's error (an *APIError for an answer)
}

func (e *UnconfirmedError) Error() string {
	return fmt.Sprintf("%v; after %d tries the outcome is unknown: retry with the same idempotency key %q, which applies the change at most once",
		e.Err, e.Attempts, e.Key)
}

func (e *UnconfirmedError) Unwrap() error { return e.Err }

// NewIdempotencyKey is a fresh random Idempotency-Key ("cgk_" and 32 hex digits).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "cgk_" + hex.EncodeToString(b[:])
}

// noAnswer marks an error of a try that got no (complete) answer: the request
// may have reached the server.
type noAnswer struct{ error }

func (e noAnswer) Unwrap() error { return e.error }

// outcomeUnknown reports whether err leaves a try's outcome unknown: no answer,
// or an answer saying the server (or a gateway before it) failed midway.
func outcomeUnknown(err error) bool {
	var na noAnswer
	if errors.As(err, &na) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

// postIdempotent POSTs body to path with the Idempotency-Key idemKey (a new one
// when empty), decoding the answer into out, and retries per c.Retry while a
// try's outcome is unknown. replayed reports the server's 200 for a request it
// had already carried out (a first one is 201): the caller's own earlier call
// with that key, or one of these tries whose answer was lost.
func (c *Client) postIdempotent(ctx context.Context, path, idemKey string, body, out any) (replayed bool, err error) {
	if idemKey == "" {
		idemKey = NewIdempotencyKey()
	}
	r := c.retry()
	header := http.Header{"Idempotency-Key": {idemKey}}
	for attempt := 1; ; attempt++ {
		status, err := c.do(ctx, http.MethodPost, path, nil, header, body, out)
		if err == nil {
			return status == http.StatusOK, nil
		}
		if !outcomeUnknown(err) {
			return false, err
		}
		if ctx.Err() != nil || attempt >= r.Attempts {
			return false, &UnconfirmedError{Key: idemKey, Attempts: attempt, Err: err}
		}
		wait := r.pause(attempt)
		if c.OnRetry != nil {
			c.OnRetry(RetryEvent{Attempt: attempt, Err: err, Key: idemKey, Wait: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, &UnconfirmedError{Key: idemKey, Attempts: attempt, Err: err}
		case <-t.C:
		}
	}
}

// retry is c.Retry with DefaultRetry's values for those not set.
func (c *Client) retry() Retry {
	r := c.Retry
	if r.Attempts <= 0 {
		r.Attempts = DefaultRetry.Attempts
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultRetry.Backoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = max(DefaultRetry.MaxBackoff, r.Backoff)
	}
	return r
}

// pause is the wait after the failed try attempt (1-based).
func (r Retry) pause(attempt int) time.Duration {
	bound := r.Backoff
	for i := 1; i < attempt && bound < r.MaxBackoff; i++ {
		bound *= 2
	}
	bound = min(bound, r.MaxBackoff)
	return bound/2 + mrand.N(bound/2+1)
}
