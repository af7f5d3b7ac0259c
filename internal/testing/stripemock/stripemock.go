// Package stripemock runs stripe-mock (github.com/stripe/stripe-mock), Stripe's
// own mock API server, for tests: it validates every request against Stripe's
// OpenAPI spec and answers with fixture objects, so a test that runs a client's
// calls against it proves Stripe accepts their parameters. Start finds the binary
// (CREDITGATE_TEST_STRIPE_MOCK, then PATH, GOBIN, GOPATH/bin and ~/go/bin), starts
// it on a free loopback port with HTTP only, and stops it when the test ends.
// Without the binary the test is skipped through skipreport (the package then
// fails after its tests unless CREDITGATE_TEST_ALLOW_MISSING accepts
// "stripe-mock"), or fails when CREDITGATE_TEST_REQUIRE_STRIPE_MOCK=1 (CI installs
// it with `go install github.com/stripe/stripe-mock@v0.203.0`).
package stripemock

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// Environment of the tests.
const (
	EnvRequire = "CREDITGATE_TEST_REQUIRE_STRIPE_MOCK" // "1": no stripe-mock is a failure (CI); skipreport.StripeMock.Require
	EnvBinary  = "CREDITGATE_TEST_STRIPE_MOCK"         // path of the binary to use
)

// Version is the stripe-mock release CI installs; its spec is Stripe's API of
// 2026-08-26.dahlia, the release stripe-go v85 speaks.
const Version = "v0.203.0"

// startTimeout bounds how long stripe-mock may take to load its spec and listen.
const startTimeout = 60 * time.Second

// Server is a running stripe-mock.
type Server struct {
	// URL is its HTTP base, e.g. "http://127.0.0.1:40123" (payments.stripe.api_base).
	URL string
	// SecretKey is a key it accepts (it accepts any sk_test_…).
	SecretKey string
}

// Binary returns the stripe-mock to run, or "".
func Binary() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		for _, p := range filepath.SplitList(d) {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Start runs stripe-mock for t, or skips t (fails it under EnvRequire=1) when
// there is no binary.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		skipreport.Skip(t, skipreport.StripeMock, fmt.Sprintf("stripe-mock not found (%s, PATH, GOBIN, GOPATH/bin, ~/go/bin), so the test against Stripe's OpenAPI spec did not run; install it: go install github.com/stripe/stripe-mock@%s", EnvBinary, Version))
	}
	s, err := start(t, bin)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listening is the line stripe-mock prints once it serves HTTP.
var listening = regexp.MustCompile(`Listening for HTTP at address: (127\.0\.0\.1:\d+)`)

func start(t testing.TB, bin string) (*Server, error) {
	// -http-addr alone still opens HTTPS on [::]:12112 (stripe-mock starts HTTPS
	// unless HTTP is asked for with -http or -http-port); a Unix socket in the
	// test's own directory keeps it off the network and free of port clashes.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-unix", filepath.Join(t.TempDir(), "https.sock"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout // one stream: the listening line and any error, in order
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stripemock: start %s: %w", bin, err)
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)

	addr := make(chan string, 1)
	var mu sync.Mutex
	var seen []string
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if len(seen) < 20 {
				seen = append(seen, line)
			}
			mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if ok {
			return &Server{URL: "http://" + a, SecretKey: "sk_test_stripemock"}, nil
		}
	case <-time.After(startTimeout):
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	return nil, fmt.Errorf("stripemock: %s did not start listening within %s; it said:\n%s", bin, startTimeout, strings.Join(seen, "\n"))
}
