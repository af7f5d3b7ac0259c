package stdlog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestRedact(t *testing.T) {
	cases := []struct{ in, want string }{
		{"no quotes at all", "no quotes at all"},
		{`starting with "HTTP/1.1 200 OK\r\nsecret"; err=<nil>`, "starting with <23 bytes withheld>; err=<nil>"},
		{`two "a" and "bc" here`, "two <1 bytes withheld> and <2 bytes withheld> here"},
		{`escaped "\"quote\" inside" ok`, "escaped <14 bytes withheld> ok"},
		{`unicode "h\u00e9llo"`, "unicode <6 bytes withheld>"},
		{`unterminated "secret to the end`, "unterminated <17 bytes withheld>"},
		{`empty "" string`, "empty <0 bytes withheld> string"},
		{`"at the start" and end`, "<12 bytes withheld> and end"},
	}
	for _, c := range cases {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLevel(t *testing.T) {
	cases := []struct {
		msg  string
		want zapcore.Level
	}{
		{"http: panic serving 127.0.0.1:1: boom", zapcore.ErrorLevel},
		{"http: Accept error: accept tcp: too many open files; retrying in 5ms", zapcore.ErrorLevel},
		{"http: superfluous response.WriteHeader call from x (y:1)", zapcore.ErrorLevel},
		{"http: TLS handshake error from 127.0.0.1:1: EOF", zapcore.DebugLevel},
		{"http2: server: error reading preface from client 127.0.0.1:1: EOF", zapcore.DebugLevel},
		{"httputil: ReverseProxy read error during body copy: unexpected EOF", zapcore.InfoLevel},
		{`Unsolicited response received on idle HTTP channel starting with "x"; err=<nil>`, zapcore.WarnLevel},
		{"anything else", zapcore.WarnLevel},
	}
	for _, c := range cases {
		if got := Level(c.msg); got != c.want {
			t.Errorf("Level(%q) = %s, want %s", c.msg, got, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func jsonLogger(w io.Writer) *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(w), zapcore.DebugLevel))
}

// jsonLines decodes every line of out, failing on one that is not a JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// A panic's message and stack become one JSON line: the first line as msg, the
// rest in detail, quoted text withheld in both.
func TestNewWritesOneJSONLinePerMessage(t *testing.T) {
	var buf syncBuffer
	l := New(jsonLogger(&buf))
	l.Printf("http: panic serving 127.0.0.1:4242: %q\ngoroutine 1 [running]:\nmain.f(%q)", "SECRET-PANIC", "SECRET-ARG")
	l.Printf("http: TLS handshake error from 127.0.0.1:4243: EOF")
	lines := jsonLines(t, buf.String())
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if lines[0]["level"] != "error" || lines[0]["msg"] != "http: panic serving 127.0.0.1:4242: <12 bytes withheld>" ||
		!strings.HasPrefix(lines[0]["detail"].(string), "goroutine 1 [running]:") || lines[0]["source"] != "go" {
		t.Errorf("panic line: %v", lines[0])
	}
	if lines[1]["level"] != "debug" {
		t.Errorf("handshake line: %v", lines[1])
	}
	if strings.Contains(buf.String(), "SECRET") {
		t.Errorf("quoted text reached the log:\n%s", buf.String())
	}
}

// http.Transport logs an unsolicited response through the log package's default
// logger, quoting the upstream's bytes; routed, it is a JSON warning without them.
func TestRouteDefaultCatchesTheTransportsUnsolicitedResponse(t *testing.T) {
	var buf syncBuffer
	RouteDefault(jsonLogger(&buf))
	const canary = "UNSOLICITED-CANARY-7f3a"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		// The answer, then bytes nobody asked for on the now idle connection.
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n"+canary)
		time.Sleep(200 * time.Millisecond)
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "Unsolicited response") {
		if time.Now().After(deadline) {
			t.Fatalf("the transport logged nothing through zap: %q", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	lines := jsonLines(t, buf.String())
	if lines[0]["level"] != "warn" || !strings.Contains(lines[0]["msg"].(string), "bytes withheld>") {
		t.Errorf("unsolicited line: %v", lines[0])
	}
	if strings.Contains(buf.String(), canary) {
		t.Errorf("the upstream's bytes reached the log:\n%s", buf.String())
	}
}
