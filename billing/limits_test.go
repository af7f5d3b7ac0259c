package billing

import (
	"testing"
	"time"
)

func TestPeriodsOf(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		at               time.Time
		day, week, month time.Time
	}{
		{time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC), day(2026, 3, 10), day(2026, 3, 9), day(2026, 3, 1)},   // a Tuesday
		{time.Date(2026, 3, 15, 23, 59, 59, 0, time.UTC), day(2026, 3, 15), day(2026, 3, 9), day(2026, 3, 1)}, // Sunday: the week began Monday
		{time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC), day(2026, 3, 16), day(2026, 3, 16), day(2026, 3, 1)},   // Monday 00:00
		{time.Date(2026, 4, 1, 3, 0, 0, 0, time.UTC), day(2026, 4, 1), day(2026, 3, 30), day(2026, 4, 1)},     // a week across months
		{time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)), day(2026, 12, 31), day(2026, 12, 28), day(2026, 12, 1)},
	}
	for _, c := range cases {
		p := PeriodsOf(c.at)
		if p.Day != c.day || p.Week != c.week || p.Month != c.month {
			t.Errorf("PeriodsOf(%s) = %+v, want day %s week %s month %s", c.at, p, c.day, c.week, c.month)
		}
	}
	p := PeriodsOf(time.Date(2026, 3, 31, 8, 0, 0, 0, time.UTC))
	for reset, want := range map[string]time.Time{LimitDaily: day(2026, 4, 1), LimitWeekly: day(2026, 4, 6), LimitMonthly: day(2026, 4, 1), LimitNever: {}} {
		if got := p.Next(reset); !got.Equal(want) {
			t.Errorf("Next(%s) = %s, want %s", reset, got, want)
		}
	}
}
