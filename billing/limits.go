package billing

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Spend limits: a key's limit (APIKey.Limit per LimitReset period) and an
// account's monthly cap (the lower non-zero of SpendLimit.Monthly and its
// tier's MonthlyUsageLimit) are checked by the same reserve script that holds
// the balance, and charged by the same settle (README "Key limits and spend
// limits"). The reserve holds at most what every one of them still allows, so
// under any concurrency a key (an account) spends in a period at most its limit
// plus what requests cost beyond their holds (the clamp slack, as for the
// balance). A settle charges the period it happens in.

// Denial reasons of the limits (Reservation.Reason), beside the balance's.
const (
	ReasonKeyLimit   = "key_limit"   // the key's limit for its period is reached
	ReasonSpendLimit = "spend_limit" // the account's monthly cap (spend limit or tier's usage limit) is reached
)

// NoticeSpendAlert is queued once per calendar month when a settle takes the
// month's usage to the account's SpendLimit.AlertAt or past it (with notices
// on): Threshold is AlertAt, Amount the month's usage.
const NoticeSpendAlert = "spend_limit.alert"

// Periods are the starts (UTC) of the calendar periods that contain a time.
type Periods struct {
	Day, Week, Month time.Time
}

// PeriodsOf returns the day, week (from Monday) and month that contain t, in UTC.
func PeriodsOf(t time.Time) Periods {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(day.Weekday()) + 6) % 7 // days since Monday
	return Periods{Day: day, Week: day.AddDate(0, 0, -back), Month: time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)}
}

// Next returns when the period of kind reset (LimitDaily, LimitWeekly,
// LimitMonthly) that contains the periods' time ends; zero for LimitNever.
func (p Periods) Next(reset string) time.Time {
	switch reset {
	case LimitDaily:
		return p.Day.AddDate(0, 0, 1)
	case LimitWeekly:
		return p.Week.AddDate(0, 0, 7)
	case LimitMonthly:
		return p.Month.AddDate(0, 1, 0)
	}
	return time.Time{}
}

// Spent is what u counts against a limit of period reset.
func (u KeyUsage) Spent(reset string) money.Micros {
	switch reset {
	case LimitDaily:
		return u.Daily
	case LimitWeekly:
		return u.Weekly
	case LimitMonthly:
		return u.Monthly
	}
	return u.Total
}

// KeyUsageReader answers what a key spent (GET /v1/key).
type KeyUsageReader interface {
	// KeyUsage returns what key keyID of account spent in the calendar periods
	// (UTC) that contain now, and in all; zero for a key that spent nothing.
	KeyUsage(ctx context.Context, account, keyID string, now time.Time) (KeyUsage, error)
}

// TierUsageLimits are the non-zero MonthlyUsageLimit of p's tiers by name
// (ReserveRequest.TierUsageLimits); nil when no tier has one.
func (p Policy) TierUsageLimits() map[string]money.Micros {
	var m map[string]money.Micros
	for name, t := range p.Tiers {
		if t.MonthlyUsageLimit > 0 {
			if m == nil {
				m = make(map[string]money.Micros)
			}
			m[name] = t.MonthlyUsageLimit
		}
	}
	return m
}
