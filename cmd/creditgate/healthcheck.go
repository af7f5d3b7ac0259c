package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/creditgate/creditgate/config"
)

// defaultProbeTimeout bounds one healthcheck: the probe is for Docker's
// HEALTHCHECK and scripts, which want an answer in seconds, not a hung process.
const defaultProbeTimeout = 3 * time.Second

func healthcheckCommand() *cobra.Command {
	var p prober
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a running instance's data-plane /readyz (exit 0 when ready)",
		Long: `Probe a running creditgate: GET /readyz on its data plane. Exit status 0 when it
answers 200 (ready), 1 with a one-line reason otherwise (503 not ready, another
status, no answer within --timeout, refused, a TLS failure).

The address comes from --url (a base URL such as http://10.0.0.5:8080, or the full
URL of the probe), else from the configuration's listen and tls keys: --config
FILE (or $CREDITGATE_CONFIG) overlaid with CREDITGATE_LISTEN and CREDITGATE_TLS_*,
an unspecified host (":8080", "0.0.0.0:8080") meaning this machine's loopback.
Over TLS, the server's certificate is accepted when it is tls.cert_file's own
(the name 127.0.0.1 is never in it) or when it verifies against the system's
roots for the URL's host. Meant for the container image's HEALTHCHECK:
distroless images have no shell and no curl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if p.configPath == "" {
				p.configPath = os.Getenv("CREDITGATE_CONFIG")
			}
			msg, err := p.probe(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&p.configPath, "config", "c", "", "configuration file whose listen and tls keys locate the data plane")
	f.StringVar(&p.url, "url", "", "probe this base URL (or full URL) instead of the configuration's listen address")
	f.DurationVar(&p.timeout, "timeout", defaultProbeTimeout, "give up after this long")
	f.StringVar(&p.clientCert, "client-cert", "", "PEM client certificate, for a data plane that requires one (tls.client_ca_file)")
	f.StringVar(&p.clientKey, "client-key", "", "PEM key of --client-cert")
	return cmd
}

// prober is one healthcheck's settings, as the flags give them.
type prober struct {
	configPath string // "" = defaults and the environment only
	url        string // "" = from the configuration's listen
	timeout    time.Duration
	clientCert string
	clientKey  string
}

// probeConfig is the part of the configuration a probe needs. It is read
// leniently (unknown keys ignored, nothing validated) on purpose: a running
// instance keeps its configuration when an edit of the file is refused, and the
// prober's environment may lack the admin tokens; neither must make a serving
// instance look unhealthy.
type probeConfig struct {
	Listen string `yaml:"listen"`
	TLS    struct {
		CertFile string `yaml:"cert_file"`
	} `yaml:"tls"`
}

// readProbeConfig reads listen and tls.cert_file from path ("" = none) with
// the defaults and CREDITGATE_* overrides the server applies to them.
func readProbeConfig(path string) (probeConfig, error) {
	pc := probeConfig{Listen: config.Default().Listen}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return pc, err
		}
		if err := yaml.Unmarshal(data, &pc); err != nil {
			return pc, fmt.Errorf("%s: %v", path, err)
		}
		if pc.Listen == "" {
			pc.Listen = config.Default().Listen
		}
	}
	// Empty variables are ignored, as the server's loader does.
	if v := os.Getenv(config.EnvName("listen")); v != "" {
		pc.Listen = v
	}
	if v := os.Getenv(config.EnvName("tls.cert_file")); v != "" {
		pc.TLS.CertFile = v
	}
	return pc, nil
}

// probeURL is the /readyz URL of the data plane listening on listen.
func probeURL(listen string, useTLS bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %v", listen, err)
	}
	// A listener on every interface is reached through loopback; the IPv6
	// wildcard through IPv6's, in case the socket is IPv6-only.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/readyz", nil
}

// target is the URL to probe: --url (its path defaulting to /readyz) or the
// configuration's listen address.
func (p *prober) target(pc probeConfig) (string, error) {
	if p.url == "" {
		return probeURL(pc.Listen, pc.TLS.CertFile != "")
	}
	u, err := url.Parse(p.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http:// or https://host:port", p.url)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/readyz"
	}
	return u.String(), nil
}

// probe asks the data plane whether it is ready; the message says what was
// probed, the error why it is not ready, each on one line.
func (p *prober) probe(ctx context.Context) (string, error) {
	pc, err := readProbeConfig(p.configPath)
	if err != nil {
		return "", fmt.Errorf("not ready: configuration: %v", err)
	}
	target, err := p.target(pc)
	if err != nil {
		return "", fmt.Errorf("not ready: %v", err)
	}
	tlsConf, err := p.tlsConfig(pc.TLS.CertFile)
	if err != nil {
		return "", fmt.Errorf("not ready: %v", err)
	}
	timeout := p.timeout
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: nil, DisableKeepAlives: true},
		// A redirect is not readiness: report it rather than follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", fmt.Errorf("not ready: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("not ready: %s: no answer within %s", target, timeout)
		}
		return "", fmt.Errorf("not ready: %s: %s", target, oneLine(unwrapURLError(err).Error()))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return "ready: " + target, nil
	}
	msg := fmt.Sprintf("not ready: %s answered %s", target, resp.Status)
	if why := reasonOf(body); why != "" {
		msg += ": " + why
	}
	if resp.StatusCode == http.StatusNotFound {
		msg += " (is this a creditgate whose data plane serves /readyz?)"
	}
	return "", errors.New(msg)
}

// tlsConfig trusts the configured server certificate itself, or the system's
// roots, and presents --client-cert when given.
func (p *prober) tlsConfig(certFile string) (*tls.Config, error) {
	var pinned []byte
	if certFile != "" {
		data, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %v", err)
		}
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("tls.cert_file %s: no PEM certificate", certFile)
		}
		pinned = block.Bytes
	}
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below: the leaf the server is configured with is
		// trusted by its bytes (a probe of 127.0.0.1 never matches its names),
		// any other certificate by the system's roots, as a browser would.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if pinned != nil && bytes.Equal(leaf.Raw, pinned) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter}); err != nil {
				if pinned != nil {
					return fmt.Errorf("the server's certificate is not tls.cert_file's, and %v", err)
				}
				return err
			}
			return nil
		},
	}
	if p.clientCert != "" || p.clientKey != "" {
		cert, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
		if err != nil {
			return nil, fmt.Errorf("--client-cert/--client-key: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// reasonOf is the reason a /readyz body gives: its JSON "reason" (creditgate's
// {"status","reason"}), else its first line, shortened.
func reasonOf(body []byte) string {
	var h struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &h) == nil && (h.Reason != "" || h.Status != "") {
		if h.Reason != "" {
			return oneLine(h.Reason)
		}
		return oneLine(h.Status)
	}
	return oneLine(string(body))
}

// oneLine keeps the first line of s, at most 200 bytes of it.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// unwrapURLError drops *url.Error's `Get "URL":` prefix: the message names the
// URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
