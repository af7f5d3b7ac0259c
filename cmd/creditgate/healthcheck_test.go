package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/app"
	"github.com/creditgate/creditgate/internal/mockupstream"
)

// runHealthcheck runs `creditgate healthcheck ARGS` through the real command
// tree (so the command's registration is tested too).
func runHealthcheck(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"healthcheck"}, args...))
	err := root.Execute()
	return stdout.String(), err
}

// isolateProbeEnv clears the variables the healthcheck reads.
func isolateProbeEnv(t *testing.T) {
	t.Setenv("CREDITGATE_CONFIG", "")
	t.Setenv("CREDITGATE_LISTEN", "")
	t.Setenv("CREDITGATE_TLS_CERT_FILE", "")
}

// readyzServer answers GET /readyz with h and counts the probes it got; any
// other method or path fails the test.
func readyzServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/readyz" {
			t.Errorf("probe asked %s %s, want GET /readyz", r.Method, r.URL.Path)
		}
		hits.Add(1)
		h(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point of some tests
	return srv, &hits
}

func TestHealthcheckAnswers(t *testing.T) {
	isolateProbeEnv(t)
	// hang holds the hanging handler until the test ends.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		args     []string
		wantErr  []string // substrings of the one-line reason; nil = ready
		maxDelay time.Duration
	}{
		{
			name:    "200 is ready",
			handler: func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ready"}`)) },
		},
		{
			name: "503 is not ready, with the server's reason",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"status":"unavailable","reason":"dial tcp 10.0.0.9:6379: connect: connection refused"}`))
			},
			wantErr: []string{"not ready", "503 Service Unavailable", "6379: connect: connection refused"},
		},
		{
			name: "503 with a plain body",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "shutting down\nsecond line", http.StatusServiceUnavailable)
			},
			wantErr: []string{"503", "shutting down"},
		},
		{
			name:    "404: no /readyz on that listener",
			handler: http.NotFound,
			wantErr: []string{"404 Not Found", "serves /readyz"},
		},
		{
			name: "a redirect is not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			wantErr: []string{"302 Found"},
		},
		{
			name: "204 is not 200",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			},
			wantErr: []string{"204 No Content"},
		},
		{
			name: "a hanging server times out",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			},
			args:     []string{"--timeout", "300ms"},
			wantErr:  []string{"no answer within 300ms"},
			maxDelay: 3 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, hits := readyzServer(t, tt.handler)
			srv.Start()
			defer srv.Close()
			start := time.Now()
			out, err := runHealthcheck(t, append([]string{"--url", srv.URL}, tt.args...)...)
			if tt.maxDelay > 0 && time.Since(start) > tt.maxDelay {
				t.Errorf("took %s, want under %s", time.Since(start), tt.maxDelay)
			}
			if hits.Load() != 1 {
				t.Errorf("server got %d probes, want 1", hits.Load())
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want ready", err)
				}
				if want := "ready: " + srv.URL + "/readyz\n"; out != want {
					t.Errorf("stdout = %q, want %q", out, want)
				}
				return
			}
			checkReason(t, err, tt.wantErr...)
		})
	}
}

// checkReason asserts err is a one-line reason holding every part.
func checkReason(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a reason with %q", parts)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("reason %q spans several lines", msg)
	}
	if !strings.HasPrefix(msg, "not ready: ") {
		t.Errorf("reason %q does not start with \"not ready: \"", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("reason %q lacks %q", msg, p)
		}
	}
}

func TestHealthcheckRefused(t *testing.T) {
	isolateProbeEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = runHealthcheck(t, "--url", "http://"+addr)
	checkReason(t, err, "http://"+addr+"/readyz", "connection refused")
}

func TestHealthcheckBadArguments(t *testing.T) {
	isolateProbeEnv(t)
	tests := []struct {
		name  string
		args  []string
		parts []string
	}{
		{"url without a scheme", []string{"--url", "127.0.0.1:8080"}, []string{"--url", "http://"}},
		{"url of another scheme", []string{"--url", "ftp://127.0.0.1:8080"}, []string{"--url"}},
		{"missing config file", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}, []string{"configuration", "no such file"}},
		{"listen without a port", []string{"--config", writeFile(t, "c.yaml", "listen: \"localhost\"\n")}, []string{"listen \"localhost\""}},
		{"client cert without key", []string{"--url", "http://127.0.0.1:1", "--client-cert", "x.pem"}, []string{"--client-cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runHealthcheck(t, tt.args...)
			checkReason(t, err, tt.parts...)
		})
	}
}

// writeFile writes content to a new file named name and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// listenOn starts srv on a loopback port and returns the port.
func listenOn(t *testing.T, srv *httptest.Server, tlsOn bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestHealthcheckFindsTheDataPlaneFromTheConfig(t *testing.T) {
	ready := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ready"}`)) }
	t.Run("listen with no host means loopback", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, hits := readyzServer(t, ready)
		port := listenOn(t, srv, false)
		// Keys the probe does not need, even invalid ones, do not matter.
		cfg := writeFile(t, "config.yaml", "listen: \":"+port+"\"\nadmin:\n  tokens: [\"change-me\"]\nfuture_key: 1\n")
		out, err := runHealthcheck(t, "--config", cfg)
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		if want := "ready: http://127.0.0.1:" + port + "/readyz\n"; out != want {
			t.Errorf("stdout = %q, want %q", out, want)
		}
		if hits.Load() != 1 {
			t.Errorf("%d probes, want 1", hits.Load())
		}
	})
	t.Run("CREDITGATE_CONFIG names the file", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, hits := readyzServer(t, ready)
		port := listenOn(t, srv, false)
		t.Setenv("CREDITGATE_CONFIG", writeFile(t, "config.yaml", "listen: \"0.0.0.0:"+port+"\"\n"))
		if _, err := runHealthcheck(t); err != nil {
			t.Fatalf("err = %v", err)
		}
		if hits.Load() != 1 {
			t.Errorf("%d probes, want 1", hits.Load())
		}
	})
	t.Run("CREDITGATE_LISTEN overrides the file", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, hits := readyzServer(t, ready)
		port := listenOn(t, srv, false)
		cfg := writeFile(t, "config.yaml", "listen: \"127.0.0.1:1\"\n")
		t.Setenv("CREDITGATE_LISTEN", "127.0.0.1:"+port)
		if _, err := runHealthcheck(t, "--config", cfg); err != nil {
			t.Fatalf("err = %v", err)
		}
		if hits.Load() != 1 {
			t.Errorf("%d probes, want 1", hits.Load())
		}
	})
	t.Run("the default listen without any file", func(t *testing.T) {
		isolateProbeEnv(t)
		p := prober{}
		pc, err := readProbeConfig(p.configPath)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.target(pc)
		if err != nil || got != "http://127.0.0.1:8080/readyz" {
			t.Errorf("target = %q, %v; want http://127.0.0.1:8080/readyz", got, err)
		}
	})
}

func TestProbeURL(t *testing.T) {
	tests := []struct {
		listen string
		tls    bool
		want   string
	}{
		{":8080", false, "http://127.0.0.1:8080/readyz"},
		{"0.0.0.0:8080", false, "http://127.0.0.1:8080/readyz"},
		{"[::]:8080", false, "http://[::1]:8080/readyz"},
		{"10.1.2.3:80", false, "http://10.1.2.3:80/readyz"},
		{"localhost:8443", true, "https://localhost:8443/readyz"},
	}
	for _, tt := range tests {
		got, err := probeURL(tt.listen, tt.tls)
		if err != nil || got != tt.want {
			t.Errorf("probeURL(%q, %v) = %q, %v; want %q", tt.listen, tt.tls, got, err, tt.want)
		}
	}
}

func TestHealthcheckTLS(t *testing.T) {
	ready := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ready"}`)) }
	t.Run("the configured certificate is trusted on 127.0.0.1", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, hits := readyzServer(t, ready)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{certFor(t, "creditgate.example.com", false).pair}}
		port := listenOn(t, srv, true)
		certFile := writeFile(t, "cert.pem", string(pemOf(srv.Certificate())))
		cfg := writeFile(t, "config.yaml", "listen: \":"+port+"\"\ntls: { cert_file: \""+certFile+"\", key_file: \"/not/read.pem\" }\n")
		out, err := runHealthcheck(t, "--config", cfg)
		if err != nil {
			t.Fatalf("err = %v", err)
		}
		if want := "ready: https://127.0.0.1:" + port + "/readyz\n"; out != want {
			t.Errorf("stdout = %q, want %q", out, want)
		}
		if hits.Load() != 1 {
			t.Errorf("%d probes, want 1", hits.Load())
		}
	})
	t.Run("another certificate is refused", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, hits := readyzServer(t, ready)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{certFor(t, "creditgate.example.com", false).pair}}
		port := listenOn(t, srv, true)
		other := certFor(t, "creditgate.example.com", false)
		t.Setenv("CREDITGATE_TLS_CERT_FILE", writeFile(t, "cert.pem", string(other.certPEM)))
		_, err := runHealthcheck(t, "--url", "https://127.0.0.1:"+port)
		checkReason(t, err, "not tls.cert_file's")
		if hits.Load() != 0 {
			t.Errorf("%d probes reached the handler, want 0", hits.Load())
		}
	})
	t.Run("without a configured certificate the system roots decide", func(t *testing.T) {
		isolateProbeEnv(t)
		srv, _ := readyzServer(t, ready)
		port := listenOn(t, srv, true)
		_, err := runHealthcheck(t, "--url", "https://127.0.0.1:"+port)
		checkReason(t, err, "certificate")
	})
	t.Run("a data plane requiring client certificates", func(t *testing.T) {
		isolateProbeEnv(t)
		client := certFor(t, "prober", true)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(client.certPEM)
		srv, hits := readyzServer(t, ready)
		srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
		port := listenOn(t, srv, true)
		t.Setenv("CREDITGATE_TLS_CERT_FILE", writeFile(t, "cert.pem", string(pemOf(srv.Certificate()))))
		url := "https://127.0.0.1:" + port
		_, err := runHealthcheck(t, "--url", url)
		checkReason(t, err, url+"/readyz")
		certFile := writeFile(t, "client.pem", string(client.certPEM))
		keyFile := writeFile(t, "client-key.pem", string(client.keyPEM))
		if _, err := runHealthcheck(t, "--url", url, "--client-cert", certFile, "--client-key", keyFile); err != nil {
			t.Fatalf("with a client certificate: err = %v", err)
		}
		if hits.Load() != 1 {
			t.Errorf("%d probes reached the handler, want 1 (the one with a certificate)", hits.Load())
		}
	})
}

// testCert is a self-signed certificate and its key.
type testCert struct {
	certPEM, keyPEM []byte
	pair            tls.Certificate
}

// certFor makes a self-signed certificate for name, for a client or a server.
func certFor(t *testing.T, name string, client bool) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	if c.pair, err = tls.X509KeyPair(c.certPEM, c.keyPEM); err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestHealthcheckAgainstARunningInstance probes a real creditgate's data
// plane: ready while it serves, found from the configuration's listen as from
// --url, and refused once it has shut down.
func TestHealthcheckAgainstARunningInstance(t *testing.T) {
	isolateProbeEnv(t)
	up := httptest.NewServer(mockupstream.New())
	t.Cleanup(up.Close)
	cfg, err := config.LoadBytes([]byte(`
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: ["`+demoTestToken+`"] }
redis: { url: "memory://" }
upstream: { base_url: "`+up.URL+`/v1" }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)

	port := portOf(a.DataAddr().String())
	want := "ready: http://127.0.0.1:" + port + "/readyz\n"
	file := writeFile(t, "config.yaml", "listen: \":"+port+"\"\n")
	if out, err := runHealthcheck(t, "--config", file); err != nil || out != want {
		t.Errorf("--config: %q, %v; want %q", out, err, want)
	}
	if out, err := runHealthcheck(t, "--url", "http://"+a.DataAddr().String()); err != nil || out != want {
		t.Errorf("--url: %q, %v; want %q", out, err, want)
	}
	stop()
	_, err = runHealthcheck(t, "--config", file)
	checkReason(t, err, "127.0.0.1:"+port+"/readyz", "connection refused")
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
