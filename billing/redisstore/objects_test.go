package redisstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

func TestStoredObjects(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		put := func(account string, kind billing.ObjectKind, id string) {
			t.Helper()
			if err := e.PutObject(e.ctx, account, kind, id, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Millisecond)
		}
		owns := func(account string, kind billing.ObjectKind, id string) bool {
			t.Helper()
			ok, err := e.OwnsObject(e.ctx, account, kind, id)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		list := func(q billing.ObjectQuery) billing.ObjectPage {
			t.Helper()
			p, err := e.ListObjects(e.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, id := range []string{"file-a", "file-b", "file-c"} {
			put("acme", billing.ObjectFile, id)
		}
		put("acme", billing.ObjectFile, "file-a") // again: keeps its first time
		put("other", billing.ObjectFile, "file-x")
		put("acme", billing.ObjectResponse, "resp_1")

		for _, tc := range []struct {
			account string
			kind    billing.ObjectKind
			id      string
			want    bool
		}{
			{"acme", billing.ObjectFile, "file-a", true},
			{"acme", billing.ObjectFile, "file-x", false}, // another account's
			{"other", billing.ObjectFile, "file-a", false},
			{"other", billing.ObjectFile, "file-x", true},
			{"acme", billing.ObjectBatch, "file-a", false}, // another kind
			{"acme", billing.ObjectResponse, "resp_1", true},
			{"acme", billing.ObjectFile, "{acct:other}", false}, // not an id at all
			{"acme", billing.ObjectFile, "", false},
		} {
			if got := owns(tc.account, tc.kind, tc.id); got != tc.want {
				t.Errorf("%s owns %s %q: %v, want %v", tc.account, tc.kind, tc.id, got, tc.want)
			}
		}
		for _, tc := range []struct {
			q    billing.ObjectQuery
			want []string
			more bool
		}{
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 10}, []string{"file-a", "file-b", "file-c"}, false},
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 10, Newest: true}, []string{"file-c", "file-b", "file-a"}, false},
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 2}, []string{"file-a", "file-b"}, true},
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 2, After: "file-b"}, []string{"file-c"}, false},
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 1, Newest: true, After: "file-c"}, []string{"file-b"}, true},
			{billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 5, After: "file-x"}, nil, false}, // not acme's
			{billing.ObjectQuery{Account: "other", Kind: billing.ObjectFile, Limit: 5}, []string{"file-x"}, false},
			{billing.ObjectQuery{Account: "nobody", Kind: billing.ObjectFile, Limit: 5}, nil, false},
		} {
			if got := list(tc.q); !slices.Equal(got.IDs, tc.want) || got.HasMore != tc.more {
				t.Errorf("%+v: %v more=%v, want %v more=%v", tc.q, got.IDs, got.HasMore, tc.want, tc.more)
			}
		}
		if err := e.DeleteObject(e.ctx, "acme", billing.ObjectFile, "file-b"); err != nil {
			t.Fatal(err)
		}
		if owns("acme", billing.ObjectFile, "file-b") {
			t.Fatal("deleted object still owned")
		}
		if err := e.DeleteObject(e.ctx, "acme", billing.ObjectFile, "file-b"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if got := list(billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 10}); !slices.Equal(got.IDs, []string{"file-a", "file-c"}) {
			t.Fatalf("after delete: %v", got.IDs)
		}

		// Stored responses are kept 30 days: after that they are nobody's, and
		// the next record drops them.
		e.clock.Advance(billing.ObjectResponse.Retention() + time.Second)
		if owns("acme", billing.ObjectResponse, "resp_1") {
			t.Fatal("a stored response outlived its retention")
		}
		put("acme", billing.ObjectResponse, "resp_2")
		if got := list(billing.ObjectQuery{Account: "acme", Kind: billing.ObjectResponse, Limit: 10}); !slices.Equal(got.IDs, []string{"resp_2"}) {
			t.Fatalf("responses after retention: %v", got.IDs)
		}
		if n, err := e.redis.Client.ZCard(e.ctx, e.objectsKey("acme", billing.ObjectResponse)).Result(); err != nil || n != 1 {
			t.Fatalf("expired record not dropped: %d %v", n, err)
		}
		if !owns("acme", billing.ObjectFile, "file-a") {
			t.Fatal("files are kept until deleted")
		}

		for _, bad := range []error{
			e.PutObject(e.ctx, "acme", "thing", "x", e.clock.Now()),
			e.PutObject(e.ctx, "acme", billing.ObjectFile, "a b", e.clock.Now()),
			e.PutObject(e.ctx, "{acme}", billing.ObjectFile, "x", e.clock.Now()),
		} {
			if bad == nil {
				t.Error("invalid record accepted")
			}
		}
		if _, err := e.ListObjects(e.ctx, billing.ObjectQuery{Account: "acme", Kind: billing.ObjectFile, Limit: 0}); err == nil {
			t.Error("limit 0 accepted")
		}
	})
}

// TestObjectPagesModel: random records, deletions and pages of any size, in
// either order, from any cursor, match a model (a list in creation order), and
// walking the pages visits each of the account's objects once.
func TestObjectPagesModel(t *testing.T) {
	for _, kind := range []string{"redis", "miniredis"} {
		t.Run(kind, func(t *testing.T) {
			var r *testredis.Store
			if kind == "redis" {
				r = testredis.New(t)
			} else {
				r = testredis.Memory(t)
			}
			var n, checks atomic.Int64
			defer func() { t.Logf("%d pages matched the model", checks.Load()) }()
			rapid.Check(t, func(rt *rapid.T) {
				e := newEnv(t, r)
				account := fmt.Sprintf("p%d", n.Add(1))
				var model []string            // creation order: by time, then id (as a zset orders ties)
				created := map[string]int64{} // ms
				for step := range rapid.IntRange(1, 20).Draw(rt, "steps") {
					switch rapid.IntRange(0, 3).Draw(rt, "op") {
					case 0, 1:
						id := fmt.Sprintf("file-%d", rapid.IntRange(0, 20).Draw(rt, "id"))
						if !slices.Contains(model, id) {
							model = append(model, id)
							created[id] = e.clock.Now().UnixMilli()
							slices.SortStableFunc(model, func(a, b string) int {
								if created[a] != created[b] {
									return int(created[a] - created[b])
								}
								return strings.Compare(a, b)
							})
						}
						if err := e.PutObject(e.ctx, account, billing.ObjectFile, id, e.clock.Now()); err != nil {
							rt.Fatal(err)
						}
						e.clock.Advance(time.Duration(rapid.IntRange(0, 2).Draw(rt, "ms")) * time.Millisecond)
					case 2:
						if len(model) == 0 {
							continue
						}
						id := rapid.SampledFrom(model).Draw(rt, "delete")
						model = slices.DeleteFunc(model, func(s string) bool { return s == id })
						if err := e.DeleteObject(e.ctx, account, billing.ObjectFile, id); err != nil {
							rt.Fatal(err)
						}
					case 3:
						newest := rapid.Bool().Draw(rt, "newest")
						limit := rapid.IntRange(1, 5).Draw(rt, "limit")
						order := slices.Clone(model)
						if newest {
							slices.Reverse(order)
						}
						// Walk every page from the start; then one page after a random id.
						var seen []string
						after := ""
						for {
							p, err := e.ListObjects(e.ctx, billing.ObjectQuery{Account: account, Kind: billing.ObjectFile, Limit: limit, Newest: newest, After: after})
							if err != nil {
								rt.Fatal(err)
							}
							checks.Add(1)
							seen = append(seen, p.IDs...)
							if len(p.IDs) > limit || (p.HasMore && len(p.IDs) < limit) {
								rt.Fatalf("step %d: page of %d (more=%v) for limit %d", step, len(p.IDs), p.HasMore, limit)
							}
							if !p.HasMore {
								break
							}
							after = p.IDs[len(p.IDs)-1]
						}
						if !slices.Equal(seen, order) && !(len(seen) == 0 && len(order) == 0) {
							rt.Fatalf("step %d: pages %v, want %v", step, seen, order)
						}
						if len(order) > 0 {
							i := rapid.IntRange(0, len(order)-1).Draw(rt, "cursor")
							p, err := e.ListObjects(e.ctx, billing.ObjectQuery{Account: account, Kind: billing.ObjectFile, Limit: limit, Newest: newest, After: order[i]})
							if err != nil {
								rt.Fatal(err)
							}
							want := order[i+1:]
							more := len(want) > limit
							want = want[:min(limit, len(want))]
							if !slices.Equal(p.IDs, want) && !(len(p.IDs) == 0 && len(want) == 0) || p.HasMore != more {
								rt.Fatalf("step %d: after %s: %v more=%v, want %v more=%v", step, order[i], p.IDs, p.HasMore, want, more)
							}
						}
					}
				}
			})
		})
	}
}

func TestBatchRecords(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		now := e.clock.Now()
		b := billing.Batch{ID: "batch_1", Account: "acme", KeyID: "key_1", HoldID: "req_1", Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini",
			Prices:   billing.UnitPrices{Input: usd("0.15"), CachedInput: usd("0.075"), AudioInput: usd("0.15"), Output: usd("0.60"), Reasoning: usd("0.60"), AudioOutput: usd("0.60")},
			Discount: 500_000, Requests: 3, Held: usd("0.012345"), CreatedAt: now, HoldExpires: now.Add(25 * time.Hour)}
		if err := e.OpenBatch(e.ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := e.OpenBatch(e.ctx, b); err != nil {
			t.Fatalf("the same batch again: %v", err)
		}
		other := b
		other.HoldID = "req_2"
		if err := e.OpenBatch(e.ctx, other); err == nil {
			t.Fatal("a second hold for one batch accepted")
		}
		b2 := b
		b2.ID, b2.Account, b2.HoldID, b2.CreatedAt = "batch_2", "beta", "req_3", now.Add(time.Second)
		if err := e.OpenBatch(e.ctx, b2); err != nil {
			t.Fatal(err)
		}
		// A background response shares the open set, with its limit's counts.
		bg := b
		bg.ID, bg.HoldID, bg.Endpoint, bg.Discount, bg.Requests = "resp_1", "req_4", "/v1/responses", 1_000_000, 1
		bg.Background, bg.InputTokens, bg.OutputCap, bg.CreatedAt = true, 1007, 4096, now.Add(2*time.Second)
		if err := e.OpenBatch(e.ctx, bg); err != nil {
			t.Fatal(err)
		}
		for _, w := range []billing.Batch{b, bg} {
			got, err := e.GetBatch(e.ctx, "acme", w.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := w
			want.CreatedAt, want.HoldExpires = time.UnixMilli(w.CreatedAt.UnixMilli()).UTC(), time.UnixMilli(w.HoldExpires.UnixMilli()).UTC()
			if got != want {
				t.Fatalf("batch record\n %+v\nwant\n %+v", got, want)
			}
		}
		if err := e.CloseBatch(e.ctx, "acme", "resp_1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.GetBatch(e.ctx, "beta", "batch_1"); !errors.Is(err, billing.ErrObjectNotFound) {
			t.Fatalf("another account's batch: %v", err)
		}
		open, err := e.OpenBatches(e.ctx, 10)
		if err != nil || !slices.Equal(open, []billing.BatchRef{{Account: "acme", ID: "batch_1"}, {Account: "beta", ID: "batch_2"}}) {
			t.Fatalf("open batches %v %v", open, err)
		}
		if err := e.CloseBatch(e.ctx, "acme", "batch_1"); err != nil {
			t.Fatal(err)
		}
		if open, _ = e.OpenBatches(e.ctx, 10); !slices.Equal(open, []billing.BatchRef{{Account: "beta", ID: "batch_2"}}) {
			t.Fatalf("after close: %v", open)
		}
		if _, err := e.GetBatch(e.ctx, "acme", "batch_1"); err != nil {
			t.Fatalf("a closed batch keeps its record: %v", err)
		}
		if ttl, err := e.redis.Client.PTTL(e.ctx, e.batchKey("acme", "batch_1")).Result(); err != nil || ttl <= 29*24*time.Hour {
			t.Fatalf("record TTL %s %v", ttl, err)
		}
		bad := b
		bad.ID, bad.Discount = "batch_3", 0
		if err := e.OpenBatch(e.ctx, bad); err == nil {
			t.Fatal("discount 0 accepted")
		}
	})
}

// A lease is held until its end by the callers' clocks, on Redis and on the
// embedded store alike (whose keys never expire by themselves).
func TestLease(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		take := func() bool {
			t.Helper()
			ok, err := e.TryLease(e.ctx, "batches", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !take() {
			t.Fatal("a free lease not taken")
		}
		if take() {
			t.Fatal("a held lease taken again")
		}
		e.clock.Advance(59 * time.Second)
		if take() {
			t.Fatal("taken before its end")
		}
		e.clock.Advance(time.Second)
		if !take() {
			t.Fatal("not taken at its end")
		}
		if _, err := e.TryLease(e.ctx, "a b", time.Minute); err == nil {
			t.Fatal("a lease name with a space accepted")
		}
	})
}
