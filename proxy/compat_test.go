package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// getCompat sends GET path with key and returns the status and body.
func (h *harness) getCompat(path, key string) (int, string) {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.server.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return res.StatusCode, string(readAll(h.t, res))
}

// TestBillingCompatThroughProxy reads the three endpoints, with and without /v1,
// after real usage, the way chat front ends combine them.
func TestBillingCompatThroughProxy(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00", "10.00")
	res := h.post("/v1/chat/completions", key, chatBody("gpt-4o-mini", false, ""))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("chat: %s %s", res.Status, readAll(t, res))
	}
	readAll(t, res)
	a := h.get("acme")
	if a.Totals.Usage == 0 {
		t.Fatal("the request was not charged")
	}
	for _, prefix := range []string{"", "/v1"} {
		status, body := h.getCompat(prefix+"/dashboard/billing/credit_grants", key)
		cg, err := decodeNumbers(body)
		if status != 200 || err != nil {
			t.Fatalf("%s credit_grants: %d %s", prefix, status, body)
		}
		granted, used, avail := num(t, cg["total_granted"]), num(t, cg["total_used"]), num(t, cg["total_available"])
		if cg["object"] != "credit_summary" || granted != usd("15.00") || used != a.Totals.Usage || avail != a.Balance() || granted-used != avail {
			t.Fatalf("%s credit_grants %s; balance %s usage %s", prefix, body, a.Balance(), a.Totals.Usage)
		}
		list := cg["grants"].(map[string]any)
		data := list["data"].([]any)
		if list["object"] != "list" || len(data) != 2 {
			t.Fatalf("grants %v", list)
		}
		g := data[0].(map[string]any)
		if exp, _ := g["expires_at"].(json.Number).Int64(); g["object"] != "credit_grant" || g["effective_at"] == nil || exp <= time.Now().Unix() {
			t.Fatalf("grant %v", g)
		}

		status, body = h.getCompat(prefix+"/dashboard/billing/subscription", key)
		sub, err := decodeNumbers(body)
		if status != 200 || err != nil || sub["object"] != "billing_subscription" {
			t.Fatalf("%s subscription: %d %s", prefix, status, body)
		}
		hard := num(t, sub["hard_limit_usd"])
		status, body = h.getCompat(prefix+"/dashboard/billing/usage?start_date=2025-01-01&end_date=2025-02-01", key)
		usage, err := decodeNumbers(body)
		if status != 200 || err != nil || usage["object"] != "list" {
			t.Fatalf("%s usage: %d %s", prefix, status, body)
		}
		// What ChatGPT-Next-Web and one-api's balance check compute: limit − usage/100.
		cents := usage["total_usage"].(json.Number)
		totalUsage := parseDecimal(t, string(cents), 4)
		if totalUsage != a.Totals.Usage || hard-totalUsage != a.Balance() {
			t.Fatalf("%s: hard_limit_usd %s − total_usage %s¢ ≠ balance %s", prefix, hard, cents, a.Balance())
		}
	}
}

// decodeNumbers decodes a JSON object keeping numbers as their text.
func decodeNumbers(body string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	err := dec.Decode(&m)
	return m, err
}

// num reads a JSON number decoded with UseNumber as exact micro-USD.
func num(t *testing.T, v any) money.Micros {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	return parseDecimal(t, string(n), 6)
}

// parseDecimal reads a decimal with at most places decimals (6: USD, 4: cents)
// as exact micro-USD.
func parseDecimal(t *testing.T, s string, places int) money.Micros {
	t.Helper()
	m, err := money.ParseFigure(s)
	if err != nil {
		t.Fatal(err)
	}
	if places == 4 { // cents → USD: 0.0001 cent is 1 micro-USD
		if m%100 != 0 {
			t.Fatalf("%s has more than 4 decimals", s)
		}
		m /= 100
	}
	return m
}

// snapshotLedger answers GetAccount with a fixed account.
type snapshotLedger struct {
	billing.Ledger
	acct billing.Account
}

func (s snapshotLedger) GetAccount(context.Context, string) (billing.Account, error) {
	return s.acct, nil
}

// TestBillingCompatShapes checks the exact bodies on a crafted state: debt, an
// expired grant, a spent one, auto-recharge on.
func TestBillingCompatShapes(t *testing.T) {
	now := time.Now()
	live, spent, expired := now.Add(30*24*time.Hour).Truncate(time.Second), now.Add(60*24*time.Hour).Truncate(time.Second), now.Add(-time.Hour).Truncate(time.Second)
	granted := now.Add(-48 * time.Hour).Truncate(time.Second)
	crafted := billing.Account{
		ID: "acme", Tier: "tier-1", Credit: usd("2.5"), Debt: 0,
		Grants: []billing.Grant{
			{ID: "g_live", Amount: usd("5"), Remaining: usd("2.5"), GrantedAt: granted, ExpiresAt: live, Source: billing.SourcePurchase},
			{ID: "g_spent", Amount: usd("10"), Remaining: 0, GrantedAt: granted, ExpiresAt: spent, Source: billing.SourceAutoRecharge},
			{ID: "g_expired", Amount: usd("5"), Remaining: 0, GrantedAt: granted, ExpiresAt: expired, Source: billing.SourcePromo},
		},
		Totals:       billing.Totals{Granted: usd("20"), Usage: usd("12.500001"), Consumed: usd("12.500001"), Expired: usd("4.999999")},
		AutoRecharge: billing.AutoRecharge{Enabled: true},
	}
	crafted.Credit = crafted.Totals.Granted - crafted.Totals.Consumed - crafted.Totals.Expired // 2.5
	h := newHarness(t, func(o *Options) { o.Ledger = snapshotLedger{Ledger: o.Ledger, acct: crafted} })
	key := h.account("acme")
	tests := []struct{ path, want string }{
		{"/dashboard/billing/credit_grants", `{"object":"credit_summary","total_granted":15.000001,"total_used":12.500001,"total_available":2.5,` +
			`"grants":{"object":"list","data":[` +
			`{"object":"credit_grant","id":"g_live","grant_amount":5,"used_amount":2.5,"effective_at":` + itoa(granted.Unix()) + `,"expires_at":` + itoa(live.Unix()) + `},` +
			`{"object":"credit_grant","id":"g_spent","grant_amount":10,"used_amount":10,"effective_at":` + itoa(granted.Unix()) + `,"expires_at":` + itoa(spent.Unix()) + `}]}}`},
		{"/v1/dashboard/billing/subscription", `{"object":"billing_subscription","has_payment_method":true,"canceled":false,"canceled_at":null,"delinquent":null,` +
			`"access_until":` + itoa(live.Unix()) + `,"soft_limit_usd":15.000001,"hard_limit_usd":15.000001,"system_hard_limit_usd":15.000001,` +
			`"plan":{"title":"tier-1","id":"tier-1"},"account_name":"acme"}`},
		{"/v1/dashboard/billing/usage", `{"object":"list","total_usage":1250.0001}`},
	}
	for _, tc := range tests {
		status, body := h.getCompat(tc.path, key)
		if status != 200 || strings.TrimSpace(body) != tc.want {
			t.Errorf("%s: %d\n got %s\nwant %s", tc.path, status, strings.TrimSpace(body), tc.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestBillingCompatErrors(t *testing.T) {
	h := newHarness(t)
	h.account("acme", "5.00")
	for _, path := range []string{"/dashboard/billing/credit_grants", "/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage"} {
		status, body := h.getCompat(path, "")
		if status != http.StatusUnauthorized || !strings.Contains(body, `"invalid_api_key"`) {
			t.Errorf("%s without a key: %d %s", path, status, body)
		}
		status, body = h.getCompat(path, "sk-cg-not-a-real-key-000000000000000000000000000")
		if status != http.StatusUnauthorized || !strings.Contains(body, `"invalid_api_key"`) {
			t.Errorf("%s with an unknown key: %d %s", path, status, body)
		}
		res := h.post(path, "", "{}")
		if body := readAll(t, res); res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"unknown_url"`) {
			t.Errorf("POST %s: %s %s", path, res.Status, body)
		}
	}
}

func TestDecimalNumber(t *testing.T) {
	tests := []struct {
		micros money.Micros
		usd    string
		cents  string
	}{
		{0, "0", "0"},
		{1, "0.000001", "0.0001"},
		{usd("4.998731"), "4.998731", "499.8731"},
		{usd("10"), "10", "1000"},
		{-usd("0.3"), "-0.3", "-30"},
		{money.MaxAmount, "1000000000", "100000000000"},
	}
	for _, tc := range tests {
		if got := usdNumber(tc.micros); string(got) != tc.usd {
			t.Errorf("usdNumber(%d) = %s, want %s", tc.micros, got, tc.usd)
		}
		if got := centsNumber(tc.micros); string(got) != tc.cents {
			t.Errorf("centsNumber(%d) = %s, want %s", tc.micros, got, tc.cents)
		}
	}
}
