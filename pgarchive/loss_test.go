package pgarchive

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
)

// snapshot is an account's Redis keys as DUMP gives them: a restore puts the
// account back as it was, as a Redis restored from an older RDB/AOF would.
type snapshot map[string]string

// accountKeys are the Redis keys of account id (on a cluster, from every
// master: KEYS answers for one node).
func (e *shipEnv) accountKeys(t testing.TB, id string) []string {
	t.Helper()
	pattern := e.redis.Prefix + "{acct:" + id + "}*"
	var keys []string
	var mu sync.Mutex
	collect := func(ctx context.Context, c redis.Cmdable) error {
		ks, err := c.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := e.redis.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(e.ctx, func(ctx context.Context, n *redis.Client) error { return collect(ctx, n) })
	} else {
		err = collect(e.ctx, e.redis.Client)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (e *shipEnv) snapshot(t testing.TB, id string) snapshot {
	t.Helper()
	keys := e.accountKeys(t, id)
	s := snapshot{}
	for _, k := range keys {
		d, err := e.redis.Client.Dump(e.ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		s[k] = d
	}
	return s
}

func (e *shipEnv) restore(t testing.TB, id string, s snapshot) {
	t.Helper()
	for _, k := range e.accountKeys(t, id) {
		if err := e.redis.Client.Del(e.ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for k, d := range s {
		if err := e.redis.Client.Restore(e.ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// Redis restored to an older state while the archive is ahead: Compare (and
// through it the audit) names the account, the events Redis lost and their
// balance effect, also once new traffic followed the restore; an archive
// missing events Redis holds is named too.
func TestCompareNamesLostEvents(t *testing.T) {
	e := newShipEnv(t)
	s := e.shipper(nil, ShipperOptions{BatchSize: 20, Retention: 5 * time.Minute})
	e.book(t, "lost", 400) // 400 s: the oldest are trimmed after shipping
	e.round(t, s)
	rep, err := e.arch.Compare(e.ctx, e.store, "lost")
	if err != nil || !rep.OK() || rep.Checkpoint == "" {
		t.Fatalf("before any loss: %+v, %v (want OK, from a checkpoint)", rep, err)
	}

	old := e.snapshot(t, "lost")
	before := e.storeEvents(t, "lost")
	e.book(t, "lost", 7)
	e.round(t, s)
	var lost []billing.Event // booked after the snapshot (the round trimmed older ones)
	for _, ev := range e.storeEvents(t, "lost") {
		if billing.CompareEventIDs(ev.ID, before[len(before)-1].ID) > 0 {
			lost = append(lost, ev)
		}
	}
	var effect money.Micros
	var lostIDs []string
	for _, ev := range lost {
		effect -= ev.Cost
		lostIDs = append(lostIDs, ev.ID)
	}
	e.restore(t, "lost", old)

	check := func(when string) {
		t.Helper()
		rep, err := e.arch.Compare(e.ctx, e.store, "lost")
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.MissingCount != len(lost) || !slices.Equal(rep.MissingIDs(), lostIDs) || rep.MissingEffect != effect {
			t.Fatalf("%s: report %+v; want the %d lost events %v, effect %s", when, rep, len(lost), lostIDs, effect)
		}
		ps := rep.Problems()
		if len(ps) != 1 || ps[0].Check != "archive" || ps[0].EventID != lostIDs[0] || !strings.Contains(ps[0].Message, lostIDs[len(lostIDs)-1]) {
			t.Fatalf("%s: problems %+v", when, ps)
		}
	}
	check("right after the restore")
	if rr := e.round(t, s); !slices.Equal(rr.RedisBehind, []string{"lost"}) {
		t.Fatalf("the round after the restore: %+v; want lost named as behind the archive", rr)
	}
	// Traffic goes on on the restored state, and is shipped after the gap.
	e.book(t, "lost", 5)
	e.round(t, s)
	check("after more traffic was shipped")

	// The other way round: the archive lacks events Redis holds.
	e2 := newShipEnv(t)
	e2.book(t, "gap", 10)
	e2.round(t, e2.shipper(nil, ShipperOptions{}))
	evs := e2.storeEvents(t, "gap")
	if _, err := e2.arch.pool.Exec(e2.ctx, "DELETE FROM ledger_events WHERE account_id = 'gap' AND event_id = ANY($1)", []string{evs[3].ID, evs[4].ID}); err != nil {
		t.Fatal(err)
	}
	rep, err = e2.arch.Compare(e2.ctx, e2.store, "gap")
	if err != nil || rep.UnarchivedCount != 2 || !slices.Equal(rep.Unarchived, []string{evs[3].ID, evs[4].ID}) || rep.MissingCount != 0 {
		t.Fatalf("an archive with a hole: %+v, %v", rep, err)
	}
	if _, err := e2.arch.Compare(context.Background(), e2.store, "nobody"); err == nil {
		t.Fatal("Compare of an unknown account: no error")
	}
}

// trimmingSource trims the account's oldest events (up to the next step of
// ids) before every page it reads: a shipper trimming while Compare walks.
type trimmingSource struct {
	*redisstore.Store
	ctx   context.Context
	ids   []string // the ledger's ids, oldest first
	step  int
	upTo  int
	trims int
}

func (s *trimmingSource) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if s.upTo+s.step < len(s.ids)-1 {
		s.upTo += s.step
		if _, err := s.TrimLedger(s.ctx, account, s.ids[s.upTo], time.Now().Add(24*time.Hour)); err != nil {
			return billing.EventPage{}, err
		}
		s.trims++
	}
	return s.Store.Events(ctx, account, after, limit)
}

// A trim during every page Compare reads (the checkpoint moving each time, more
// often than Compare walks again) makes no trimmed event look lost; an event
// Redis did lose is still named.
func TestCompareUnderConcurrentTrims(t *testing.T) {
	e := newShipEnv(t)
	e.book(t, "busy", 2500) // three pages of each side
	e.round(t, e.shipper(nil, ShipperOptions{BatchSize: 1000, MaxBatchesPerAccount: 10, Retention: 24 * time.Hour}))
	var ids []string
	for _, ev := range e.storeEvents(t, "busy") {
		ids = append(ids, ev.ID)
	}
	// A real loss among the newest, past every trim: XDEL, as a lost write.
	lost := ids[len(ids)-2]
	if err := e.redis.Client.XDel(e.ctx, e.redis.Prefix+"{acct:busy}:ledger", lost).Err(); err != nil {
		t.Fatal(err)
	}
	src := &trimmingSource{Store: e.store, ctx: e.ctx, ids: ids, step: 150}
	rep, err := e.arch.Compare(e.ctx, src, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if src.trims < 5 {
		t.Fatalf("only %d trims ran during the walks", src.trims)
	}
	if rep.MissingCount != 1 || !slices.Equal(rep.MissingIDs(), []string{lost}) || rep.UnarchivedCount != 0 {
		ids := rep.MissingIDs()
		t.Fatalf("after %d trims during the walk: %d missing (first %v), %d unarchived; want only %s missing",
			src.trims, rep.MissingCount, ids[:min(len(ids), 3)], rep.UnarchivedCount, lost)
	}
}
