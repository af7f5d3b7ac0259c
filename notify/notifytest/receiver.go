// Package notifytest is a Standard Webhooks receiver for tests. It is written
// from the specification (standardwebhooks.com, "Verifying webhook authenticity")
// and deliberately shares no code with package notify, so a test that sends
// through notify and checks with this package tests notify against the
// specification rather than against itself. It also deduplicates on webhook-id,
// as the specification asks receivers to, and records every delivery so a test
// can replay one later.
package notifytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tolerance is the specification's replay window: a timestamp further than this
// from the receiver's clock, either way, is refused.
const Tolerance = 5 * time.Minute

// Check verifies one delivery as the specification describes, returning why it
// is refused or nil. secrets are "whsec_<base64>" secrets, or (creditgate's
// one-release fallback) any other string, used as raw key bytes.
func Check(secrets []string, h http.Header, body []byte, now time.Time) error {
	// Header names are case-insensitive; http.Header canonicalises them.
	id := h.Get("webhook-id")
	ts := h.Get("webhook-timestamp")
	sig := h.Get("webhook-signature")
	if id == "" || ts == "" || sig == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	if strings.Contains(id, ".") {
		return errors.New("webhook-id contains '.'")
	}
	sec, err := strconv.ParseUint(ts, 10, 63)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not an integer", ts)
	}
	signed := id + "." + ts + "." + string(body)
	var expected []string
	for _, s := range secrets {
		key := []byte(s)
		if enc, ok := strings.CutPrefix(s, "whsec_"); ok {
			if key, err = base64.StdEncoding.DecodeString(enc); err != nil {
				return fmt.Errorf("secret is not whsec_<base64>: %v", err)
			}
		}
		m := hmac.New(sha256.New, key)
		io.WriteString(m, signed)
		expected = append(expected, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	// Compare the encoded forms, in constant time, entry by entry.
	match := false
	for _, got := range strings.Split(sig, " ") {
		for _, want := range expected {
			if subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1 {
				match = true
			}
		}
	}
	if !match {
		return errors.New("no signature matches")
	}
	if d := now.Sub(time.Unix(int64(sec), 0)); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("timestamp %s away from now", d)
	}
	return nil
}

// Delivery is one request the Receiver got.
type Delivery struct {
	ID, Timestamp, Event string
	Header               http.Header
	Body                 []byte
	// Err is why Check refused it (nil: accepted).
	Err error
	// Duplicate: an accepted delivery whose webhook-id was accepted before.
	Duplicate bool
	// Status is what the receiver answered.
	Status int
}

// Receiver is an http.Handler that checks every delivery with Check, answers 401
// to a refused one, and otherwise answers Answer's status (default 200). It
// records everything it got.
type Receiver struct {
	// Secrets are the receiver's secrets (Check).
	Secrets []string
	// Now is the receiver's clock (default time.Now).
	Now func() time.Time
	// Answer chooses the status of an accepted delivery; n counts the accepted
	// deliveries so far, this one included.
	Answer func(d Delivery, n int) int
	// OnRefuse, when set, is called with every delivery Check refuses (tests
	// that expect none report it there).
	OnRefuse func(d Delivery)

	mu         sync.Mutex
	deliveries []Delivery
	seen       map[string]bool
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "reading the body", http.StatusBadRequest)
		return
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	d := Delivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Event: req.Header.Get("X-Creditgate-Event"), Header: req.Header.Clone(), Body: body}
	d.Err = Check(r.Secrets, req.Header, body, now())
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if d.Err == nil {
		d.Duplicate = r.seen[d.ID]
		r.seen[d.ID] = true
	}
	d.Status = http.StatusUnauthorized
	if d.Err == nil {
		d.Status = http.StatusOK
		if r.Answer != nil {
			d.Status = r.Answer(d, r.accepted()+1)
		}
	}
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()
	if d.Err != nil && r.OnRefuse != nil {
		r.OnRefuse(d)
	}
	w.WriteHeader(d.Status)
}

// accepted counts accepted deliveries; r.mu is held.
func (r *Receiver) accepted() int {
	n := 0
	for _, d := range r.deliveries {
		if d.Err == nil {
			n++
		}
	}
	return n
}

// Deliveries returns every delivery so far, refused ones included, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// Accepted returns the deliveries Check accepted, in order.
func (r *Receiver) Accepted() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Err == nil {
			out = append(out, d)
		}
	}
	return out
}

// Refused returns the deliveries Check refused, in order.
func (r *Receiver) Refused() []Delivery {
	var out []Delivery
	for _, d := range r.Deliveries() {
		if d.Err != nil {
			out = append(out, d)
		}
	}
	return out
}

// Replay POSTs d again, byte for byte with the same headers, to url, as an
// attacker who captured it would, and returns the status.
func Replay(client *http.Client, url string, d Delivery) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(d.Body)))
	if err != nil {
		return 0, err
	}
	req.Header = d.Header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
