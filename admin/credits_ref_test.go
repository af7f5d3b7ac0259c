package admin

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// POST …/credits takes external_id and note and hands them to the ledger, which
// keeps them on the top-up event; both are validated like an adjustment's reason
// and belong to the Idempotency-Key's fingerprint.
func TestAddCreditsExternalIDAndNote(t *testing.T) {
	tests := []struct {
		name           string
		body           string
		wantRef, wantN string
		err            *errorCase
		wantMessage    string
	}{
		{name: "both", body: `{"amount":"25","external_id":"inv-2025-001","note":"wire transfer, March"}`, wantRef: "inv-2025-001", wantN: "wire transfer, March"},
		{name: "external id only", body: `{"amount":"25","external_id":"pi_3Nxyz"}`, wantRef: "pi_3Nxyz"},
		{name: "note only", body: `{"amount":"25","note":"goodwill"}`, wantN: "goodwill"},
		{name: "empty note is none", body: `{"amount":"25","note":""}`},
		{name: "null fields", body: `{"amount":"25","external_id":null,"note":null}`},
		{name: "unicode note", body: `{"amount":"25","note":"virement reçu — merci"}`, wantN: "virement reçu — merci"},
		{name: "empty external id", body: `{"amount":"25","external_id":""}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "external_id"}, wantMessage: "empty"},
		{name: "blank external id", body: `{"amount":"25","external_id":"   "}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "external_id"}, wantMessage: "empty"},
		{name: "external id too long", body: `{"amount":"25","external_id":"` + strings.Repeat("x", 256) + `"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "external_id"}, wantMessage: "longer than 255"},
		{name: "external id with a newline", body: `{"amount":"25","external_id":"inv\n1"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "external_id"}, wantMessage: "control character"},
		{name: "note with a tab", body: `{"amount":"25","note":"a\tb"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "note"}, wantMessage: "control character"},
		{name: "note too long", body: `{"amount":"25","note":"` + strings.Repeat("n", 501) + `"}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "note"}, wantMessage: "longer than 500"},
		{name: "note as a number", body: `{"amount":"25","note":5}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "note"}},
		{name: "external id as a number", body: `{"amount":"25","external_id":42}`, err: &errorCase{400, TypeInvalidRequest, CodeInvalidValue, "external_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got billing.TopUpRequest
			called := false
			l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
				got, called = r, true
				return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID, Amount: r.Amount, Remaining: r.Amount, Source: r.Source}, EventID: "1-0"}, nil
			}}
			rec := call(t, newTestServer(l, nil).Handler(), "POST", "/admin/v1/accounts/acme/credits", tt.body)
			if tt.err != nil {
				checkError(t, rec, *tt.err)
				if !strings.Contains(rec.Body.String(), tt.wantMessage) {
					t.Errorf("message %s does not mention %q", rec.Body, tt.wantMessage)
				}
				if called {
					t.Error("an invalid request reached the ledger")
				}
				return
			}
			if rec.Code != http.StatusCreated || got.PaymentRef != tt.wantRef || got.Note != tt.wantN {
				t.Fatalf("answer %d %s; ledger got payment ref %q note %q, want %q %q", rec.Code, rec.Body, got.PaymentRef, got.Note, tt.wantRef, tt.wantN)
			}
		})
	}
}

func TestAddCreditsFingerprintCoversExternalIDAndNote(t *testing.T) {
	fps := map[string]string{}
	l := &fakeLedger{TopUpFunc: func(_ context.Context, _ billing.Policy, r billing.TopUpRequest) (billing.TopUpResult, error) {
		fps[r.PaymentRef+"|"+r.Note] = r.Fingerprint
		return billing.TopUpResult{Grant: billing.Grant{ID: r.GrantID}}, nil
	}}
	h := newTestServer(l, nil).Handler()
	for _, body := range []string{
		`{"amount":"25"}`,
		`{"amount":"25","external_id":"inv-1"}`,
		`{"amount":"25","external_id":"inv-2"}`,
		`{"amount":"25","external_id":"inv-1","note":"n"}`,
		`{"amount":"25","note":"n"}`,
	} {
		if rec := call(t, h, "POST", "/admin/v1/accounts/acme/credits", body, "Idempotency-Key", "order-1"); rec.Code != http.StatusCreated {
			t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
		}
	}
	seen := map[string]bool{}
	for k, fp := range fps {
		if fp == "" || seen[fp] {
			t.Fatalf("fingerprints %v: %q is empty or shared; the same key with another reference must conflict", fps, k)
		}
		seen[fp] = true
	}
	if len(fps) != 5 {
		t.Fatalf("%d fingerprints, want 5", len(fps))
	}
}

// The export shows payment_ref and note (JSON Lines fields, CSV columns).
func TestExportShowsPaymentRefAndNote(t *testing.T) {
	evs := usageEvents(testNow.Add(-48*3600e9), 2)
	evs[0].PaymentRef, evs[0].Note = "inv-2025-001", "wire, March"
	h := newTestServer(reportLedger(snapshotOf("acme", evs), evs, nil), nil).Handler()

	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/ledger/export", "")
	first, _, _ := strings.Cut(rec.Body.String(), "\n")
	var ev ExportedEvent
	if err := json.Unmarshal([]byte(first), &ev); err != nil || ev.PaymentRef != "inv-2025-001" || ev.Note != "wire, March" ||
		!strings.Contains(first, `"payment_ref":"inv-2025-001"`) {
		t.Fatalf("JSON Lines top-up %s (%v)", first, err)
	}

	rec = call(t, h, http.MethodGet, "/admin/v1/accounts/acme/ledger/export?format=csv", "")
	rows, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("rows %v %v", rows, err)
	}
	ref, note := slices.Index(rows[0], "payment_ref"), slices.Index(rows[0], "note")
	if ref < 0 || note < 0 || rows[1][ref] != "inv-2025-001" || rows[1][note] != "wire, March" || rows[2][ref] != "" {
		t.Fatalf("CSV header %v, top-up row %v", rows[0], rows[1])
	}
}
