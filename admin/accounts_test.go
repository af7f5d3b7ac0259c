package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

func sptr(s string) *string { return &s }
func bptr(b bool) *bool     { return &b }

// PATCH /admin/v1/accounts/{id}: each field reaches the ledger as it was sent;
// invalid ones are answered 400 naming the field, all of them at once.
func TestUpdateAccount(t *testing.T) {
	tests := []struct {
		name string
		body string
		want billing.AccountUpdate // the update the ledger gets (Actor aside)
		err  *errorCase
		// problems are the params of error.problems, when several
		problems []string
	}{
		{name: "tier", body: `{"tier":"tier-2"}`, want: billing.AccountUpdate{Tier: sptr("tier-2")}},
		{name: "pin", body: `{"tier_pinned":true}`, want: billing.AccountUpdate{TierPinned: bptr(true)}},
		{name: "suspend", body: `{"status":"suspended"}`, want: billing.AccountUpdate{Status: sptr("suspended")}},
		{name: "activate", body: `{"status":"active"}`, want: billing.AccountUpdate{Status: sptr("active")}},
		{name: "name", body: `{"name":"Acme Corp"}`, want: billing.AccountUpdate{Name: sptr("Acme Corp")}},
		{name: "clear name", body: `{"name":""}`, want: billing.AccountUpdate{Name: sptr("")}},
		{name: "email", body: `{"email":"billing@acme.example"}`, want: billing.AccountUpdate{Email: sptr("billing@acme.example")}},
		{name: "external id", body: `{"external_id":"cus_42"}`, want: billing.AccountUpdate{ExternalID: sptr("cus_42")}},
		{name: "spend limit", body: `{"spend_limit":{"monthly":"100.00","alert_at":"80"}}`,
			want: billing.AccountUpdate{SpendLimit: &billing.SpendLimit{Monthly: 100 * money.Dollar, AlertAt: 80 * money.Dollar}}},
		{name: "no spend limit", body: `{"spend_limit":{"monthly":"0"}}`, want: billing.AccountUpdate{SpendLimit: &billing.SpendLimit{}}},
		{name: "everything", body: `{"tier":"tier-1","tier_pinned":false,"status":"active","name":"A","email":"a@b.example","external_id":"x","spend_limit":{"monthly":"5"}}`,
			want: billing.AccountUpdate{Tier: sptr("tier-1"), TierPinned: bptr(false), Status: sptr("active"), Name: sptr("A"),
				Email: sptr("a@b.example"), ExternalID: sptr("x"), SpendLimit: &billing.SpendLimit{Monthly: 5 * money.Dollar}}},

		{name: "unknown tier", body: `{"tier":"gold"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownTier, "tier"}},
		{name: "bad status", body: `{"status":"paused"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "status"}},
		{name: "bad email", body: `{"email":"acme"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "email"}},
		{name: "control character", body: `{"name":"a\u0007b"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"}},
		{name: "alert above limit", body: `{"spend_limit":{"monthly":"10","alert_at":"20"}}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "spend_limit.alert_at"}},
		{name: "limit not money", body: `{"spend_limit":{"monthly":"ten"}}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "spend_limit.monthly"}},
		{name: "limit missing", body: `{"spend_limit":{"alert_at":"1"}}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "spend_limit.monthly"}},
		{name: "pinned not a bool", body: `{"tier_pinned":"yes"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "tier_pinned"}},
		{name: "unknown field", body: `{"plan":"pro"}`, err: &errorCase{400, TypeInvalidRequest, CodeUnknownField, "plan"}},
		{name: "nothing", body: `{}`, err: &errorCase{400, TypeInvalidRequest, CodeMissingField, ""}},
		{name: "every problem at once", body: `{"tier":"gold","status":"paused","name":"a\nb","email":"x","external_id":"","spend_limit":{"monthly":"-1","alert_at":"z"}}`,
			err:      &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "spend_limit.monthly"},
			problems: []string{"spend_limit.monthly", "spend_limit.alert_at", "tier", "status", "name", "email"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *billing.AccountUpdate
			l := &fakeLedger{UpdateAccountFunc: func(_ context.Context, id string, u billing.AccountUpdate) (billing.AccountUpdateResult, error) {
				got = &u
				return billing.AccountUpdateResult{Account: billing.Account{ID: id, Tier: "tier-2", Status: billing.StatusSuspended,
					SpendLimit: billing.SpendLimit{Monthly: money.Dollar}}, EventIDs: []string{"1-0"}}, nil
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "PATCH", "/admin/v1/accounts/acme", tc.body)
			if tc.err != nil {
				checkError(t, rec, *tc.err)
				if got != nil {
					t.Fatalf("the ledger was called with %+v", got)
				}
				if tc.problems != nil {
					var body ErrorResponse
					_ = json.Unmarshal(rec.Body.Bytes(), &body)
					var params []string
					for _, p := range body.Error.Problems {
						params = append(params, p.Param)
					}
					if !reflect.DeepEqual(params, tc.problems) {
						t.Fatalf("problems %v, want %v (%s)", params, tc.problems, rec.Body)
					}
				}
				return
			}
			if rec.Code != http.StatusOK || got == nil {
				t.Fatalf("status %d %s", rec.Code, rec.Body)
			}
			if got.Actor != testActor {
				t.Fatalf("actor %q, want %q", got.Actor, testActor)
			}
			got.Actor = ""
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("update %s, want %s", show(*got), show(tc.want))
			}
			var out AccountUpdate
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Status != "suspended" || out.Tier != "tier-2" ||
				out.SpendLimit == nil || out.SpendLimit.Monthly != money.Dollar || len(out.Events) != 1 {
				t.Fatalf("answer %s", rec.Body)
			}
		})
	}
	l := &fakeLedger{UpdateAccountFunc: func(context.Context, string, billing.AccountUpdate) (billing.AccountUpdateResult, error) {
		return billing.AccountUpdateResult{}, fmt.Errorf("%w: %q", billing.ErrAccountNotFound, "nobody")
	}}
	checkError(t, call(t, newTestServer(l, nil).Handler(), "PATCH", "/admin/v1/accounts/nobody", `{"name":"x"}`),
		errorCase{404, TypeNotFound, CodeAccountNotFound, ""})
}

func show(u billing.AccountUpdate) string {
	b, _ := json.Marshal(u)
	return string(b)
}
