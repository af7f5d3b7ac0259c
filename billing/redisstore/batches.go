package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// Batches (billing.BatchStore): a record per batch under its account's hash
// tag, "{acct:<id>}:batch:<batch id>" (hash: the hold, the prices, the
// discount; kept batchRecordTTL), and one zset of the open ones for every
// account, "batches:open" ("<account> <batch id>" scored by creation), which
// the poller reads. The record is written before the batch joins the open
// set, and the batch leaves the set only after its hold is settled or
// released: a crash in between leaves a batch the poller looks at again,
// never a hold nobody settles.

// batchRecordTTL is how long a batch record is kept after its creation: well
// past its completion window, for a settlement that comes late.
const batchRecordTTL = 30 * 24 * time.Hour

var (
	batchOpenScript    = newScript("batch_open.lua")
	batchQueueScript   = newScript("batch_queue.lua")
	batchPendingScript = newScript("batch_pending.lua")
)

func (s *Store) batchKey(account, id string) string {
	return s.prefix + "{acct:" + account + "}:batch:" + id
}

func (s *Store) openBatchesKey() string { return s.prefix + "batches:open" }

// OpenBatch records b and adds it to the open batches.
func (s *Store) OpenBatch(ctx context.Context, b billing.Batch) error {
	if err := checkObject(b.Account, billing.ObjectBatch, b.ID); err != nil {
		return err
	}
	if err := checkHold(b.Account, b.HoldID); err != nil {
		return err
	}
	if err := checkPrices(&b.Prices); err != nil {
		return err
	}
	if b.Discount <= 0 || b.Discount > 1_000_000 || b.Held < 0 || b.Requests < 0 || b.InputTokens < 0 || b.OutputCap < 0 {
		return fmt.Errorf("%w: batch %q: discount %d, held %s, %d requests, %d input tokens, output cap %d",
			billing.ErrInvalid, b.ID, b.Discount, b.Held, b.Requests, b.InputTokens, b.OutputCap)
	}
	p := b.Prices
	args := []interface{}{batchRecordTTL.Milliseconds(),
		"hold_id", b.HoldID, "key_id", b.KeyID, "endpoint", b.Endpoint, "model", b.Model,
		"prices", fmt.Sprintf("%d %d %d %d %d %d", p.Input, p.CachedInput, p.AudioInput, p.Output, p.Reasoning, p.AudioOutput),
		"discount", b.Discount, "requests", b.Requests, "held", amountArg(b.Held),
		"created_ms", msArg(b.CreatedAt), "hold_expires_ms", msArg(b.HoldExpires)}
	if b.Background {
		args = append(args, "background", "1", "input_tokens", b.InputTokens, "output_cap", b.OutputCap)
	}
	r, err := s.run(ctx, batchOpenScript, []string{s.batchKey(b.Account, b.ID)}, args...)
	if err != nil {
		return err
	}
	if err := decodeBatchOpen(r, b.ID, b.HoldID); err != nil {
		return err
	}
	return s.queueBatch(ctx, "add", b.Account, b.ID, b.CreatedAt)
}

// decodeBatchOpen: a batch recorded already with the same hold is a retry.
func decodeBatchOpen(r reply, id, holdID string) error {
	switch r.status() {
	case "OK":
		return r.done(1)
	case "EXISTS":
		if hold := r.str(1); r.err == nil && hold != holdID {
			return r.refusal(2, fmt.Errorf("%w: batch %q is recorded with hold %q already", billing.ErrInvalid, id, hold))
		}
		return r.done(2)
	}
	return r.unexpected()
}

func (s *Store) queueBatch(ctx context.Context, op, account, id string, at time.Time) error {
	r, err := s.run(ctx, batchQueueScript, []string{s.openBatchesKey()}, op, account+" "+id, msArg(at))
	if err != nil {
		return err
	}
	return decodeOK(r)
}

// GetBatch returns account's batch record id.
func (s *Store) GetBatch(ctx context.Context, account, id string) (billing.Batch, error) {
	if err := checkObject(account, billing.ObjectBatch, id); err != nil {
		return billing.Batch{}, fmt.Errorf("%w: %v", billing.ErrObjectNotFound, err)
	}
	m, err := s.c.HGetAll(ctx, s.batchKey(account, id)).Result()
	if err != nil {
		return billing.Batch{}, wrap(err)
	}
	if len(m) == 0 {
		return billing.Batch{}, fmt.Errorf("%w: batch %q of account %q", billing.ErrObjectNotFound, id, account)
	}
	return parseBatch(account, id, m)
}

func parseBatch(account, id string, m map[string]string) (billing.Batch, error) {
	d := record{where: fmt.Sprintf("batch record %q of account %q", id, account)}
	b := billing.Batch{ID: id, Account: account, HoldID: m["hold_id"], KeyID: m["key_id"], Endpoint: m["endpoint"], Model: m["model"],
		Discount: d.int("discount", m["discount"], "millionths"), Requests: d.count("requests", m["requests"]),
		Held: d.micros("held", m["held"]), CreatedAt: d.ms("created_ms", m["created_ms"]), HoldExpires: d.ms("hold_expires_ms", m["hold_expires_ms"])}
	if m["background"] == "1" {
		b.Background = true
		b.InputTokens = int64(d.count("input_tokens", m["input_tokens"]))
		b.OutputCap = int64(d.count("output_cap", m["output_cap"]))
	}
	prices := strings.Split(m["prices"], " ")
	if len(prices) != 6 {
		d.fail("prices is %s, want six amounts", show(m["prices"]))
	} else {
		p := &b.Prices
		for i, dst := range []*int64{(*int64)(&p.Input), (*int64)(&p.CachedInput), (*int64)(&p.AudioInput), (*int64)(&p.Output), (*int64)(&p.Reasoning), (*int64)(&p.AudioOutput)} {
			*dst = int64(d.micros("prices["+strconv.Itoa(i)+"]", prices[i]))
		}
	}
	if d.err == nil && (b.HoldID == "" || b.Discount <= 0 || b.Discount > 1_000_000) {
		d.fail("hold_id %s, discount %d", show(b.HoldID), b.Discount)
	}
	return b, d.err
}

// OpenBatches returns up to limit open batches, oldest first.
func (s *Store) OpenBatches(ctx context.Context, limit int) ([]billing.BatchRef, error) {
	if limit < 1 || limit > 10000 {
		return nil, fmt.Errorf("%w: open batches limit %d (1 to 10000)", billing.ErrInvalid, limit)
	}
	r, err := s.run(ctx, batchPendingScript, []string{s.openBatchesKey()}, limit)
	if err != nil {
		return nil, err
	}
	return decodeBatchPending(r)
}

func decodeBatchPending(r reply) ([]billing.BatchRef, error) {
	if r.status() != "OK" {
		return nil, r.unexpected()
	}
	var out []billing.BatchRef
	for i, m := range r.strings(1) {
		account, id, ok := strings.Cut(m, " ")
		if !ok || billing.ValidAccountID(account) != nil || billing.ValidObjectID(id) != nil {
			r.fail("element %d is %s, want \"<account> <batch id>\"", i+1, show(m))
			break
		}
		out = append(out, billing.BatchRef{Account: account, ID: id})
	}
	return out, r.err
}

// CloseBatch takes account's batch id off the open batches (its record stays).
func (s *Store) CloseBatch(ctx context.Context, account, id string) error {
	if err := checkObject(account, billing.ObjectBatch, id); err != nil {
		return err
	}
	return s.queueBatch(ctx, "remove", account, id, time.Time{})
}

var leaseScript = newScript("lease.lua")

// TryLease takes the lease name for ttl, and reports whether this caller got
// it: one process among many runs a periodic round (the batch poller's). Unlike
// TryLock it holds on the embedded store too, whose keys never expire by
// themselves.
func (s *Store) TryLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if name == "" || strings.ContainsAny(name, "{} ") || ttl <= 0 {
		return false, fmt.Errorf("%w: lease %q for %s", billing.ErrInvalid, name, ttl)
	}
	r, err := s.run(ctx, leaseScript, []string{s.prefix + "lease:" + name}, msArg(s.now()), ttl.Milliseconds())
	if err != nil {
		return false, err
	}
	return decodeLease(r)
}

func decodeLease(r reply) (bool, error) {
	switch r.status() {
	case "OK":
		return true, r.done(1)
	case "TAKEN":
		return false, r.done(1)
	}
	return false, r.unexpected()
}
