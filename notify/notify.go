// Package notify delivers creditgate's webhooks, the auto-recharge charger's
// requests and the operator notices, signed per the Standard Webhooks
// specification (standardwebhooks.com). A delivery is an HTTP POST of a JSON body
// with webhook-id (one per message, the same on every attempt, so receivers can
// deduplicate), webhook-timestamp (the attempt's Unix seconds) and
// webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per
// configured secret, so secrets can be rotated), plus X-Creditgate-Event naming
// the event and, for one release, the deprecated body-only X-Creditgate-Signature.
// Receivers check a delivery with Verify, which rejects a timestamp more than
// Tolerance away, so a captured message cannot be replayed later. Each attempt has
// a timeout; failed attempts are retried with exponential back-off when retrying
// can help (no answer, 408, 425, 429, 5xx). Redirects are not followed, so a
// signed body only ever goes to the configured URL. Neither the secrets nor the
// bodies are logged or put in errors.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// EventHeader names the event type of every delivery ("balance.low"…).
const EventHeader = "X-Creditgate-Event"

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
	// Secret signs every delivery: a Standard Webhooks secret "whsec_<base64>",
	// or, for one release, any other string, whose raw bytes are then the key
	// (see ParseSecret). It also keys the deprecated X-Creditgate-Signature, as
	// the string it is written as. Secret or Secrets is required: an unsigned
	// webhook could be forged.
	Secret string
	// Secrets are more secrets that each sign every delivery too, for a rotation:
	// configure the new secret beside the old one until every receiver has moved.
	Secrets []string
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
	// Now is the clock of webhook-timestamp (default time.Now); tests replace it.
	Now func() time.Time
	// Observer is told the outcome of every attempt and delivery (nil: nobody).
	Observer *Observer
}

// Message is one webhook to deliver.
type Message struct {
	// ID is the webhook-id: the same for every attempt and every redelivery of
	// this message, so receivers can drop duplicates, and different for every
	// other message. MessageID derives one. Required: printable ASCII without
	// spaces or '.', at most 256 bytes.
	ID string
	// Event is the event type, sent as X-Creditgate-Event. Required.
	Event string
	// Body is the JSON payload, sent and signed byte for byte.
	Body []byte
}

// Webhook delivers signed JSON bodies to one URL. It is safe for concurrent use.
type Webhook struct {
	url string
	// keys are the HMAC keys of the secrets; legacyKey keys X-Creditgate-Signature.
	keys      [][]byte
	legacyKey string
	o         Options
	client    *http.Client
}

// New checks o and returns a Webhook.
func New(o Options) (*Webhook, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("notify: webhook URL %q is not an absolute http(s) URL", scrubURL(o.URL))
	}
	var secrets []string
	if o.Secret != "" {
		secrets = append(secrets, o.Secret)
	}
	secrets = append(secrets, o.Secrets...)
	if len(secrets) == 0 {
		return nil, errors.New("notify: webhook secret is empty; deliveries must be signed")
	}
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
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
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Webhook{
		url: o.URL, keys: keys, legacyKey: secrets[0], o: o,
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
	Event string
	// MessageID is the delivery's webhook-id.
	MessageID string
	Attempts  int
	// Status is the last answer's HTTP status; 0 when no attempt got an answer
	// (timeout, refused connection…), which leaves open whether the receiver acted.
	Status int
	// Err is the last attempt's transport error when Status is 0.
	Err error
}

func (e *DeliveryError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("webhook %s (%s): answered HTTP %d after %d attempt(s)", e.Event, e.MessageID, e.Status, e.Attempts)
	}
	return fmt.Sprintf("webhook %s (%s): no answer after %d attempt(s): %v", e.Event, e.MessageID, e.Attempts, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Answered reports whether the receiver answered (with a non-2xx status): a
// definite refusal, as opposed to no answer at all.
func (e *DeliveryError) Answered() bool { return e.Status != 0 }

// Send POSTs m, retrying as the options say, and returns nil on a 2xx answer, a
// *DeliveryError when every attempt failed, or ctx's error when ctx ended first.
// Every attempt carries m.ID as webhook-id and is signed afresh with its own
// webhook-timestamp, so a retry is never rejected as stale.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("notify: webhook id %q is not printable ASCII without spaces or '.' (1 to 256 bytes)", m.ID)
	}
	if m.Event == "" {
		return errors.New("notify: webhook event type is empty")
	}
	start := time.Now()
	legacy := LegacySignature(w.legacyKey, m.Body)
	wait := w.o.Backoff
	last := &DeliveryError{Event: m.Event, MessageID: m.ID}
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		status, err := w.post(ctx, m, legacy)
		a := Attempt{Event: m.Event, MessageID: m.ID, N: attempt, Status: status, Err: err, Duration: time.Since(t0)}
		switch {
		case err == nil && status >= 200 && status <= 299:
			a.Outcome = OutcomeOK
		case ctx.Err() != nil:
			a.Outcome = OutcomeCanceled
		case err != nil:
			a.Outcome = OutcomeNoAnswer
		default:
			a.Outcome = OutcomeRefused
		}
		a.Last = a.Outcome == OutcomeOK || a.Outcome == OutcomeCanceled || attempt == w.o.Attempts ||
			(a.Outcome == OutcomeRefused && !retryable(status))
		w.o.Observer.attempt(a)
		last.Attempts = attempt
		if a.Outcome == OutcomeCanceled {
			w.o.Observer.done(Delivery{Event: m.Event, MessageID: m.ID, Attempts: attempt, Outcome: OutcomeCanceled, Duration: time.Since(start)})
			return ctx.Err()
		}
		if a.Last {
			w.o.Observer.done(Delivery{Event: m.Event, MessageID: m.ID, Attempts: attempt, Outcome: a.Outcome, Duration: time.Since(start)})
			if a.Outcome == OutcomeOK {
				return nil
			}
			last.Status, last.Err = status, err
			return last
		}
		if err := w.o.Sleep(ctx, wait); err != nil {
			w.o.Observer.done(Delivery{Event: m.Event, MessageID: m.ID, Attempts: attempt, Outcome: OutcomeCanceled, Duration: time.Since(start)})
			return err
		}
		wait = min(wait*2, w.o.MaxBackoff)
	}
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

// post makes one attempt, signed with this attempt's timestamp.
func (w *Webhook) post(ctx context.Context, m Message, legacy string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(m.Body))
	if err != nil {
		return 0, scrub(err)
	}
	ts := strconv.FormatInt(w.o.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "creditgate-webhook")
	req.Header.Set(EventHeader, m.Event)
	req.Header.Set(IDHeader, m.ID)
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, signature(w.keys, m.ID, ts, m.Body))
	req.Header.Set(LegacySignatureHeader, legacy)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, scrub(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// scrub drops the URL's query and user info from a transport error: a webhook URL
// may carry a token there, and errors end up in logs.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: scrubURL(ue.URL), Err: ue.Err}
	}
	return err
}

func scrubURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
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
