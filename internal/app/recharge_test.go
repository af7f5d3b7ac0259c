package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/notify"
)

// webhookSink records signed webhook deliveries and answers 200.
type webhookSink struct {
	secret string
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if notify.Verify([]string{s.secret}, r.Header, body, time.Now()) != nil || !notify.VerifyLegacy(s.secret, body, r.Header.Get("X-Creditgate-Signature")) {
		s.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var v map[string]any
	_ = json.Unmarshal(body, &v)
	v["_event_header"] = r.Header.Get("X-Creditgate-Event")
	s.events = append(s.events, v)
}

func (s *webhookSink) ofType(typ string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, e := range s.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestAutoRechargeWiredFromConfig: with a charger and a notice webhook in the
// configuration, spending through the proxy past an account's threshold starts one
// recharge, which the charger is asked for (signed) and which credits a grant of
// source auto_recharge; the low-balance notice arrives too.
func TestAutoRechargeWiredFromConfig(t *testing.T) {
	charger := &webhookSink{secret: "charger-secret-0123456789"}
	notices := &webhookSink{secret: "notice-secret-0123456789"}
	cs, ns := httptest.NewServer(charger), httptest.NewServer(notices)
	t.Cleanup(cs.Close)
	t.Cleanup(ns.Close)
	a, _ := start(t, fmt.Sprintf(`
billing: { auto_recharge: { webhook: { url: %q, secret: %q, timeout: 5s } } }
notify: { webhook: { url: %q, secret: %q }, low_balance: "4.50" }
`, cs.URL, charger.secret, ns.URL, notices.secret))
	ctx := context.Background()
	c := &client.Client{BaseURL: "http://" + a.AdminAddr().String(), Token: adminToken}
	if _, err := c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCredits(ctx, "acme", "5.00", nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetAutoRecharge(ctx, "acme", admin.AutoRechargeRequest{Enabled: true, Threshold: "4.00", Amount: "10.00", MonthlyLimit: "50.00"}); err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateKey(ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	// Each call costs about $0.06 (gpt-4, 1000 output tokens): ~17 calls cross $4.
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.DataAddr().String()+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4","max_tokens":1000,"messages":[{"role":"user","content":"Hello!"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d", i, res.StatusCode)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var acct admin.Account
	for {
		if acct, err = c.GetAccount(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		recharged := false
		for _, g := range acct.Grants {
			recharged = recharged || g.Source == billing.SourceAutoRecharge
		}
		if recharged && len(notices.ofType("balance.low")) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recharge or notice: grants %+v, charger %d deliveries, notices %d", acct.Grants, len(charger.events), len(notices.events))
		}
		time.Sleep(50 * time.Millisecond)
	}
	recharges := charger.ofType("auto_recharge")
	if len(recharges) != 1 || recharges[0]["account"] != "acme" || recharges[0]["_event_header"] != "auto_recharge" || charger.bad != 0 {
		t.Fatalf("charger deliveries %v (bad signatures %d)", charger.events, charger.bad)
	}
	var grant *admin.Grant
	for i := range acct.Grants {
		if acct.Grants[i].Source == billing.SourceAutoRecharge {
			grant = &acct.Grants[i]
		}
	}
	if grant.ID != recharges[0]["recharge_id"] || grant.Amount.String() != "10.000000" {
		t.Fatalf("grant %+v for recharge %v", grant, recharges[0])
	}
	if low := notices.ofType("balance.low"); len(low) != 1 || low[0]["account"] != "acme" {
		t.Fatalf("balance.low notices %v", low)
	}
}
