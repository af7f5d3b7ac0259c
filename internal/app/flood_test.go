package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// dialMany opens n TCP connections to addr that send nothing (closed at cleanup).
func dialMany(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// healthz asks the admin listener for /healthz on a fresh connection, within 2 s.
func healthz(adminAddr string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + adminAddr + "/healthz")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz answered %d", res.StatusCode)
	}
	return nil
}

// A flood of idle connections, three times the data plane's cap: the data
// plane holds exactly its cap open (the rest wait in the kernel's backlog), the
// admin listener keeps answering /healthz, a real request waits its turn, and
// it is answered as soon as the flood lets go.
func TestConnectionFloodSparesTheAdminListener(t *testing.T) {
	f := newFixture(t)
	f.doc["limits"] = `{ max_connections: 20, header_timeout: 5s }`
	f.doc["admin"] = fmt.Sprintf(`{ listen: "127.0.0.1:0", tokens: [%q], max_connections: 4 }`, adminToken)
	f.start()
	key := f.account("acme", "5.00")
	admin := f.app.AdminAddr().String()

	flood := dialMany(t, f.app.DataAddr().String(), 60)
	waitFor(t, "the data plane at its cap", 5*time.Second, func() bool { return f.app.dataLn.Open() == 20 })
	for i := range 5 {
		if err := healthz(admin); err != nil {
			t.Fatalf("/healthz during the flood (%d): %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.app.dataLn.Open(); n != 20 {
		t.Fatalf("%d data-plane connections open, cap 20", n)
	}

	got := make(chan outcome, 1)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	go func() { got <- post(client, f.data, key, chat("gpt-4o-mini", false, 8)) }()
	select {
	case o := <-got:
		t.Fatalf("answered through a full listener: %d %v", o.status, o.err)
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	for _, c := range flood {
		c.Close()
	}
	select {
	case o := <-got:
		if o.status != http.StatusOK {
			t.Fatalf("after the flood: %d %s %v", o.status, o.body, o.err)
		}
		t.Logf("the waiting request was answered %s after the flood closed", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request was not served after the flood closed")
	}
	if err := healthz(admin); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(f.logs.Bytes(), []byte(`"msg":"listener at its connection cap: new connections wait for one to close","listener":"listen","max_connections":20`)) {
		t.Errorf("the cap was not logged:\n%s", f.logs.Bytes())
	}
}

// A connection that sends nothing is closed after limits.header_timeout, and a
// keep-alive connection after limits.idle_timeout without a request.
func TestSilentAndIdleConnectionsAreClosed(t *testing.T) {
	f := newFixture(t)
	f.doc["limits"] = `{ header_timeout: 1s, idle_timeout: 1s }`
	f.start()
	addr := f.app.DataAddr().String()

	silent := dialMany(t, addr, 1)[0]
	if closed := closedWithin(t, silent, 5*time.Second); closed < 900*time.Millisecond || closed > 4*time.Second {
		t.Fatalf("a silent connection was closed after %s; header_timeout is 1s", closed)
	}

	idle := dialMany(t, addr, 1)[0]
	if _, err := io.WriteString(idle, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", res.StatusCode)
	}
	start := time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
		t.Fatalf("an idle keep-alive connection was closed after %s; idle_timeout is 1s", d)
	}
}

// closedWithin reads c until the server closes it (at most bound) and returns
// how long that took.
func closedWithin(t *testing.T, c net.Conn, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(bound))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("still open after %s", bound)
	}
	return time.Since(start)
}

// trickle sends head, then body one byte every gap, and reads what the server
// answers until it closes the connection. It returns the answer, how long
// after the head it began, and how long after the head the connection was
// closed.
func trickle(t *testing.T, addr, head string, body []byte, gap time.Duration) (answer string, answered, closed time.Duration) {
	t.Helper()
	c := dialMany(t, addr, 1)[0]
	start := time.Now()
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range body {
			select {
			case <-stop:
				return
			case <-time.After(gap):
			}
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(start.Add(20 * time.Second))
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	answered = time.Since(start)
	rest, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the trickle was not cut within 20 s; answered so far: %q", append(first, rest...))
	}
	return string(append(first, rest...)), answered, time.Since(start)
}

// chunked encodes b as one chunk and the last chunk.
func chunked(b []byte) []byte {
	return fmt.Appendf(nil, "%x\r\n%s\r\n0\r\n\r\n", len(b), b)
}

// A body trickled at 1 byte/s is cut within the documented bound, with a valid
// key (408 once the body falls body_idle_timeout behind body_min_rate) and with
// an invalid one (401 at once; what is left of the body gets a second, then the
// connection is closed), sent with a Content-Length or chunked. A client that
// asks for 100 Continue with a bad key gets its 401 without sending the body.
// Nothing reaches the upstream, nothing is booked or stays reserved.
func TestBodyTrickleIsCut(t *testing.T) {
	f := newFixture(t)
	f.doc["limits"] = `{ body_idle_timeout: 1s, body_min_rate: 1KiB, header_timeout: 5s }`
	f.start()
	key := f.account("acme", "5.00")
	addr := f.app.DataAddr().String()
	body := []byte(chat("gpt-4o-mini", false, 8))
	const badKey = "sk-cg-WRONGwrongWRONGwrongWRONGwrongWRONGwrong00"

	head := func(key string, chunkedBody bool) string {
		h := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nContent-Type: application/json\r\n"
		if chunkedBody {
			return h + "Transfer-Encoding: chunked\r\n\r\n"
		}
		return h + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
	}
	tests := []struct {
		name       string
		key        string
		chunked    bool
		wantStatus string
		// The answer must begin within answerBy; the connection must be closed
		// within max (and not before min: the bound is the deadline's, not an
		// accident).
		answerBy, min, max time.Duration
	}{
		{"valid key, Content-Length", key, false, "408", 4 * time.Second, 900 * time.Millisecond, 4 * time.Second},
		{"valid key, chunked", key, true, "408", 4 * time.Second, 900 * time.Millisecond, 4 * time.Second},
		{"invalid key, Content-Length", badKey, false, "401", 700 * time.Millisecond, 0, unreadBodyGrace + 3*time.Second},
		{"invalid key, chunked", badKey, true, "401", 700 * time.Millisecond, 0, unreadBodyGrace + 3*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body
			if tt.chunked {
				b = chunked(body)
			}
			answer, answered, closed := trickle(t, addr, head(tt.key, tt.chunked), b, time.Second)
			if !strings.HasPrefix(answer, "HTTP/1.1 "+tt.wantStatus+" ") {
				t.Fatalf("answered %q", answer)
			}
			if answered > tt.answerBy {
				t.Fatalf("answered after %s, want within %s", answered, tt.answerBy)
			}
			if closed < tt.min || closed > tt.max {
				t.Fatalf("closed after %s, want within [%s, %s]", closed, tt.min, tt.max)
			}
			t.Logf("answered %s after %s, closed after %s", tt.wantStatus, answered.Round(time.Millisecond), closed.Round(time.Millisecond))
		})
	}

	t.Run("invalid key, Expect: 100-continue", func(t *testing.T) {
		c := dialMany(t, addr, 1)[0]
		if _, err := io.WriteString(c, strings.Replace(head(badKey, false), "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		t.Logf("answered %d after %s", res.StatusCode, time.Since(start).Round(time.Millisecond))
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d: the body was asked for before the key was checked", res.StatusCode)
		}
		if d := time.Since(start); d > 700*time.Millisecond {
			t.Fatalf("the 401 took %s", d)
		}
	})

	// An honest client with a wrong key sends its whole body at once: it reads
	// its 401, not a reset, whatever the body's size.
	t.Run("invalid key, whole bodies", func(t *testing.T) {
		for _, size := range []int{100, 100 << 10, 1 << 20, 4 << 20} {
			msg := strings.Repeat("x", size)
			for i := range 5 {
				o := post(loadClient, f.data, badKey, fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":%q}]}`, msg))
				if o.err != nil || o.status != http.StatusUnauthorized {
					t.Fatalf("%d-byte body, try %d: %d %v", size, i, o.status, o.err)
				}
			}
		}
	})

	if n := len(f.mock.Requests()); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
	a, err := f.store.GetAccount(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.Reserved != 0 || a.Balance().String() != "5.000000" {
		t.Fatalf("account after the trickles: balance %s reserved %s", a.Balance(), a.Reserved)
	}
	if !bytes.Contains(f.logs.Bytes(), []byte(`"status":408`)) {
		t.Errorf("no request line logged the 408")
	}
}

// paced is a reader that gives n bytes every gap: an upload at a steady rate.
type paced struct {
	data []byte
	n    int
	gap  time.Duration
}

func (p *paced) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(p.gap)
	k := min(p.n, len(b), len(p.data))
	copy(b, p.data[:k])
	p.data = p.data[k:]
	return k, nil
}

// An upload slower than it is long — 40 KB at 20 KB/s, twice body_idle_timeout
// — succeeds, since it keeps up with body_min_rate; and its streamed answer,
// longer than body_idle_timeout too, is relayed to the end and billed once.
func TestSlowSteadyUploadAndLongStreamSucceed(t *testing.T) {
	f := newFixture(t)
	f.doc["limits"] = `{ body_idle_timeout: 1s, body_min_rate: 4KiB }`
	f.start()
	key := f.account("acme", "5.00")
	words := strings.Repeat("steady upload ", 40_000/14)
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":30,"stream":true,"messages":[{"role":"user","content":%q}]}`, words)

	req, err := http.NewRequest(http.MethodPost, f.data+"/v1/chat/completions", &paced{data: []byte(body), n: 2000, gap: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Mock-Event-Delay", "100ms")
	start := time.Now()
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	uploaded := time.Since(start)
	answer, err := io.ReadAll(res.Body)
	res.Body.Close()
	streamed := time.Since(start) - uploaded
	if err != nil || res.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte("data: [DONE]")) {
		t.Fatalf("status %d, err %v, answer %q", res.StatusCode, err, answer)
	}
	if uploaded < 1500*time.Millisecond || streamed < 1500*time.Millisecond {
		t.Fatalf("upload %s, stream %s: both must outlast body_idle_timeout (1s) for the test to mean anything", uploaded, streamed)
	}
	usage := 0
	evs, err := f.store.Events(context.Background(), "acme", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Events {
		if ev.Type == billing.EventUsage {
			usage++
		}
	}
	if usage != 1 {
		t.Fatalf("%d usage events, want 1", usage)
	}
	t.Logf("uploaded %d bytes in %s, streamed the answer for %s", len(body), uploaded.Round(time.Millisecond), streamed.Round(time.Millisecond))
}

// The flood, reproduced: a creditgate process whose RLIMIT_NOFILE is
// low (soft and hard: 160 + Redis's pool) gets 150 more idle connections than
// that on its data plane. It sized
// its data-plane cap at start from that limit (logged), so it runs out of no
// descriptor: the admin listener answers /healthz all along, and once the
// flood closes the data plane answers a real request. Without the cap the
// process ran out of descriptors and /healthz failed with the data plane.
func TestFileDescriptorFloodSparesTheAdminListener(t *testing.T) {
	f := newFixture(t)
	f.doc["admin"] = fmt.Sprintf(`{ listen: "127.0.0.1:0", tokens: [%q], max_connections: 16 }`, adminToken)
	f.doc["logging"] = `{ level: info }`
	nofile := 160 + 10*runtime.GOMAXPROCS(0) // go-redis's pool is 10 per CPU
	proc := startChildWithFileLimit(t, f.doc.yaml(), nofile)
	key := f.account("acme", "5.00")
	if err := healthz(proc.admin); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(proc.stderr.Bytes(), []byte(`"msg":"limits.max_connections lowered to what RLIMIT_NOFILE pays for`)) ||
		!bytes.Contains(proc.stderr.Bytes(), []byte(fmt.Sprintf(`"nofile_soft":%d`, nofile))) {
		t.Fatalf("the child did not log its lowered cap:\n%s", proc.stderr.Bytes())
	}

	flood := dialMany(t, proc.data, nofile+150)
	for i := range 10 {
		if err := healthz(proc.admin); err != nil {
			t.Fatalf("/healthz during the flood (%d): %v\n%s", i, err, proc.stderr.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range flood {
		c.Close()
	}
	o := post(&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}, "http://"+proc.data, key, chat("gpt-4o-mini", false, 8))
	if o.status != http.StatusOK {
		t.Fatalf("after the flood: %d %s %v", o.status, o.body, o.err)
	}
	if bytes.Contains(proc.stderr.Bytes(), []byte("too many open files")) {
		t.Fatalf("the process ran out of descriptors:\n%s", proc.stderr.Bytes())
	}
}
