package main

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
)

// fastMoneyRetry shortens the CLI's retries for a test.
func fastMoneyRetry(t *testing.T) {
	saved := moneyRetry
	moneyRetry = client.Retry{Attempts: 3, Backoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	t.Cleanup(func() { moneyRetry = saved })
}

var printedKey = regexp.MustCompile(`Idempotency-Key: (cgk_[0-9a-f]{32}) \(to retry this command by hand, add --idempotency-key cgk_[0-9a-f]{32}\)`)

// The admin API applies a top-up and an adjustment, and a fault proxy between the
// CLI and the API swallows the answer and closes the connection. The CLI, which
// was given no key, sent one of its own (printed first), retries with it, and
// is answered the replay: the account is credited once, adjusted once.
func TestMoneyCommandsRetryALostAnswerOnce(t *testing.T) {
	isolateEnv(t)
	fastMoneyRetry(t)
	url, store := startRedisAdmin(t) // acme has 10.00
	fp, err := faultproxy.New(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	flags := []string{"--admin-url", "http://" + fp.Addr(), "--admin-token", testToken}
	for _, tt := range []struct {
		args    []string
		balance string
		events  billing.EventType
	}{
		{[]string{"credits", "add", "acme", "10"}, "20.000000", billing.EventTopUp},
		{[]string{"credits", "adjust", "acme", "-1.50", "--reason", "refund of req_9"}, "18.500000", billing.EventAdjustment},
	} {
		t.Run(tt.args[1], func(t *testing.T) {
			dropped := fp.Dropped()
			fp.DropReplies(1, faultproxy.DropReplyAndClose)
			stdout, stderr, err := runCLI(t, append(tt.args, flags...)...)
			if err != nil {
				t.Fatalf("error %v; stderr %s", err, stderr)
			}
			if fp.Dropped() != dropped+1 {
				t.Fatalf("the proxy dropped %d answers, want 1", fp.Dropped()-dropped)
			}
			if !printedKey.MatchString(stderr) || !strings.Contains(stderr, "answer was lost, but the server had applied it: applied once") {
				t.Fatalf("stderr does not show the key and the replay:\n%s", stderr)
			}
			// The first command's connection is new, so the CLI itself retries. Later
			// ones reuse it, and net/http may resend the request (it carries an
			// Idempotency-Key) before the CLI sees an error: the same key either way.
			if retried := strings.Contains(stderr, "Try 1 failed"); !retried && tt.args[1] == "add" {
				t.Fatalf("the CLI did not retry:\n%s", stderr)
			} else if !retried {
				t.Logf("net/http resent the request on its reused connection")
			}
			if !strings.Contains(stdout, "BALANCE AFTER  "+tt.balance) {
				t.Fatalf("stdout does not show balance %s:\n%s", tt.balance, stdout)
			}
			a, err := store.GetAccount(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			if a.Balance().String() != tt.balance {
				t.Fatalf("balance %s, want %s: applied more than once", a.Balance(), tt.balance)
			}
			page, err := store.Events(context.Background(), "acme", "", 100)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, ev := range page.Events {
				if ev.Type == tt.events {
					n++
				}
			}
			if want := map[billing.EventType]int{billing.EventTopUp: 2, billing.EventAdjustment: 1}[tt.events]; n != want {
				t.Fatalf("%d %s events, want %d (the first top-up is the account's own)", n, tt.events, want)
			}
		})
	}
}

// When no try gets a definite answer, the command fails saying how to finish it:
// the same command with the key it printed (or was given), which every try carried.
func TestMoneyCommandsThatNeverGetAnAnswerNameTheirKey(t *testing.T) {
	isolateEnv(t)
	fastMoneyRetry(t)
	var (
		mu   sync.Mutex
		keys []string
	)
	l := &fakeLedger{
		TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
			mu.Lock()
			keys = append(keys, r.IdempotencyKey)
			mu.Unlock()
			return billing.TopUpResult{}, billing.ErrNotDurable
		},
		AdjustFunc: func(_ context.Context, _ billing.Policy, _ string, r billing.AdjustRequest) (billing.AdjustResult, error) {
			mu.Lock()
			keys = append(keys, r.IdempotencyKey)
			mu.Unlock()
			return billing.AdjustResult{}, billing.ErrUnavailable
		},
	}
	s := &admin.Server{Ledger: l, Keys: &fakeKeys{}, Policy: testPolicy, Now: func() time.Time { return testNow },
		Tokens: func() []string { return []string{testToken} }}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	flags := []string{"--admin-url", srv.URL, "--admin-token", testToken}
	for _, tt := range []struct {
		name string
		args []string
		code string
	}{
		{"add, generated key", []string{"credits", "add", "acme", "10"}, "not_durable"},
		{"add, given key", []string{"credits", "add", "acme", "10", "--idempotency-key", "order-5"}, "not_durable"},
		{"adjust, generated key", []string{"credits", "adjust", "acme", "2", "--reason", "goodwill"}, "store_unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys = nil
			stdout, stderr, err := runCLI(t, append(tt.args, flags...)...)
			if err == nil {
				t.Fatalf("no error; stdout %s", stdout)
			}
			key := "order-5"
			if m := printedKey.FindStringSubmatch(stderr); m != nil {
				key = m[1]
			} else if !strings.Contains(tt.name, "given") {
				t.Fatalf("no key printed:\n%s", stderr)
			}
			if len(keys) != 3 || keys[0] != key || keys[1] != key || keys[2] != key {
				t.Fatalf("the tries carried keys %q, want %s three times", keys, key)
			}
			for _, want := range []string{tt.code, "after 3 tries the outcome is unknown: run the same command again with --idempotency-key " + key, "retry with the same Idempotency-Key"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Count(stderr, "Try ") != 2 || stdout != "" {
				t.Errorf("want two retries on stderr and nothing on stdout; stderr:\n%s\nstdout: %q", stderr, stdout)
			}
		})
	}
}
