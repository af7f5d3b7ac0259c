package app

import (
	"context"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// holdRecordBudget is the README's Redis sizing figure for one hold record
// ("Running in production: Redis durability"): what Redis's MEMORY USAGE says of
// a real one, rounded up with room for longer ids and amounts.
const holdRecordBudget = 300

// The hold records requests leave behind (kept for holdRecordRetention after
// they settle, for idempotent resends and spool replays) are measured on a
// real Redis with MEMORY USAGE: a settled plain request, a settled stream and a
// released one each leave one record within the README's figure, which lives
// hold_ttl + 1 h from its reserve.
func TestHoldRecordMemory(t *testing.T) {
	f := newFixture(t)
	if f.redis.Kind != testredis.KindRedis {
		t.Skip("MEMORY USAGE needs a real single Redis")
	}
	const holdTTL = 2 * time.Minute // the fixture's billing.hold_ttl
	f.start()
	key := f.account("acme", "5.00")
	for _, o := range []outcome{
		post(loadClient, f.data, key, chat("gpt-4o-mini", false, 16)),
		post(loadClient, f.data, key, chat("gpt-4o-mini", true, 16)),
		post(loadClient, f.data, key, chat("gpt-4o-mini", false, 16), "X-Mock-Status", "500"),
	} {
		if o.err != nil || o.id == "" {
			t.Fatalf("request: %d %v", o.status, o.err)
		}
	}
	waitFor(t, "the requests to settle", 10*time.Second, func() bool { return f.app.inflight.count() == 0 })
	ctx := context.Background()
	keys, err := f.redis.Client.Keys(ctx, f.redis.Prefix+"*:hold:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("%d hold records, want 3: %v", len(keys), keys)
	}
	for _, k := range keys {
		bytes, err := f.redis.Client.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttl, err := f.redis.Client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		state, _ := f.redis.Client.HGet(ctx, k, "state").Result()
		fields, _ := f.redis.Client.HLen(ctx, k).Result()
		t.Logf("%s record: %d bytes (%d fields, key %d bytes), expires in %s", state, bytes, fields, len(k), ttl.Round(time.Second))
		if bytes <= 0 || bytes > holdRecordBudget {
			t.Errorf("a %s hold record takes %d bytes; the README sizes it at %d at most", state, bytes, holdRecordBudget)
		}
		// Reserve gives the record hold_ttl + the retention; a settle after the
		// hold expired extends it to the retention from then.
		if ttl < holdRecordRetention-time.Minute || ttl > holdTTL+holdRecordRetention {
			t.Errorf("a %s hold record expires in %s, want within %s of the settlement", state, ttl, holdTTL+holdRecordRetention)
		}
	}
}
