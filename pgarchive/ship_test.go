package pgarchive

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

var shipPolicy = billing.Policy{
	Grace: 500_000, MinPurchase: 1_000_000, CreditTTL: 365 * 24 * time.Hour, HoldTTL: 15 * time.Minute,
	DefaultTier: "t", Tiers: map[string]billing.Tier{"t": {}},
}

// clock is a settable clock shared by the store and the shipper.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// shipEnv is a real Redis store and a PostgreSQL archive, each the test's own.
type shipEnv struct {
	store  *redisstore.Store
	redis  *testredis.Store
	arch   *Archive
	url    string // the archive's PostgreSQL
	schema string
	clock  *clock
	ctx    context.Context
}

func newShipEnv(t testing.TB) *shipEnv {
	t.Helper()
	url, schema := testpg.Schema(t)
	r := testredis.New(t)
	c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
	s, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &shipEnv{store: s, redis: r, arch: openArchive(t, url, schema), url: url, schema: schema, clock: c, ctx: context.Background()}
}

func (e *shipEnv) shipper(src Source, o ShipperOptions) *Shipper {
	if src == nil {
		src = e.store
	}
	o.Now = e.clock.Now
	return NewShipper(e.arch, src, o)
}

// book creates account id (if new) with credit, then books n settled requests
// a second apart by the clock: n usage events.
func (e *shipEnv) book(t tb, id string, n int) {
	t.Helper()
	if _, err := e.store.GetAccount(e.ctx, id); errors.Is(err, billing.ErrAccountNotFound) {
		if _, err := e.store.CreateAccount(e.ctx, id, "t"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.TopUp(e.ctx, shipPolicy, billing.TopUpRequest{Account: id, GrantID: billing.NewID("grant_"), Amount: 1_000_000_000}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		e.clock.Advance(time.Second)
		hold := billing.NewID("hold_")
		if _, err := e.store.Reserve(e.ctx, billing.ReserveRequest{Account: id, HoldID: hold, Estimate: 20_000, Grace: shipPolicy.Grace, TTL: shipPolicy.HoldTTL}); err != nil {
			t.Fatal(err)
		}
		u := billing.Usage{RequestID: hold, KeyID: "key_1", Model: "gpt-4o-mini", PromptTokens: 12, CompletionTokens: int64(i % 7), TokenSource: billing.TokenSourceUpstream}
		if _, err := e.store.Settle(e.ctx, billing.SettleRequest{Account: id, HoldID: hold, Cost: money.Micros(1000 + i%13), Usage: u}); err != nil {
			t.Fatal(err)
		}
	}
}

// storeEvents are every event id's event in the store's ledger (what trimming left).
func (e *shipEnv) storeEvents(t tb, id string) []billing.Event {
	t.Helper()
	var all []billing.Event
	after := ""
	for {
		p, err := e.store.Events(e.ctx, id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Events...)
		if p.Next == "" {
			return all
		}
		after = p.Next
	}
}

func (e *shipEnv) round(t tb, s *Shipper) RoundResult {
	t.Helper()
	rr, err := s.Round(e.ctx)
	if err != nil {
		t.Fatalf("round: %v", err)
	}
	return rr
}

// checkExactlyOnce: the archive holds account's history exactly once and in
// order: it equals want (every event the store ever had, as read before
// trimming), or its prefix up to the archive head, with the store's tail the
// rest.
func checkExactlyOnce(t tb, e *shipEnv, id string, want []billing.Event) {
	t.Helper()
	archived := allArchived(t, e.arch, id)
	n, err := e.arch.Count(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if int(n) != len(archived) {
		t.Fatalf("%s: %d rows, %d read", id, n, len(archived))
	}
	if len(archived) > len(want) || (len(archived) > 0 && !reflect.DeepEqual(archived, want[:len(archived)])) {
		t.Fatalf("%s: the archive's %d events are not the first of the %d booked, in order", id, len(archived), len(want))
	}
	tail := e.storeEvents(t, id)
	merged := append([]billing.Event(nil), archived...)
	for _, ev := range tail {
		if len(archived) == 0 || billing.CompareEventIDs(ev.ID, archived[len(archived)-1].ID) > 0 {
			merged = append(merged, ev)
		}
	}
	if len(merged) != len(want) || (len(want) > 0 && !reflect.DeepEqual(merged, want)) {
		t.Fatalf("%s: archive (%d) ∪ store tail (%d) gives %d events, want the %d booked", id, len(archived), len(tail), len(merged), len(want))
	}
}

// Shipping twice archives nothing more; a head set back (a shipper that read
// an old head) re-ships the same events, which the primary key refuses.
func TestShipIdempotentReship(t *testing.T) {
	e := newShipEnv(t)
	e.book(t, "a1", 30)
	e.book(t, "a2", 5)
	want := map[string][]billing.Event{"a1": e.storeEvents(t, "a1"), "a2": e.storeEvents(t, "a2")}
	s := e.shipper(nil, ShipperOptions{BatchSize: 7})
	if rr := e.round(t, s); rr.Shipped != int64(len(want["a1"])+len(want["a2"])) || rr.Accounts != 2 {
		t.Fatalf("first round %+v", rr)
	}
	if rr := e.round(t, s); rr.Shipped != 0 || rr.Visited != 0 {
		t.Fatalf("second round %+v, want nothing visited", rr)
	}
	if _, err := e.arch.pool.Exec(e.ctx, "UPDATE ledger_heads SET event_id = $2, id_ms = split_part($2, '-', 1)::bigint, id_seq = split_part($2, '-', 2)::bigint WHERE account_id = $1", "a1", want["a1"][3].ID); err != nil {
		t.Fatal(err)
	}
	if rr := e.round(t, s); rr.Shipped != 0 || rr.Visited != 1 {
		t.Fatalf("round after the head went back: %+v, want a1 visited and nothing new", rr)
	}
	for id, w := range want {
		checkExactlyOnce(t, e, id, w)
		if h, _ := e.arch.ArchiveHead(e.ctx, id); h != w[len(w)-1].ID {
			t.Fatalf("%s: head %s, want %s", id, h, w[len(w)-1].ID)
		}
	}
	rows, err := e.arch.UsageByDay(e.ctx, "a1", e.clock.Now(), e.clock.Now())
	if err != nil || len(rows) != 1 || rows[0].Requests != 30 {
		t.Fatalf("a1's usage %+v, %v; want 30 requests once each", rows, err)
	}
}

// crashingSource is the store with faults: Events or TrimLedger fail (the
// shipping process dying at that point) while fail says so.
type crashingSource struct {
	*redisstore.Store
	failEvents, failTrim atomic.Bool
	// cancel, when set, is called inside Events after the read: the process
	// dies mid-batch, with its transaction open.
	cancel func()
}

var errCrash = errors.New("the shipping process died here")

func (c *crashingSource) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	p, err := c.Store.Events(ctx, account, after, limit)
	if c.cancel != nil {
		c.cancel()
		return p, err
	}
	if c.failEvents.Load() {
		return billing.EventPage{}, errCrash
	}
	return p, err
}

func (c *crashingSource) TrimLedger(ctx context.Context, account, upTo string, before time.Time) (billing.TrimResult, error) {
	if c.failTrim.Load() {
		return billing.TrimResult{}, errCrash
	}
	return c.Store.TrimLedger(ctx, account, upTo, before)
}

// A crash mid-batch (transaction open) or between the commit and the trim
// loses nothing and duplicates nothing: the next round picks up from the
// committed head, and trims what the crash left untrimmed.
func TestShipCrashes(t *testing.T) {
	e := newShipEnv(t)
	e.book(t, "c1", 40)
	want := e.storeEvents(t, "c1")
	src := &crashingSource{Store: e.store}

	// Mid-batch: the context dies while the batch's transaction is open.
	ctx, cancel := context.WithCancel(e.ctx)
	src.cancel = cancel
	s := e.shipper(src, ShipperOptions{BatchSize: 10, Retention: time.Minute})
	if _, err := s.Round(ctx); err == nil {
		t.Fatal("a round whose process died reported no error")
	}
	src.cancel = nil
	if n, _ := e.arch.Count(e.ctx, "c1"); n != 0 {
		t.Fatalf("a batch that died mid-transaction left %d events", n)
	}

	// Between the commit and the trim.
	src.failTrim.Store(true)
	e.clock.Advance(time.Hour)
	if _, err := s.Round(e.ctx); !errors.Is(err, errCrash) {
		t.Fatalf("round with the trim failing: %v", err)
	}
	if got := len(e.storeEvents(t, "c1")); got != len(want) {
		t.Fatalf("the store holds %d events before any trim, want %d", got, len(want))
	}
	checkExactlyOnce(t, e, "c1", want)

	src.failTrim.Store(false)
	rr := e.round(t, s)
	if rr.Shipped != 0 || rr.Trimmed != int64(len(want)-1) {
		t.Fatalf("recovery round %+v: want nothing shipped and all but the newest event trimmed", rr)
	}
	checkExactlyOnce(t, e, "c1", want)
	r, err := billing.AuditAccount(e.ctx, e.store, "c1")
	if err != nil || !r.OK() {
		t.Fatalf("audit after trimming: %+v, %v", r, err)
	}
}

// withHost is url with its host:port replaced.
func withHost(t testing.TB, raw, hostport string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostport
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgreSQL's connection cut again and again mid-shipping (and its replies
// lost after it acted, the COMMIT's among them), then restored: zero lost,
// zero duplicated.
func TestShipPostgresCutMidShipping(t *testing.T) {
	e := newShipEnv(t)
	const accounts = 6
	for i := 0; i < accounts; i++ {
		e.book(t, fmt.Sprintf("p%d", i), 60)
	}
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	cut := openArchive(t, withHost(t, e.url, fp.Addr()), e.schema)
	s := NewShipper(cut, e.store, ShipperOptions{BatchSize: 5, MaxBatchesPerAccount: 2, Now: e.clock.Now})

	var failures int
	for round := 0; round < 200; round++ {
		cut := make(chan struct{})
		switch round % 4 {
		case 1:
			fp.DropReplies(3, faultproxy.DropReplyAndClose)
			close(cut)
		case 2:
			go func() { time.Sleep(2 * time.Millisecond); fp.CutAll(); close(cut) }()
		default:
			close(cut)
		}
		rr, err := s.Round(e.ctx)
		if err != nil {
			failures++
		}
		<-cut // no cut may land in a later round
		fp.Set(faultproxy.Pass)
		if err == nil && rr.Shipped == 0 && rr.More == 0 && rr.Visited == 0 {
			break
		}
	}
	if failures == 0 {
		t.Fatal("no round failed: the faults did not reach the shipper")
	}
	// A last clean round finds nothing left (the first may still meet a
	// connection the last cut closed in the pool).
	var last RoundResult
	for try := 0; try < 5; try++ {
		if last, err = s.Round(e.ctx); err == nil {
			break
		}
	}
	if err != nil || last.Shipped != 0 {
		t.Fatalf("after recovery a round shipped %d, %v; want nothing left", last.Shipped, err)
	}
	for i := 0; i < accounts; i++ {
		id := fmt.Sprintf("p%d", i)
		want := e.storeEvents(t, id)
		checkExactlyOnce(t, e, id, want)
		if n, _ := e.arch.Count(e.ctx, id); int(n) != len(want) {
			t.Fatalf("%s: %d archived, want %d", id, n, len(want))
		}
	}
	t.Logf("%d of the rounds failed on the cut connection", failures)
}

// Two shippers, each with its own PostgreSQL pool and Redis client, ship many
// accounts at once while requests keep coming: every event is archived
// exactly once, in order, and the work is split (each batch by one of them).
func TestShipConcurrentShippers(t *testing.T) {
	e := newShipEnv(t)
	const accounts = 20
	for i := 0; i < accounts; i++ {
		e.book(t, fmt.Sprintf("k%02d", i), 3)
	}
	second := openArchive(t, e.url, e.schema)
	shippers := []*Shipper{
		NewShipper(e.arch, e.store, ShipperOptions{BatchSize: 4, Now: e.clock.Now, Retention: time.Hour}),
		NewShipper(second, e.store, ShipperOptions{BatchSize: 4, Now: e.clock.Now, Retention: time.Hour}),
	}
	ctx, stop := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	var shipped [2]atomic.Int64
	for i, s := range shippers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rr, err := s.Round(ctx)
				if err != nil && ctx.Err() == nil {
					t.Errorf("shipper %d: %v", i, err)
					return
				}
				shipped[i].Add(rr.Shipped)
			}
		}()
	}
	for n := 0; n < 6; n++ {
		for i := 0; i < accounts; i++ {
			e.book(t, fmt.Sprintf("k%02d", i), 2)
		}
	}
	// Let the shippers catch up, then stop them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		heads, err := e.arch.Heads(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := len(heads) == accounts
		for i := 0; i < accounts && done; i++ {
			a, _ := e.store.GetAccount(e.ctx, fmt.Sprintf("k%02d", i))
			done = heads[a.ID] == a.LastEventID
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	total := int64(0)
	for i := 0; i < accounts; i++ {
		id := fmt.Sprintf("k%02d", i)
		want := e.storeEvents(t, id)
		checkExactlyOnce(t, e, id, want)
		n, _ := e.arch.Count(e.ctx, id)
		if int(n) != len(want) {
			t.Fatalf("%s: %d archived of %d", id, n, len(want))
		}
		total += n
	}
	if got := shipped[0].Load() + shipped[1].Load(); got != total {
		t.Fatalf("the shippers report %d events shipped, the archive holds %d", got, total)
	}
	t.Logf("shipper 0 archived %d events, shipper 1 %d", shipped[0].Load(), shipped[1].Load())
}

// Trimming after shipping bounds the store's ledger to the retention window
// (plus the newest event), the audit passes from the checkpoint, and the
// archive with the store's tail is the whole history.
func TestShipTrimBoundsRedisAndAuditPasses(t *testing.T) {
	e := newShipEnv(t)
	const retention = 10 * time.Minute
	s := e.shipper(nil, ShipperOptions{BatchSize: 50, Retention: retention})
	// want is every event the store ever held: read before each trim.
	var want []billing.Event
	seen := func() {
		for _, ev := range e.storeEvents(t, "t1") {
			if len(want) == 0 || billing.CompareEventIDs(ev.ID, want[len(want)-1].ID) > 0 {
				want = append(want, ev)
			}
		}
	}
	for step := 0; step < 12; step++ {
		e.book(t, "t1", 100) // 100 s of traffic
		if step%3 == 2 {
			seen()
			e.round(t, s)
		}
	}
	seen()
	e.round(t, s)
	checkExactlyOnce(t, e, "t1", want)
	tail := e.storeEvents(t, "t1")
	cutoff := e.clock.Now().Add(-retention)
	for _, ev := range tail[:len(tail)-1] {
		if ev.At.Before(cutoff) {
			t.Fatalf("the store still holds event %s of %s, older than the retention (cut-off %s)", ev.ID, ev.At, cutoff)
		}
	}
	if len(tail) >= len(want) || len(tail) > int(retention/time.Second)+2 {
		t.Fatalf("the store holds %d of %d events: not bounded by the retention", len(tail), len(want))
	}
	r, err := billing.AuditAccount(e.ctx, e.store, "t1")
	if err != nil || !r.OK() || r.Checkpoint == "" {
		t.Fatalf("audit after trimming: %+v, %v", r, err)
	}
}
