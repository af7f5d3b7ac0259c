package notify

import "time"

// Observer is told how deliveries go, for metrics (the Prometheus counters are
// wired by the caller: this package depends on nothing). Every field is
// optional, a nil *Observer observes nothing, and the functions are called
// synchronously from Send, so they must be quick and safe for concurrent use.
type Observer struct {
	// Attempt is called after every attempt with its outcome.
	Attempt func(Attempt)
	// Done is called once per Send, with the delivery's outcome.
	Done func(Delivery)
}

// Outcomes of an attempt or a delivery, low-cardinality metric label values.
const (
	OutcomeOK       = "ok"        // a 2xx answer
	OutcomeRefused  = "refused"   // answered, not 2xx
	OutcomeNoAnswer = "no_answer" // timeout, refused connection, reset…
	OutcomeCanceled = "canceled"  // the caller's context ended first
)

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	// Event is the event type (X-Creditgate-Event) and MessageID the webhook-id.
	Event, MessageID string
	// N counts the attempts of this Send, from 1.
	N int
	// Status is the answer's HTTP status; 0 when there was no answer.
	Status int
	// Err is the transport error when Status is 0 (the URL's query scrubbed).
	Err error
	// Duration is from sending the request to the end of the answer.
	Duration time.Duration
	// Last says no further attempt of this Send follows.
	Last bool
	// Outcome is one of the Outcome constants.
	Outcome string
}

// OK reports whether the attempt got a 2xx answer.
func (a Attempt) OK() bool { return a.Outcome == OutcomeOK }

// Delivery is the outcome of one Send.
type Delivery struct {
	Event, MessageID string
	// Attempts is how many requests were sent.
	Attempts int
	// Outcome is one of the Outcome constants: the last attempt's, or
	// OutcomeCanceled when the caller's context ended.
	Outcome string
	// Duration is the whole Send's, waits between attempts included.
	Duration time.Duration
}

// OK reports whether the message was delivered.
func (d Delivery) OK() bool { return d.Outcome == OutcomeOK }

func (o *Observer) attempt(a Attempt) {
	if o != nil && o.Attempt != nil {
		o.Attempt(a)
	}
}

func (o *Observer) done(d Delivery) {
	if o != nil && o.Done != nil {
		o.Done(d)
	}
}
