package stripestub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	stripego "github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// Event is a signed webhook event as Stripe sends it.
type Event struct {
	ID, Type string
	// Payload is the JSON body.
	Payload []byte
	// Signature is the Stripe-Signature header for Payload.
	Signature string
}

// Header is the event's request headers.
func (e Event) Header() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Stripe-Signature", e.Signature)
	return h
}

// wireEvent is Stripe's event object.
type wireEvent struct {
	ID              string       `json:"id"`
	Object          string       `json:"object"` // "event"
	APIVersion      string       `json:"api_version"`
	Created         int64        `json:"created"`
	Data            eventData    `json:"data"`
	Livemode        bool         `json:"livemode"`
	PendingWebhooks int          `json:"pending_webhooks"`
	Request         eventRequest `json:"request"`
	Type            string       `json:"type"`
}

type eventData struct {
	Object any `json:"object"`
}

type eventRequest struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

// emit records an event about a snapshot of obj (s.mu held) and queues its delivery.
func (s *Server) emit(typ string, obj any) Event {
	version := s.opts.EventAPIVersion
	if version == "" {
		version = stripego.APIVersion
	}
	now := s.now()
	payload, err := json.MarshalIndent(wireEvent{
		ID: newID("evt_"), Object: "event", APIVersion: version, Created: now.Unix(),
		Data: eventData{Object: obj}, PendingWebhooks: 1, Type: typ,
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	var head struct{ ID string }
	_ = json.Unmarshal(payload, &head)
	e := Event{ID: head.ID, Type: typ, Payload: payload, Signature: s.sign(payload, now)}
	s.events = append(s.events, e)
	if s.opts.WebhookURL != "" {
		s.delivery.push(e)
	}
	return e
}

// sign is the Stripe-Signature header of payload signed at t.
func (s *Server) sign(payload []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: payload, Secret: s.WebhookSecret, Timestamp: at,
	}).Header
}

// Sign returns the Stripe-Signature header of payload signed with the server's
// webhook secret at time at (a test's own, stale or future, signatures).
func (s *Server) Sign(payload []byte, at time.Time) string { return s.sign(payload, at) }

// Resign is e signed again at time at, as Stripe re-signs a retried delivery.
func (s *Server) Resign(e Event, at time.Time) Event {
	e.Signature = s.sign(e.Payload, at)
	return e
}

// Events returns every event so far, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// eventsSince returns the events after the first n.
func (s *Server) eventsSince(n int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events[n:]...)
}

// Delivery is one POST of an event to Options.WebhookURL.
type Delivery struct {
	EventID, Type string
	Status        int    // the receiver's status (0 when it did not answer)
	Err           string // the transport error, if any
	Body          string // the start of the receiver's answer
}

// Deliver POSTs e to Options.WebhookURL now (a redelivery) and returns the outcome.
func (s *Server) Deliver(e Event) Delivery { return s.delivery.post(e) }

// Deliveries returns the deliveries so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.delivery.mu.Lock()
	defer s.delivery.mu.Unlock()
	return append([]Delivery(nil), s.delivery.done...)
}

// Flush waits until every queued event has been delivered.
func (s *Server) Flush() {
	q := &s.delivery
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) > 0 || q.busy {
		q.cond.Wait()
	}
}

// deliveryQueue POSTs events one at a time, in order, from one goroutine, so an
// API call that emits events never waits for the receiver (which may call back).
type deliveryQueue struct {
	srv    *Server
	client *http.Client
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []Event
	busy   bool
	closed bool
	done   []Delivery
	exited chan struct{}
}

func (q *deliveryQueue) init(s *Server) {
	q.srv = s
	q.client = &http.Client{Timeout: 10 * time.Second}
	q.cond = sync.NewCond(&q.mu)
	q.exited = make(chan struct{})
	go q.run()
}

func (q *deliveryQueue) push(e Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, e)
	q.cond.Broadcast()
}

func (q *deliveryQueue) run() {
	defer close(q.exited)
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			q.mu.Unlock()
			return
		}
		e := q.queue[0]
		q.queue = q.queue[1:]
		q.busy = true
		q.mu.Unlock()

		d := q.post(e)

		q.mu.Lock()
		q.busy = false
		q.done = append(q.done, d)
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// post sends e once (Deliver records nothing in the queue's list).
func (q *deliveryQueue) post(e Event) Delivery {
	d := Delivery{EventID: e.ID, Type: e.Type}
	req, err := http.NewRequest(http.MethodPost, q.srv.opts.WebhookURL, bytes.NewReader(e.Payload))
	if err != nil {
		d.Err = err.Error()
		return d
	}
	req.Header = e.Header()
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks) stripestub")
	resp, err := q.client.Do(req)
	if err != nil {
		d.Err = err.Error()
		return d
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	d.Status, d.Body = resp.StatusCode, string(body)
	return d
}

func (q *deliveryQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	<-q.exited
}

// String describes a delivery for test failures.
func (d Delivery) String() string {
	if d.Err != "" {
		return fmt.Sprintf("%s %s: %s", d.Type, d.EventID, d.Err)
	}
	return fmt.Sprintf("%s %s: HTTP %d %s", d.Type, d.EventID, d.Status, d.Body)
}
