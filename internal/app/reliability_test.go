package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/money"
)

// TestChildProcess is not a test: it is the creditgate process that the tests
// below start (startChild) when they need several processes, or one to kill.
func TestChildProcess(t *testing.T) {
	doc := os.Getenv(childConfigEnv)
	if doc == "" {
		t.Skip("helper process: runs only when a test starts it")
	}
	cfg, err := config.LoadBytes([]byte(doc), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	a, err := New(ctx, cfg, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve() }()
	fmt.Printf("CHILD READY %s %s\n", a.DataAddr(), a.AdminAddr())
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-errc
	os.Exit(0)
}

// Redis unreachable at admission: 503 in OpenAI's shape, nothing forwarded,
// nothing booked, within the configured bound (operation_timeout per store
// call); whether Redis refuses connections or accepts them and never answers.
func TestStoreDownAtAdmission(t *testing.T) {
	f := newFixture(t)
	fp := f.behindFaultProxy()
	f.doc["auth"] = `{ key_cache_ttl: 0s }` // every request looks its key up: two store calls
	f.start()
	key := f.account("acme", "5.00")
	var outcomes []outcome
	if o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 8)); o.status != 200 {
		t.Fatalf("healthy: %d %s", o.status, o.body)
	} else {
		outcomes = append(outcomes, o)
	}
	bound := 2 * f.app.cfg.Redis.OperationTimeout // key lookup + reserve
	faults := []struct {
		name string
		set  func()
	}{
		{"refusing", func() { fp.Stop() }},
		{"silent", func() { fp.Start(); fp.Set(faultproxy.Blackhole); fp.CutAll() }},
	}
	forwarded := len(f.mock.Requests())
	for _, fault := range faults {
		fault.set()
		start := time.Now()
		o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 8))
		took := time.Since(start)
		var e struct {
			Error struct{ Type, Code string }
		}
		if o.status != http.StatusServiceUnavailable || json.Unmarshal(o.body, &e) != nil || e.Error.Code != "billing_unavailable" || e.Error.Type != "server_error" {
			t.Fatalf("%s Redis: %d %s", fault.name, o.status, o.body)
		}
		outcomes = append(outcomes, o)
		if took > 3*bound { // a hang guard; the figure is logged
			t.Fatalf("%s Redis: 503 after %s, bound %s", fault.name, took, bound)
		}
		t.Logf("%s Redis: 503 billing_unavailable after %s (bound: 2 × redis.operation_timeout = %s)", fault.name, took.Round(time.Millisecond), bound)
	}
	if n := len(f.mock.Requests()); n != forwarded {
		t.Fatalf("%d requests forwarded while Redis was down", n-forwarded)
	}
	fp.Set(faultproxy.Pass)
	if o := post(loadClient, f.data, key, chat("gpt-4o-mini", false, 8)); o.status != 200 {
		t.Fatalf("after recovery: %d %s", o.status, o.body)
	} else {
		outcomes = append(outcomes, o)
	}
	f.app.inflight.wait(10 * time.Second)
	checkLedger(t, f.store, "acme", outcomes, money.MustParse("0.50"))
}

// Redis fails after the upstream answered: the app still gets its 200, the
// settlement goes to the spool (depth 1), and is booked exactly once when Redis
// is back. Streams and releases (an upstream error) take the same path.
func TestStoreDownAtSettleIsSpooled(t *testing.T) {
	f := newFixture(t)
	fp := f.behindFaultProxy()
	f.start()
	key := f.account("acme", "5.00")
	before, _ := f.store.GetAccount(context.Background(), "acme")

	tests := []struct {
		name    string
		body    string
		headers []string
		want    int
	}{
		{"plain", chat("gpt-4o-mini", false, 8), []string{"X-Mock-Delay", "300ms"}, 200},
		{"stream", chat("gpt-4o-mini", true, 8), []string{"X-Mock-Delay", "300ms"}, 200},
		{"upstream error: release", chat("gpt-4o-mini", false, 8), []string{"X-Mock-Delay", "300ms", "X-Mock-Status", "500"}, 500},
	}
	var outcomes []outcome
	var wg sync.WaitGroup
	results := make([]outcome, len(tests))
	for i, tc := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = post(loadClient, f.data, key, tc.body, tc.headers...)
		}()
	}
	// All three are admitted and waiting on the upstream: take Redis away.
	waitFor(t, "three requests upstream", 10*time.Second, func() bool { return len(f.mock.Requests()) == 3 })
	fp.Stop()
	wg.Wait()
	for i, tc := range tests {
		if results[i].status != tc.want {
			t.Fatalf("%s: %d %s", tc.name, results[i].status, results[i].body)
		}
	}
	outcomes = append(outcomes, results...)
	f.app.inflight.wait(10 * time.Second)
	if d := f.app.SpoolDepth(); d != 3 {
		t.Fatalf("spool depth %d, want 3", d)
	}
	if a, _ := f.store.GetAccount(context.Background(), "acme"); a.Totals.Usage != before.Totals.Usage {
		t.Fatalf("booked while Redis was down? usage %s", a.Totals.Usage)
	}
	if err := fp.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spool to drain", 30*time.Second, func() bool { return f.app.SpoolDepth() == 0 })
	a := checkLedger(t, f.store, "acme", outcomes, money.MustParse("0.50"))
	if a.Totals.Usage == 0 {
		t.Fatal("nothing booked after the replay")
	}
	if !strings.Contains(string(f.logs.Bytes()), "settlement spooled") {
		t.Fatal("no log line says the settlement was spooled")
	}
}

// A spool left by an earlier run (a crash while Redis was down) is replayed
// before the App serves, so the first admission already sees the right balance.
func TestSpoolIsReplayedFirstAtStartUp(t *testing.T) {
	f := newFixture(t)
	key := f.account("acme", "5.00")
	ctx := context.Background()
	// The earlier run spent the whole balance on one request, then crashed with
	// its settlement spooled (its hold has expired since: only the spool knows).
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Save(billing.PendingSettlement{At: time.Now(), Settle: billing.SettleRequest{
		Account: "acme", HoldID: "req_earlier", Cost: money.MustParse("5.00"),
		Usage: billing.Usage{RequestID: "req_earlier", Model: "dear", TokenSource: billing.TokenSourceUpstream},
	}}); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	f.doc["spool"] = fmt.Sprintf(`{ dir: %q, replay_interval: 1h }`, dir) // only the start-up replay
	cfg, err := config.LoadBytes([]byte(f.doc.yaml()), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(ctx, cfg, Options{Logger: jsonLogger(f.logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(ctx)
	// Not serving yet, and already booked.
	acct, err := f.store.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.SpoolDepth() != 0 || acct.Totals.Usage != money.MustParse("5.00") || acct.Balance() != 0 {
		t.Fatalf("before serving: depth %d, account %+v", a.SpoolDepth(), acct)
	}
	go a.Serve()
	// Nothing left: the first request is refused (without the replay it would pass).
	o := post(loadClient, "http://"+a.DataAddr().String(), key, chat("gpt-4o-mini", false, 8))
	if o.status != http.StatusTooManyRequests {
		t.Fatalf("after the replay the balance is 0: %d %s", o.status, o.body)
	}
}

// Graceful shutdown: /readyz turns 503, new connections are refused, and a
// stream in flight runs to its end and is billed by the upstream's usage.
func TestShutdownLetsStreamsFinish(t *testing.T) {
	f := newFixture(t)
	f.start()
	key := f.account("acme", "5.00")
	got := make(chan outcome, 1)
	go func() {
		got <- post(loadClient, f.data, key, chat("gpt-4o-mini", true, 16), "X-Mock-Event-Delay", "60ms")
	}()
	waitFor(t, "the stream to start", 10*time.Second, func() bool { return f.app.inflight.count() == 1 && len(f.mock.Requests()) == 1 })

	shut := make(chan error, 1)
	go func() { shut <- f.app.Shutdown(context.Background()) }()
	admin := &client.Client{BaseURL: "http://" + f.app.AdminAddr().String(), Token: adminToken}
	waitFor(t, "readyz to fail", 10*time.Second, func() bool { return admin.Readyz(context.Background()) != nil })
	waitFor(t, "the listener to close", 10*time.Second, func() bool {
		_, err := http.Get(f.data + "/v1/models")
		return err != nil
	})
	o := <-got
	if o.status != 200 || !strings.Contains(string(o.body), "[DONE]") {
		t.Fatalf("stream cut by a graceful shutdown: %d %q", o.status, o.body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	f.stopped = true
	<-f.serveErr
	ev := lastEvent(t, f, "acme")
	if ev.Type != billing.EventUsage || ev.RequestID != o.id || ev.TokenSource != billing.TokenSourceUpstream || ev.Note != "" {
		t.Fatalf("stream booked as %+v", ev)
	}
}

// A stream still running at shutdown_timeout is cut; it is billed for the
// prompt and the output relayed so far, and nothing stays reserved.
func TestShutdownDeadlineCutsAndBillsStreams(t *testing.T) {
	f := newFixture(t)
	f.doc["shutdown_timeout"] = "300ms"
	f.start()
	key := f.account("acme", "5.00")
	got := make(chan outcome, 1)
	go func() {
		got <- post(loadClient, f.data, key, chat("gpt-4o-mini", true, 200), "X-Mock-Event-Delay", "100ms")
	}()
	waitFor(t, "the stream to start", 10*time.Second, func() bool { return len(f.mock.Requests()) == 1 })
	time.Sleep(250 * time.Millisecond) // a few events relayed
	err := f.app.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("shutdown of a long stream: %v, want the deadline", err)
	}
	f.stopped = true
	<-f.serveErr
	o := <-got
	if o.status != 200 || strings.Contains(string(o.body), "[DONE]") {
		t.Fatalf("the stream was not cut: %d %q", o.status, o.body)
	}
	ev := lastEvent(t, f, "acme")
	if ev.Type != billing.EventUsage || ev.RequestID != o.id || ev.TokenSource != billing.TokenSourceLocal || ev.CompletionTokens == 0 || ev.CompletionTokens >= 200 {
		t.Fatalf("cut stream booked as %+v", ev)
	}
	if a, _ := f.store.GetAccount(context.Background(), "acme"); a.Reserved != 0 {
		t.Fatalf("%s reserved after shutdown", a.Reserved)
	}
}

func lastEvent(t *testing.T, f *fixture, account string) billing.Event {
	t.Helper()
	page, err := f.store.Events(context.Background(), account, "", 1000)
	if err != nil || len(page.Events) == 0 {
		t.Fatalf("ledger: %v", err)
	}
	return page.Events[len(page.Events)-1]
}

// Both listeners over TLS, the admin API with client certificates: HTTPS works,
// plain HTTP does not, an admin client without a certificate is refused.
func TestTLSListeners(t *testing.T) {
	cert, key := writeCert(t)
	f := newFixture(t)
	f.doc["tls"] = fmt.Sprintf(`{ cert_file: %q, key_file: %q }`, cert, key)
	f.doc["admin"] = fmt.Sprintf(`{ listen: "127.0.0.1:0", tokens: [%q], tls: { cert_file: %q, key_file: %q, client_ca_file: %q } }`, adminToken, cert, key, cert)
	f.start()
	appKey := f.account("acme", "5.00")

	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	httpsClient := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}

	if !strings.HasPrefix(f.data, "https://") {
		t.Fatalf("data plane at %s", f.data)
	}
	if o := post(httpsClient(), f.data, appKey, chat("gpt-4o-mini", false, 8)); o.status != 200 {
		t.Fatalf("over HTTPS: %d %s %v", o.status, o.body, o.err)
	}
	plain := strings.Replace(f.data, "https://", "http://", 1)
	if o := post(loadClient, plain, appKey, chat("gpt-4o-mini", false, 8)); o.status == 200 {
		t.Fatal("plain HTTP was served on the TLS listener")
	}

	adminURL := "https://" + f.app.AdminAddr().String()
	withCert := &client.Client{BaseURL: adminURL, Token: adminToken, HTTP: httpsClient(pair)}
	if _, err := withCert.GetAccount(context.Background(), "acme"); err != nil {
		t.Fatalf("admin with a client certificate: %v", err)
	}
	without := &client.Client{BaseURL: adminURL, Token: adminToken, HTTP: httpsClient()}
	if _, err := without.GetAccount(context.Background(), "acme"); err == nil {
		t.Fatal("admin API answered a client without a certificate")
	}
	f.app.inflight.wait(10 * time.Second)
	if ev := lastEvent(t, f, "acme"); ev.Type != billing.EventUsage {
		t.Fatalf("the HTTPS request was not booked: %+v", ev)
	}
}

// A proxy process killed in the middle of a stream never settles it; its hold
// expires after hold_ttl and stops counting as reserved, and nothing is booked.
func TestCrashedProxyHoldsExpire(t *testing.T) {
	f := newFixture(t)
	f.doc["billing"] = `{ hold_ttl: 1s }`
	f.doc["logging"] = `{ level: warn }`
	c := startChild(t, f.doc.yaml())
	key := f.account("acme", "5.00")
	go post(loadClient, "http://"+c.data, key, chat("gpt-4o-mini", true, 50), "X-Mock-Event-Delay", "200ms")
	waitFor(t, "the stream to start", 20*time.Second, func() bool { return len(f.mock.Requests()) == 1 })
	a, err := f.store.GetAccount(context.Background(), "acme")
	if err != nil || a.Reserved == 0 {
		t.Fatalf("while streaming: reserved %s, %v", a.Reserved, err)
	}
	c.kill()
	waitFor(t, "the hold to expire", 20*time.Second, func() bool {
		a, err = f.store.GetAccount(context.Background(), "acme")
		return err == nil && a.Reserved == 0
	})
	if a.Totals.Usage != 0 || a.Balance() != money.MustParse("5.00") {
		t.Fatalf("after the crash: %+v", a)
	}
}

// Two creditgate processes share one store under concurrent load against a
// balance that runs out mid-run: the overdraft stays within grace, every 2xx is
// booked exactly once, and conservation holds exactly.
func TestTwoProcessesShareOneStore(t *testing.T) {
	f := newFixture(t)
	f.doc["billing"] = `{ hold_ttl: 2m, grace: "0.50" }`
	f.doc["logging"] = `{ level: info }`
	// 40 workers on two processes sharing two cores with Redis and the race
	// detector: a store round trip can take longer than the fault tests' 300 ms,
	// and a 503 here would be the machine's, not the ledger's.
	f.doc["redis"] = patientRedisSection(f.redis)
	spools := t.TempDir()
	docA, docB := f.doc, sections{}
	for k, v := range f.doc {
		docB[k] = v
	}
	docA["spool"] = fmt.Sprintf(`{ dir: %q }`, filepath.Join(spools, "a"))
	docB["spool"] = fmt.Sprintf(`{ dir: %q }`, filepath.Join(spools, "b"))
	procs := []*child{startChild(t, docA.yaml()), startChild(t, docB.yaml())}
	key := f.account("acme", "5.00")

	const n, workers = 400, 40
	outcomes := make([]outcome, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// Alternate processes, plain and streamed, each request worth
				// about $0.06, so the $5 runs out after about 80.
				base := "http://" + procs[i%2].data
				outcomes[i] = post(loadClient, base, key, chat("dear", i%3 == 0, 16))
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	counts := map[int]int{}
	for i, o := range outcomes {
		if o.err != nil {
			t.Fatalf("request %d: %v", i, o.err)
		}
		counts[o.status]++
		if o.status != 200 && o.status != 429 {
			t.Fatalf("request %d: %d %s", i, o.status, o.body)
		}
	}
	// Each process settles after its answer; stop them gracefully so every
	// settlement is in before the ledger is read.
	for _, p := range procs {
		p.stop(t)
	}
	a := checkLedger(t, f.store, "acme", outcomes, money.MustParse("0.50"))
	if counts[200] == 0 || counts[429] == 0 || a.Balance() > money.MustParse("0.10") {
		t.Fatalf("statuses %v, balance %s: the balance should run out mid-run", counts, a.Balance())
	}
	t.Logf("2 processes, %d requests (%d workers): %d answered 200, %d refused 429; balance %s (grace 0.50), usage %s; every 200 booked once",
		n, workers, counts[200], counts[429], a.Balance(), a.Totals.Usage)
	for i, p := range procs {
		scanLogs(t, p.stderr.Bytes(), map[string]string{"app key": key, "upstream key": upstreamKey, "admin token": adminToken})
		if !strings.Contains(string(p.stderr.Bytes()), `"msg":"request"`) {
			t.Fatalf("process %d logged no request", i)
		}
	}
}

// A connection open on the admin listener without a request yet (a browser's
// preconnect, an HTTP client's spare dial) does not fail the shutdown: net/http
// waits up to 5 s on such a connection, so the admin listener's budget is
// longer (adminShutdownGrace). (The data plane's is shutdown_timeout, 30 s.)
func TestShutdownWithASilentAdminConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.start()
	c, err := net.Dial("tcp", f.app.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond) // accepted: the server counts it as a new connection
	if err := f.app.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown with a silent admin connection: %v", err)
	}
	f.stopped = true
	if err := <-f.serveErr; err != nil {
		t.Fatalf("serve: %v", err)
	}
}
