package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// adjustmentsKey is the suffix of the hash of adjustment records.
const adjustmentsKey = "adjustments"

// Adjust records an operator's correction (see billing.AdjustRequest) in one
// script, idempotent by the adjustment id: derived from the Idempotency-Key when
// there is one, fresh otherwise (go-redis's resends of this call carry the same id).
func (s *Store) Adjust(ctx context.Context, p billing.Policy, account string, q billing.AdjustRequest) (billing.AdjustResult, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.AdjustResult{}, err
	}
	if q.Amount == 0 || q.Amount > money.MaxAmount || q.Amount < -money.MaxAmount {
		return billing.AdjustResult{}, fmt.Errorf("%w: adjustment amount %s must be non-zero and at most %s either way", billing.ErrInvalid, q.Amount, money.MaxAmount)
	}
	if err := billing.ValidAdjustReason(q.Reason); err != nil {
		return billing.AdjustResult{}, err
	}
	if q.Amount < 0 && !q.ExpiresAt.IsZero() {
		return billing.AdjustResult{}, fmt.Errorf("%w: expires_at applies only to a positive adjustment (it credits a grant)", billing.ErrInvalid)
	}
	if len(q.IdempotencyKey) > 255 {
		return billing.AdjustResult{}, fmt.Errorf("%w: idempotency key longer than 255 bytes", billing.ErrInvalid)
	}
	id := billing.NewID("adj_")
	if q.IdempotencyKey != "" {
		id = AdjustmentID(account, q.IdempotencyKey)
	}
	return s.adjust(ctx, p, account, id, q)
}

var adjustScript = newScript("adjust.lua")

// adjust runs the adjust script for adjustment id (tests call it twice with one
// id, as go-redis does when a reply is lost).
func (s *Store) adjust(ctx context.Context, p billing.Policy, account, id string, q billing.AdjustRequest) (billing.AdjustResult, error) {
	now := s.now()
	expires := int64(0)
	if q.Amount > 0 {
		expires = now.Add(p.CreditTTL).UnixMilli()
		if !q.ExpiresAt.IsZero() {
			expires = q.ExpiresAt.UnixMilli()
		}
	}
	fp := AdjustFingerprint(q)
	idemKey, useIdem := "idem:", "0"
	if q.IdempotencyKey != "" {
		idemKey, useIdem = idemKey+q.IdempotencyKey, "1"
	}
	r, err := s.run(ctx, adjustScript, s.accountKeys(account, idemKey, adjustmentsKey),
		msArg(now), id, amountArg(q.Amount), expires, q.Reason, fp, useIdem, s.idemTTL.Milliseconds(), q.Actor)
	if err != nil {
		return billing.AdjustResult{}, err
	}
	res, err := decodeAdjust(r, account, q, expires)
	if err != nil {
		return billing.AdjustResult{}, err
	}
	if err := s.durable(ctx, account, res.EventID); err != nil {
		return billing.AdjustResult{}, err
	}
	return res, nil
}

func decodeAdjust(r reply, account string, q billing.AdjustRequest, expiresMS int64) (billing.AdjustResult, error) {
	switch r.status() {
	case "OK":
		res := billing.AdjustResult{
			ID: r.str(1), Amount: r.micros(2), EventID: r.str(3), DebtRepaid: r.micros(5),
			BalanceAfter: r.micros(6), CreditAfter: r.micros(7), DebtAfter: r.micros(8),
			At: r.ms(9), Reason: q.Reason, Replayed: r.flag(11),
		}
		gid, expires := r.str(4), r.ms(10)
		if gid != "" {
			res.Grant = &billing.Grant{
				ID: gid, Amount: res.Amount, Remaining: res.Amount - res.DebtRepaid,
				GrantedAt: res.At, ExpiresAt: expires, Source: billing.SourceAdjustment,
			}
		}
		return decoded(&r, 12, res)
	case "NOACCOUNT":
		return billing.AdjustResult{}, r.refusal(1, notFound(account))
	case "CONFLICT":
		return billing.AdjustResult{}, r.refusal(1, fmt.Errorf("%w: Idempotency-Key %q", billing.ErrIdempotencyConflict, q.IdempotencyKey))
	case "PAST_EXPIRY":
		return billing.AdjustResult{}, r.refusal(1, fmt.Errorf("%w: expires_at %s is not in the future", billing.ErrInvalid, time.UnixMilli(expiresMS).UTC().Format(time.RFC3339)))
	case "INSUFFICIENT":
		e := &billing.InsufficientCreditError{Amount: -q.Amount, Available: r.micros(1), Credit: r.micros(2), Reserved: r.micros(3)}
		return billing.AdjustResult{}, r.refusal(4, e)
	}
	return billing.AdjustResult{}, r.unexpected()
}

// AdjustmentID derives the id of an adjustment made with an Idempotency-Key, so
// the same key names the same adjustment for good (its record is never dropped).
// Account ids cannot contain a newline, so the encoding is unambiguous.
func AdjustmentID(account, key string) string {
	sum := sha256.Sum256([]byte(account + "\n" + key))
	return "adj_" + hex.EncodeToString(sum[:12])
}

// AdjustFingerprint identifies an adjustment request's meaning: amount, reason
// and the expiry as asked (zero: the default). It never equals a top-up's
// fingerprint, so one Idempotency-Key cannot serve both.
func AdjustFingerprint(q billing.AdjustRequest) string {
	exp := ""
	if !q.ExpiresAt.IsZero() {
		exp = strconv.FormatInt(q.ExpiresAt.UnixMilli(), 10)
	}
	sum := sha256.Sum256([]byte("adjustment\namount=" + strconv.FormatInt(int64(q.Amount), 10) +
		"\nexpires_at=" + exp + "\nreason=" + q.Reason))
	return hex.EncodeToString(sum[:])
}
