package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// keyFieldNames are the fields POST …/keys and PATCH …/keys/{key_id} take, in
// the order their problems are reported.
var keyFieldNames = []string{"name", "limit", "limit_reset", "expires_at", "models", "rpm", "tpm", "disabled"}

// decodeKeyFields reads a key body field by field, so that every problem (an
// unknown field, a value of the wrong type, an invalid one) is reported at
// once. A null value means the field's default (no limit, no expiry, every
// model…), which for PATCH clears it.
func (s *Server) decodeKeyFields(r *http.Request, emptyOK bool) (billing.KeyUpdate, *apiError) {
	var raw map[string]json.RawMessage
	if e := decodeBody(r, &raw, emptyOK); e != nil {
		return billing.KeyUpdate{}, e
	}
	var problems []keyProblem
	add := func(code, param, format string, args ...any) {
		problems = append(problems, keyProblem{code, FieldError{param, fmt.Sprintf(format, args...)}})
	}
	var unknown []string
	for name := range raw {
		if !slices.Contains(keyFieldNames, name) {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		add(CodeUnknownField, name, "unknown field %q in the request body (a key takes %s)", name, strings.Join(keyFieldNames, ", "))
	}
	var u billing.KeyUpdate
	for _, name := range keyFieldNames {
		v, ok := raw[name]
		if !ok {
			continue
		}
		null := string(v) == "null"
		bad := func(want string) { add(CodeInvalidValue, name, "%s must be %s, got %s", name, want, clip(v)) }
		switch name {
		case "name":
			var n string
			if !null && json.Unmarshal(v, &n) != nil {
				bad("a string")
				continue
			}
			if e := checkKeyName(n); e != nil {
				add(CodeInvalidValue, name, "%s", e.message)
				continue
			}
			u.Name = &n
		case "limit":
			var m money.Micros
			if !null {
				if err := m.UnmarshalJSON(v); err != nil {
					add(CodeInvalidAmount, name, "limit: %v (USD as a decimal string such as \"20.00\"; \"0\": no limit)", err)
					continue
				}
			}
			u.Limit = &m
		case "limit_reset":
			var p string
			if !null && json.Unmarshal(v, &p) != nil {
				bad("a string")
				continue
			}
			u.LimitReset = &p
		case "expires_at":
			var at time.Time
			if !null {
				var str string
				var err error
				if json.Unmarshal(v, &str) == nil {
					at, err = time.Parse(time.RFC3339, str)
				}
				if str == "" || err != nil {
					bad(`an RFC 3339 time such as "2030-01-31T00:00:00Z", or null`)
					continue
				}
			}
			u.ExpiresAt = &at
		case "models":
			var ms []string
			if !null && json.Unmarshal(v, &ms) != nil {
				bad("an array of model names")
				continue
			}
			u.Models = &ms
		case "rpm", "tpm":
			var n int64
			if !null && json.Unmarshal(v, &n) != nil {
				bad("an integer")
				continue
			}
			if name == "rpm" {
				u.RPM = &n
			} else {
				u.TPM = &n
			}
		case "disabled":
			var b bool
			if !null && json.Unmarshal(v, &b) != nil {
				bad("true or false")
				continue
			}
			u.Disabled = &b
		}
	}
	for _, p := range u.Validate(s.now()) {
		if !slices.ContainsFunc(problems, func(q keyProblem) bool { return q.Param == p.Field }) {
			add(CodeInvalidValue, p.Field, "%s: %s", p.Field, p.Message)
		}
	}
	if len(problems) > 0 {
		// In keyFieldNames order, unknown fields first (Index -1).
		slices.SortStableFunc(problems, func(a, b keyProblem) int {
			return slices.Index(keyFieldNames, a.Param) - slices.Index(keyFieldNames, b.Param)
		})
		return u, keyProblemsError(problems)
	}
	u.Actor = actor(r)
	return u, nil
}

// keyProblem is one field at fault and its error code.
type keyProblem struct {
	code string
	FieldError
}

// keyProblemsError is the 400 for problems: the first one's code and param,
// every message, and error.problems listing each when there are several.
func keyProblemsError(ps []keyProblem) *apiError {
	msgs := make([]string, len(ps))
	fields := make([]FieldError, len(ps))
	for i, p := range ps {
		msgs[i], fields[i] = p.Message, p.FieldError
	}
	e := badRequest(ps[0].code, ps[0].Param, "%s", strings.Join(msgs, "; "))
	if len(ps) > 1 {
		e.problems = fields
	}
	return e
}

// clip shows a raw JSON value in a message, cut short.
func clip(v json.RawMessage) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

// createKey is POST /admin/v1/accounts/{id}/keys: a key with its settings.
func (s *Server) createKey(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	u, e := s.decodeKeyFields(r, true)
	if e != nil {
		return e
	}
	spec := billing.KeySpec{Name: deref(u.Name), Limit: deref(u.Limit), LimitReset: deref(u.LimitReset), ExpiresAt: deref(u.ExpiresAt),
		Models: deref(u.Models), RPM: deref(u.RPM), TPM: deref(u.TPM), Disabled: deref(u.Disabled)}
	keys, e := s.keys()
	if e != nil {
		return e
	}
	key, secret, err := keys.CreateKeyWith(r.Context(), id, spec)
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusCreated, CreatedKey{
		ID: key.ID, Key: secret, Name: key.Name, CreatedAt: key.CreatedAt.UTC(), Hint: key.Hint, RPM: key.RPM, TPM: key.TPM,
		KeySettings: keySettingsFrom(key),
	})
	return nil
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// updateKey is PATCH /admin/v1/accounts/{id}/keys/{key_id}: the fields given
// change, atomically; the answer is the key as it now is. Another account's
// key is 404, as an unknown one.
func (s *Server) updateKey(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	keyID, e := keyIDParam(r)
	if e != nil {
		return e
	}
	u, e := s.decodeKeyFields(r, false)
	if e != nil {
		return e
	}
	if u.Empty() {
		return badRequest(CodeMissingField, "", "nothing to change: send one or more of %s", strings.Join(keyFieldNames, ", "))
	}
	keys, e := s.keys()
	if e != nil {
		return e
	}
	key, err := keys.UpdateKey(r.Context(), id, keyID, u)
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, keyFrom(key))
	return nil
}

// keyIDParam returns the validated {key_id} of the route. Key ids come from
// billing.NewID; the same character rules as account ids keep anything else
// (braces, colons) away from the store's key names.
func keyIDParam(r *http.Request) (string, *apiError) {
	keyID := r.PathValue("key_id")
	if billing.ValidAccountID(keyID) != nil {
		return "", badRequest(CodeInvalidValue, "key_id", "key id %q is malformed (want letters, digits, '.', '_' or '-')", keyID)
	}
	return keyID, nil
}
