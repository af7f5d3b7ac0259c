package redisstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Key limits and the account's monthly cap live with the balance, under the
// account's hash tag: per key, its usage record in kuse (prelude.lua has the
// layout), and the month's usage in the account hash (mu_start, mu,
// mu_alerted). reserve.lua checks them and settle.lua charges them; Go computes
// the calendar periods' starts (billing.PeriodsOf) and the scripts compare.

// kuseKey is the account's key usage hash (prelude.lua's kuse).
func (s *Store) kuseKey(id string) string { return s.prefix + "{acct:" + id + "}:kuse" }

// checkReserveLimits checks the limits a reserve passes to its script.
func checkReserveLimits(q billing.ReserveRequest) error {
	if q.KeyLimit < 0 || q.KeyLimit > money.MaxAmount || !billing.ValidLimitReset(q.KeyLimitReset) {
		return fmt.Errorf("%w: key limit %s per %q", billing.ErrInvalid, q.KeyLimit, q.KeyLimitReset)
	}
	if q.KeyLimit > 0 && (q.KeyID == "" || strings.ContainsAny(q.KeyID, " ") || strings.HasPrefix(q.KeyID, "h:")) {
		return fmt.Errorf("%w: a key limit needs a key id, got %q", billing.ErrInvalid, q.KeyID)
	}
	for tier, l := range q.TierUsageLimits {
		if l <= 0 || l > money.MaxAmount || tier == "" || strings.ContainsAny(tier, " \t\n") {
			return fmt.Errorf("%w: tier %q usage limit %s", billing.ErrInvalid, tier, l)
		}
	}
	return nil
}

// appendLimits adds reserve.lua's ARGV 8 to 14: the key, its limit and period,
// the periods of now, the tiers' usage limits.
func (s *Store) appendLimits(a *argList, q billing.ReserveRequest, now time.Time) {
	reset := q.KeyLimitReset
	if reset == "" {
		reset = billing.LimitNever
	}
	kid := ""
	if q.KeyLimit > 0 {
		kid = q.KeyID
	}
	a.str(kid)
	a.num(amountArg(q.KeyLimit))
	a.str(reset)
	appendPeriods(a, now)
	a.str(s.tierLimitsArg(q.TierUsageLimits))
}

// appendPeriods adds the starts (ms) of the day, week and month that contain now.
func appendPeriods(a *argList, now time.Time) {
	p := billing.PeriodsOf(now)
	a.num(msArg(p.Day))
	a.num(msArg(p.Week))
	a.num(msArg(p.Month))
}

// encodedTierLimits is one encoding of the tiers' usage limits, and the limits
// it encodes (a copy).
type encodedTierLimits struct {
	limits map[string]money.Micros
	arg    string
}

// tierLimitsArg is "tier micros …", sorted so equal policies give equal
// arguments; the last one built is reused while the limits equal its.
func (s *Store) tierLimitsArg(m map[string]money.Micros) string {
	if len(m) == 0 {
		return ""
	}
	if last := s.tierLimits.Load(); last != nil && maps.Equal(last.limits, m) {
		return last.arg
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %d", n, int64(m[n]))
	}
	arg := b.String()
	s.tierLimits.Store(&encodedTierLimits{limits: maps.Clone(m), arg: arg})
	return arg
}

// keyUsageRecord is a key's record in kuse, decoded.
type keyUsageRecord struct {
	reserved, total                 money.Micros
	dayStart, weekStart, monthStart int64
	day, week, month                money.Micros
}

func decodeKeyUsage(raw string) (keyUsageRecord, error) {
	var r keyUsageRecord
	if raw == "" {
		return r, nil
	}
	var v [8]int64
	n, err := fmt.Sscanf(raw, "%d %d %d %d %d %d %d %d", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
	if err != nil || n != 8 {
		return r, &malformedError{where: "key usage record", detail: fmt.Sprintf("%s is not 8 integers", show(raw))}
	}
	return keyUsageRecord{reserved: money.Micros(v[0]), total: money.Micros(v[1]), dayStart: v[2], day: money.Micros(v[3]),
		weekStart: v[4], week: money.Micros(v[5]), monthStart: v[6], month: money.Micros(v[7])}, nil
}

// usageAt is what the record says was spent in the periods of now: a period
// the record has not reached yet (it started later) spent nothing.
func (r keyUsageRecord) usageAt(now time.Time) billing.KeyUsage {
	p := billing.PeriodsOf(now)
	in := func(start int64, at time.Time, v money.Micros) money.Micros {
		if start >= at.UnixMilli() {
			return v
		}
		return 0
	}
	return billing.KeyUsage{Daily: in(r.dayStart, p.Day, r.day), Weekly: in(r.weekStart, p.Week, r.week),
		Monthly: in(r.monthStart, p.Month, r.month), Total: r.total}
}

// KeyUsage returns what key keyID of account spent in the calendar periods
// (UTC) of now and in all (billing.KeyUsageReader).
func (s *Store) KeyUsage(ctx context.Context, account, keyID string, now time.Time) (billing.KeyUsage, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.KeyUsage{}, err
	}
	if keyID == "" || strings.HasPrefix(keyID, "h:") { // "h:" fields map holds to keys
		return billing.KeyUsage{}, fmt.Errorf("%w: key id %q", billing.ErrInvalid, keyID)
	}
	raw, err := s.c.HGet(ctx, s.kuseKey(account), keyID).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return billing.KeyUsage{}, wrap(err)
	}
	r, err := decodeKeyUsage(raw)
	if err != nil {
		return billing.KeyUsage{}, err
	}
	return r.usageAt(now), nil
}

// keyReserved is what the key's live holds count against its limit (tests).
func (s *Store) keyReserved(ctx context.Context, account, keyID string) (money.Micros, error) {
	raw, err := s.c.HGet(ctx, s.kuseKey(account), keyID).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, wrap(err)
	}
	r, err := decodeKeyUsage(raw)
	return r.reserved, err
}
