package activity

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/money"
)

// Limits of the reads.
const (
	MaxTop     = 50
	ChartDays  = 30
	maxHistory = DefaultRecentCap
)

// Reader reads the aggregate: each call is one pipeline, a fixed number of
// commands whatever the number of accounts.
type Reader struct {
	Client Client
	Prefix string
}

// Period is spend and requests over a day or a month (UTC).
type Period struct {
	Period   string // "2026-03-10" or "2026-03"
	Spend    money.Micros
	Requests int64
}

// AccountSpend is one account's spend over a period.
type AccountSpend struct {
	Account string
	Spend   money.Micros
}

// Overview is the aggregate as of a time.
type Overview struct {
	Today, Month Period
	// Days are the last ChartDays days, oldest first, today last.
	Days []Period
	// TopToday and TopMonth are the accounts that spent most, most first.
	TopToday, TopMonth []AccountSpend
	// DeniedToday and DeniedMonth are the ledger's 429s by reason.
	DeniedToday, DeniedMonth map[string]int64
	// RechargeFailuresToday and RechargeFailuresMonth are auto-recharges that
	// did not pay, by result.
	RechargeFailuresToday, RechargeFailuresMonth map[string]int64
}

// Overview reads the aggregate for the day and month of at, with the top
// accounts (1 to MaxTop).
func (r *Reader) Overview(ctx context.Context, at time.Time, top int) (Overview, error) {
	if r.Client == nil {
		return Overview{}, errors.New("activity: Reader.Client is nil")
	}
	top = min(max(top, 1), MaxTop)
	k := keys{r.Prefix}
	d, m := day(at), month(at)
	pipe := r.Client.Pipeline()
	days := make([]string, ChartDays)
	spendCmds := make([]*redis.StringCmd, ChartDays)
	countCmds := make([]*redis.StringCmd, ChartDays)
	for i := range ChartDays {
		days[i] = day(at.AddDate(0, 0, i-ChartDays+1))
		spendCmds[i] = pipe.Get(ctx, k.spend(days[i]))
		countCmds[i] = pipe.Get(ctx, k.count(days[i]))
	}
	monthSpend, monthCount := pipe.Get(ctx, k.spend(m)), pipe.Get(ctx, k.count(m))
	topDay := pipe.ZRevRangeWithScores(ctx, k.top(d), 0, int64(top-1))
	topMonth := pipe.ZRevRangeWithScores(ctx, k.top(m), 0, int64(top-1))
	deniedDay, deniedMonth := pipe.HGetAll(ctx, k.denied(d)), pipe.HGetAll(ctx, k.denied(m))
	failDay, failMonth := pipe.HGetAll(ctx, k.recharge(d)), pipe.HGetAll(ctx, k.recharge(m))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Overview{}, err
	}
	var o Overview
	var err error
	for i := range ChartDays {
		p := Period{Period: days[i]}
		if p.Spend, err = micros(spendCmds[i]); err != nil {
			return o, err
		}
		if p.Requests, err = integer(countCmds[i]); err != nil {
			return o, err
		}
		o.Days = append(o.Days, p)
	}
	o.Today = o.Days[ChartDays-1]
	o.Month = Period{Period: m}
	if o.Month.Spend, err = micros(monthSpend); err != nil {
		return o, err
	}
	if o.Month.Requests, err = integer(monthCount); err != nil {
		return o, err
	}
	if o.TopToday, err = ranking(topDay); err != nil {
		return o, err
	}
	if o.TopMonth, err = ranking(topMonth); err != nil {
		return o, err
	}
	for _, c := range []struct {
		dst *map[string]int64
		cmd *redis.MapStringStringCmd
	}{{&o.DeniedToday, deniedDay}, {&o.DeniedMonth, deniedMonth}, {&o.RechargeFailuresToday, failDay}, {&o.RechargeFailuresMonth, failMonth}} {
		if *c.dst, err = counts(c.cmd); err != nil {
			return o, err
		}
	}
	return o, nil
}

// Recent reads the newest requests, newest first (at most limit, at most the
// list's cap).
func (r *Reader) Recent(ctx context.Context, limit int) ([]Request, error) {
	if r.Client == nil {
		return nil, errors.New("activity: Reader.Client is nil")
	}
	limit = min(max(limit, 1), maxHistory)
	pipe := r.Client.Pipeline()
	cmd := pipe.LRange(ctx, keys{r.Prefix}.recent(), 0, int64(limit-1))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	raw, err := cmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Request, 0, len(raw))
	for _, s := range raw {
		if req, ok := decodeRequest(s); ok {
			out = append(out, req)
		}
	}
	return out, nil
}

func integer(cmd *redis.StringCmd) (int64, error) {
	s, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

func micros(cmd *redis.StringCmd) (money.Micros, error) {
	n, err := integer(cmd)
	return money.Micros(n), err
}

func ranking(cmd *redis.ZSliceCmd) ([]AccountSpend, error) {
	zs, err := cmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]AccountSpend, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		// Scores are sums of integer micros below 2^53: exact in a float64.
		out = append(out, AccountSpend{Account: id, Spend: money.Micros(z.Score)})
	}
	return out, nil
}

func counts(cmd *redis.MapStringStringCmd) (map[string]int64, error) {
	m, err := cmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	return out, nil
}
