package admin

import (
	"net/http"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// updateAccount is PATCH /admin/v1/accounts/{id}: tier, tier_pinned, status,
// name, email, external_id and the monthly spend limit, each optional. Every
// field is checked and every problem answered at once (400, each field named
// in error.problems); the change is one script in the store, booked in the
// ledger with the token's name as the actor.
func (s *Server) updateAccount(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	var body UpdateAccountRequest
	if e := decodeBody(r, &body, false); e != nil {
		return e
	}
	u := billing.AccountUpdate{Tier: body.Tier, TierPinned: body.TierPinned, Status: body.Status,
		Name: body.Name, Email: body.Email, ExternalID: body.ExternalID, Actor: actor(r)}
	var problems []FieldError
	if sl := body.SpendLimit; sl != nil {
		var l billing.SpendLimit
		for _, f := range []struct {
			dst      *money.Micros
			v, param string
			required bool
		}{
			{&l.Monthly, sl.Monthly, "spend_limit.monthly", true},
			{&l.AlertAt, sl.AlertAt, "spend_limit.alert_at", false},
		} {
			if f.v == "" {
				if f.required {
					problems = append(problems, FieldError{f.param, f.param + " is required: the monthly limit in USD such as \"100.00\" (\"0\": no limit)"})
				}
				continue
			}
			m, err := money.Parse(f.v)
			if err != nil {
				problems = append(problems, FieldError{f.param, f.param + ": " + err.Error()})
				continue
			}
			*f.dst = m
		}
		u.SpendLimit = &l
	}
	if u.Empty() && len(problems) == 0 {
		return badRequest(CodeMissingField, "", "nothing to change: send one or more of tier, tier_pinned, status, name, email, external_id, spend_limit")
	}
	for _, p := range u.Validate(s.policy()) {
		if !hasProblem(problems, p.Field) {
			problems = append(problems, FieldError{p.Field, p.Field + ": " + p.Message})
		}
	}
	if len(problems) > 0 {
		code := CodeInvalidValue
		if len(problems) == 1 && problems[0].Param == "tier" {
			code = CodeUnknownTier
		}
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.Message
		}
		e := badRequest(code, problems[0].Param, "%s", strings.Join(msgs, "; "))
		if len(problems) > 1 {
			e.problems = problems
		}
		return e
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	res, err := ledger.UpdateAccount(r.Context(), id, u)
	if err != nil {
		return storeError(err)
	}
	out := AccountUpdate{Account: accountFrom(res.Account, s.policy().Grace), Events: res.EventIDs}
	if out.Events == nil {
		out.Events = []string{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func hasProblem(ps []FieldError, param string) bool {
	for _, p := range ps {
		if p.Param == param {
			return true
		}
	}
	return false
}
