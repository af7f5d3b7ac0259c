package redisstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/faultproxy"
)

// TestLostPurchaseRepliesNeverDoubleBook drops the reply of each script that
// moves a purchase's money, after Redis ran it. go-redis resends it; each is
// idempotent (the grant id is the purchase id; a take-back by its cumulative
// amount), so the resent one answers as the first did and the ledger books one
// grant and one take-back.
func TestLostPurchaseRepliesNeverDoubleBook(t *testing.T) {
	for _, fault := range []faultproxy.Fault{faultproxy.DropReplyAndClose, faultproxy.DropReplyAndHang} {
		t.Run(fmt.Sprint(map[faultproxy.Fault]string{faultproxy.DropReplyAndClose: "close", faultproxy.DropReplyAndHang: "hang"}[fault]), func(t *testing.T) {
			e := newFaultyEnv(t, ConnOptions{Timeout: 300 * time.Millisecond, MaxRetries: 2, OperationTimeout: 3 * time.Second})
			ctx := e.ctx
			e.account(t, "acme")
			e.purchase(t, "acme", "pur_1", "10.00")
			// Load the scripts first (an unknown account's call changes nothing), so
			// that each dropped reply is the script's own, not a NOSCRIPT answer.
			e.CompletePurchase(ctx, testPolicy, "nobody", "pur_x", billing.PaymentReport{Amount: 1})
			e.TakeBack(ctx, billing.TakeBackRequest{PaymentRef: "pi_none", Upto: 1, Reason: "warm-up"})
			e.indexPayment(ctx, "pi_warm", "nobody", "pur_x")
			e.reserve(t, "acme", "h1", usd("4.00"), 0)
			// lose drops the reply of sc's next run: other commands of the same
			// call (the payment index) pass, so the lost reply is the script's.
			var armed atomic.Pointer[script]
			e.Store.c.(interface{ AddHook(redis.Hook) }).AddHook(dropBefore{proxy: e.proxy, fault: fault, armed: &armed})
			lose := func(sc *script, do func() error) {
				t.Helper()
				before := e.proxy.Dropped()
				armed.Store(sc)
				if err := do(); err != nil {
					t.Fatalf("%s with a lost reply: %v (go-redis should have resent it)", sc.name, err)
				}
				if e.proxy.Dropped() != before+1 || armed.Load() != nil {
					t.Fatalf("%s: no reply was dropped", sc.name)
				}
			}
			var paid billing.TopUpResult
			lose(completePurchaseScript, func() error {
				var err error
				paid, err = e.CompletePurchase(ctx, testPolicy, "acme", "pur_1", billing.PaymentReport{Amount: usd("10.00"), PaymentRef: "pi_1"})
				return err
			})
			if paid.Grant.ID != "pur_1" || paid.Grant.Amount != usd("10.00") {
				t.Fatalf("completion %+v", paid)
			}
			e.settle(t, "acme", "h1", usd("4.00"))
			var first billing.TakeBackResult
			lose(takeBackScript, func() error {
				var err error
				first, err = e.TakeBack(ctx, billing.TakeBackRequest{PaymentRef: "pi_1", Upto: usd("3.00"), Reason: "refund"})
				return err
			})
			// The resent take-back found its own record: it answers "nothing more".
			if first.Total != usd("3.00") {
				t.Fatalf("take-back %+v; want 3.00 taken in all", first)
			}
			d := &env{Store: e.direct, clock: e.clock, redis: e.redis, ctx: ctx}
			a := checkAudit(t, d, "acme")
			if a.Totals.Granted != usd("10.00") || a.Totals.AdjustedOut != usd("3.00") || a.Credit != usd("3.00") {
				t.Fatalf("granted %s adjusted out %s credit %s; want one grant of 10.00 and one take-back of 3.00", a.Totals.Granted, a.Totals.AdjustedOut, a.Credit)
			}
			evs := d.events(t, "acme")
			if countEvents(evs, billing.EventTopUp) != 1 || countEvents(evs, billing.EventAdjustment) != 1 {
				t.Fatalf("ledger %+v; want one topup and one adjustment", evs)
			}
		})
	}
}

// dropBefore is a go-redis hook that arms the fault proxy to drop one reply just
// before the armed script's EVALSHA is sent (once).
type dropBefore struct {
	proxy *faultproxy.Proxy
	fault faultproxy.Fault
	armed *atomic.Pointer[script]
}

func (h dropBefore) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h dropBefore) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if sc := h.armed.Load(); sc != nil && cmd.Name() == "evalsha" && len(cmd.Args()) > 1 && cmd.Args()[1] == sc.Hash() {
			h.armed.Store(nil)
			h.proxy.DropReplies(1, h.fault)
		}
		return next(ctx, cmd)
	}
}

func (h dropBefore) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
