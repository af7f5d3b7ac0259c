package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// The child process of TestKilledProcessInFlightRequestsEndOnce is this test
// binary, run with these variables set.
const (
	childSpoolEnv  = "CREDITGATE_TEST_SPOOL_CHILD_DIR"
	childRedisEnv  = "CREDITGATE_TEST_SPOOL_CHILD_REDIS" // "redis <addr>", or "cluster <addr,…>"
	childPrefixEnv = "CREDITGATE_TEST_SPOOL_CHILD_PREFIX"
)

// The requests the child has in flight when it is killed, by what it did with
// each: its outcome after the restart is fixed by that.
const (
	childRequests   = 100
	childProgress   = 37 // output tokens the streaming requests reported last (the last one written is 30)
	childPromptToks = 800
)

// childKind is what the child does with request i.
func childKind(i int) string {
	switch i % 5 {
	case 0:
		return "forwarded" // Begin only: the upstream had not answered
	case 1, 2:
		return "streaming" // Progress 0, 10, 20, 30, 37 (ProgressTokens 10: 37 is not written)
	case 3:
		return "settled" // streamed, settled, then killed before its End
	default:
		return "ended" // streamed, settled, End
	}
}

func childPrice() metering.Price {
	return metering.Price{Input: 2_500_000, CachedInput: 1_250_000, AudioInput: 2_500_000, Output: 10_000_000, Reasoning: 10_000_000, AudioOutput: 10_000_000}
}

// TestInFlightChild is the child of TestKilledProcessInFlightRequestsEndOnce: a
// process with childRequests requests in flight, which prints "ready" and waits
// to be killed.
func TestInFlightChild(t *testing.T) {
	dir := os.Getenv(childSpoolEnv)
	if dir == "" {
		t.Skip("the child process of TestKilledProcessInFlightRequestsEndOnce")
	}
	kind, addrs, _ := strings.Cut(os.Getenv(childRedisEnv), " ")
	var c redis.UniversalClient
	if kind == "cluster" {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addrs})
	}
	store, err := redisstore.New(c, redisstore.Options{Prefix: os.Getenv(childPrefixEnv)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{ProgressTokens: 10, ProgressInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	price := childPrice()
	for i := range childRequests {
		hold := fmt.Sprintf("req_%03d", i)
		res, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: money.MustParse("0.05"), TTL: time.Hour,
			RequestID: hold, KeyID: "key_1", Model: "gpt-4o", Endpoint: "/v1/chat/completions"})
		if err != nil || !res.Admitted {
			t.Fatalf("reserve %s: %+v %v", hold, res, err)
		}
		if err := s.Begin(InFlight{Account: "acme", HoldID: hold, RequestID: hold, KeyID: "key_1", Model: "gpt-4o", Endpoint: "/v1/chat/completions",
			Price: price, Prompt: metering.Tokens{Input: childPromptToks}, Held: res.Held, Started: time.Now()}); err != nil {
			t.Fatal(err)
		}
		k := childKind(i)
		if k == "forwarded" {
			continue
		}
		for _, n := range []int64{0, 10, 20, 30, childProgress} {
			if err := s.Progress(hold, n); err != nil {
				t.Fatal(err)
			}
		}
		if k == "streaming" {
			continue
		}
		cost := price.Cost(metering.Tokens{Input: childPromptToks, Output: childProgress})
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: cost,
			Usage: billing.Usage{RequestID: hold, Model: "gpt-4o", CompletionTokens: childProgress, TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatal(err)
		}
		if k == "ended" {
			if err := s.End(hold); err != nil {
				t.Fatal(err)
			}
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed long before
	t.Fatal("not killed")
}

// TestKilledProcessInFlightRequestsEndOnce: a process with 100 requests in
// flight is killed with SIGKILL; the next process to open its spool settles each
// exactly once — streaming ones for the prompt and the output last written (at
// most ProgressTokens behind what was relayed), ones the upstream had not
// answered released, ones already settled (killed before their End) not
// again — and the audit passes.
func TestKilledProcessInFlightRequestsEndOnce(t *testing.T) {
	r := testredis.New(t)
	ctx := context.Background()
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateAccount(ctx, "acme", "t"); err != nil {
		t.Fatal(err)
	}
	policy := billing.Policy{MinPurchase: 1, CreditTTL: 24 * time.Hour, Tiers: map[string]billing.Tier{"t": {}}}
	if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: "acme", GrantID: "g", Amount: money.MustParse("20.00")}); err != nil {
		t.Fatal(err)
	}
	target := "redis " + r.Addr
	if r.Kind == testredis.KindCluster {
		target = "cluster " + os.Getenv("CREDITGATE_TEST_REDIS_CLUSTER")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInFlightChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childSpoolEnv+"="+dir, childRedisEnv+"="+target, childPrefixEnv+"="+r.Prefix)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatal("the child exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child never got ready")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Replay(ctx, store)
	if err != nil || s.Depth() != 0 {
		t.Fatalf("replay %+v: %v", res, err)
	}
	// forwarded (20) and streaming (40) are booked now; settled (20) are
	// recovered but found booked; ended (20) were not in flight.
	if s.Recovered() != 80 || res.Applied != 60 || res.Replayed != 20 {
		t.Fatalf("recovered %d, replay %+v; want 80 recovered, 60 applied, 20 already booked", s.Recovered(), res)
	}
	ends := map[string][]billing.Event{}
	for after := ""; ; {
		page, err := store.Events(ctx, "acme", after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.HoldID != "" {
				ends[ev.HoldID] = append(ends[ev.HoldID], ev)
			}
		}
		if after = page.Next; after == "" {
			break
		}
	}
	price := childPrice()
	for i := range childRequests {
		hold := fmt.Sprintf("req_%03d", i)
		evs := ends[hold]
		if len(evs) != 1 {
			t.Fatalf("%s (%s) ended with %d events: %+v", hold, childKind(i), len(evs), evs)
		}
		ev := evs[0]
		switch k := childKind(i); k {
		case "forwarded":
			if ev.Type != billing.EventRelease || ev.Note != NoteReleasedAfterCrash || ev.RequestID != hold {
				t.Fatalf("%s (%s): %+v", hold, k, ev)
			}
		case "streaming":
			want := price.Cost(metering.Tokens{Input: childPromptToks, Output: 30})
			if ev.Type != billing.EventUsage || ev.Cost != want || ev.CompletionTokens != 30 || ev.TokenSource != billing.TokenSourceLocal ||
				ev.Note != NoteSettledAfterCrash || ev.KeyID != "key_1" || ev.Model != "gpt-4o" {
				t.Fatalf("%s (%s): %+v, want a usage of %s", hold, k, ev, want)
			}
		default: // settled by the child itself
			if ev.Type != billing.EventUsage || ev.TokenSource != billing.TokenSourceUpstream || ev.CompletionTokens != childProgress {
				t.Fatalf("%s (%s): %+v", hold, k, ev)
			}
		}
	}
	rep, err := billing.AuditAccount(ctx, store, "acme")
	if err != nil || !rep.OK() {
		t.Fatalf("audit %+v %v", rep, err)
	}
	if a, err := store.GetAccount(ctx, "acme"); err != nil || a.Reserved != 0 {
		t.Fatalf("reserved %s after the recovery: %v", a.Reserved, err)
	}
}
