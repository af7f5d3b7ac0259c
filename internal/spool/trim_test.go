package spool

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// TestReplayAfterTrimNeverBooksTwice replays, a day later, settlements whose
// holds' records ran out meanwhile, on the real store, after the ledger was
// trimmed to a retention shorter than that: a hold whose usage event was trimmed
// (the store applied its settle, the reply was lost) is set aside in
// rejected.log, never booked a second time; a hold whose events are still there
// (its usage, or the hold_expired of one never settled) is answered from them as
// before: replayed, or booked once.
func TestReplayAfterTrimNeverBooksTwice(t *testing.T) {
	r := testredis.New(t)
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix, Now: clock.Now, HoldRecordRetention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	policy := billing.Policy{MinPurchase: 1, CreditTTL: 365 * 24 * time.Hour, Tiers: map[string]billing.Tier{"t": {}}}
	if _, err := store.CreateAccount(ctx, "acme", "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, policy, billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: money.MustParse("100.00")}); err != nil {
		t.Fatal(err)
	}
	reserve := func(hid string) {
		t.Helper()
		if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: hid, Estimate: money.MustParse("1.00"), TTL: 15 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(hid string) billing.PendingSettlement {
		return billing.PendingSettlement{At: clock.Now(), Settle: billing.SettleRequest{Account: "acme", HoldID: hid, Cost: money.MustParse("0.40")}}
	}
	dir := t.TempDir()
	sp := open(t, dir, clock.Now)
	// old: settled in the store, its reply lost, spooled; its usage will be trimmed.
	reserve("old")
	if _, err := store.Settle(ctx, settle("old").Settle); err != nil {
		t.Fatal(err)
	}
	if err := sp.Save(settle("old")); err != nil {
		t.Fatal(err)
	}
	// never: the store was down for its settle; it expires unsettled later.
	reserve("never")
	if err := sp.Save(settle("never")); err != nil {
		t.Fatal(err)
	}
	// recent: settled a day later, its reply lost too; its usage is kept.
	clock.Advance(25 * time.Hour)
	reserve("recent")
	if _, err := store.Settle(ctx, settle("recent").Settle); err != nil {
		t.Fatal(err)
	}
	if err := sp.Save(settle("recent")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetAccount(ctx, "acme"); err != nil { // sweeps: never's hold_expired
		t.Fatal(err)
	}
	// The hold records ran out (HoldRecordRetention, by the store's TTLs: here by hand).
	for _, hid := range []string{"old", "never", "recent"} {
		if err := r.Client.Del(ctx, r.Prefix+"{acct:acme}:hold:"+hid).Err(); err != nil {
			t.Fatal(err)
		}
	}
	trim, err := store.TrimLedger(ctx, "acme", "+", clock.Now().Add(-24*time.Hour))
	if err != nil || trim.Removed != 2 { // the top-up and old's usage
		t.Fatalf("trim: %+v %v", trim, err)
	}
	before, _ := store.GetAccount(ctx, "acme")

	res, err := sp.Replay(ctx, store)
	if err != nil || res.Rejected != 1 || res.Replayed != 1 || res.Applied != 1 {
		t.Fatalf("replay: %+v %v; want old rejected, recent replayed, never applied", res, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, rejectedName))
	if err != nil || !strings.Contains(string(data), `"old"`) || strings.Contains(string(data), `"recent"`) {
		t.Fatalf("rejected.log: %q %v; want old's settlement alone", data, err)
	}
	after, err := store.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Totals.Usage - before.Totals.Usage; got != money.MustParse("0.40") {
		t.Errorf("the replay charged %s, want 0.40 (never's late settle, nothing for old or recent)", got)
	}
	rep, err := billing.AuditAccount(ctx, store, "acme")
	if err != nil || !rep.OK() {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}
