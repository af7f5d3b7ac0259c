package pgarchive

import (
	"testing"

	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// What one usage event costs in Redis (its stream entry) and in PostgreSQL
// (row, jsonb, primary key, the (account, at) index; the rollup is per day and
// not counted): the README's sizing figures. Fails when either grows past
// what the README budgets.
func TestStorageFootprint(t *testing.T) {
	e := newShipEnv(t)
	if e.redis.Kind != testredis.KindRedis {
		t.Skipf("SKIPPED: MEMORY USAGE needs a real single Redis (this is %s)", e.redis.Kind)
	}
	const n = 2000
	e.book(t, "size", n)
	e.round(t, e.shipper(nil, ShipperOptions{}))
	streamBytes, err := e.redis.Client.MemoryUsage(e.ctx, e.redis.Prefix+"{acct:size}:ledger", 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.arch.pool.Exec(e.ctx, "VACUUM ANALYZE ledger_events"); err != nil {
		t.Fatal(err)
	}
	var pgBytes int64
	if err := e.arch.pool.QueryRow(e.ctx, "SELECT pg_total_relation_size('ledger_events')").Scan(&pgBytes); err != nil {
		t.Fatal(err)
	}
	events := int64(n + 1) // and the top-up
	redisPer, pgPer := streamBytes/events, pgBytes/events
	t.Logf("per usage event: Redis stream %d bytes, PostgreSQL %d bytes (table, TOAST and indexes)", redisPer, pgPer)
	if redisPer > 400 || pgPer > 1500 {
		t.Fatalf("per event: Redis %d bytes (budget 400), PostgreSQL %d (budget 1500)", redisPer, pgPer)
	}
}
