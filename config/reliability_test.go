package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key for 127.0.0.1 into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "creditgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// One row per rule of the reliability and security keys: the mutation breaks
// exactly that rule, and the problem names exactly that key.
func TestValidateReliabilityRules(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, "not a certificate")
	tests := []struct {
		name     string
		mutate   func(c *Config)
		wantKeys []string // nil: valid
	}{
		{"data-plane TLS", func(c *Config) { c.TLS = TLS{CertFile: cert, KeyFile: key} }, nil},
		{"admin mutual TLS", func(c *Config) { c.Admin.TLS = TLS{CertFile: cert, KeyFile: key, ClientCAFile: cert} }, nil},
		{"tls cert without key", func(c *Config) { c.TLS = TLS{CertFile: cert} }, []string{"tls.key_file"}},
		{"tls key without cert", func(c *Config) { c.TLS = TLS{KeyFile: key} }, []string{"tls.cert_file"}},
		{"tls files missing", func(c *Config) { c.TLS = TLS{CertFile: dir + "/nope.pem", KeyFile: key} }, []string{"tls.cert_file"}},
		{"tls cert and key swapped", func(c *Config) { c.TLS = TLS{CertFile: key, KeyFile: cert} }, []string{"tls.cert_file"}},
		{"admin client CA without TLS", func(c *Config) { c.Admin.TLS = TLS{ClientCAFile: cert} }, []string{"admin.tls.client_ca_file"}},
		{"admin client CA not PEM", func(c *Config) { c.Admin.TLS = TLS{CertFile: cert, KeyFile: key, ClientCAFile: garbage} }, []string{"admin.tls.client_ca_file"}},
		{"shutdown_timeout zero", func(c *Config) { c.ShutdownTimeout = 0 }, []string{"shutdown_timeout"}},
		{"redis.max_retries negative", func(c *Config) { c.Redis.MaxRetries = -1 }, []string{"redis.max_retries"}},
		{"redis.max_retries huge", func(c *Config) { c.Redis.MaxRetries = 1000 }, []string{"redis.max_retries"}},
		{"redis.max_retries zero", func(c *Config) { c.Redis.MaxRetries = 0 }, nil},
		{"redis.pipeline off", func(c *Config) { c.Redis.Pipeline.MaxBatch = 1 }, nil},
		{"redis.pipeline zero", func(c *Config) { c.Redis.Pipeline = RedisPipeline{} }, []string{"redis.pipeline.max_batch", "redis.pipeline.workers"}},
		{"redis.pipeline huge", func(c *Config) { c.Redis.Pipeline = RedisPipeline{MaxBatch: 5000, Workers: 2000} }, []string{"redis.pipeline.max_batch", "redis.pipeline.workers"}},
		{"redis.operation_timeout zero", func(c *Config) { c.Redis.OperationTimeout = 0 }, []string{"redis.operation_timeout"}},
		{"redis.operation_timeout below timeout", func(c *Config) { c.Redis.OperationTimeout = time.Second }, []string{"redis.operation_timeout"}},
		{"spool.dir padded", func(c *Config) { c.Spool.Dir = " /var/spool " }, []string{"spool.dir"}},
		{"spool.replay_interval zero", func(c *Config) { c.Spool.ReplayInterval = 0 }, []string{"spool.replay_interval"}},
		{"limits.max_messages zero", func(c *Config) { c.Limits.MaxMessages = 0 }, []string{"limits.max_messages"}},
		{"limits.max_messages above the parser's cap", func(c *Config) { c.Limits.MaxMessages = 100_001 }, []string{"limits.max_messages"}},
		{"limits.max_message_bytes zero", func(c *Config) { c.Limits.MaxMessageBytes = 0 }, []string{"limits.max_message_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(c)
			var got []string
			if err := c.Validate(); err != nil {
				got = keysOf(*err.(*Problems))
			}
			if !slices.Equal(got, tt.wantKeys) {
				t.Errorf("problems %v, want keys %v (%v)", got, tt.wantKeys, c.Validate())
			}
		})
	}
}

// The new keys load from YAML and from the environment like every other key.
func TestReliabilityKeysLoad(t *testing.T) {
	cfg := mustLoad(t, `
shutdown_timeout: 45s
redis: { max_retries: 0, operation_timeout: 3s }
spool: { dir: /var/lib/cg/spool, replay_interval: 1s }
limits: { max_messages: 500, max_message_bytes: 1MiB }
`, map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_REDIS_MAX_RETRIES": "4"})
	if cfg.ShutdownTimeout != 45*time.Second || cfg.Redis.MaxRetries != 4 || cfg.Redis.OperationTimeout != 3*time.Second ||
		cfg.Spool.Dir != "/var/lib/cg/spool" || cfg.Spool.ReplayInterval != time.Second ||
		cfg.Limits.MaxMessages != 500 || cfg.Limits.MaxMessageBytes != MiB {
		t.Fatalf("loaded %+v %+v %+v %+v", cfg.ShutdownTimeout, cfg.Redis, cfg.Spool, cfg.Limits)
	}
	ps := problemsOf(t, "redis: { max_retries: two }\n", tokenEnv)
	if !slices.Equal(keysOf(ps), []string{"redis.max_retries"}) {
		t.Fatalf("problems %v", ps)
	}
}

func TestSpoolDir(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		xdg, home string
		want      string
	}{
		{name: "explicit", yaml: "spool: {dir: /srv/spool}", want: "/srv/spool"},
		{name: "off", yaml: "spool: {dir: \"off\"}", want: ""},
		{name: "embedded store has none", yaml: "redis: {url: 'memory://'}", want: ""},
		{name: "XDG state home", xdg: "/xdg/state", home: "/home/op", want: "/xdg/state/creditgate/spool"},
		{name: "relative XDG ignored", xdg: "rel/state", home: "/home/op", want: "/home/op/.local/state/creditgate/spool"},
		{name: "home", home: "/home/op", want: "/home/op/.local/state/creditgate/spool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			cfg := mustLoad(t, tt.yaml, tokenEnv)
			if got := cfg.SpoolDir(); got != tt.want {
				t.Errorf("SpoolDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReliabilityWarnings(t *testing.T) {
	c := validConfig(t)
	c.Spool.Dir = SpoolOff
	c.Admin.Listen = "0.0.0.0:8081"
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "spool.dir: off") || !strings.Contains(w, "set admin.tls") {
		t.Errorf("warnings:\n%s", w)
	}
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	c.Admin.TLS = TLS{CertFile: cert, KeyFile: key}
	if w := strings.Join(c.Warnings(), "\n"); strings.Contains(w, "admin.tls") {
		t.Errorf("admin TLS set, still warned:\n%s", w)
	}
}
