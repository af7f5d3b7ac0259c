package pgarchive

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// BenchmarkShip: shipping throughput from the real Redis store to the real
// PostgreSQL, batches of 500 (the default): 10 accounts × 1,000 events booked
// once, each iteration ships all of them into emptied tables (no trimming:
// the store keeps them for the next iteration).
//
//	go test ./pgarchive -run '^$' -bench BenchmarkShip -benchtime 5x
func BenchmarkShip(b *testing.B) {
	e := newShipEnv(b)
	const accounts, perAccount = 10, 1000
	for i := 0; i < accounts; i++ {
		e.book(b, fmt.Sprintf("bench%d", i), perAccount)
	}
	s := NewShipper(e.arch, e.store, ShipperOptions{BatchSize: 500, MaxBatchesPerAccount: 1000})
	var shipped int64
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := e.arch.pool.Exec(e.ctx, "TRUNCATE ledger_events, ledger_heads, usage_daily"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rr, err := s.Round(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		shipped += rr.Shipped
		if want := int64(accounts * (perAccount + 1)); rr.Shipped != want { // + each account's top-up
			b.Fatalf("shipped %d, want %d", rr.Shipped, want)
		}
	}
	b.ReportMetric(float64(shipped)/took.Seconds(), "events/s")
}

// usageBenchEvents is the size of BenchmarkUsageByDay's account:
// CREDITGATE_BENCH_USAGE_EVENTS, default 1,000,000.
func usageBenchEvents(b *testing.B) int {
	if s := os.Getenv("CREDITGATE_BENCH_USAGE_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("CREDITGATE_BENCH_USAGE_EVENTS=%q", s)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkUsageByDay: a year's usage report of one account holding 1,000,000
// usage events (a year of traffic, 4 keys × 3 models), archived through Append
// (so the rollup is the shipper's own), from the rollup; and, for comparison,
// the same sums computed from the events themselves.
//
//	go test ./pgarchive -run '^$' -bench BenchmarkUsageByDay -benchtime 20x
func BenchmarkUsageByDay(b *testing.B) {
	a := newArchive(b)
	ctx := context.Background()
	from, to := loadUsageYear(b, a, "big")
	b.Run("rollup", func(b *testing.B) {
		for b.Loop() {
			rows, err := a.UsageByDay(ctx, "big", from, to)
			if err != nil || len(rows) == 0 {
				b.Fatalf("%d rows, %v", len(rows), err)
			}
		}
	})
	b.Run("scan_events", func(b *testing.B) {
		for b.Loop() {
			var requests int64
			err := a.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT (at AT TIME ZONE 'UTC')::date, key_id, model, count(*), sum(cost)
				FROM ledger_events WHERE account_id = $1 AND at >= $2 AND at < $3 AND type = 'usage' GROUP BY 1, 2, 3) s`, "big", from, to).Scan(&requests)
			if err != nil || requests == 0 {
				b.Fatalf("%d groups, %v", requests, err)
			}
		}
	})
}

// loadUsageYear archives usageBenchEvents usage events of account through
// Append (so the rollup is the shipper's own), spread evenly over 2025 (4 keys
// × 3 models), and returns the year.
func loadUsageYear(b *testing.B, a *Archive, account string) (from, to time.Time) {
	ctx := context.Background()
	n := usageBenchEvents(b)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 365 * 24 * time.Hour / time.Duration(n)
	keys, models := []string{"key_a", "key_b", "key_c", "key_d"}, []string{"gpt-4o", "gpt-4o-mini", "o3"}
	const batch = 5000
	loadStart := time.Now()
	for i := 0; i < n; i += batch {
		evs := make([]billing.Event, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			at := start.Add(time.Duration(j) * step)
			evs = append(evs, billing.Event{ID: fmt.Sprintf("%d-%d", at.UnixMilli(), j%2), Type: billing.EventUsage, At: at,
				Amount: money.Micros(100 + j%50), Cost: money.Micros(100 + j%50), KeyID: keys[j%4], Model: models[j%3],
				Endpoint: "/v1/chat/completions", HoldID: "h" + strconv.Itoa(j), RequestID: "r" + strconv.Itoa(j),
				PromptTokens: 200, CompletionTokens: int64(j % 300), BalanceAfter: money.Micros(-j)})
		}
		if _, err := a.Append(ctx, account, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d events in %s", n, time.Since(loadStart).Round(time.Millisecond))
	return start, start.Add(365 * 24 * time.Hour)
}
