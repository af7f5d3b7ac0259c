package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/redisproc"
	"github.com/creditgate/creditgate/internal/testing/testredis"
)

// replicatedEnv is an env on a master of the test's own with one replica, the
// store reaching the master with the connection settings the product uses.
type replicatedEnv struct {
	*env
	master, replica *redisproc.Server
}

// newReplicatedEnv starts both servers with args.
func newReplicatedEnv(t *testing.T, d Durability, args ...string) *replicatedEnv {
	t.Helper()
	master := redisproc.Start(t, args...)
	replica := redisproc.StartReplica(t, master.Addr(), args...)
	// Patient timeouts: a confirmation that should succeed must not time out on a
	// busy machine (the wait's answer is read within Timeout).
	conn, err := Connect(context.Background(), ConnOptions{URL: "redis://" + master.Addr(), Timeout: 5 * time.Second, MaxRetries: 2, OperationTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	conn.Client.AddHook(testredis.SlotGuard())
	t.Cleanup(func() { conn.Close() })
	c := newClock()
	s, err := New(conn.Client, Options{Prefix: "cgtest:", Now: c.Now, Durability: d})
	if err != nil {
		t.Fatal(err)
	}
	return &replicatedEnv{env: &env{Store: s, clock: c, ctx: context.Background()}, master: master, replica: replica}
}

// onReplica is the store read straight from the replica (a read-only client).
func (e *replicatedEnv) onReplica(t *testing.T) *Store {
	t.Helper()
	s, err := New(e.replica.Client(), Options{Prefix: "cgtest:", Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// notDurable fails unless err says the change was not confirmed, as a 503 the
// caller retries.
func notDurable(t *testing.T, what string, err error, detail string) {
	t.Helper()
	if !errors.Is(err, billing.ErrNotDurable) || !errors.Is(err, billing.ErrUnavailable) {
		t.Fatalf("%s: %v, want billing.ErrNotDurable (an ErrUnavailable)", what, err)
	}
	if !strings.Contains(err.Error(), detail) {
		t.Fatalf("%s: %q does not say %q", what, err, detail)
	}
}

// Money coming in is acknowledged only once the replica has it. While the replica
// lags, a top-up, an adjustment and a recharge's credit are made on the master
// but answered ErrNotDurable after the wait's timeout; retried with the same ids
// once the replica is back, each is answered from its record (applied once) and
// confirmed.
func TestMoneyInWaitsForTheReplica(t *testing.T) {
	const wait = time.Second
	e := newReplicatedEnv(t, Durability{Replicas: 1, Timeout: wait})
	e.account(t, "acme", "10.00") // confirmed: the replica is up
	if a, err := e.onReplica(t).GetAccount(e.ctx, "acme"); err != nil || a.Credit != usd("10.00") {
		t.Fatalf("the replica has %+v, %v right after the acknowledged top-up; want its 10.00", a, err)
	}
	e.setAR(t, "acme", "9.00", "10.00", "100.00")
	if s := e.spend(t, "acme", "h1", usd("2.00"), arOn); s.RechargeID != "rc_h1" {
		t.Fatalf("no recharge started: %+v", s)
	}
	if _, err := e.ClaimRecharge(e.ctx, "acme", "rc_h1", time.Minute); err != nil {
		t.Fatal(err)
	}

	e.replica.Pause()
	topUp := billing.TopUpRequest{Account: "acme", GrantID: "grant_k1", Amount: usd("20.00"), IdempotencyKey: "k1", Fingerprint: "fp1"}
	adjust := billing.AdjustRequest{Amount: -usd("1.00"), Reason: "refund taken back", IdempotencyKey: "k2"}
	calls := []struct {
		name string
		do   func() (replayed bool, err error)
	}{
		{"top-up", func() (bool, error) { r, err := e.TopUp(e.ctx, testPolicy, topUp); return r.Replayed, err }},
		{"adjustment", func() (bool, error) { r, err := e.Adjust(e.ctx, testPolicy, "acme", adjust); return r.Replayed, err }},
		{"recharge credit", func() (bool, error) {
			r, err := e.CompleteRecharge(e.ctx, "acme", "rc_h1", billing.RechargeCredit{CreditTTL: testPolicy.CreditTTL, PaymentRef: ""})
			return r.Replayed, err
		}},
	}
	for _, c := range calls {
		start := time.Now()
		_, err := c.do()
		notDurable(t, c.name+" while the replica lags", err, "0 of 1 replicas confirmed within 1s")
		if took := time.Since(start); took < wait {
			t.Fatalf("%s answered after %s, before the wait's %s", c.name, took, wait)
		}
	}
	// Made on the master all the same: 10 − 2 + 20 − 1 + 10.
	if a := e.get(t, "acme"); a.Balance() != usd("37.00") {
		t.Fatalf("balance on the master %s, want 37.00", a.Balance())
	}

	e.replica.Resume()
	for _, c := range calls {
		replayed, err := c.do()
		if err != nil || !replayed {
			t.Fatalf("%s retried once the replica is back: replayed %v, %v; want the original, confirmed", c.name, replayed, err)
		}
	}
	a, err := e.onReplica(t).GetAccount(e.ctx, "acme")
	if err != nil || a.Balance() != usd("37.00") {
		t.Fatalf("the replica has %+v, %v; want balance 37.00", a, err)
	}
	checkConservation(t, e.env, "acme")
}

// More replicas asked for than exist: nothing is ever confirmed, and the error says
// how many did. The wait is long enough for the one replica to confirm on a busy
// machine (it always runs out: two are asked for).
func TestMoreReplicasThanThereAre(t *testing.T) {
	e := newReplicatedEnv(t, Durability{Replicas: 2, Timeout: 2 * time.Second})
	if _, err := e.CreateAccount(e.ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: usd("10.00")})
	notDurable(t, "top-up", err, "1 of 2 replicas confirmed within 2s")
	rep, err := e.CheckDurability(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replicas != 1 || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "answers 503") {
		t.Fatalf("CheckDurability: %+v; want 1 replica and a warning that money in answers 503", rep)
	}
}

// The event of a change a failover lost is not on the (new) master: durable
// refuses to confirm it, whatever the replicas say.
func TestLostEventIsNotConfirmed(t *testing.T) {
	e := newReplicatedEnv(t, Durability{Replicas: 1, Timeout: 2 * time.Second})
	e.account(t, "acme", "10.00")
	notDurable(t, "an event that is not there", e.durable(e.ctx, "acme", "1-0"), "not on the master")
	if err := e.durable(e.ctx, "acme", e.events(t, "acme")[0].ID); err != nil {
		t.Fatalf("the top-up's own event: %v", err)
	}
}

// redis.wait.aof: WAITAOF on Redis 7.2 and later; on an earlier Redis, which has
// none, the first confirmation learns so and counts replicas with WAIT, and
// CheckDurability warns. Either way a top-up is confirmed once the replica has it.
func TestWaitAOFOrItsFallback(t *testing.T) {
	e := newReplicatedEnv(t, Durability{Replicas: 1, AOF: true, Timeout: time.Second}, "--appendonly", "yes")
	e.account(t, "acme", "10.00")
	learnt := e.waitAOF.Load()
	rep, err := e.CheckDurability(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.AppendOnly || rep.Replicas != 1 {
		t.Fatalf("CheckDurability: %+v; want appendonly and 1 replica", rep)
	}
	version := infoFields(e.master.Client().Info(e.ctx, "server").Val())["redis_version"]
	switch {
	case versionAtLeast(version, 7, 2):
		if learnt != waitAOFYes || !rep.WaitAOF || len(rep.Warnings) != 0 {
			t.Fatalf("Redis %s: %+v, WAITAOF state %d after the top-up; want WAITAOF used, no warning", version, rep, learnt)
		}
	default:
		if learnt != waitAOFNo {
			t.Fatalf("Redis %s: the top-up did not learn that WAITAOF is missing (state %d)", version, learnt)
		}
		if rep.WaitAOF || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "no WAITAOF") {
			t.Fatalf("Redis %s: CheckDurability %+v; want a warning that WAITAOF is missing", version, rep)
		}
	}
	e.replica.Pause()
	_, err = e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "acme", GrantID: "g2", Amount: usd("10.00")})
	e.replica.Resume()
	notDurable(t, "top-up while the replica lags", err, "0 of 1 replicas")
}

// WAIT must reach the master owning the account's slot: on a Redis Cluster, the
// confirmation of accounts spread over every master finds each one's event
// there and writes its marker there (on any other node the event is missing, and
// a write is MOVED). With no replica asked for, WAIT answers at once. Runs on the
// cluster CI starts (CREDITGATE_TEST_REDIS_CLUSTER) and on a single Redis.
func TestConfirmationRunsOnTheAccountsMaster(t *testing.T) {
	r := testredis.New(t)
	e := newEnv(t, r)
	masters := map[string]bool{}
	for i := range 24 {
		id := fmt.Sprintf("acct%d", i)
		e.account(t, id, "10.00")
		ev := e.events(t, id)[0].ID
		if _, _, err := e.confirm(e.ctx, id, ev, 0, false); err != nil {
			t.Fatalf("confirming %s's top-up %s: %v", id, ev, err)
		}
		if cc, ok := r.Client.(*redis.ClusterClient); ok {
			node, err := cc.MasterForKey(e.ctx, e.ledgerKey(id))
			if err != nil {
				t.Fatal(err)
			}
			masters[node.Options().Addr] = true
			if v, err := node.Get(e.ctx, e.durableKey(id)).Result(); err != nil || v != ev {
				t.Fatalf("marker of %s on its master: %q, %v; want %s", id, v, err, ev)
			}
		}
		if _, _, err := e.confirm(e.ctx, id, "1-0", 0, false); err == nil || !strings.Contains(err.Error(), "not on the master") {
			t.Fatalf("confirming a missing event of %s: %v", id, err)
		}
	}
	if r.Kind == testredis.KindCluster && len(masters) < 2 {
		t.Fatalf("24 accounts landed on %d master(s); the test needs them spread", len(masters))
	}
	if r.Kind == testredis.KindMemory {
		return
	}
	// CI's Redis and cluster have no replicas: asking for one is never confirmed,
	// and CheckDurability (every master, on a cluster) says so.
	s, err := New(r.Client, Options{Prefix: r.Prefix, Now: e.clock.Now, Durability: Durability{Replicas: 1, Timeout: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.CheckDurability(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replicas != 0 {
		t.Skipf("this Redis has %d replica(s)", rep.Replicas)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "answers 503") {
		t.Fatalf("CheckDurability: %+v; want the warning that nothing can be confirmed", rep)
	}
	_, err = s.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "acct0", GrantID: "g-more", Amount: usd("10.00")})
	notDurable(t, "top-up with no replica", err, "0 of 1 replicas confirmed within 50ms")
}

// CheckDurability's warnings, one case each.
func TestDurabilityWarnings(t *testing.T) {
	tests := []struct {
		name string
		d    Durability
		rep  DurabilityReport
		want []string
	}{
		{"off, no replicas", Durability{}, DurabilityReport{WaitAOF: true, AppendOnly: true}, nil},
		{"off, a replica", Durability{}, DurabilityReport{Replicas: 1}, []string{"set redis.wait.replicas: 1"}},
		{"one of one", Durability{Replicas: 1}, DurabilityReport{Replicas: 1}, nil},
		{"two of one", Durability{Replicas: 2}, DurabilityReport{Replicas: 1}, []string{"answers 503"}},
		{"aof without WAITAOF", Durability{Replicas: 1, AOF: true}, DurabilityReport{Replicas: 1, AppendOnly: true}, []string{"no WAITAOF"}},
		{"aof without an AOF", Durability{AOF: true}, DurabilityReport{WaitAOF: true}, []string{"appendonly no"}},
		{"aof", Durability{AOF: true}, DurabilityReport{WaitAOF: true, AppendOnly: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.d.warnings(tt.rep)
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %q does not say %q", got[i], w)
				}
			}
		})
	}
}

func TestVersionAtLeast(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{{"7.2.0", true}, {"7.0.15", false}, {"8.0.1", true}, {"6.2.14", false}, {"7.10.1", true}, {"", false}, {"7", false}, {"x.y", false}} {
		if got := versionAtLeast(tt.v, 7, 2); got != tt.want {
			t.Errorf("versionAtLeast(%q, 7, 2) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// A master that refuses writes for want of replicas (min-replicas-to-write) is an
// outage, answered 503 (or spooled), not a bug.
func TestReplyErrorsThatMeanUnavailable(t *testing.T) {
	for _, tt := range []struct {
		reply string
		want  bool
	}{
		{"NOREPLICAS Not enough good replicas to write.", true},
		{"READONLY You can't write against a read only replica.", true},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", false},
	} {
		if got := errors.Is(wrap(errors.New(tt.reply)), billing.ErrUnavailable); got != tt.want {
			t.Errorf("%q: unavailable = %v, want %v", tt.reply, got, tt.want)
		}
	}
}

// Settlements are not waited for; min-replicas-to-write bounds what a failover
// can lose of them. With min-replicas-to-write 1 and min-replicas-max-lag 1, a
// master whose only replica stops acknowledging accepts settlements for at most
// about max-lag + 2 s (replicas acknowledge every second, and Redis counts the
// lag in whole seconds), then refuses every write with NOREPLICAS, which the
// store reports as ErrUnavailable: the proxy spools the settlement, and replays it
// once a replica is back.
func TestMinReplicasToWriteBoundsTheLagWindow(t *testing.T) {
	const maxLag = time.Second
	e := newReplicatedEnv(t, Durability{}, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "1")
	// The master takes writes once it counts the replica as good (acknowledged
	// within max-lag): on a busy machine that can take a moment after the sync.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := e.master.Client().Info(e.ctx, "replication").Result()
		if err == nil && strings.Contains(info, "min_slaves_good_slaves:1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master never counted its replica as good: %v\n%s", err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.account(t, "acme", "100.00")
	e.replica.Pause()
	paused := time.Now()
	var refused error
	accepted := 0
	for i := 0; refused == nil; i++ {
		hold := fmt.Sprintf("h%d", i)
		if _, err := e.Reserve(e.ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: usd("0.01"), TTL: time.Minute}); err != nil {
			refused = err
			break
		}
		if _, err := e.Settle(e.ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: usd("0.01")}); err != nil {
			refused = err
			break
		}
		accepted++
		if time.Since(paused) > maxLag+5*time.Second {
			t.Fatalf("the master still accepts writes %s after its replica stopped", time.Since(paused))
		}
		time.Sleep(10 * time.Millisecond)
	}
	window := time.Since(paused)
	if !errors.Is(refused, billing.ErrUnavailable) || !strings.Contains(refused.Error(), "NOREPLICAS") {
		t.Fatalf("refusal %v, want NOREPLICAS as billing.ErrUnavailable", refused)
	}
	if window > maxLag+3*time.Second || accepted == 0 {
		t.Fatalf("writes accepted for %s (%d settlements) after the replica stopped; want some, for at most max-lag + 2 s (and 1 s margin)", window, accepted)
	}
	e.replica.Resume()
	t.Logf("min-replicas-max-lag %s: the master took %d un-replicated settlements for %s after its replica stopped, then refused writes (NOREPLICAS → 503, spooled)",
		maxLag, accepted, window.Round(100*time.Millisecond))
}
