package activity

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newPair(t *testing.T, o RecorderOptions) (*Recorder, *Reader, *testredis.Store) {
	t.Helper()
	r := testredis.New(t)
	o.Client, o.Prefix = r.Client, r.Prefix
	rec, err := NewRecorder(o)
	if err != nil {
		t.Fatal(err)
	}
	return rec, &Reader{Client: r.Client, Prefix: r.Prefix}, r
}

var usd = money.MustParse

func TestOverviewAndRecent(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 9, 23, 59, 0, 0, time.UTC)}
	rec, rd, r := newPair(t, RecorderOptions{Now: c.Now, RecentCap: 5})
	ctx := context.Background()
	settle := func(account, key string, cost string) {
		rec.Settled(Request{Account: account, KeyID: key, Model: "gpt-4o", Endpoint: "/v1/chat/completions", RequestID: "req-" + account,
			PromptTokens: 10, CompletionTokens: 5, Cost: usd(cost), BalanceAfter: usd("1.00")})
	}
	settle("yesterday", "k0", "9.00") // the day before: in the month, not today
	c.Set(time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC))
	settle("acme", "k1", "1.50")
	settle("globex", "k2", "0.25")
	settle("acme", "k1", "0.50")
	settle("free", "k3", "0") // a request that cost nothing: counted, never ranked
	rec.Denied(Request{Account: "broke", KeyID: "k4", Model: "gpt-4o"}, billing.ReasonEmpty)
	rec.Denied(Request{Account: "broke", KeyID: "k4"}, billing.ReasonEmpty)
	rec.Denied(Request{Account: "low"}, billing.ReasonInsufficient)
	rec.RechargeFailed("declined")
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	o, err := rd.Overview(ctx, c.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if o.Today != (Period{"2026-03-10", usd("2.25"), 4}) || o.Month != (Period{"2026-03", usd("11.25"), 5}) {
		t.Errorf("today %+v, month %+v", o.Today, o.Month)
	}
	if len(o.Days) != ChartDays || o.Days[ChartDays-1] != o.Today || o.Days[ChartDays-2] != (Period{"2026-03-09", usd("9.00"), 1}) || o.Days[0].Period != "2026-02-09" {
		t.Errorf("days: first %+v, last two %+v", o.Days[0], o.Days[ChartDays-2:])
	}
	if want := []AccountSpend{{"acme", usd("2.00")}, {"globex", usd("0.25")}}; !slices.Equal(o.TopToday, want) {
		t.Errorf("top today %+v, want %+v", o.TopToday, want)
	}
	if o.TopMonth[0] != (AccountSpend{"yesterday", usd("9.00")}) || len(o.TopMonth) != 3 {
		t.Errorf("top month %+v", o.TopMonth)
	}
	if o.DeniedToday[billing.ReasonEmpty] != 2 || o.DeniedToday[billing.ReasonInsufficient] != 1 || o.DeniedMonth[billing.ReasonEmpty] != 2 {
		t.Errorf("denied today %v, month %v", o.DeniedToday, o.DeniedMonth)
	}
	if o.RechargeFailuresToday["declined"] != 1 || o.RechargeFailuresMonth["declined"] != 1 {
		t.Errorf("recharge failures %v %v", o.RechargeFailuresToday, o.RechargeFailuresMonth)
	}

	recent, err := rd.Recent(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Capped at 5, newest first: the three refusals, then free, then acme's second.
	if len(recent) != 5 || recent[0].Outcome != OutcomeDenied || recent[0].Account != "low" || recent[0].Reason != billing.ReasonInsufficient ||
		recent[3].Account != "free" || recent[4].Account != "acme" || recent[4].Cost != usd("0.50") {
		t.Fatalf("recent %+v", recent)
	}
	want := Request{At: time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC), Account: "acme", KeyID: "k1", RequestID: "req-acme", Model: "gpt-4o",
		Endpoint: "/v1/chat/completions", Outcome: OutcomeSettled, PromptTokens: 10, CompletionTokens: 5, Cost: usd("0.50"), BalanceAfter: usd("1.00")}
	if recent[4] != want {
		t.Errorf("recent[4] = %+v\nwant %+v", recent[4], want)
	}
	if two, _ := rd.Recent(ctx, 2); len(two) != 2 || two[0] != recent[0] {
		t.Errorf("Recent(2) = %+v", two)
	}

	// Every key expires by itself (the capped list excepted), under one hash tag.
	k := keys{r.Prefix}
	for _, key := range []string{k.spend("2026-03-10"), k.spend("2026-03"), k.count("2026-03-10"), k.count("2026-03"),
		k.top("2026-03-10"), k.top("2026-03"), k.denied("2026-03-10"), k.denied("2026-03"), k.recharge("2026-03-10"), k.recharge("2026-03")} {
		if ttl := r.Client.TTL(ctx, key).Val(); ttl <= 0 {
			t.Errorf("%s has no expiry (%s)", key, ttl)
		}
		if want := r.Prefix + "{activity}:"; key[:len(want)] != want {
			t.Errorf("%s is outside the {activity} hash tag", key)
		}
	}
	if ttl := r.Client.TTL(ctx, k.top("2026-03-10")).Val(); ttl > topDayTTL {
		t.Errorf("today's ranking lives %s, want at most %s", ttl, topDayTTL)
	}
}

// TestRecorderNeverBlocks: a full queue drops events and counts them.
func TestRecorderNeverBlocks(t *testing.T) {
	rec, rd, _ := newPair(t, RecorderOptions{QueueSize: 2})
	done := make(chan struct{})
	go func() {
		for range 5 {
			rec.Settled(Request{Account: "a", Cost: 1})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Settled blocked on a full queue")
	}
	if rec.Dropped() != 3 {
		t.Errorf("Dropped() = %d, want 3", rec.Dropped())
	}
	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, err := rd.Overview(context.Background(), time.Now(), 5)
	if err != nil || o.Today.Requests != 2 {
		t.Errorf("today %+v, %v; want the 2 queued requests", o.Today, err)
	}
}

// TestRunFlushesAndStops: Run writes on its interval and once more when stopped.
func TestRunFlushesAndStops(t *testing.T) {
	rec, rd, _ := newPair(t, RecorderOptions{FlushInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { rec.Run(ctx); close(stopped) }()
	rec.Settled(Request{Account: "a", Cost: usd("1.00")})
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, err := rd.Overview(context.Background(), time.Now(), 1)
		if err == nil && o.Today.Requests == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not flushed: %+v %v", o.Today, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec.Settled(Request{Account: "b", Cost: usd("2.00")})
	cancel()
	<-stopped
	if o, _ := rd.Overview(context.Background(), time.Now(), 5); o.Today.Spend != usd("3.00") {
		t.Errorf("after Run stopped: %+v, want the last event flushed", o.Today)
	}
}

func TestNewRecorderNeedsAClient(t *testing.T) {
	if _, err := NewRecorder(RecorderOptions{}); err == nil {
		t.Error("NewRecorder without a client succeeded")
	}
}

// TestAggregateModel: any events, flushed in any batches, leave the overview
// equal to sums over the events.
func TestAggregateModel(t *testing.T) {
	r := testredis.New(t)
	rapid.Check(t, func(rt *rapid.T) {
		prefix := fmt.Sprintf("%sm%d:", r.Prefix, time.Now().UnixNano())
		c := &clock{t: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
		rec, err := NewRecorder(RecorderOptions{Client: r.Client, Prefix: prefix, Now: c.Now})
		if err != nil {
			rt.Fatal(err)
		}
		rd := &Reader{Client: r.Client, Prefix: prefix}
		spend := map[string]money.Micros{}
		var total money.Micros
		var requests int64
		denied := map[string]int64{}
		for range rapid.IntRange(0, 60).Draw(rt, "events") {
			account := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(rt, "account")
			if rapid.IntRange(0, 4).Draw(rt, "kind") == 0 {
				reason := rapid.SampledFrom([]string{billing.ReasonEmpty, billing.ReasonExpired, billing.ReasonInsufficient}).Draw(rt, "reason")
				rec.Denied(Request{Account: account}, reason)
				denied[reason]++
			} else {
				cost := money.Micros(rapid.Int64Range(0, 5_000_000).Draw(rt, "cost"))
				rec.Settled(Request{Account: account, Cost: cost})
				if cost > 0 {
					spend[account] += cost
				}
				total += cost
				requests++
			}
			if rapid.IntRange(0, 9).Draw(rt, "flush") == 0 {
				if err := rec.Flush(context.Background()); err != nil {
					rt.Fatal(err)
				}
			}
		}
		if err := rec.Flush(context.Background()); err != nil {
			rt.Fatal(err)
		}
		o, err := rd.Overview(context.Background(), c.Now(), MaxTop)
		if err != nil {
			rt.Fatal(err)
		}
		if o.Today.Spend != total || o.Month.Spend != total || o.Today.Requests != requests {
			rt.Fatalf("today %+v month %+v; want %s over %d requests", o.Today, o.Month, total, requests)
		}
		if len(o.TopToday) != len(spend) {
			rt.Fatalf("top %+v, want %d accounts", o.TopToday, len(spend))
		}
		for i, a := range o.TopToday {
			if spend[a.Account] != a.Spend || (i > 0 && o.TopToday[i-1].Spend < a.Spend) {
				rt.Fatalf("top %+v, want %v, most first", o.TopToday, spend)
			}
		}
		for reason, n := range denied {
			if o.DeniedToday[reason] != n {
				rt.Fatalf("denied %v, want %v", o.DeniedToday, denied)
			}
		}
		_ = testredis.DeletePrefix(context.Background(), r.Client, prefix)
	})
}
