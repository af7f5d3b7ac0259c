package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/admin/client"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/money"
)

type adjustEnv struct {
	srv   *httptest.Server
	store *redisstore.Store
	c     *client.Client
	now   time.Time
}

const adjustToken = "adjustments-admin-token-123456"

func newAdjustEnv(t *testing.T) *adjustEnv {
	t.Helper()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store := newRedisLedger(t, clock)
	srv := serveAdmin(t, store, adjustToken, clock)
	return &adjustEnv{srv: srv, store: store, c: &client.Client{BaseURL: srv.URL, Token: adjustToken}, now: now}
}

func (e *adjustEnv) post(t *testing.T, account, body, idemKey string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+"/admin/v1/accounts/"+account+"/adjustments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adjustToken)
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestAdjustmentsEndpoint runs POST /admin/v1/accounts/{id}/adjustments on the
// Redis ledger: the accepted shapes, the answer, and each refusal with its
// status, code and the field at fault.
func TestAdjustmentsEndpoint(t *testing.T) {
	e := newAdjustEnv(t)
	ctx := context.Background()
	future := e.now.Add(48 * time.Hour).Format(time.RFC3339)
	tests := []struct {
		name     string
		account  string // default "acme"
		body     string
		status   int
		code     string
		param    string
		amount   string // the signed amount recorded
		credit   string // credit after (starting from 10.00, 4.00 of it reserved)
		hasGrant bool
	}{
		{name: "negative string", body: `{"amount":"-1.50","reason":"refund of req_1"}`, status: 201, amount: "-1.500000", credit: "8.500000"},
		{name: "negative bare number", body: `{"amount":-1.5,"reason":"refund of req_1"}`, status: 201, amount: "-1.500000", credit: "8.500000"},
		{name: "positive below the minimum purchase", body: `{"amount":"0.25","reason":"goodwill"}`, status: 201, amount: "0.250000", credit: "10.250000", hasGrant: true},
		{name: "positive above the tier's maximum top-up", body: `{"amount":500,"reason":"migration"}`, status: 201, amount: "500.000000", credit: "510.000000", hasGrant: true},
		{name: "positive with expires_at", body: `{"amount":"2","reason":"promo","expires_at":"` + future + `"}`, status: 201, amount: "2.000000", credit: "12.000000", hasGrant: true},
		{name: "claw-back up to credit − reserved", body: `{"amount":"-6.00","reason":"mistake"}`, status: 201, amount: "-6.000000", credit: "4.000000"},
		{name: "claw-back above credit − reserved", body: `{"amount":"-6.000001","reason":"mistake"}`, status: 400, code: admin.CodeInsufficientCredit, param: "amount"},
		{name: "zero", body: `{"amount":"-0.00","reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "missing amount", body: `{"reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "double sign", body: `{"amount":"--1","reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "exponent", body: `{"amount":"-1e3","reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "seven decimals", body: `{"amount":"-0.0000001","reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "above a billion", body: `{"amount":"-1000000000.000001","reason":"x"}`, status: 400, code: admin.CodeInvalidAmount, param: "amount"},
		{name: "missing reason", body: `{"amount":"1"}`, status: 400, code: admin.CodeMissingField, param: "reason"},
		{name: "blank reason", body: `{"amount":"1","reason":"  "}`, status: 400, code: admin.CodeMissingField, param: "reason"},
		{name: "reason with a control character", body: `{"amount":"1","reason":"a\u0007b"}`, status: 400, code: admin.CodeInvalidValue, param: "reason"},
		{name: "reason too long", body: `{"amount":"1","reason":"` + strings.Repeat("x", 501) + `"}`, status: 400, code: admin.CodeInvalidValue, param: "reason"},
		{name: "expires_at in the past", body: `{"amount":"1","reason":"x","expires_at":"2026-03-10T11:59:59Z"}`, status: 400, code: admin.CodeInvalidValue, param: "expires_at"},
		{name: "expires_at on a negative amount", body: `{"amount":"-1","reason":"x","expires_at":"` + future + `"}`, status: 400, code: admin.CodeInvalidValue, param: "expires_at"},
		{name: "unknown field", body: `{"amount":"1","reason":"x","note":"y"}`, status: 400, code: admin.CodeUnknownField, param: "note"},
		{name: "unknown account", account: "nobody", body: `{"amount":"1","reason":"x"}`, status: 404, code: admin.CodeAccountNotFound},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			account := tc.account
			if account == "" {
				account = fmt.Sprintf("acct%d", i)
				if _, err := e.c.CreateAccount(ctx, account, ""); err != nil {
					t.Fatal(err)
				}
				if _, err := e.c.AddCredits(ctx, account, "10.00", nil, ""); err != nil {
					t.Fatal(err)
				}
				if r, err := e.store.Reserve(ctx, billing.ReserveRequest{Account: account, HoldID: "h1", Estimate: money.MustParse("4.00"), TTL: time.Minute}); err != nil || !r.Admitted {
					t.Fatalf("reserve: %+v %v", r, err)
				}
			}
			status, body, _ := e.post(t, account, tc.body, "")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.status >= 400 {
				var er admin.ErrorResponse
				if err := json.Unmarshal([]byte(body), &er); err != nil || er.Error.Code != tc.code || er.Error.Param != tc.param || er.Error.Message == "" {
					t.Fatalf("error %s; want code %s param %q", body, tc.code, tc.param)
				}
				if tc.code == admin.CodeInsufficientCredit && !strings.Contains(er.Error.Message, "6.000000") {
					t.Fatalf("the refusal should name the available 6.000000: %s", er.Error.Message)
				}
				return
			}
			var res admin.AdjustmentResult
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			a, err := e.c.GetAccount(ctx, account)
			if err != nil {
				t.Fatal(err)
			}
			ev := res.Event
			if res.Amount.String() != tc.amount || a.Credit.String() != tc.credit || ev.Type != "adjustment" || ev.Amount != res.Amount ||
				ev.Note != res.Reason || ev.ID == "" || ev.CreditAfter != a.Credit || (res.Grant != nil) != tc.hasGrant {
				t.Fatalf("answer %s; account credit %s", body, a.Credit)
			}
			if tc.hasGrant && (res.Grant.Source != billing.SourceAdjustment || ev.GrantID != res.Grant.ID || res.Grant.ID != res.ID) {
				t.Fatalf("grant %+v, event grant %q", res.Grant, ev.GrantID)
			}
			if strings.Contains(tc.body, "expires_at") && res.Grant.ExpiresAt.Format(time.RFC3339) != future {
				t.Fatalf("grant expires %s, want %s", res.Grant.ExpiresAt, future)
			}
			rep, err := billing.AuditAccount(ctx, e.store, account)
			if err != nil || !rep.OK() {
				t.Fatalf("audit %+v %v", rep.Problems, err)
			}
		})
	}
}

// An Idempotency-Key makes an adjustment retry-safe exactly like a top-up: the
// same body (however spelled) replays 200 with the same answer, another body is
// 409, and the key of a top-up cannot be reused for an adjustment.
func TestAdjustmentsIdempotency(t *testing.T) {
	e := newAdjustEnv(t)
	ctx := context.Background()
	if _, err := e.c.CreateAccount(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.AddCredits(ctx, "acme", "10.00", nil, "order-1"); err != nil {
		t.Fatal(err)
	}
	status, first, h := e.post(t, "acme", `{"amount":"-1.50","reason":"refund"}`, "fix-1")
	if status != 201 || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", status, first)
	}
	for _, body := range []string{`{"amount":"-1.50","reason":"refund"}`, `{"amount":-1.5,"reason":"refund"}`, `{"reason":"refund","amount":"-1.500000"}`} {
		status, again, h := e.post(t, "acme", body, "fix-1")
		if status != 200 || again != first || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay with %s: %d %s (header %q); want 200 %s", body, status, again, h.Get("Idempotent-Replayed"), first)
		}
	}
	for _, body := range []string{`{"amount":"-1.51","reason":"refund"}`, `{"amount":"-1.50","reason":"refund!"}`, `{"amount":"1.50","reason":"refund"}`} {
		if status, b, _ := e.post(t, "acme", body, "fix-1"); status != 409 || !strings.Contains(b, admin.CodeIdempotencyConflict) {
			t.Fatalf("changed body %s: %d %s, want 409", body, status, b)
		}
	}
	if status, b, _ := e.post(t, "acme", `{"amount":"-1.50","reason":"refund"}`, "order-1"); status != 409 {
		t.Fatalf("a top-up's key reused: %d %s, want 409", status, b)
	}
	// the client
	res, err := e.c.Adjust(ctx, "acme", "2.00", "goodwill", nil, "fix-2")
	if err != nil || res.Replayed || res.Grant == nil || res.Grant.Amount.String() != "2.000000" {
		t.Fatalf("client adjust: %+v %v", res, err)
	}
	again, err := e.c.Adjust(ctx, "acme", "2", "goodwill", nil, "fix-2")
	if err != nil || !again.Replayed || again.Event.ID != res.Event.ID {
		t.Fatalf("client replay: %+v %v", again, err)
	}
	var apiErr *client.APIError
	if _, err := e.c.Adjust(ctx, "acme", "-100", "too much", nil, ""); !errors.As(err, &apiErr) || apiErr.Status != 400 || apiErr.Code != admin.CodeInsufficientCredit || apiErr.Param != "amount" {
		t.Fatalf("client claw-back above credit: %v", err)
	}
	a, err := e.c.GetAccount(ctx, "acme")
	if err != nil || a.Credit.String() != "10.500000" {
		t.Fatalf("account %+v %v; want credit 10.50 (10 − 1.50 + 2)", a, err)
	}
	page, err := e.c.Ledger(ctx, "acme", "", 10)
	if err != nil || len(page.Data) != 3 || page.Data[1].Amount.String() != "-1.500000" || page.Data[1].Note != "refund" {
		t.Fatalf("ledger %+v %v", page, err)
	}
}
