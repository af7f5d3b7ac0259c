// Package notify delivers creditgate's webhooks: the auto-recharge charger's
// requests and the operator notices. A delivery is an HTTP POST of a JSON body with
// two headers: X-Creditgate-Event names the event type, and X-Creditgate-Signature
// is "sha256=" followed by the lowercase hex HMAC-SHA256 of the raw body keyed with
// the webhook's secret, which the receiver recomputes (Verify) before trusting the
// body. Each attempt has a timeout; failed attempts are retried with exponential
// back-off when retrying can help (no answer, 408, 425, 429, 5xx). Redirects are
// not followed, so a signed body only ever goes to the configured URL. Neither the
// secret nor the bodies are logged.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Header names of every delivery.
const (
	SignatureHeader = "X-Creditgate-Signature"
	EventHeader     = "X-Creditgate-Event"
)

// Defaults of Options.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultAttempts   = 3
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// maxResponseBytes is how much of an answer is read (and discarded) so the
// connection can be reused.
const maxResponseBytes = 64 << 10

// Options configure a Webhook.
type Options struct {
	// URL is the absolute http(s) URL deliveries are POSTed to. Required.
	URL string
	// Secret keys the signature. Required: an unsigned webhook could be forged.
	Secret string
	// Timeout bounds one attempt, from connecting to the last byte of the answer
	// (default DefaultTimeout).
	Timeout time.Duration
	// Attempts is how many times a delivery is tried (default DefaultAttempts).
	Attempts int
	// Backoff is the wait before the second attempt; it doubles for each later one,
	// up to MaxBackoff (defaults DefaultBackoff, DefaultMaxBackoff).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Transport sends the requests (default: a clone of http.DefaultTransport).
	Transport http.RoundTripper
	// Sleep waits between attempts (default: a timer that ends early with ctx);
	// tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Webhook delivers signed JSON bodies to one URL. It is safe for concurrent use.
type Webhook struct {
	url, secret string
	o           Options
	client      *http.Client
}

// New checks o and returns a Webhook.
func New(o Options) (*Webhook, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: webhook URL %q is not an absolute http(s) URL", o.URL)
	}
	if o.Secret == "" {
		return nil, errors.New("notify: webhook secret is empty; deliveries must be signed")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.Backoff)
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &Webhook{
		url: o.URL, secret: o.Secret, o: o,
		client: &http.Client{
			Transport: o.Transport,
			Timeout:   o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// MaxDuration bounds how long one Send can take: every attempt timing out, plus
// the waits between them. Leases on work a delivery performs must outlast it.
func (w *Webhook) MaxDuration() time.Duration {
	d := time.Duration(w.o.Attempts) * w.o.Timeout
	wait := w.o.Backoff
	for i := 1; i < w.o.Attempts; i++ {
		d += wait
		wait = min(wait*2, w.o.MaxBackoff)
	}
	return d
}

// DeliveryError is a delivery that did not get a 2xx answer.
type DeliveryError struct {
	Event    string
	Attempts int
	// Status is the last answer's HTTP status; 0 when no attempt got an answer
	// (timeout, refused connection…), which leaves open whether the receiver acted.
	Status int
	// Err is the last attempt's transport error when Status is 0.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("webhook %s: answered HTTP %d after %d attempt(s)", e.Event, e.Status, e.Attempts)
	}
	return fmt.Sprintf("webhook %s: no answer after %d attempt(s): %v", e.Event, e.Attempts, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Answered reports whether the receiver answered (with a non-2xx status): a
// definite refusal, as opposed to no answer at all.
func (e *DeliveryError) Answered() bool { return e.Status != 0 }

// Send POSTs body (JSON) for event, retrying as the options say, and returns nil
// on a 2xx answer, a *DeliveryError when every attempt failed, or ctx's error
// when ctx ended first.
func (w *Webhook) Send(ctx context.Context, event string, body []byte) error {
	sig := Sign(w.secret, body)
	wait := w.o.Backoff
	last := &DeliveryError{Event: event}
	for attempt := 1; attempt <= w.o.Attempts; attempt++ {
		if attempt > 1 {
			if err := w.o.Sleep(ctx, wait); err != nil {
				return err
			}
			wait = min(wait*2, w.o.MaxBackoff)
		}
		last.Attempts = attempt
		status, err := w.post(ctx, event, body, sig)
		if err == nil && status >= 200 && status <= 299 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last.Status, last.Err = status, err
		if err == nil && !retryable(status) {
			break
		}
	}
	return last
}

// retryable says whether another attempt may get a different answer.
func retryable(status int) bool {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return true
	case status >= 500:
		return true
	}
	return false
}

func (w *Webhook) post(ctx context.Context, event string, body []byte, sig string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "creditgate-webhook")
	req.Header.Set(EventHeader, event)
	req.Header.Set(SignatureHeader, sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, scrub(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// scrub drops the URL's query from a transport error: a webhook URL may carry a
// token there, and errors end up in logs.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery, u.User = "", nil
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

// Sign returns the signature header value of body: "sha256=<hex HMAC-SHA256>".
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature (an X-Creditgate-Signature value) is body's
// signature under secret. It compares in constant time; receivers use it.
func Verify(secret string, body []byte, signature string) bool {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
