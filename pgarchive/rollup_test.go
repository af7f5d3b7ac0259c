package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/billing/report"
	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/money"
)

// clockedEvents are n events committed every step from start (their ids from
// the commit times, as Redis makes them), each with an `at` up to 20 minutes
// either side (proxies' clocks that disagree within what reports allow):
// usage of three models and three keys (one of them none) with every token
// count set, and some top-ups.
func clockedEvents(seed uint64, start time.Time, n int, step time.Duration) []billing.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	models, keys := []string{"gpt-4o", "gpt-4o-mini", "o3"}, []string{"key_a", "key_b", ""}
	evs := make([]billing.Event, n)
	for i := range evs {
		commit := start.Add(time.Duration(i) * step)
		at := commit.Add(time.Duration(r.Int64N(int64(40*time.Minute))) - 20*time.Minute).UTC()
		ev := billing.Event{ID: fmt.Sprintf("%d-%d", commit.UnixMilli(), i%2), At: at}
		if i%10 == 9 {
			ev.Type, ev.Amount, ev.GrantID = billing.EventTopUp, 5_000_000, fmt.Sprintf("g%d", i)
		} else {
			cost := money.Micros(1 + r.Int64N(100_000))
			ev.Type, ev.Model, ev.KeyID, ev.Cost, ev.Amount = billing.EventUsage, models[r.IntN(3)], keys[r.IntN(3)], cost, cost
			ev.HoldID, ev.RequestID, ev.Endpoint = fmt.Sprintf("h%d", i), fmt.Sprintf("r%d", i), "/v1/chat/completions"
			ev.PromptTokens, ev.CompletionTokens = 1+r.Int64N(5000), r.Int64N(2000)
			ev.CachedTokens, ev.ReasoningTokens = r.Int64N(ev.PromptTokens+1), r.Int64N(ev.CompletionTokens+1)
		}
		evs[i] = ev
	}
	return evs
}

// countingReads counts the events a report reads event by event.
type countingReads struct {
	report.DailyUsageSource
	read int
}

func (c *countingReads) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	p, err := c.DailyUsageSource.Events(ctx, account, after, limit)
	c.read += len(p.Events)
	return p, err
}

// TestUsageReportFromRollup: events of six days archived in stages (nothing,
// up to the middle of day 3 — a batch of it twice, as a re-shipping shipper
// would —, all); at each stage report.Usage through NewArchivedLedger (the
// rollup for whole complete days, PostgreSQL and the store's tail for the
// rest) equals report.Usage over the store alone, for every grouping and
// ranges starting and ending mid-day and on day boundaries. The store is the
// in-memory billingtest.EventLog: the Redis store takes its stream ids from
// Redis's own clock, so a test cannot book six days of events into it.
func TestUsageReportFromRollup(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := clockedEvents(42, start, 6*24*12, 5*time.Minute) // every 5 minutes
	log := billingtest.EventLog(evs)
	store := &billingtest.Ledger{
		EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
			return log.Events(after, limit)
		},
		EventsBeforeFunc: func(_ context.Context, _, before string, limit int) (billing.EventPage, error) {
			return log.EventsBefore(before, limit)
		},
	}
	rollup, ok := billing.NewArchivedLedger(store, a).(report.DailyUsageSource)
	if !ok {
		t.Fatal("NewArchivedLedger over the PostgreSQL archive is not a report.DailyUsageSource")
	}
	day := func(d int, h time.Duration) time.Time { return start.Add(time.Duration(d)*24*time.Hour + h) }
	ranges := []report.Range{
		{From: day(0, 7*time.Hour), To: day(5, 13*time.Hour)},
		{From: day(1, 0), To: day(5, 0)},
		{To: day(4, 0)},
		{From: day(0, 0), To: day(7, 0)},
		{From: day(2, time.Hour), To: day(2, 20*time.Hour)},
	}
	groupings := [][]string{nil, {report.ByDay}, {report.ByModel}, {report.ByKey}, {report.ByDay, report.ByModel},
		{report.ByModel, report.ByKey}, {report.ByKey, report.ByDay}, {report.ByDay, report.ByModel, report.ByKey}}
	mid := slices.IndexFunc(evs, func(ev billing.Event) bool { return ev.At.After(day(2, 12*time.Hour)) })
	snapshots := map[string]report.Snapshot{
		"the whole ledger":    {Account: "acme", LastEventID: evs[len(evs)-1].ID},
		"a snapshot on day 4": {Account: "acme", LastEventID: evs[mid+len(evs)/4].ID},
	}
	appendRange := func(from, to int) {
		for i := from; i < to; i += 200 {
			if _, err := a.Append(ctx, "acme", evs[i:min(i+200, to)]); err != nil {
				t.Fatal(err)
			}
		}
	}
	stages := []struct {
		name       string
		ship       func()
		usesRollup bool
	}{
		{"nothing archived", func() {}, false},
		{"archived to day 3", func() { appendRange(0, mid); appendRange(mid-150, mid) }, true},
		{"all archived", func() { appendRange(mid, len(evs)) }, true},
	}
	for _, st := range stages {
		st.ship()
		usedRollup := false
		for sname, s := range snapshots {
			for _, q := range ranges {
				for _, groupBy := range groupings {
					want, err := report.Usage(ctx, store, s, q, groupBy...)
					if err != nil {
						t.Fatal(err)
					}
					reads := &countingReads{DailyUsageSource: rollup}
					got, err := report.Usage(ctx, reads, s, q, groupBy...)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s, %s, %v, %v:\nfrom the rollup %+v\nscanned %+v", st.name, sname, q, groupBy, got, want)
					}
					if want.Total.Requests == 0 && q.To.After(q.From) {
						t.Fatalf("%s, %v: the range holds no usage: it proves nothing", st.name, q)
					}
					if reads.read < int(want.Total.Requests) {
						usedRollup = true
					}
				}
			}
		}
		if usedRollup != st.usesRollup {
			t.Fatalf("%s: some report read fewer events than it counts: %v, want %v", st.name, usedRollup, st.usesRollup)
		}
	}
}

// TestMigration2BackfillsTokens: a schema at version 1 holding archived
// usage (its rollup without the cached and reasoning tokens) migrates to
// version 2 with those sums backfilled from the events, and the insert path
// keeps adding to them.
func TestMigration2BackfillsTokens(t *testing.T) {
	url, schema := testpg.Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ms, err := migrations()
	if err != nil || len(ms) < 2 || ms[0].version != 1 || ms[1].version != 2 {
		t.Fatalf("migrations %v, %v: want versions 1 and 2 first", ms, err)
	}
	// Version 1, as Migrate would have left it.
	setup := fmt.Sprintf(`CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.creditgate_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
SET search_path TO %[1]s`, schema)
	if _, err := conn.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, ms[0].sql); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO creditgate_schema_migrations (version, name) VALUES (1, $1)", ms[0].name); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	evs := clockedEvents(7, start, 300, 17*time.Minute) // about three and a half days
	old := evs[:200]
	// Archive old as version 1's insert path did: the events, and the rollup
	// of requests, prompt and completion tokens and cost.
	for _, ev := range old {
		m, s, err := parseID(ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		body, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO ledger_events (account_id, id_ms, id_seq, event_id, type, at, key_id, model, amount, cost, event)
			VALUES ('acme', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)`,
			m, s, ev.ID, string(ev.Type), ev.At, ev.KeyID, ev.Model, int64(ev.Amount), int64(ev.Cost), string(body)); err != nil {
			t.Fatal(err)
		}
		if ev.Type != billing.EventUsage {
			continue
		}
		if _, err := conn.Exec(ctx, `INSERT INTO usage_daily AS d VALUES ('acme', ($1::timestamptz AT TIME ZONE 'UTC')::date, $2, $3, 1, $4, $5, $6)
			ON CONFLICT (account_id, day, key_id, model) DO UPDATE SET requests = d.requests + 1,
				prompt_tokens = d.prompt_tokens + excluded.prompt_tokens, completion_tokens = d.completion_tokens + excluded.completion_tokens,
				cost = d.cost + excluded.cost`, ev.At, ev.KeyID, ev.Model, ev.PromptTokens, ev.CompletionTokens, int64(ev.Cost)); err != nil {
			t.Fatal(err)
		}
	}
	last := old[len(old)-1]
	m, s, _ := parseID(last.ID)
	if _, err := conn.Exec(ctx, "INSERT INTO ledger_heads (account_id, event_id, id_ms, id_seq, events) VALUES ('acme', $1, $2, $3, $4)", last.ID, m, s, len(old)); err != nil {
		t.Fatal(err)
	}

	a := openArchive(t, url, schema) // migrates
	if v, err := SchemaVersion(ctx, a.pool, schema); err != nil || v != LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, LatestVersion())
	}
	check := func(stage string, archived []billing.Event) {
		t.Helper()
		got, head, err := a.DailyUsage(ctx, "acme", start, start.Add(10*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if want := archived[len(archived)-1].ID; head != want {
			t.Fatalf("%s: head %s, want %s", stage, head, want)
		}
		if want := dailySums(archived); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the rollup\n%+v\nwant\n%+v", stage, got, want)
		}
		var cached int64
		for _, r := range got {
			cached += r.CachedTokens
		}
		if cached == 0 {
			t.Fatalf("%s: no cached tokens rolled up: the check proves nothing", stage)
		}
	}
	check("backfilled", old)
	if _, err := a.Append(ctx, "acme", evs[150:]); err != nil { // 50 of them again: counted once
		t.Fatal(err)
	}
	check("appended after the migration", evs)
	if got, err := a.UsageByDay(ctx, "acme", start, start.Add(10*24*time.Hour)); err != nil || len(got) != len(dailySums(evs)) {
		t.Fatalf("UsageByDay: %d rows, %v; want %d", len(got), err, len(dailySums(evs)))
	}
}

// dailySums is what usage_daily should hold for evs: usage summed by UTC day,
// key and model, in DailyUsage's order.
func dailySums(evs []billing.Event) []billing.DayUsage {
	var out []billing.DayUsage
	idx := map[[3]string]int{}
	for _, ev := range evs {
		if ev.Type != billing.EventUsage {
			continue
		}
		day := ev.At.UTC().Truncate(24 * time.Hour)
		k := [3]string{day.Format(time.DateOnly), ev.KeyID, ev.Model}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, billing.DayUsage{Day: day, KeyID: ev.KeyID, Model: ev.Model})
		}
		r := &out[i]
		r.Requests++
		r.PromptTokens += ev.PromptTokens
		r.CachedTokens += ev.CachedTokens
		r.CompletionTokens += ev.CompletionTokens
		r.ReasoningTokens += ev.ReasoningTokens
		r.Cost += ev.Cost
	}
	slices.SortFunc(out, func(a, b billing.DayUsage) int {
		if c := a.Day.Compare(b.Day); c != 0 {
			return c
		}
		return slices.Compare([]string{a.KeyID, a.Model}, []string{b.KeyID, b.Model})
	})
	return out
}

// TestArchivedReadsTakeScanCursors: report.Scan starts its page at the first
// event of a millisecond with the cursor "<ms-1>-<2^64-1>", beyond bigint; the
// archive's reads take it (it was ErrInvalid, failing every usage report with
// a From once anything was archived).
func TestArchivedReadsTakeScanCursors(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	evs := usageEvents(10, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), 1000) // ids 1000-0, 1000-1, 1001-0, …
	if _, err := a.Append(ctx, "acct1", evs); err != nil {
		t.Fatal(err)
	}
	ids := func(p billing.EventPage) []string {
		var out []string
		for _, ev := range p.Events {
			out = append(out, ev.ID)
		}
		return out
	}
	const maxSeq = "18446744073709551615"
	tests := []struct {
		cursor string
		before bool
		want   []string
	}{
		{"1001-" + maxSeq, false, []string{"1002-0", "1002-1", "1003-0"}},
		{"999-" + maxSeq, false, []string{"1000-0", "1000-1", "1001-0"}},
		{"1004-" + maxSeq, false, nil},
		{"1001-9223372036854775807", false, []string{"1002-0", "1002-1", "1003-0"}},
		{"1001-" + maxSeq, true, []string{"1001-1", "1001-0", "1000-1"}},
		{"1000-" + maxSeq, true, []string{"1000-1", "1000-0"}},
		{"999-" + maxSeq, true, nil},
	}
	for _, tc := range tests {
		var p billing.EventPage
		var err error
		if tc.before {
			p, err = a.ArchivedEventsBefore(ctx, "acct1", tc.cursor, 3)
		} else {
			p, err = a.ArchivedEvents(ctx, "acct1", tc.cursor, 3)
		}
		if err != nil {
			t.Fatalf("%s (before %v): %v", tc.cursor, tc.before, err)
		}
		if got := ids(p); !slices.Equal(got, tc.want) {
			t.Errorf("%s (before %v): %v, want %v", tc.cursor, tc.before, got, tc.want)
		}
	}
	for _, bad := range []string{"1001-18446744073709551616", "x-" + maxSeq, "9223372036854775808-" + maxSeq} {
		if _, err := a.ArchivedEvents(ctx, "acct1", bad, 3); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("ArchivedEvents(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

// BenchmarkUsageReport: report.Usage by day and model over a year of one
// account holding usageBenchEvents usage events (CREDITGATE_BENCH_USAGE_EVENTS,
// default 1,000,000; loaded as BenchmarkUsageByDay loads them), everything
// archived: through NewArchivedLedger (whole complete days from the rollup, the
// last day scanned), and, for comparison, through an ArchivedLedger without
// the rollup (every event read from PostgreSQL). Both reports must be equal.
//
//	go test ./pgarchive -run '^$' -bench BenchmarkUsageReport -benchtime 1x
func BenchmarkUsageReport(b *testing.B) {
	a := newArchive(b)
	ctx := context.Background()
	from, to := loadUsageYear(b, a, "big")
	head, err := a.ArchiveHead(ctx, "big")
	if err != nil {
		b.Fatal(err)
	}
	var tail billingtest.EventLog // everything is archived: the store's tail is empty
	store := &billingtest.Ledger{
		EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
			return tail.Events(after, limit)
		},
		EventsBeforeFunc: func(_ context.Context, _, before string, limit int) (billing.EventPage, error) {
			return tail.EventsBefore(before, limit)
		},
	}
	s := report.Snapshot{Account: "big", LastEventID: head}
	q := report.Range{From: from, To: to}
	reports := map[string]report.UsageReport{}
	for name, reads := range map[string]report.Ledger{
		"rollup": billing.NewArchivedLedger(store, a),
		"scan":   &billing.ArchivedLedger{Ledger: store, Archive: a},
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r, err := report.Usage(ctx, reads, s, q, report.ByDay, report.ByModel)
				if err != nil {
					b.Fatal(err)
				}
				if r.Total.Requests != int64(usageBenchEvents(b)) {
					b.Fatalf("%d requests, want %d", r.Total.Requests, usageBenchEvents(b))
				}
				reports[name] = r
			}
		})
	}
	if len(reports) == 2 && !reflect.DeepEqual(reports["rollup"], reports["scan"]) {
		b.Fatal("the report from the rollup is not the scan's")
	}
}
