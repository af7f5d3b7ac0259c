package redisstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
)

// A reply decoder's case: a well-formed reply of the script and which of its
// elements are numbers or flags.
type replyCase struct {
	script  string
	valid   []any
	numeric []int // integers: amounts, times, counts
	flags   []int // "1" or "0"
	// variadic: the reply may be one element shorter (a list at its end).
	variadic bool
}

// decoders decode a reply of each script as the Store does, returning the error.
var decoders = map[string]func(r reply) error{
	"create_account.lua": func(r reply) error { _, err := decodeCreateAccount(r, "acme", "tier-1"); return err },
	"set_fields.lua":     func(r reply) error { return decodeExists(r, "acme") },
	"add_key.lua":        func(r reply) error { return decodeExists(r, "acme") },
	"key_state.lua": func(r reply) error {
		_, err := decodeKeyState(r, "acme", "key_1", billing.KeyHash{})
		return err
	},
	"update_key.lua": func(r reply) error { return decodeUpdateKey(r, "key_1") },
	"state.lua":      func(r reply) error { _, err := parseState("acme", r); return err },
	"reserve.lua": func(r reply) error {
		_, err := decodeReserve(r, billing.ReserveRequest{Account: "acme", HoldID: "h"})
		return err
	},
	"settle.lua": func(r reply) error {
		_, err := decodeSettle(r, billing.SettleRequest{Account: "acme", HoldID: "h"})
		return err
	},
	"release.lua": func(r reply) error { _, err := decodeRelease(r, "acme"); return err },
	"top_up.lua": func(r reply) error {
		_, _, err := decodeTopUp(r, billing.TopUpRequest{Account: "acme"}, time.Now())
		return err
	},
	"adjust.lua": func(r reply) error {
		_, err := decodeAdjust(r, "acme", billing.AdjustRequest{Amount: 1}, 0)
		return err
	},
	"sweep.lua":             func(r reply) error { _, err := decodeSweep(r, "acme"); return err },
	"claim_recharge.lua":    func(r reply) error { _, err := decodeClaimRecharge(r, "acme", "rc_1"); return err },
	"complete_recharge.lua": func(r reply) error { _, err := decodeCompleteRecharge(r, "acme", "rc_1"); return err },
	"fail_recharge.lua":     func(r reply) error { _, err := decodeFailRecharge(r, "acme", "rc_1"); return err },
	"claim_notices.lua":     func(r reply) error { _, _, err := decodeClaimNotices(r, "acme"); return err },
	"update_account.lua":    func(r reply) error { _, err := decodeUpdateAccount(r, "acme"); return err },
	"trim.lua":              func(r reply) error { _, _, err := decodeTrim(r, "acme"); return err },
}

const (
	msNow    = "1773144000000"
	msLater  = "1804680000000"
	zeroHash = "0000000000000000000000000000000000000000000000000000000000000000" // billing.KeyHash{}.Hex()
	grantRec = "5000000 5000000 " + msNow + " " + msLater + " purchase 1-0 0 5000000"
	rcRec    = "pending 5000000 2026-03 0 " + msNow
	ntcRec   = "balance.low " + msNow + " -100 1 " + msNow + " 1000000 - 0 0 "
)

// checkpointRec is a well-formed checkpoint hash (HGETALL reply), with the
// field/value pairs of over set or added.
func checkpointRec(over ...string) []any {
	f := [][2]string{{"event", "5-0"}, {"at", msNow}, {"events", "6"}, {"credit", "5000000"}, {"debt", "0"}, {"granted", "5000000"},
		{"usage", "0"}, {"consumed", "0"}, {"repaid", "0"}, {"expired", "0"}, {"adjusted_out", "0"}, {"paid", "5000000"},
		{"grants", "1"}, {"tier", ""}, {"pending_repay", "0"}, {"pending_grant", ""}}
	for i := 0; i+1 < len(over); i += 2 {
		found := false
		for j := range f {
			if f[j][0] == over[i] {
				f[j][1], found = over[i+1], true
			}
		}
		if !found {
			f = append(f, [2]string{over[i], over[i+1]})
		}
	}
	out := make([]any, 0, 2*len(f))
	for _, kv := range f {
		out = append(out, kv[0], kv[1])
	}
	return out
}

var replyCases = []replyCase{
	{script: "update_account.lua", valid: []any{"OK", "1-0", "1-1", `[["status","","suspended"]]`}},
	{script: "update_account.lua", valid: []any{"OK", "", "", ""}},
	{script: "update_account.lua", valid: []any{"NOACCOUNT"}},
	{script: "create_account.lua", valid: []any{"OK", msNow}, numeric: []int{1}},
	{script: "create_account.lua", valid: []any{"EXISTS"}},
	{script: "set_fields.lua", valid: []any{int64(1)}},
	{script: "set_fields.lua", valid: []any{int64(0)}},
	{script: "add_key.lua", valid: []any{int64(1)}},
	{script: "key_state.lua", valid: []any{"OK", "v2 " + zeroHash + " " + msNow + " sk-…x1 limit=5000000 app", "suspended"}},
	{script: "key_state.lua", valid: []any{"OK", "v2 " + zeroHash + " " + msNow + " sk-…x1 - app", ""}},
	{script: "key_state.lua", valid: []any{"NOKEY"}},
	{script: "key_state.lua", valid: []any{"NOACCOUNT"}},
	{script: "update_key.lua", valid: []any{"OK"}},
	{script: "update_key.lua", valid: []any{"CHANGED"}},
	{script: "update_key.lua", valid: []any{"NOKEY"}},
	{script: "update_key.lua", valid: []any{"NOACCOUNT"}},
	{script: "state.lua", valid: []any{
		[]any{"tier", "tier-1", "created_at", msNow, "credit", "5000000", "debt", "0", "reserved", "0", "rc_fails", "0"},
		[]any{"g1", grantRec}, "1-0", []any{}}},
	{script: "state.lua", valid: []any{
		[]any{"tier", "tier-1", "created_at", msNow, "credit", "5000000", "debt", "0", "reserved", "0", "rc_fails", "0"},
		[]any{"g1", grantRec}, "7-0", checkpointRec("g:g1", "5000000 0 pi 1")}},
	{script: "state.lua", valid: []any{"NOACCOUNT"}},
	{script: "trim.lua", valid: []any{"OK", "1000", "5-0", "1200", "1"}, numeric: []int{1, 3}, flags: []int{4}},
	{script: "trim.lua", valid: []any{"OK", "0", "", "0", "0"}, numeric: []int{1, 3}, flags: []int{4}},
	{script: "trim.lua", valid: []any{"NOACCOUNT"}},
	{script: "reserve.lua", valid: []any{"OK", "100", "4999900", msNow, "key_limit"}, numeric: []int{1, 2, 3}},
	{script: "reserve.lua", valid: []any{"DENY", "empty", "-5"}, numeric: []int{2}},
	{script: "reserve.lua", valid: []any{"DONE", "settled"}},
	{script: "reserve.lua", valid: []any{"NOACCOUNT"}},
	{script: "settle.lua", valid: []any{"OK", "1-0", "100", "0", "4999900", "", ""}, numeric: []int{2, 3, 4}},
	{script: "settle.lua", valid: []any{"REPLAY", "settled", "1-0", "100", "100", "0", "4999900", "rc_h", "ntc_a_1 ntc_a_2"}, numeric: []int{3, 4, 5, 6}},
	{script: "settle.lua", valid: []any{"NOACCOUNT"}},
	{script: "release.lua", valid: []any{"OK", "1-1", "5000000"}, numeric: []int{2}},
	{script: "release.lua", valid: []any{"REPLAY", "released", "1-1", "0", "0", "0", "5000000"}, numeric: []int{3, 4, 5, 6}},
	{script: "release.lua", valid: []any{"REPLAY", "expired", "1-1", "0", "0", "0", "5000000"}, numeric: []int{3, 4, 5, 6}},
	{script: "top_up.lua", valid: []any{"OK", "g1", "5000000", "5000000", msNow, msLater, "purchase", "1-0", "0", "5000000", "0"},
		numeric: []int{2, 3, 4, 5, 8, 9}, flags: []int{10}},
	{script: "top_up.lua", valid: []any{"TIER", "free"}},
	{script: "top_up.lua", valid: []any{"CONFLICT"}},
	{script: "top_up.lua", valid: []any{"BELOW", "5000000"}, numeric: []int{1}},
	{script: "top_up.lua", valid: []any{"ABOVE_TOPUP", "100000000"}, numeric: []int{1}},
	{script: "top_up.lua", valid: []any{"ABOVE_BALANCE", "1000000000", "1000000001"}, numeric: []int{1, 2}},
	{script: "top_up.lua", valid: []any{"PAST_EXPIRY"}},
	{script: "adjust.lua", valid: []any{"OK", "adj_1", "2000000", "1-2", "adj_1", "0", "7000000", "7000000", "0", msNow, msLater, "1"},
		numeric: []int{2, 5, 6, 7, 8, 9, 10}, flags: []int{11}},
	{script: "adjust.lua", valid: []any{"INSUFFICIENT", "0", "100", "100"}, numeric: []int{1, 2, 3}},
	{script: "adjust.lua", valid: []any{"CONFLICT"}},
	{script: "sweep.lua", valid: []any{"OK", "0", "0", ""}, numeric: []int{1, 2}},
	{script: "sweep.lua", valid: []any{"OK", "5000000", "3", "rc_1", "ntc_acme_1"}, numeric: []int{1, 2}, variadic: true},
	{script: "sweep.lua", valid: []any{"NOACCOUNT"}},
	{script: "claim_recharge.lua", valid: []any{"OK", rcRec, "1"}, numeric: []int{2}},
	{script: "claim_recharge.lua", valid: []any{"GONE"}},
	{script: "claim_recharge.lua", valid: []any{"BUSY"}},
	{script: "complete_recharge.lua", valid: []any{"REPLAY", "rc_1", "5000000", "5000000", msNow, msLater, "auto_recharge", "1-0", "0", "5000000"},
		numeric: []int{2, 3, 4, 5, 8, 9}},
	{script: "complete_recharge.lua", valid: []any{"UNKNOWN"}},
	{script: "fail_recharge.lua", valid: []any{"OK", "ntc_acme_3", msLater}, numeric: []int{2}},
	{script: "fail_recharge.lua", valid: []any{"GONE"}},
	{script: "claim_notices.lua", valid: []any{"OK", "ntc_acme_1", ntcRec, "DROP", "ntc_acme_2", ntcRec}},
	{script: "claim_notices.lua", valid: []any{}},
}

// Malformed replies beyond what mutating a valid one gives: records inside
// replies, and values of the right type but out of the contract.
var malformedReplies = []struct {
	script string
	v      []any
}{
	{"set_fields.lua", []any{int64(2)}},
	{"key_state.lua", []any{"OK", "v2 " + zeroHash + " " + msNow + " sk-…x1 - app", "paused"}},
	{"update_account.lua", []any{"OK", "1-0", "", `{"status":"x"}`}},
	{"update_account.lua", []any{"OK", "1-0", "", `[["status","x"]]`}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", checkpointRec("credit", "1.5")}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", checkpointRec("events", "-1")}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", checkpointRec("event", "seven")}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", checkpointRec("g:g1", "5000000 0")}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", checkpointRec("g:g1", "5000000 x pi")}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{}, "7-0", []any{"event", "5-0"}}}, // figures missing
	{"trim.lua", []any{"OK", "3", "", "3", "0"}},                                         // removed events without a checkpoint
	{"trim.lua", []any{"OK", "-1", "5-0", "3", "0"}},
	{"state.lua", []any{[]any{"tier", "tier-1", "status", "paused"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "paid_total", "5.00"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "spend_limit", "x"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "credit", "1.5"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "rc_fails", "-1"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "credit"}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1", "credit", int64(5)}, []any{}, "", []any{}}},
	{"state.lua", []any{[]any{"credit", "5"}, []any{}, "", []any{}}}, // no tier
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{"g1", "5000000 5000000 " + msNow}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{"g1", strings.Replace(grantRec, "5000000", "5e6", 1)}, "", []any{}}},
	{"state.lua", []any{[]any{"tier", "tier-1"}, []any{"g1", strings.Replace(grantRec, msLater, "never", 1)}, "", []any{}}},
	{"reserve.lua", []any{"DENY", "empty", "9007199254740993"}},                             // beyond 2^53: not what a Lua number holds
	{"settle.lua", []any{"REPLAY", "expired", "1-0", "100", "100", "0", "4999900", "", ""}}, // a settle charges an expired hold
	{"sweep.lua", []any{"OK", "0", "-1", ""}},
	{"claim_recharge.lua", []any{"OK", "pending 5000000 2026-03", "1"}},
	{"claim_recharge.lua", []any{"OK", "pending x 2026-03 0 " + msNow, "1"}},
	{"claim_recharge.lua", []any{"OK", rcRec, "-1"}},
	{"claim_notices.lua", []any{"OK", "ntc_acme_1", "balance.low " + msNow}},
	{"claim_notices.lua", []any{"OK", "ntc_acme_1", strings.Replace(ntcRec, " 1 ", " one ", 1)}},
	{"claim_notices.lua", []any{"LEASED", "ntc_acme_1", ntcRec}},
}

// checkMalformed fails unless err is a malformed-reply error naming script.
func checkMalformed(t *testing.T, script, what string, v []any, err error) {
	t.Helper()
	var m *malformedError
	if !errors.As(err, &m) || !strings.Contains(err.Error(), script) {
		t.Errorf("%s, %s %#v: error %v, want a malformed-reply error naming %s", script, what, v, err, script)
	}
}

// Every decoder rejects, with an error naming its script, a reply of the wrong
// length, an element of the wrong type or nil, a number that is not a decimal
// integer within ±2^53, a flag that is not "1" or "0", an unknown status, and
// malformed records inside replies; and accepts the well-formed replies.
func TestDecodersRejectMalformedRepliesNamingTheScript(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range replyCases {
		covered[c.script] = true
		decode := decoders[c.script]
		if decode == nil {
			t.Fatalf("no decoder for %s", c.script)
		}
		try := func(v []any) error { return decode(reply{script: c.script, v: v}) }
		with := func(i int, x any) []any {
			v := append([]any(nil), c.valid...)
			v[i] = x
			return v
		}
		var m *malformedError
		if err := try(c.valid); errors.As(err, &m) {
			t.Errorf("%s: valid reply %#v: %v", c.script, c.valid, err)
		}
		if n := len(c.valid); n > 0 && !c.variadic {
			checkMalformed(t, c.script, "truncated", c.valid[:n-1], try(c.valid[:n-1]))
		}
		longer := append(append([]any(nil), c.valid...), int64(1))
		checkMalformed(t, c.script, "one element more", longer, try(longer))
		for i, x := range c.valid {
			other := any("x") // an element of another type than the valid one
			if _, isString := x.(string); isString {
				other = int64(7)
			}
			for _, bad := range []any{nil, other} {
				v := with(i, bad)
				checkMalformed(t, c.script, fmt.Sprintf("element %d", i), v, try(v))
			}
		}
		if len(c.valid) > 0 {
			if _, isString := c.valid[0].(string); isString {
				v := with(0, "BOGUS")
				checkMalformed(t, c.script, "status", v, try(v))
			}
		}
		for _, i := range c.numeric {
			for _, bad := range []string{"", "x", "1.5", "+1", "1e6", " 1", "9007199254740993", "-9007199254740993"} {
				v := with(i, bad)
				checkMalformed(t, c.script, fmt.Sprintf("number %d", i), v, try(v))
			}
		}
		for _, i := range c.flags {
			for _, bad := range []string{"", "2", "true"} {
				v := with(i, bad)
				checkMalformed(t, c.script, fmt.Sprintf("flag %d", i), v, try(v))
			}
		}
	}
	for _, c := range malformedReplies {
		checkMalformed(t, c.script, "malformed", c.v, decoders[c.script](reply{script: c.script, v: c.v}))
	}
	for _, s := range scripts {
		if !covered[s.name] {
			t.Errorf("%s: no reply case", s.name)
		}
	}
}

// The valid cases decode to what their elements say (spot checks: the strict
// decoders still read the right elements).
func TestDecodersReadTheirElements(t *testing.T) {
	res, err := decodeReserve(reply{script: "reserve.lua", v: []any{"OK", "100", "-4", msNow, "spend_limit"}}, billing.ReserveRequest{})
	if err != nil || !res.Admitted || res.Held != 100 || res.Available != -4 || res.ExpiresAt.UnixMilli() != 1773144000000 || res.LimitedBy != billing.ReasonSpendLimit {
		t.Errorf("reserve: %+v, %v", res, err)
	}
	st, err := decodeSettle(reply{script: "settle.lua", v: []any{"REPLAY", "settled", "1-0", "100", "60", "40", "-40", "rc_h", "n1 n2"}}, billing.SettleRequest{})
	if err != nil || !st.Replayed || st.EventID != "1-0" || st.Cost != 100 || st.FromCredit != 60 || st.ToDebt != 40 ||
		st.BalanceAfter != -40 || st.RechargeID != "rc_h" || len(st.Notices) != 2 {
		t.Errorf("settle replay: %+v, %v", st, err)
	}
	if _, _, err := decodeTopUp(reply{script: "top_up.lua", v: []any{"TIER", "free"}}, billing.TopUpRequest{}, time.Time{}); err != nil {
		t.Errorf("top-up TIER: %v, want a retry", err)
	}
	claimed, dropped, err := decodeClaimNotices(reply{script: "claim_notices.lua", v: []any{"OK", "n1", ntcRec, "DROP", "n2", ntcRec}}, "acme")
	if err != nil || len(claimed) != 1 || len(dropped) != 1 || claimed[0].Balance != -100 || claimed[0].Attempts != 1 || claimed[0].Threshold != 1000000 {
		t.Errorf("claim notices: %+v %+v, %v", claimed, dropped, err)
	}
	if err := decodeExists(reply{script: "set_fields.lua", v: []any{int64(0)}}, "acme"); !errors.Is(err, billing.ErrAccountNotFound) {
		t.Errorf("set fields 0: %v, want ErrAccountNotFound", err)
	}
}

// Ledger events and key entries, read from Redis without a script, are decoded as
// strictly: absent fields are zero, present ones must parse.
func TestStoredRecordsDecodeStrictly(t *testing.T) {
	good := map[string]any{"type": "usage", "at": msNow, "amount": "100", "balance_after": "-100", "prompt_tokens": "12"}
	if ev, err := parseEvent("acme", redis.XMessage{ID: "1-0", Values: good}); err != nil || ev.Amount != 100 || ev.BalanceAfter != -100 || ev.PromptTokens != 12 || ev.Cost != 0 {
		t.Fatalf("event: %+v, %v", ev, err)
	}
	for _, bad := range []map[string]any{
		{"type": "usage", "at": msNow, "amount": "1.00"},
		{"type": "usage", "at": "yesterday", "amount": "1"},
		{"type": "usage", "at": msNow, "amount": "1", "prompt_tokens": "1.5"},
		{"type": "usage", "at": msNow, "amount": int64(1)},
		{"at": msNow, "amount": "1"},
	} {
		_, err := parseEvent("acme", redis.XMessage{ID: "7-1", Values: bad})
		var m *malformedError
		if !errors.As(err, &m) || !strings.Contains(err.Error(), `ledger event 7-1 of account "acme"`) {
			t.Errorf("event %v: %v, want a malformed error naming the event", bad, err)
		}
	}
	if _, _, err := parseKeyEntry("acme", "key_1", "abcd "+msNow+" sk-…x1 my key"); err != nil {
		t.Fatalf("key entry: %v", err)
	}
	for _, bad := range []string{"abcd " + msNow, "abcd then sk-…x1 name"} {
		_, _, err := parseKeyEntry("acme", "key_1", bad)
		var m *malformedError
		if !errors.As(err, &m) || !strings.Contains(err.Error(), `key entry "key_1"`) {
			t.Errorf("key entry %q: %v, want a malformed error naming it", bad, err)
		}
	}
}

// End to end: a corrupt grant record makes GetAccount fail naming state.lua, and a
// corrupt ledger event makes Events fail naming the event, on Redis and miniredis.
func TestCorruptStoredDataIsAnErrorNotAZero(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme", "10.00")
		keys := e.accountKeys("acme")
		if err := e.redis.Client.HSet(e.ctx, keys[1], "g_bad", "ten dollars").Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := e.GetAccount(e.ctx, "acme"); err == nil || !strings.Contains(err.Error(), "state.lua") || !strings.Contains(err.Error(), "g_bad") {
			t.Errorf("GetAccount with a corrupt grant: %v, want an error naming state.lua and the grant", err)
		}
		id, err := e.redis.Client.XAdd(e.ctx, &redis.XAddArgs{Stream: keys[5], Values: []any{"type", "usage", "at", msNow, "amount", "0.10"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Events(e.ctx, "acme", "", 100); err == nil || !strings.Contains(err.Error(), "ledger event "+id) {
			t.Errorf("Events with a corrupt event: %v, want an error naming event %s", err, id)
		}
	})
}
