package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// TestCreateKeyWithRateLimits: POST …/keys takes rpm and tpm, passes them to the
// store and answers them; a value out of range is a 400 naming the field, and
// the store is not called.
func TestCreateKeyWithRateLimits(t *testing.T) {
	var got []billing.KeySpec
	k := &fakeKeys{CreateKeyWithFunc: func(_ context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error) {
		got = append(got, spec)
		return billing.APIKey{ID: "key_1", Account: account, Name: spec.Name, RPM: spec.RPM, TPM: spec.TPM}, "sk-cg-secret", nil
	}}
	h := newTestServer(nil, k).Handler()
	rec := call(t, h, "POST", "/admin/v1/accounts/acme/keys", `{"name":"app","rpm":60,"tpm":100000}`)
	var out CreatedKey
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out.RPM != 60 || out.TPM != 100000 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], billing.KeySpec{Name: "app", RPM: 60, TPM: 100000}) {
		t.Fatalf("store got %+v", got)
	}
	for _, c := range []struct{ body, param string }{
		{`{"rpm":-1}`, "rpm"},
		{`{"tpm":100000000001}`, "tpm"},
		{`{"rpm":1.5}`, ""},
	} {
		rec := call(t, h, "POST", "/admin/v1/accounts/acme/keys", c.body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.param) {
			t.Errorf("%s: %d %s", c.body, rec.Code, rec.Body)
		}
	}
	if len(got) != 1 {
		t.Fatalf("the store was called for refused bodies: %+v", got)
	}
}
