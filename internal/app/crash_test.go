package app

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/spool"
	"github.com/creditgate/creditgate/proxy"
)

// A proxy killed with SIGKILL while streams are relaying, and while other
// requests still wait for the upstream's headers, loses none of them: restarted on
// the same spool, it settles each stream for what its in-flight record says was
// relayed (the prompt plus the output counted so far, token_source local), and
// releases each request that had relayed nothing. Every admitted request ends in
// exactly one of usage or release (none as hold_expired, none twice), nothing stays
// reserved and the audit is clean.
func TestKilledProxyInFlightRequestsAreSettledOnRestart(t *testing.T) {
	f := newFixture(t)
	f.doc["billing"] = `{ hold_ttl: 10m }`
	f.doc["redis"] = patientRedisSection(f.redis)
	f.doc["upstream"] = fmt.Sprintf(`{ base_url: %q, api_key: %q, timeout: 2m }`, f.upstream.URL+"/v1", upstreamKey)
	doc := f.doc.yaml()
	first := startChild(t, doc)
	key := f.account("acme", "50.00")

	const streams, waiting = 12, 4
	const relayEvents = 12 // each stream relays this many events, then the mock stalls
	type seen struct {
		id     string
		events int
	}
	got := make([]seen, streams)
	var relayed sync.WaitGroup
	relayed.Add(streams)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	send := func(body string, header ...string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+first.data+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		return client.Do(req)
	}
	for i := range streams {
		go func() {
			res, err := send(chat("gpt-4o-mini", true, 2000), "X-Mock-Event-Delay", "40ms", "X-Mock-Stall-After", fmt.Sprint(relayEvents))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				relayed.Done()
				return
			}
			defer res.Body.Close()
			got[i].id = res.Header.Get(proxy.RequestIDHeader)
			sc := bufio.NewScanner(res.Body)
			done := false
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: {") {
					got[i].events++
				}
				if got[i].events == relayEvents && !done {
					done = true
					relayed.Done()
				}
			}
			if !done {
				relayed.Done()
			}
		}()
	}
	for range waiting { // admitted, then the upstream sits on its headers
		go func() {
			if res, err := send(chat("gpt-4o-mini", false, 100), "X-Mock-Delay", "90s"); err == nil {
				res.Body.Close()
			}
		}()
	}
	relayed.Wait()
	for i, s := range got {
		if s.id == "" || s.events < relayEvents {
			t.Fatalf("stream %d relayed %d events (id %q) before the kill", i, s.events, s.id)
		}
	}
	// Every request admitted and in flight: streams hold, the waiting ones hold.
	waitFor(t, "every request to hold", 30*time.Second, func() bool {
		a, err := f.store.GetAccount(context.Background(), "acme")
		return err == nil && a.Reserved > 0 && len(holdIDs(t, f, "acme")) == 0 && countHolds(t, f) == streams+waiting
	})
	// The records' progress is written at most every 250 ms: let the last one land.
	time.Sleep(700 * time.Millisecond)
	first.kill()
	cancel()

	second := startChild(t, doc) // the same spool directory
	waitFor(t, "the recovered settlements to be booked", 60*time.Second, func() bool {
		a, err := f.store.GetAccount(context.Background(), "acme")
		return err == nil && a.Reserved == 0
	})
	if !strings.Contains(string(second.stderr.Bytes()), `"recovered_in_flight":16`) {
		t.Errorf("the restarted proxy did not report 16 recovered in-flight records:\n%s", second.stderr.Bytes())
	}

	usage, releases := map[string]billing.Event{}, 0
	for _, ev := range allEvents(t, f.store, "acme") {
		switch ev.Type {
		case billing.EventUsage:
			if _, twice := usage[ev.HoldID]; twice {
				t.Fatalf("hold %s billed twice", ev.HoldID)
			}
			usage[ev.HoldID] = ev
		case billing.EventRelease:
			releases++
			if ev.Note != spool.NoteReleasedAfterCrash {
				t.Errorf("release %s: note %q, want %q", ev.ID, ev.Note, spool.NoteReleasedAfterCrash)
			}
		case billing.EventHoldExpired:
			t.Errorf("hold %s ended as hold_expired: its in-flight record was not recovered", ev.HoldID)
		}
	}
	if len(usage) != streams || releases != waiting {
		t.Fatalf("%d usage and %d release events, want %d and %d", len(usage), releases, streams, waiting)
	}
	for i, s := range got {
		ev, ok := usage[s.id]
		switch {
		case !ok:
			t.Errorf("stream %d (%s) not billed", i, s.id)
		case ev.TokenSource != billing.TokenSourceLocal || ev.Note != spool.NoteSettledAfterCrash:
			t.Errorf("stream %d billed %+v; want the local count, settled after the crash", i, ev)
		case ev.PromptTokens == 0 || ev.CompletionTokens == 0:
			// The mock's words are a token each or more; 12 events relayed well
			// before the kill must show in the record.
			t.Errorf("stream %d billed %d prompt and %d completion tokens; want what was relayed", i, ev.PromptTokens, ev.CompletionTokens)
		case ev.CompletionTokens > 4*relayEvents:
			t.Errorf("stream %d billed %d completion tokens for %d events relayed", i, ev.CompletionTokens, relayEvents)
		}
	}
	var out int64
	for _, ev := range usage {
		out += ev.CompletionTokens
	}
	t.Logf("killed with %d streams relaying and %d waiting: %d settled from their records (%d completion tokens in all, %d events relayed each), %d released",
		streams, waiting, len(usage), out, relayEvents, releases)
	auditClean(t, f.store, "acme")
	second.stop(t)
}

// countHolds is how many holds the account's ledger has not ended yet, read
// from the store's live holds.
func countHolds(t *testing.T, f *fixture) int {
	t.Helper()
	n, err := f.redis.Client.ZCard(context.Background(), f.redis.Prefix+"{acct:acme}:holds").Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

// holdIDs are the holds the ledger has ended so far (usage, release or
// hold_expired events).
func holdIDs(t *testing.T, f *fixture, account string) []string {
	t.Helper()
	var ids []string
	for _, ev := range allEvents(t, f.store, account) {
		if ev.HoldID != "" && (ev.Type == billing.EventUsage || ev.Type == billing.EventRelease || ev.Type == billing.EventHoldExpired) {
			ids = append(ids, ev.HoldID)
		}
	}
	return ids
}
