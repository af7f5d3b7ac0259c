package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
	"github.com/creditgate/creditgate/proxy"
)

// The operator's upstream key: it must reach the upstream and never a log line.
const upstreamKey = "sk-upstream-operator-secret-5e1f0c"

// testPricing prices "dear" so that a few dozen requests spend $5, and
// gpt-4o-mini at list price.
const testPricing = `{ models: {
  dear: { input: "1000", output: "2000", max_output_tokens: 4096, encoding: o200k_base },
  gpt-4o-mini: { input: "0.15", cached_input: "0.075", output: "0.60", max_output_tokens: 16384, encoding: o200k_base } } }`

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// jsonLogger logs zap JSON lines, every level, into buf: what a production
// logger writes to stderr.
func jsonLogger(buf io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "ts"
	ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.AddSync(buf), zapcore.DebugLevel))
}

// sections is a configuration document as top-level key → YAML value, so a test
// can replace one section of the defaults.
type sections map[string]string

func (s sections) yaml() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, s[k])
	}
	return b.String()
}

// redisSection points creditgate at the test's Redis (or at addr, a fault proxy
// in front of it, when set), with the test's key prefix and short timeouts: the
// fault tests measure how soon a dead store is noticed.
func redisSection(r *testredis.Store, addr string) string {
	return redisSectionWith(r, addr, `timeout: 300ms, max_retries: 2, operation_timeout: 1s`)
}

// patientRedisSection is redisSection with timeouts no busy CI machine reaches,
// for tests about correctness under load, where a slow answer is no fault.
func patientRedisSection(r *testredis.Store) string {
	return redisSectionWith(r, "", `timeout: 10s, max_retries: 2, operation_timeout: 20s`)
}

func redisSectionWith(r *testredis.Store, addr, timeouts string) string {
	if addr == "" && r.Kind == testredis.KindCluster {
		seeds := strings.Split(os.Getenv("CREDITGATE_TEST_REDIS_CLUSTER"), ",")
		return fmt.Sprintf("{ cluster_addrs: [%s], key_prefix: %q, %s }", strings.Join(seeds, ", "), r.Prefix, timeouts)
	}
	url := "redis://" + r.Addr + "/0"
	if addr != "" {
		url = "redis://" + addr + "/0"
	} else if env := os.Getenv("CREDITGATE_TEST_REDIS_URL"); env != "" && r.Kind == testredis.KindRedis {
		url = env
	}
	return fmt.Sprintf("{ url: %q, key_prefix: %q, %s }", url, r.Prefix, timeouts)
}

// fixture is a whole creditgate on real Redis (the test's, through testredis)
// in front of the mock upstream, with a spool in a temporary directory.
type fixture struct {
	t        *testing.T
	app      *App
	mock     *mockupstream.Server
	upstream *httptest.Server
	redis    *testredis.Store
	store    *redisstore.Store // the same keys, straight to Redis
	doc      sections
	logs     *syncBuffer
	data     string // data-plane base URL
	serveErr chan error
	stopped  bool
	// redisHooks are added to the App's Redis client after the slot guard.
	redisHooks []redis.Hook
}

// baseSections is the configuration every fixture starts from.
func baseSections(r *testredis.Store, upstreamURL, spoolDir string) sections {
	return sections{
		"listen":   `"127.0.0.1:0"`,
		"admin":    fmt.Sprintf(`{ listen: "127.0.0.1:0", tokens: [%q] }`, adminToken),
		"upstream": fmt.Sprintf(`{ base_url: %q, api_key: %q, timeout: 30s }`, upstreamURL+"/v1", upstreamKey),
		"redis":    redisSection(r, ""),
		"spool":    fmt.Sprintf(`{ dir: %q, replay_interval: 50ms }`, spoolDir),
		"billing":  `{ hold_ttl: 2m }`,
		"pricing":  testPricing,
	}
}

// newFixture prepares (but does not start) a fixture; edit f.doc, then start.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	r := testredis.New(t)
	mock := mockupstream.New()
	mock.APIKey = upstreamKey
	up := httptest.NewServer(mock)
	t.Cleanup(up.Close)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, mock: mock, upstream: up, redis: r, store: store, logs: &syncBuffer{},
		doc: baseSections(r, up.URL, filepath.Join(t.TempDir(), "spool"))}
}

// start runs the App in this process.
func (f *fixture) start() *fixture {
	f.t.Helper()
	cfg, err := config.LoadBytes([]byte(f.doc.yaml()), nil)
	if err != nil {
		f.t.Fatalf("config: %v\n%s", err, f.doc.yaml())
	}
	a, err := New(context.Background(), cfg, Options{Logger: jsonLogger(f.logs), RedisHooks: append([]redis.Hook{testredis.SlotGuard()}, f.redisHooks...)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.app, f.serveErr = a, make(chan error, 1)
	scheme := "http://"
	if a.dataTLS {
		scheme = "https://"
	}
	f.data = scheme + a.DataAddr().String()
	go func() { f.serveErr <- a.Serve() }()
	f.t.Cleanup(func() { f.stop() })
	return f
}

// stop shuts the App down (once) and checks Serve's result.
func (f *fixture) stop() {
	if f.stopped {
		return
	}
	f.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.app.Shutdown(ctx); err != nil {
		f.t.Errorf("shutdown: %v", err)
	}
	if err := <-f.serveErr; err != nil {
		f.t.Errorf("serve: %v", err)
	}
}

// account creates an account with credit and returns an app key's secret.
func (f *fixture) account(id string, credit string) string {
	f.t.Helper()
	return makeAccount(f.t, f.store, id, credit)
}

func makeAccount(t *testing.T, store *redisstore.Store, id, credit string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, id, "tier-1"); err != nil {
		t.Fatal(err)
	}
	if credit != "" {
		if _, err := store.TopUp(ctx, billing.Policy{CreditTTL: time.Hour}, billing.TopUpRequest{
			Account: id, GrantID: "grant_" + id, Amount: money.MustParse(credit), SkipLimits: true,
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, secret, err := store.CreateKey(ctx, id, "test")
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// outcome is one request's answer.
type outcome struct {
	status int
	id     string // X-Creditgate-Request-Id
	body   []byte
	err    error
}

var loadClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}, Timeout: 60 * time.Second}

// post sends one chat request to base.
func post(client *http.Client, base, key, body string, header ...string) outcome {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return outcome{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return outcome{status: res.StatusCode, id: res.Header.Get(proxy.RequestIDHeader), body: b, err: err}
}

// chat is a small chat request body.
func chat(model string, stream bool, maxTokens int) string {
	s := fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"Say hello."}]`, model, maxTokens)
	if stream {
		s += `,"stream":true`
	}
	return s + "}"
}

// checkLedger asserts the SPEC's invariants on an account after a run: every
// request answered 2xx is booked exactly once, no other request is booked,
// nothing stays reserved, the overdraft stays within grace, and conservation
// holds exactly (totals, grants and a replay of the ledger agree).
func checkLedger(t *testing.T, store *redisstore.Store, account string, outcomes []outcome, grace money.Micros) billing.Account {
	t.Helper()
	ctx := context.Background()
	a, err := store.GetAccount(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	usage := map[string]int{}
	var balance, usageSum money.Micros
	after := ""
	for {
		page, err := store.Events(ctx, account, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			switch ev.Type {
			case billing.EventTopUp, billing.EventAutoRecharge:
				balance += ev.Amount
			case billing.EventUsage:
				usage[ev.RequestID]++
				usageSum += ev.Amount
				balance -= ev.Amount
			case billing.EventExpire:
				balance -= ev.Amount
			}
			if ev.BalanceAfter != balance {
				t.Fatalf("event %s %s: balance_after %s, replay says %s", ev.ID, ev.Type, ev.BalanceAfter, balance)
			}
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	ok := 0
	for _, o := range outcomes {
		switch {
		case o.status >= 200 && o.status <= 299:
			ok++
			if usage[o.id] != 1 {
				t.Fatalf("request %s answered %d is booked %d times", o.id, o.status, usage[o.id])
			}
		case o.id != "" && usage[o.id] != 0:
			t.Fatalf("request %s answered %d is booked", o.id, o.status)
		}
	}
	if len(usage) != ok {
		t.Fatalf("%d requests booked, %d answered 2xx", len(usage), ok)
	}
	tot := a.Totals
	if tot.Granted != tot.Consumed+tot.DebtRepaid+tot.Expired+a.Credit || tot.Usage-tot.Consumed != a.Debt+tot.DebtRepaid {
		t.Fatalf("conservation broken: %+v credit %s debt %s", tot, a.Credit, a.Debt)
	}
	if usageSum != tot.Usage || balance != a.Balance() {
		t.Fatalf("ledger says usage %s balance %s; the account says %s and %s", usageSum, balance, tot.Usage, a.Balance())
	}
	if a.Reserved != 0 {
		t.Fatalf("%s still reserved", a.Reserved)
	}
	if a.Balance() < -grace {
		t.Fatalf("overdraft %s beyond grace %s", -a.Balance(), grace)
	}
	return a
}

// scanLogs fails if any secret appears in logs, naming the line.
func scanLogs(t *testing.T, logs []byte, secrets map[string]string) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines := 0
	for sc.Scan() {
		lines++
		line := sc.Text()
		for what, secret := range secrets {
			if secret != "" && strings.Contains(line, secret) {
				t.Errorf("log line %d holds the %s: %s", lines, what, line)
			}
		}
	}
	if lines == 0 {
		t.Fatal("no log lines to scan")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 (a CA too, and good
// for client authentication) and its key; it returns the paths.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "creditgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// child is a creditgate running in its own process (this test binary, re-run as
// TestChildProcess), so a test can run several, and kill one.
type child struct {
	cmd         *exec.Cmd
	data, admin string
	stderr      *syncBuffer
	done        chan error
}

const childConfigEnv = "CREDITGATE_TEST_CHILD_CONFIG"

// startChild starts a creditgate process with the configuration doc.
func startChild(t *testing.T, doc string) *child {
	t.Helper()
	return startChildCmd(t, doc, exec.Command(os.Args[0], childArgs...))
}

// childArgs run the test binary as TestChildProcess.
var childArgs = []string{"-test.run=^TestChildProcess$", "-test.count=1"}

// startChildWithFileLimit starts a creditgate process whose RLIMIT_NOFILE
// (soft and hard) is nofile, set by the shell that execs it.
func startChildWithFileLimit(t *testing.T, doc string, nofile int) *child {
	t.Helper()
	script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	return startChildCmd(t, doc, exec.Command("/bin/sh", append([]string{"-c", script, os.Args[0]}, childArgs...)...))
}

// startChildCmd starts cmd, a test binary running TestChildProcess, with the
// configuration doc, and waits until it serves.
func startChildCmd(t *testing.T, doc string, cmd *exec.Cmd) *child {
	t.Helper()
	cmd.Env = append(os.Environ(), childConfigEnv+"="+doc)
	c := &child{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "CHILD READY "); ok {
				ready <- line
			}
		}
		close(ready)
	}()
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() { c.stop(t) })
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatalf("child exited before serving:\n%s", c.stderr.Bytes())
		}
		c.data, c.admin, _ = strings.Cut(line, " ")
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not start:\n%s", c.stderr.Bytes())
	}
	return c
}

// stop asks the child to shut down gracefully (SIGTERM) and waits for it.
func (c *child) stop(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("child exit: %v\n%s", err, c.stderr.Bytes())
		}
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Errorf("child did not stop on SIGTERM")
	}
}

// kill ends the child at once, as a crash would: nothing is settled or flushed.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// waitFor polls cond until it holds; the bound only guards against a hang.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s for %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// behindFaultProxy points the fixture's creditgate at its Redis through a fault
// proxy (closed at cleanup), for tests that break the connection. A cluster
// would bypass one proxy by MOVED redirects, so those tests skip there.
func (f *fixture) behindFaultProxy() *faultproxy.Proxy {
	f.t.Helper()
	if f.redis.Kind == testredis.KindCluster {
		f.t.Skip("the fault proxy fronts a single Redis")
	}
	fp, err := faultproxy.New(f.redis.Addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { fp.Close() })
	f.doc["redis"] = redisSection(f.redis, fp.Addr())
	return fp
}
