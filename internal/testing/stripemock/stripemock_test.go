package stripemock

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// It starts, answers as Stripe would (a customer fixture, a validation error for
// an unknown parameter), and is gone after the test.
func TestStart(t *testing.T) {
	var base string
	t.Run("run", func(t *testing.T) {
		s := Start(t)
		base = s.URL
		if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
			t.Errorf("URL %q is not loopback HTTP", s.URL)
		}
		for _, tt := range []struct {
			form   url.Values
			status int
			want   string
		}{
			{url.Values{"email": {"a@example.com"}}, 200, `"object":"customer"`},
			{url.Values{"emial": {"a@example.com"}}, 400, "Request validation error"},
		} {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/customers", strings.NewReader(tt.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(s.SecretKey, "")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body bytes.Buffer
			_ = json.Compact(&body, raw)
			if resp.StatusCode != tt.status || !strings.Contains(body.String(), tt.want) {
				t.Errorf("%v: %d %s, want %d mentioning %s", tt.form, resp.StatusCode, body.String(), tt.status, tt.want)
			}
		}
	})
	if base == "" {
		return // skipped
	}
	if resp, err := http.Get(base + "/v1/customers"); err == nil {
		resp.Body.Close()
		t.Errorf("stripe-mock still answers at %s after its test", base)
	}
}

// Binary honours the environment first, and finds nothing where there is nothing.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "stripe-mock")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBinary, fake)
	if got := Binary(); got != fake {
		t.Errorf("Binary() = %q with %s set, want %q", got, EnvBinary, fake)
	}
	t.Setenv(EnvBinary, "")
	t.Setenv("PATH", dir)
	if got := Binary(); got != fake {
		t.Errorf("Binary() = %q from PATH, want %q", got, fake)
	}
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	t.Setenv("GOBIN", empty)
	t.Setenv("GOPATH", empty)
	t.Setenv("HOME", empty)
	if got := Binary(); got != "" {
		t.Errorf("Binary() = %q with nothing installed", got)
	}
}
