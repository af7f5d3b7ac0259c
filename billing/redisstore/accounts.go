package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Account settings and tier promotion. The settings are fields of the account
// hash under these names (absent = the default: active, not pinned, no limit),
// which the reserve script reads too: status ("suspended"), tier, tier_pinned
// ("1"), name, email, external_id, spend_limit and spend_alert (micros). What
// promotion reads, paid_total (micros) and first_paid_at (Unix ms), is kept by
// the scripts that credit payments (prelude.lua's count_paid).

var updateAccountScript = newScript("update_account.lua")

// maxActorLen bounds an actor's name (an admin token's name), as purchases do.
const maxActorLen = 200

// UpdateAccount applies u in one script and books it (see billing.Ledger).
func (s *Store) UpdateAccount(ctx context.Context, id string, u billing.AccountUpdate) (billing.AccountUpdateResult, error) {
	if err := billing.ValidAccountID(id); err != nil {
		return billing.AccountUpdateResult{}, notFound(id)
	}
	if err := checkActor(u.Actor); err != nil {
		return billing.AccountUpdateResult{}, err
	}
	kv, err := updateFields(u)
	if err != nil {
		return billing.AccountUpdateResult{}, err
	}
	var res billing.AccountUpdateResult
	if len(kv) > 0 {
		args := append([]interface{}{msArg(s.now()), u.Actor}, kv...)
		r, err := s.run(ctx, updateAccountScript, s.accountKeys(id), args...)
		if err != nil {
			return billing.AccountUpdateResult{}, err
		}
		if res, err = decodeUpdateAccount(r, id); err != nil {
			return billing.AccountUpdateResult{}, err
		}
	}
	a, err := s.GetAccount(ctx, id)
	if err != nil {
		return billing.AccountUpdateResult{}, err
	}
	a.Grants = nil
	res.Account = a
	return res, nil
}

// updateFields turns u into the script's field/value pairs.
func updateFields(u billing.AccountUpdate) ([]interface{}, error) {
	var kv []interface{}
	text := func(field string, v *string, check func(string) error) error {
		if v == nil {
			return nil
		}
		if *v != "" {
			if err := check(*v); err != nil {
				return err
			}
		}
		kv = append(kv, field, *v)
		return nil
	}
	if u.Tier != nil {
		if *u.Tier == "" || strings.ContainsFunc(*u.Tier, unicode.IsSpace) {
			return nil, fmt.Errorf("%w: tier %q", billing.ErrInvalid, *u.Tier)
		}
		kv = append(kv, "tier", *u.Tier)
	}
	if u.TierPinned != nil {
		kv = append(kv, "tier_pinned", pinnedValue(*u.TierPinned))
	}
	if u.Status != nil {
		switch *u.Status {
		case billing.StatusActive:
			kv = append(kv, "status", "")
		case billing.StatusSuspended:
			kv = append(kv, "status", billing.StatusSuspended)
		default:
			return nil, fmt.Errorf("%w: status %q", billing.ErrInvalid, *u.Status)
		}
	}
	lineOf := func(what string, n int) func(string) error {
		return func(v string) error { return checkText(what, v, n) }
	}
	if err := text("name", u.Name, lineOf("name", billing.MaxAccountNameLen)); err != nil {
		return nil, err
	}
	if err := text("email", u.Email, billing.ValidEmail); err != nil {
		return nil, err
	}
	if err := text("external_id", u.ExternalID, lineOf("external_id", billing.MaxExternalIDLen)); err != nil {
		return nil, err
	}
	if l := u.SpendLimit; l != nil {
		if l.Monthly < 0 || l.Monthly > money.MaxAmount || l.AlertAt < 0 || l.AlertAt > l.Monthly {
			return nil, fmt.Errorf("%w: spend limit %s with alert at %s", billing.ErrInvalid, l.Monthly, l.AlertAt)
		}
		kv = append(kv, "spend_limit", microsValue(l.Monthly), "spend_alert", microsValue(l.AlertAt))
	}
	return kv, nil
}

func pinnedValue(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// microsValue is an optional amount as the account hash keeps it: "" (absent) for 0.
func microsValue(m money.Micros) string {
	if m == 0 {
		return ""
	}
	return strconv.FormatInt(int64(m), 10)
}

func decodeUpdateAccount(r reply, id string) (billing.AccountUpdateResult, error) {
	switch r.status() {
	case "OK":
		var res billing.AccountUpdateResult
		for _, ev := range []string{r.str(1), r.str(2)} {
			if ev != "" {
				res.EventIDs = append(res.EventIDs, ev)
			}
		}
		if js := r.str(3); js != "" {
			d := record{where: r.script + " reply"}
			res.Changes = parseChanges(&d, js)
			if d.err != nil {
				return billing.AccountUpdateResult{}, d.err
			}
		}
		return decoded(&r, 4, res)
	case "NOACCOUNT":
		return billing.AccountUpdateResult{}, r.refusal(1, notFound(id))
	}
	return billing.AccountUpdateResult{}, r.unexpected()
}

// parseChanges reads an account_update's changes: a JSON array of [field, from, to].
func parseChanges(d *record, raw string) []billing.FieldChange {
	var triples [][]string
	if err := json.Unmarshal([]byte(raw), &triples); err != nil {
		d.fail("changes is %s, want a JSON array of [field, from, to]", show(raw))
		return nil
	}
	out := make([]billing.FieldChange, 0, len(triples))
	for _, t := range triples {
		if len(t) != 3 || t[0] == "" {
			d.fail("changes is %s, want a JSON array of [field, from, to]", show(raw))
			return nil
		}
		out = append(out, billing.FieldChange{Field: t[0], From: t[1], To: t[2]})
	}
	return out
}

// checkActor checks an actor's name: one line of at most maxActorLen bytes.
func checkActor(actor string) error { return checkText("actor", actor, maxActorLen) }

// ladderArg is the promotion ladder as the scripts read it (prelude.lua's
// promote): "tier paid_micros days_ms ..." lowest first; "" for none.
func ladderArg(l billing.Ladder) string {
	var b strings.Builder
	for i, r := range l {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Tier)
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(int64(r.Paid), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(int64(r.Days)*86_400_000, 10))
	}
	return b.String()
}

// accountSettings fills a's settings and payment totals from its hash fields.
func accountSettings(d *record, a *billing.Account, f map[string]string) {
	a.Status = billing.StatusActive
	if f["status"] == billing.StatusSuspended {
		a.Status = billing.StatusSuspended
	} else if st := f["status"]; st != "" {
		d.fail("status is %s, want %q or absent", show(st), billing.StatusSuspended)
	}
	a.TierPinned = f["tier_pinned"] == "1"
	a.Name, a.Email, a.ExternalID = f["name"], f["email"], f["external_id"]
	a.SpendLimit = billing.SpendLimit{Monthly: d.microsOf(f, "spend_limit"), AlertAt: d.microsOf(f, "spend_alert")}
	a.PaidTotal = d.microsOf(f, "paid_total")
	if _, ok := f["first_paid_at"]; ok {
		a.FirstPaidAt = d.msOf(f, "first_paid_at")
	}
}
