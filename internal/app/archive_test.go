package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/pgarchive"
)

// archiveRequests is how many requests TestArchiveEndToEnd sends:
// CREDITGATE_TEST_ARCHIVE_REQUESTS (the full run is 20000), default 2000.
func archiveRequests(t *testing.T) int {
	if s := os.Getenv("CREDITGATE_TEST_ARCHIVE_REQUESTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("CREDITGATE_TEST_ARCHIVE_REQUESTS=%q: want a positive count", s)
		}
		return n
	}
	return 2000
}

// Requests through the proxy with the archive on: once shipping catches up,
// every event is in PostgreSQL exactly once and in order, the archive with the
// store's tail is the whole ledger and replays to every balance, each request
// answered 2xx is booked once, the rollup counts each once, the store keeps
// no shipped event past the retention, and the audit passes.
func TestArchiveEndToEnd(t *testing.T) {
	pgURL, schema := testpg.Schema(t)
	f := newFixture(t)
	f.doc["redis"] = patientRedisSection(f.redis)
	f.doc["billing"] = `{ hold_ttl: 2m, tiers: { tier-1: {} } }` // no rate limits: every request is admitted
	f.doc["ledger"] = fmt.Sprintf(`{ redis_retention: 10s, archive: { postgres_url: %q, schema: %s, interval: 50ms, batch_size: 500 } }`, pgURL, schema)
	f.start()
	if f.app.Archive() == nil {
		t.Fatal("the archive is configured but the app has none")
	}
	n := archiveRequests(t)
	const accounts, workers = 8, 16
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = f.account(fmt.Sprintf("arch%d", i), "1000.00")
	}
	start := time.Now()
	outcomes := make([][]outcome, accounts)
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o := post(loadClient, f.data, keys[i%accounts], chat("gpt-4o-mini", i%5 == 0, 20))
				mu.Lock()
				outcomes[i%accounts] = append(outcomes[i%accounts], o)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	sent := time.Since(start)

	ctx := context.Background()
	arch := f.app.Archive()
	deadline := time.Now().Add(60 * time.Second)
	for {
		heads, err := arch.Heads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		caughtUp := true
		for i := 0; i < accounts && caughtUp; i++ {
			a, err := f.store.GetAccount(ctx, fmt.Sprintf("arch%d", i))
			if err != nil {
				t.Fatal(err)
			}
			caughtUp = heads[a.ID] == a.LastEventID
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not catch up within 60s of the last request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	caughtUp := time.Since(start) - sent
	for i := 0; i < accounts; i++ {
		checkArchivedAccount(t, f, arch, fmt.Sprintf("arch%d", i), outcomes[i], 10*time.Second)
	}
	t.Logf("%d requests over %d accounts in %s (%.0f req/s); the archive caught up %s after the last", n, accounts, sent.Round(time.Millisecond), float64(n)/sent.Seconds(), caughtUp.Round(time.Millisecond))
}

// checkArchivedAccount checks one account of TestArchiveEndToEnd.
func checkArchivedAccount(t *testing.T, f *fixture, arch *pgarchive.Archive, id string, outcomes []outcome, retention time.Duration) {
	t.Helper()
	ctx := context.Background()
	var archived []billing.Event
	after := ""
	for {
		p, err := arch.ArchivedEvents(ctx, id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		archived = append(archived, p.Events...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	rows, err := arch.Count(ctx, id)
	if err != nil || int(rows) != len(archived) {
		t.Fatalf("%s: %d rows, %d read (%v)", id, rows, len(archived), err)
	}
	for i := 1; i < len(archived); i++ {
		if billing.CompareEventIDs(archived[i-1].ID, archived[i].ID) >= 0 {
			t.Fatalf("%s: archived event %s follows %s", id, archived[i].ID, archived[i-1].ID)
		}
	}
	var tail []billing.Event
	after = ""
	for {
		p, err := f.store.Events(ctx, id, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		tail = append(tail, p.Events...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	// The store's tail is the archive's last events (the archive is caught up).
	if len(tail) == 0 || len(tail) > len(archived) {
		t.Fatalf("%s: the store keeps %d events, the archive %d", id, len(tail), len(archived))
	}
	for i, ev := range tail {
		if a := archived[len(archived)-len(tail)+i]; a.ID != ev.ID || a.BalanceAfter != ev.BalanceAfter || a.RequestID != ev.RequestID {
			t.Fatalf("%s: the store's event %s is not the archive's %s", id, ev.ID, a.ID)
		}
	}
	t.Logf("%s: %d events archived, %d still in the store", id, len(archived), len(tail))
	// The admin API reads archive + tail: its export is every event once, in
	// order, though Redis keeps only the tail; its audit replays them all.
	exported := adminExport(t, f, id)
	if len(exported) != len(archived) {
		t.Fatalf("%s: the admin export has %d events, the archive %d", id, len(exported), len(archived))
	}
	for i, ev := range archived {
		if exported[i] != ev.ID {
			t.Fatalf("%s: export event %d is %s, the archive's %s", id, i, exported[i], ev.ID)
		}
	}
	if rep := adminAudit(t, f, id); !rep.OK || rep.Events != len(archived) {
		t.Fatalf("%s: audit %+v; want ok over all %d events", id, rep, len(archived))
	}
	// Retention: what the store keeps besides its newest event is younger than
	// the retention, give or take the rounds since.
	oldest := time.Now().Add(-retention - 5*time.Second)
	for _, ev := range tail[:len(tail)-1] {
		if ev.At.Before(oldest) {
			t.Fatalf("%s: the store keeps event %s of %s, past the retention", id, ev.ID, ev.At)
		}
	}
	// Replay the whole history: each 2xx booked once, balances follow.
	usage := map[string]int{}
	var balance, spent money.Micros
	var requests int64
	for _, ev := range archived {
		switch ev.Type {
		case billing.EventTopUp, billing.EventAutoRecharge:
			balance += ev.Amount
		case billing.EventUsage:
			usage[ev.RequestID]++
			balance -= ev.Amount
			spent += ev.Cost
			requests++
		}
		if ev.BalanceAfter != balance {
			t.Fatalf("%s: event %s: balance_after %s, the archive's replay says %s", id, ev.ID, ev.BalanceAfter, balance)
		}
	}
	ok := 0
	for _, o := range outcomes {
		if o.err != nil {
			t.Fatalf("%s: a request failed: %v", id, o.err)
		}
		if o.status/100 == 2 {
			ok++
			if usage[o.id] != 1 {
				t.Fatalf("%s: request %s answered %d is archived %d times", id, o.id, o.status, usage[o.id])
			}
		}
	}
	if ok != len(usage) || ok != len(outcomes) {
		t.Fatalf("%s: %d of %d requests answered 2xx, %d booked", id, ok, len(outcomes), len(usage))
	}
	days, err := arch.UsageByDay(ctx, id, time.Now().Add(-48*time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var rolled usageTotals
	for _, d := range days {
		rolled.requests += d.Requests
		rolled.cost += d.Cost
	}
	if rolled.requests != requests || rolled.cost != spent {
		t.Fatalf("%s: the rollup says %d requests costing %s, the events %d costing %s", id, rolled.requests, rolled.cost, requests, spent)
	}
	// The admin usage report with a from reads the archive from a cursor
	// inside a millisecond (report.Scan's start): it counts every request.
	res := adminGet(t, f, id, "usage?group_by=day,model&from="+url.QueryEscape(time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)))
	var rep admin.UsageReport
	err = json.NewDecoder(res.Body).Decode(&rep)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Requests != requests || rep.Total.Cost != spent {
		t.Fatalf("%s: the admin usage report says %d requests costing %s, the events %d costing %s", id, rep.Total.Requests, rep.Total.Cost, requests, spent)
	}
	r, err := billing.AuditAccount(ctx, f.store, id)
	if err != nil || !r.OK() {
		t.Fatalf("%s: audit: %+v, %v", id, r, err)
	}
}

// usageTotals adds up rollup rows.
type usageTotals struct {
	requests int64
	cost     money.Micros
}

// Without an archive, start-up warns loudly with the growth figure, and says
// history is discarded when ledger.redis_retention bounds it instead.
func TestNoArchiveWarning(t *testing.T) {
	cases := []struct {
		name, ledger string
		want         []string
	}{
		{"unbounded", "", []string{"NO LEDGER ARCHIVE", "WITHOUT BOUND", "2.2 GB/day at 100 requests/s"}},
		{"retention without archive", "{ redis_retention: 2h }", []string{"NO LEDGER ARCHIVE", "DISCARDED", `"redis_retention":7200`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.ledger != "" {
				f.doc["ledger"] = c.ledger
			}
			f.start()
			logs := string(f.logs.Bytes())
			for _, w := range c.want {
				if !strings.Contains(logs, w) {
					t.Errorf("the start-up logs lack %q:\n%s", w, logs)
				}
			}
			if f.app.Archive() != nil {
				t.Fatal("an archive without postgres_url")
			}
			f.stop()
		})
	}
}

// waitShipped waits until the archive's head of each account is its store's newest event.
func waitShipped(t *testing.T, f *fixture, ids ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			a, err := f.store.GetAccount(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// An error: the schema may not be there yet (PostgreSQL was down).
			head, err := f.app.Archive().ArchiveHead(ctx, id)
			if err == nil && head == a.LastEventID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not shipped within 30s (head %s, store %s, %v)", id, head, a.LastEventID, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Redis reset to an older snapshot of an account while the archive is ahead:
// the admin API's audit (creditgate audit) names the account and the events
// Redis lost, though the restored state is consistent in itself.
func TestAuditNamesRedisLoss(t *testing.T) {
	pgURL, schema := testpg.Schema(t)
	f := newFixture(t)
	f.doc["ledger"] = fmt.Sprintf(`{ archive: { postgres_url: %q, schema: %s, interval: 50ms } }`, pgURL, schema)
	f.start()
	ctx := context.Background()
	key := f.account("snap", "10.00")
	for i := 0; i < 3; i++ {
		if o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 20)); o.status != 200 {
			t.Fatalf("request: %d %s", o.status, o.body)
		}
	}
	waitShipped(t, f, "snap")
	// The snapshot: every key of the account, as an RDB taken now would hold it.
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		ks, err := c.Keys(ctx, f.redis.Prefix+"{acct:snap}*").Result()
		keys = append(keys, ks...) // one slot: one master answers
		return err
	}
	var err error
	if cc, ok := f.redis.Client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return scan(ctx, n)
		})
	} else {
		err = scan(ctx, f.redis.Client)
	}
	if err != nil {
		t.Fatal(err)
	}
	dumps := map[string]string{}
	for _, k := range keys {
		if dumps[k], err = f.redis.Client.Dump(ctx, k).Result(); err != nil {
			t.Fatal(err)
		}
	}
	before, err := f.store.GetAccount(ctx, "snap")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 20)); o.status != 200 {
			t.Fatalf("request: %d %s", o.status, o.body)
		}
	}
	waitShipped(t, f, "snap")
	lost, err := f.app.Archive().ArchivedEvents(ctx, "snap", before.LastEventID, 100)
	if err != nil || len(lost.Events) != 2 {
		t.Fatalf("archived after the snapshot: %+v, %v", lost, err)
	}
	c := &client.Client{BaseURL: "http://" + f.app.AdminAddr().String(), Token: adminToken}
	if rep, err := c.Audit(ctx, "snap"); err != nil || !rep.OK {
		t.Fatalf("audit before the loss: %+v, %v", rep, err)
	}
	for k, d := range dumps {
		if err := f.redis.Client.RestoreReplace(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := c.Audit(ctx, "snap")
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Check != "archive" || rep.Problems[0].EventID != lost.Events[0].ID ||
		!strings.Contains(rep.Problems[0].Message, lost.Events[1].ID) || rep.Account != "snap" {
		t.Fatalf("audit after Redis went back: %+v; want one archive problem naming %s and %s", rep, lost.Events[0].ID, lost.Events[1].ID)
	}
	if !strings.Contains(string(f.logs.Bytes()), "Redis lost events the archive holds") {
		t.Error("no log line for the loss")
	}
}

// PostgreSQL down when creditgate starts: it serves anyway (the archive is not
// on the request path), and ships everything once PostgreSQL answers. With
// migrate: manual, a schema older than the binary refuses the start.
func TestArchiveDownAtStart(t *testing.T) {
	pgURL, schema := testpg.Schema(t)
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	fp.Stop()
	down := *u
	down.Host = fp.Addr()

	f := newFixture(t)
	f.doc["ledger"] = fmt.Sprintf(`{ archive: { postgres_url: %q, schema: %s, interval: 50ms } }`, down.String(), schema)
	f.start()
	key := f.account("late", "10.00")
	for i := 0; i < 4; i++ {
		if o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 20)); o.status != 200 {
			t.Fatalf("request with PostgreSQL down: %d %s", o.status, o.body)
		}
	}
	if !strings.Contains(string(f.logs.Bytes()), "PostgreSQL is not ready") {
		t.Fatal("no warning that the archive is not ready")
	}
	if err := fp.Start(); err != nil {
		t.Fatal(err)
	}
	waitShipped(t, f, "late")
	if n, err := f.app.Archive().Count(context.Background(), "late"); err != nil || n != 5 { // the top-up and 4 usages
		t.Fatalf("archived %d, %v; want 5", n, err)
	}
	f.stop()

	_, fresh := testpg.Schema(t)
	g := newFixture(t)
	g.doc["ledger"] = fmt.Sprintf(`{ archive: { postgres_url: %q, schema: %s, migrate: manual } }`, pgURL, fresh)
	cfg, err := config.LoadBytes([]byte(g.doc.yaml()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := New(context.Background(), cfg, Options{Logger: jsonLogger(g.logs)}); err == nil || !strings.Contains(err.Error(), "creditgate migrate") {
		if a != nil {
			_ = a.Shutdown(context.Background())
		}
		t.Fatalf("manual migrations on an empty schema: %v; want a refusal naming creditgate migrate", err)
	}
}

// adminExport is the ids of GET /admin/v1/accounts/{id}/ledger/export.
func adminExport(t *testing.T, f *fixture, id string) []string {
	t.Helper()
	res := adminGet(t, f, id, "ledger/export")
	defer res.Body.Close()
	var ids []string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev admin.ExportedEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// adminAudit is GET /admin/v1/accounts/{id}/audit.
func adminAudit(t *testing.T, f *fixture, id string) admin.AuditReport {
	t.Helper()
	res := adminGet(t, f, id, "audit")
	defer res.Body.Close()
	var rep admin.AuditReport
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func adminGet(t *testing.T, f *fixture, id, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+f.app.AdminAddr().String()+"/admin/v1/accounts/"+id+"/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("GET %s of %s: %d %s", path, id, res.StatusCode, b)
	}
	return res
}
