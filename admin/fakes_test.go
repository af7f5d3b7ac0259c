package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/money"
)

// The billing fakes are shared: see billing/billingtest.
type (
	fakeLedger = billingtest.Ledger
	fakeKeys   = billingtest.Keys
)

// Test fixtures.

const testToken = "adm-0123456789abcdef"

// testActor is the name of the bare test token: the actor on what its calls start.
var testActor = FullAdmin(testToken).Name

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() billing.Policy {
	return billing.Policy{
		Grace:       money.MustParse("0.50"),
		MinPurchase: money.MustParse("5.00"),
		CreditTTL:   365 * 24 * time.Hour,
		HoldTTL:     15 * time.Minute,
		DefaultTier: "tier-1",
		Tiers: map[string]billing.Tier{
			"tier-1": {MaxTopUp: money.MustParse("100"), MaxBalance: money.MustParse("1000")},
			"tier-2": {MaxTopUp: money.MustParse("1000")},
		},
		AutoRechargeMin: money.MustParse("10.00"),
	}
}

func newTestServer(l *fakeLedger, k *fakeKeys) *Server {
	if l == nil {
		l = &fakeLedger{}
	}
	if k == nil {
		k = &fakeKeys{}
	}
	return &Server{
		Ledger: l,
		Keys:   k,
		Policy: testPolicy,
		Tokens: func() []string { return []string{"other-token", testToken} },
		Now:    func() time.Time { return testNow },
	}
}

// call sends one request to h with the test admin token (unless headers set
// Authorization) and returns the recorded answer. headers are name, value pairs.
func call(t *testing.T, h http.Handler, method, target, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "<none>" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// errorCase is the expected error answer of a table case.
type errorCase struct {
	status int
	typ    string
	code   string
	param  string
}

// checkError asserts that rec is the error answer want, in the documented shape.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, want errorCase) {
	t.Helper()
	if rec.Code != want.status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want.status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error map[string]any `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body does not decode: %v", err)
	}
	e := body.Error
	if e["type"] != want.typ || e["code"] != want.code {
		t.Errorf("error type/code = %v/%v, want %s/%s (message %q)", e["type"], e["code"], want.typ, want.code, e["message"])
	}
	gotParam, _ := e["param"].(string)
	if gotParam != want.param {
		t.Errorf("error param = %q, want %q (message %q)", gotParam, want.param, e["message"])
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error message is empty")
	}
	for k := range e {
		switch k {
		case "message", "type", "code", "param":
		case "problems": // several fields at fault: each named, the first as param
			list, _ := e[k].([]any)
			first, _ := func() (map[string]any, bool) {
				if len(list) < 2 {
					return nil, false
				}
				m, ok := list[0].(map[string]any)
				return m, ok
			}()
			if first == nil || first["param"] != want.param {
				t.Errorf("error problems %v: want two or more, the first naming %q", e[k], want.param)
			}
		default:
			t.Errorf("unexpected error field %q", k)
		}
	}
}

// checkJSON asserts that rec has status and exactly the JSON body want (spacing aside).
func checkJSON(t *testing.T, rec *httptest.ResponseRecorder, status int, want string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(want)); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != compact.String() {
		t.Errorf("body:\n got %s\nwant %s", got, compact.String())
	}
}
