package app

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Bytes a broken upstream or client sends, which the standard library would
// quote into its log lines.
const (
	unsolicitedCanary = "UNSOLICITED-CANARY-upstream-bytes-41d2"
	statusCanary      = "STATUS-CANARY-9e0b"
	garbageCanary     = "GARBAGE-CANARY-upstream-c3a7"
	cutCanary         = "CUT-CANARY-half-a-completion-55f0"
	prefaceCanary     = "PREFACE-CANARY-client-bytes-0d9e"
	handshakeCanary   = "HANDSHAKE-CANARY-client-bytes-e81c"
)

// brokenUpstream is a raw TCP "upstream" that misbehaves as each request's
// X-Broken header asks: an answer followed by bytes nobody asked for on the
// idle connection, a malformed status line, garbage instead of HTTP, a body cut
// half-way. It returns its base URL.
func brokenUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const completion = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				switch req.Header.Get("X-Broken") {
				case "unsolicited":
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(completion), completion)
					time.Sleep(50 * time.Millisecond)
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n"+unsolicitedCanary)
					time.Sleep(200 * time.Millisecond)
				case "status":
					_, _ = io.WriteString(c, "HTTP/1.1 "+statusCanary+" OK\r\n\r\n")
				case "garbage":
					_, _ = io.WriteString(c, garbageCanary+"\r\n\r\n")
				case "cut":
					body := `{"id":"chatcmpl-2","choices":[{"message":{"content":"` + cutCanary
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body)+500, body)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestBrokenPeersLogOnlyJSON runs a creditgate process (its real logger: JSON
// on stderr, at debug) in front of a broken upstream, and sends it broken
// clients: a TLS handshake that is not one, an HTTP/2 preface that is garbage.
// The standard library logs each of these (http.Transport through the log
// package, the servers and the ReverseProxy through their ErrorLog), quoting
// the peer's bytes. Every line on the process's stderr must be a JSON object,
// the expected lines must be there, and no peer's bytes may be.
func TestBrokenPeersLogOnlyJSON(t *testing.T) {
	cert, keyFile := writeCert(t)
	f := newFixture(t)
	f.doc["upstream"] = fmt.Sprintf(`{ base_url: %q, api_key: %q, timeout: 10s }`, brokenUpstream(t)+"/v1", upstreamKey)
	f.doc["tls"] = fmt.Sprintf(`{ cert_file: %q, key_file: %q }`, cert, keyFile)
	f.doc["logging"] = `{ level: debug }`
	proc := startChild(t, f.doc.yaml())
	key := f.account("acme", "5.00")

	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tr.CloseIdleConnections()
	httpsClient := &http.Client{Timeout: 20 * time.Second, Transport: tr}
	base := "https://" + proc.data

	for _, c := range []struct {
		broken string
		want   int
	}{
		{"status", 502},
		{"garbage", 502},
		{"cut", 0}, // the app's connection is cut too (0: no answer)
		// Last: the unsolicited bytes would be read as the next request's answer
		// if one came before the transport saw them on the idle connection.
		{"unsolicited", 200},
	} {
		o := post(httpsClient, base, key, chat("gpt-4o-mini", false, 8), "X-Broken", c.broken)
		if o.status != c.want || (c.want != 0 && o.err != nil) {
			t.Fatalf("%s: %d %s %v", c.broken, o.status, o.body, o.err)
		}
	}

	// A client that sends plain text to the TLS listener.
	if c, err := net.Dial("tcp", proc.data); err == nil {
		_, _ = io.WriteString(c, "\x16\x03\x01\x00\x05"+handshakeCanary+"\r\n")
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	// A client that negotiates HTTP/2 and then sends a garbage preface.
	if c, err := tls.Dial("tcp", proc.data, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}}); err != nil {
		t.Fatal(err)
	} else {
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("negotiated %q, not h2", p)
		}
		_, _ = io.WriteString(c, prefaceCanary+" HTTP/2.0\r\n\r\nSM\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	// The unsolicited bytes arrive after the answer: wait for the transport's line.
	waitFor(t, "the transport's unsolicited-response line", 10*time.Second, func() bool {
		return strings.Contains(string(proc.stderr.Bytes()), "Unsolicited response")
	})
	proc.stop(t)

	out := string(proc.stderr.Bytes())
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	msgs := make([]string, 0, len(lines))
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line %d is not JSON: %q", i+1, line)
			continue
		}
		msg, _ := m["msg"].(string)
		msgs = append(msgs, fmt.Sprintf("%v %s %v", m["level"], msg, m["upstream_error"]))
	}
	for _, canary := range []string{unsolicitedCanary, statusCanary, garbageCanary, cutCanary, prefaceCanary, handshakeCanary} {
		if strings.Contains(out, canary) {
			t.Errorf("a peer's bytes (%s) reached the logs", canary)
		}
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"warn Unsolicited response received on idle HTTP channel starting with <",
		"malformed HTTP status code <",
		"malformed HTTP response <",
		"debug http: TLS handshake error from",
		"debug http2: server: error reading preface from client",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no log line says %q; the run did not cover what it should:\n%s", want, all)
		}
	}
	t.Logf("%d stderr lines, all JSON", len(lines))
}
