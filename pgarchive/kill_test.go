package pgarchive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// Environment of the shipping child process (TestShipperChildProcess).
const (
	childEnv       = "CREDITGATE_TEST_SHIP_CHILD"
	childPGEnv     = "CREDITGATE_TEST_SHIP_CHILD_PG"
	childSchemaEnv = "CREDITGATE_TEST_SHIP_CHILD_SCHEMA"
	childRedisEnv  = "CREDITGATE_TEST_SHIP_CHILD_REDIS"
	childPrefixEnv = "CREDITGATE_TEST_SHIP_CHILD_PREFIX"
)

// TestShipperChildProcess is the shipping process TestShipperKilledMidBatch
// kills: it ships in small batches, round after round, until killed. Run
// alone (without the parent's environment) it does nothing.
func TestShipperChildProcess(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("SKIPPED: the child process of TestShipperKilledMidBatch (runs only when that test starts it)")
	}
	ctx := context.Background()
	arch, err := Open(ctx, os.Getenv(childPGEnv), os.Getenv(childSchemaEnv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: os.Getenv(childRedisEnv)}), redisstore.Options{Prefix: os.Getenv(childPrefixEnv)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewShipper(arch, store, ShipperOptions{BatchSize: 3, MaxBatchesPerAccount: 2, Retention: time.Hour})
	for {
		_, _ = s.Round(ctx)
	}
}

// A shipping process killed (SIGKILL) at random points, again and again, its
// transactions cut mid-batch and its trims (by its real clock: everything is
// old) cut mid-way: after a clean shipper finishes, every event is archived
// exactly once, in order, and the store's tail is the archive's end.
func TestShipperKilledMidBatch(t *testing.T) {
	e := newShipEnv(t)
	if e.redis.Kind != testredis.KindRedis {
		t.Skipf("SKIPPED: the child process needs a real single Redis (this is %s)", e.redis.Kind)
	}
	const accounts = 5
	want := map[string][]billing.Event{} // read before any shipper trims
	for i := 0; i < accounts; i++ {
		id := fmt.Sprintf("kill%d", i)
		e.book(t, id, 200)
		want[id] = e.storeEvents(t, id)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	total := int64(accounts * 201) // and each account's top-up
	archived := func() int64 {
		var n int64
		for id := range want {
			c, err := e.arch.Count(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	var progress []int64 // archived after each kill
	for round := 0; round < 8; round++ {
		cmd := exec.Command(exe, "-test.run=^TestShipperChildProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"=1", childPGEnv+"="+e.url, childSchemaEnv+"="+e.schema,
			childRedisEnv+"="+e.redis.Addr, childPrefixEnv+"="+e.redis.Prefix)
		before := archived()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed once it is shipping, a random moment after its first progress:
		// its start-up takes tens of ms on a quiet machine and seconds on a
		// loaded one (go test ./... -race), which a fixed delay cannot tell.
		for deadline := time.Now().Add(20 * time.Second); before < total && archived() == before && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		progress = append(progress, archived())
	}
	midway := slices.ContainsFunc(progress, func(n int64) bool { return n > 0 && n < total })
	// Finish with a clean shipper (the killed ones' locks die with their connections).
	s := e.shipper(nil, ShipperOptions{BatchSize: 50})
	deadline := time.Now().Add(30 * time.Second)
	for {
		rr, err := s.Round(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rr.Busy == 0 && rr.More == 0 && rr.Shipped == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no clean round within 30s: %+v", rr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for id, evs := range want {
		checkExactlyOnce(t, e, id, evs)
		if n, _ := e.arch.Count(e.ctx, id); int(n) != len(evs) {
			t.Fatalf("%s: %d archived of %d", id, n, len(evs))
		}
	}
	if !midway {
		t.Fatalf("no kill landed while shipping was under way (archived after each kill: %v of %d)", progress, total)
	}
	t.Logf("archived after each kill: %v of %d", progress, total)
}
