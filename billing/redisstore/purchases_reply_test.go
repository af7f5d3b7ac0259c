package redisstore

import "github.com/creditgate/creditgate/billing"

// The reply cases of the purchase, payment and portal scripts, added to
// reply_test.go's table: every decoder rejects what its contract does not give.

var testLinkHash = billing.HashKey("link-token")

// purchaseRec is a purchase record as HGETALL answers it.
var purchaseRec = []any{"fp", "ab12", "amount", "10000000", "status", "pending", "provider", "stripe", "save_card", "0", "actor", "portal", "created", msNow}

func init() {
	for name, d := range map[string]func(r reply) error{
		"create_purchase.lua": func(r reply) error {
			_, _, err := decodeCreatePurchase(r, billing.NewPurchaseRequest{Account: "acme", ID: "pur_1", Amount: 1})
			return err
		},
		"attach_checkout.lua":   func(r reply) error { _, err := decodeAttachCheckout(r, "acme", "pur_1"); return err },
		"complete_purchase.lua": func(r reply) error { _, err := decodeCompletePurchase(r, "acme", "pur_1"); return err },
		"end_purchase.lua":      func(r reply) error { _, err := decodeEndPurchase(r, "acme", "pur_1"); return err },
		"take_back.lua":         func(r reply) error { _, err := decodeTakeBack(r, "pi_1", "acme"); return err },
		"list_purchases.lua":    func(r reply) error { _, err := decodeListPurchases(r, "acme"); return err },
		"index_payment.lua":     func(r reply) error { return decodeIndexPayment(r, "pi_1") },
		"portal_put.lua":        decodePortalPut,
		"portal_take.lua":       func(r reply) error { _, err := decodePortalTake(r, testLinkHash); return err },
	} {
		decoders[name] = d
	}
	replyCases = append(replyCases,
		replyCase{script: "create_purchase.lua", valid: []any{"OK", "0", purchaseRec}, flags: []int{1}},
		replyCase{script: "create_purchase.lua", valid: []any{"TIER", "free"}},
		replyCase{script: "create_purchase.lua", valid: []any{"NOACCOUNT"}},
		replyCase{script: "create_purchase.lua", valid: []any{"CONFLICT"}},
		replyCase{script: "create_purchase.lua", valid: []any{"BELOW", "5000000"}, numeric: []int{1}},
		replyCase{script: "create_purchase.lua", valid: []any{"ABOVE_TOPUP", "100000000"}, numeric: []int{1}},
		replyCase{script: "create_purchase.lua", valid: []any{"ABOVE_BALANCE", "1000000000", "1000000001"}, numeric: []int{1, 2}},
		replyCase{script: "attach_checkout.lua", valid: []any{"OK", purchaseRec}},
		replyCase{script: "attach_checkout.lua", valid: []any{"NOPURCHASE"}},
		replyCase{script: "attach_checkout.lua", valid: []any{"CONFLICT", "cs_1"}},
		replyCase{script: "complete_purchase.lua", valid: []any{"OK", "pur_1", "10000000", "10000000", msNow, msLater, "purchase", "1-0", "0", "10000000"},
			numeric: []int{2, 3, 4, 5, 8, 9}},
		replyCase{script: "complete_purchase.lua", valid: []any{"REPLAY", "pur_1", "10000000", "8000000", msNow, msLater, "purchase", "1-0", "2000000", "8000000"},
			numeric: []int{2, 3, 4, 5, 8, 9}},
		replyCase{script: "complete_purchase.lua", valid: []any{"NOACCOUNT"}},
		replyCase{script: "complete_purchase.lua", valid: []any{"NOPURCHASE"}},
		replyCase{script: "complete_purchase.lua", valid: []any{"REF_TAKEN", "pur_0"}},
		replyCase{script: "complete_recharge.lua", valid: []any{"REF_TAKEN", "pur_0"}},
		replyCase{script: "end_purchase.lua", valid: []any{"OK", "1", purchaseRec}, flags: []int{1}},
		replyCase{script: "end_purchase.lua", valid: []any{"NOPURCHASE"}},
		replyCase{script: "take_back.lua", valid: []any{"OK", "6000000", "6000000", "4000000", "1-3"}, numeric: []int{1, 2, 3}},
		replyCase{script: "take_back.lua", valid: []any{"OK", "0", "6000000", "0", ""}, numeric: []int{1, 2, 3}},
		replyCase{script: "take_back.lua", valid: []any{"UNKNOWN"}},
		replyCase{script: "take_back.lua", valid: []any{"NOACCOUNT"}},
		replyCase{script: "list_purchases.lua", valid: []any{"OK", "pur_2", "pur_1"}, variadic: true},
		replyCase{script: "list_purchases.lua", valid: []any{"NOACCOUNT"}},
		replyCase{script: "index_payment.lua", valid: []any{"OK"}},
		replyCase{script: "index_payment.lua", valid: []any{"TAKEN", "beta", "pur_9"}},
		replyCase{script: "portal_put.lua", valid: []any{int64(1)}},
		replyCase{script: "portal_take.lua", valid: []any{"hash", testLinkHash.Hex(), "account", "acme", "return_url", "", "actor", "ops", "expires", msLater}},
		replyCase{script: "portal_take.lua", valid: []any{}},
	)
	malformedReplies = append(malformedReplies,
		struct {
			script string
			v      []any
		}{"create_purchase.lua", []any{"OK", "0", []any{"fp", "ab", "amount", "10.00", "status", "pending", "provider", "stripe", "save_card", "0", "created", msNow}}},
		struct {
			script string
			v      []any
		}{"create_purchase.lua", []any{"OK", "0", []any{"fp", "ab", "amount", "10", "status", "lost", "provider", "stripe", "save_card", "0", "created", msNow}}},
		struct {
			script string
			v      []any
		}{"attach_checkout.lua", []any{"OK", []any{"amount", "10", "status", "pending", "provider", "stripe", "save_card", "0", "created", msNow}}},
		struct {
			script string
			v      []any
		}{"end_purchase.lua", []any{"OK", "1", []any{"fp", "ab", "amount", "10", "status", "failed", "provider", "stripe", "save_card", "yes", "created", msNow}}},
		struct {
			script string
			v      []any
		}{"portal_put.lua", []any{int64(0)}},
		struct {
			script string
			v      []any
		}{"portal_take.lua", []any{"hash", billing.HashKey("another").Hex(), "account", "acme", "expires", msLater}},
	)
}
