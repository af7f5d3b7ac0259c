package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// TestCreateKeyWithSettings: POST …/keys takes limit (a USD string or number),
// limit_reset, expires_at, models and disabled, passes them to the store and
// answers them; every problem of a body is reported at once, and the store is
// not called for it.
func TestCreateKeyWithSettings(t *testing.T) {
	var got []billing.KeySpec
	k := &fakeKeys{CreateKeyWithFunc: func(_ context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error) {
		got = append(got, spec)
		return billing.APIKey{ID: "key_1", Account: account, Name: spec.Name, CreatedAt: testNow, Hint: "sk-cg-abc…wxyz",
			Limit: spec.Limit, LimitReset: spec.LimitReset, ExpiresAt: spec.ExpiresAt, Models: spec.Models, Disabled: spec.Disabled}, "sk-cg-secret", nil
	}}
	h := newTestServer(nil, k).Handler()
	rec := call(t, h, "POST", "/admin/v1/accounts/acme/keys",
		`{"name":"app","limit":"20.00","limit_reset":"monthly","expires_at":"2025-04-01T00:00:00Z","models":["gpt-4o","gpt-4o-mini"],"disabled":true}`)
	checkJSON(t, rec, http.StatusCreated, `{"id":"key_1","key":"sk-cg-secret","name":"app","created_at":"2025-03-01T12:00:00Z","hint":"sk-cg-abc…wxyz",
		"rpm":0,"tpm":0,"limit":"20.000000","limit_reset":"monthly","expires_at":"2025-04-01T00:00:00Z","models":["gpt-4o","gpt-4o-mini"],"disabled":true}`)
	want := billing.KeySpec{Name: "app", Limit: 20_000_000, LimitReset: billing.LimitMonthly, ExpiresAt: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC),
		Models: []string{"gpt-4o", "gpt-4o-mini"}, Disabled: true}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("store got %+v, want %+v", got, want)
	}
	rec = call(t, h, "POST", "/admin/v1/accounts/acme/keys", `{"limit":1.5}`)
	if rec.Code != http.StatusCreated || got[1].Limit != 1_500_000 {
		t.Fatalf("a bare number: %d %s %+v", rec.Code, rec.Body, got)
	}

	for _, c := range []struct {
		name, body string
		err        errorCase
		params     []string // every field named in error.problems, in order
	}{
		{"unknown fields", `{"name":"x","scopes":[],"budget":5}`, errorCase{400, TypeInvalidRequest, CodeUnknownField, "budget"}, []string{"budget", "scopes"}},
		{"several problems", `{"limit":"-1","limit_reset":"hourly","expires_at":"2025-02-01T00:00:00Z","models":[""],"rpm":-1,"disabled":"yes"}`,
			errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "limit"}, []string{"limit", "limit_reset", "expires_at", "models", "rpm", "disabled"}},
		{"bad time", `{"expires_at":"tomorrow"}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}, nil},
		{"models not an array", `{"models":"gpt-4o"}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "models"}, nil},
		{"limit over the bound", `{"limit":"1000000001"}`, errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "limit"}, nil},
		{"too many models", `{"models":[` + strings.TrimSuffix(strings.Repeat(`"m",`, billing.MaxKeyModels+1), ",") + `]}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "models"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := call(t, h, "POST", "/admin/v1/accounts/acme/keys", c.body)
			checkError(t, rec, c.err)
			checkProblems(t, rec, c.params)
		})
	}
	if len(got) != 2 {
		t.Fatalf("the store was called for refused bodies: %+v", got)
	}
}

// checkProblems asserts error.problems names params, in order (none: no list).
func checkProblems(t *testing.T, rec interface{ Result() *http.Response }, params []string) {
	t.Helper()
	var body struct {
		Error struct {
			Message  string       `json:"message"`
			Problems []FieldError `json:"problems"`
		} `json:"error"`
	}
	res := rec.Result()
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range body.Error.Problems {
		got = append(got, p.Param)
		if !strings.Contains(body.Error.Message, p.Message) {
			t.Errorf("message %q lacks %q", body.Error.Message, p.Message)
		}
	}
	if !reflect.DeepEqual(got, params) {
		t.Fatalf("problems %v, want %v (%s)", got, params, body.Error.Message)
	}
}

// TestUpdateKey: PATCH …/keys/{key_id} passes exactly the fields given (null
// clears), answers the key as it now is, records the token's name as actor;
// unknown fields, several problems, an empty change and another account's key
// are refused as such.
func TestUpdateKeyHandler(t *testing.T) {
	var got []billing.KeyUpdate
	k := &fakeKeys{UpdateKeyFunc: func(_ context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error) {
		if account != "acme" || keyID != "key_1" {
			return billing.APIKey{}, billing.ErrKeyNotFound
		}
		got = append(got, u)
		key := billing.APIKey{ID: keyID, Account: account, Name: "app", CreatedAt: testNow, Hint: "sk-cg-abc…wxyz", RPM: 60, Limit: 5_000_000,
			ExpiresAt: testNow.Add(time.Hour)}
		u.Apply(&key)
		return key, nil
	}}
	h := newTestServer(nil, k).Handler()
	rec := call(t, h, "PATCH", "/admin/v1/accounts/acme/keys/key_1", `{"limit":"25","limit_reset":"daily","expires_at":null,"models":["gpt-4o"]}`)
	checkJSON(t, rec, http.StatusOK, `{"id":"key_1","name":"app","created_at":"2025-03-01T12:00:00Z","hint":"sk-cg-abc…wxyz","rpm":60,"tpm":0,
		"limit":"25.000000","limit_reset":"daily","expires_at":null,"models":["gpt-4o"],"disabled":false}`)
	limit, reset, models := money.Micros(25_000_000), billing.LimitDaily, []string{"gpt-4o"}
	want := billing.KeyUpdate{Limit: &limit, LimitReset: &reset, ExpiresAt: &time.Time{}, Models: &models, Actor: FullAdmin(testToken).Name}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("store got %+v, want %+v", got, want)
	}
	rec = call(t, h, "PATCH", "/admin/v1/accounts/acme/keys/key_1", `{"disabled":true,"limit":null,"models":null}`)
	var out Key
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || !out.Disabled || out.Limit != nil || out.Models != nil || out.RPM != 60 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}

	for _, c := range []struct {
		name, path, body string
		err              errorCase
		params           []string
	}{
		{"unknown fields", "key_1", `{"disabled":true,"budget":"5","expiry":null}`, errorCase{400, TypeInvalidRequest, CodeUnknownField, "budget"}, []string{"budget", "expiry"}},
		{"several problems", "key_1", `{"name":"a\nb","limit_reset":"yearly","rpm":1.5,"tpm":-3}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "name"},
			[]string{"name", "limit_reset", "rpm", "tpm"}},
		{"nothing to change", "key_1", `{}`, errorCase{400, TypeInvalidRequest, CodeMissingField, ""}, nil},
		{"no body", "key_1", ``, errorCase{400, TypeInvalidRequest, CodeInvalidJSON, ""}, nil},
		{"past expiry", "key_1", `{"expires_at":"2025-01-01T00:00:00Z"}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "expires_at"}, nil},
		{"another account's key", "key_2", `{"disabled":true}`, errorCase{404, TypeNotFound, CodeKeyNotFound, ""}, nil},
		{"malformed key id", "key:1", `{"disabled":true}`, errorCase{400, TypeInvalidRequest, CodeInvalidValue, "key_id"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := call(t, h, "PATCH", "/admin/v1/accounts/acme/keys/"+c.path, c.body)
			checkError(t, rec, c.err)
			if c.err.status == 400 {
				checkProblems(t, rec, c.params)
			}
		})
	}
	if len(got) != 2 {
		t.Fatalf("the store was called for refused bodies: %+v", got)
	}
}

// TestUpdateKeyRequestJSON: ClearExpiresAt is "expires_at": null on the wire,
// alone or with other fields; without it an absent expiry is not sent.
func TestUpdateKeyRequestJSON(t *testing.T) {
	on := true
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		req  UpdateKeyRequest
		want string
	}{
		{UpdateKeyRequest{ClearExpiresAt: true}, `{"expires_at":null}`},
		{UpdateKeyRequest{ClearExpiresAt: true, Disabled: &on}, `{"expires_at":null,"disabled":true}`},
		{UpdateKeyRequest{Disabled: &on}, `{"disabled":true}`},
		{UpdateKeyRequest{ExpiresAt: &at}, `{"expires_at":"2030-01-02T03:04:05Z"}`},
	} {
		b, err := json.Marshal(c.req)
		if err != nil || string(b) != c.want {
			t.Errorf("%+v: %s, %v; want %s", c.req, b, err, c.want)
		}
	}
}

// FuzzKeyBody: any POST …/keys or PATCH …/keys/{key_id} body is a 201/200
// whose settings the store accepts (billing's Validate finds nothing), or a
// 400 in the error shape with nothing passed to the store; never a 500.
//
//	go test ./admin -run '^$' -fuzz FuzzKeyBody -fuzztime 20s
func FuzzKeyBody(f *testing.F) {
	for _, seed := range []string{
		`{"name":"app","limit":"20.00","limit_reset":"monthly","expires_at":"2030-01-01T00:00:00Z","models":["gpt-4o"],"disabled":true}`,
		`{"limit":1.5,"rpm":60,"tpm":1000}`, `{"expires_at":null,"models":null,"limit":null}`, `{"limit":"1e3","x":1}`,
		`{"models":[""],"rpm":-1}`, `{"expires_at":"2030-01-01T00:00:00+25:00"}`, `{}`, ``, `[]`, `{"name":"a\nb"}`,
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, body string, patch bool) {
		called := false
		k := &fakeKeys{
			CreateKeyWithFunc: func(_ context.Context, account string, spec billing.KeySpec) (billing.APIKey, string, error) {
				called = true
				if ps := spec.Validate(testNow); len(ps) > 0 {
					t.Fatalf("%q reached the store with problems %+v", body, ps)
				}
				return billing.APIKey{ID: "key_1", Account: account}, "sk-cg-x", nil
			},
			UpdateKeyFunc: func(_ context.Context, account, keyID string, u billing.KeyUpdate) (billing.APIKey, error) {
				called = true
				if ps := u.Validate(testNow); len(ps) > 0 || u.Empty() {
					t.Fatalf("%q reached the store with problems %+v (empty %v)", body, ps, u.Empty())
				}
				return billing.APIKey{ID: keyID, Account: account}, nil
			},
		}
		method, path, ok := "POST", "/admin/v1/accounts/acme/keys", http.StatusCreated
		if patch {
			method, path, ok = "PATCH", "/admin/v1/accounts/acme/keys/key_1", http.StatusOK
		}
		rec := call(t, newTestServer(nil, k).Handler(), method, path, body)
		switch rec.Code {
		case ok:
			if !called {
				t.Fatalf("%q: %d without the store", body, rec.Code)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if called {
				t.Fatalf("%q: %d after the store was called", body, rec.Code)
			}
			var e ErrorResponse
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error.Message == "" || e.Error.Code == "" {
				t.Fatalf("%q: error body %s", body, rec.Body)
			}
		default:
			t.Fatalf("%q: %d %s", body, rec.Code, rec.Body)
		}
	})
}
