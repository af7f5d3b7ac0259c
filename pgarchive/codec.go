package pgarchive

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// The jsonb codec of billing.Event: the column ledger_events.event holds the
// whole event, so an archived event reads back exactly as it was shipped. Its
// field names are a storage format, fixed here (not billing's Go names):
// renaming a Go field must not change what old rows mean. Money is integer
// micro-USD (SQL can sum it), times are Unix nanoseconds, empty fields are left
// out. Adding a field to billing.Event means adding it here: the round-trip
// test fills every field by reflection and fails until it is.

type jsonEvent struct {
	ID                    string           `json:"id"`
	Type                  string           `json:"type"`
	At                    int64            `json:"at_ns"`
	Amount                int64            `json:"amount,omitempty"`
	BalanceAfter          int64            `json:"balance_after,omitempty"`
	CreditAfter           int64            `json:"credit_after,omitempty"`
	DebtAfter             int64            `json:"debt_after,omitempty"`
	GrantID               string           `json:"grant_id,omitempty"`
	Source                string           `json:"source,omitempty"`
	HoldID                string           `json:"hold_id,omitempty"`
	RequestID             string           `json:"request_id,omitempty"`
	KeyID                 string           `json:"key_id,omitempty"`
	Model                 string           `json:"model,omitempty"`
	Endpoint              string           `json:"endpoint,omitempty"`
	PromptTokens          int64            `json:"prompt_tokens,omitempty"`
	CompletionTokens      int64            `json:"completion_tokens,omitempty"`
	CachedTokens          int64            `json:"cached_tokens,omitempty"`
	ReasoningTokens       int64            `json:"reasoning_tokens,omitempty"`
	AudioPromptTokens     int64            `json:"audio_prompt_tokens,omitempty"`
	AudioCompletionTokens int64            `json:"audio_completion_tokens,omitempty"`
	LocalPromptTokens     int64            `json:"local_prompt_tokens,omitempty"`
	LocalCompletionTokens int64            `json:"local_completion_tokens,omitempty"`
	TokenSource           string           `json:"token_source,omitempty"`
	Cost                  int64            `json:"cost,omitempty"`
	FromCredit            int64            `json:"from_credit,omitempty"`
	ToDebt                int64            `json:"to_debt,omitempty"`
	Excess                int64            `json:"excess,omitempty"`
	ExcessTokens          int64            `json:"excess_tokens,omitempty"`
	Note                  string           `json:"note,omitempty"`
	PaymentRef            string           `json:"payment_ref,omitempty"`
	Prices                *jsonPrices      `json:"prices,omitempty"`
	Actor                 string           `json:"actor,omitempty"`
	TierFrom              string           `json:"tier_from,omitempty"`
	TierTo                string           `json:"tier_to,omitempty"`
	Changes               []jsonFieldDelta `json:"changes,omitempty"`
	// Raw holds, base64, the strings jsonb cannot hold as text (invalid UTF-8,
	// or a NUL, which jsonb refuses), by field name; the field itself is then
	// empty. Nothing creditgate writes needs it, but the archive must never
	// refuse or alter an event it is given.
	Raw map[string]string `json:"raw_b64,omitempty"`
}

type jsonPrices struct {
	Input       int64 `json:"input"`
	CachedInput int64 `json:"cached_input"`
	AudioInput  int64 `json:"audio_input"`
	Output      int64 `json:"output"`
	Reasoning   int64 `json:"reasoning"`
	AudioOutput int64 `json:"audio_output"`
}

type jsonFieldDelta struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// EncodeEvent is ev as the archive stores it (jsonb).
func EncodeEvent(ev billing.Event) ([]byte, error) {
	j := jsonEvent{
		ID: ev.ID, Type: string(ev.Type), At: ev.At.UnixNano(),
		Amount: int64(ev.Amount), BalanceAfter: int64(ev.BalanceAfter), CreditAfter: int64(ev.CreditAfter), DebtAfter: int64(ev.DebtAfter),
		GrantID: ev.GrantID, Source: ev.Source, HoldID: ev.HoldID,
		RequestID: ev.RequestID, KeyID: ev.KeyID, Model: ev.Model, Endpoint: ev.Endpoint,
		PromptTokens: ev.PromptTokens, CompletionTokens: ev.CompletionTokens, CachedTokens: ev.CachedTokens, ReasoningTokens: ev.ReasoningTokens,
		AudioPromptTokens: ev.AudioPromptTokens, AudioCompletionTokens: ev.AudioCompletionTokens,
		LocalPromptTokens: ev.LocalPromptTokens, LocalCompletionTokens: ev.LocalCompletionTokens,
		TokenSource: ev.TokenSource,
		Cost:        int64(ev.Cost), FromCredit: int64(ev.FromCredit), ToDebt: int64(ev.ToDebt),
		Excess: int64(ev.Excess), ExcessTokens: ev.ExcessTokens,
		Note: ev.Note, PaymentRef: ev.PaymentRef, Actor: ev.Actor, TierFrom: ev.TierFrom, TierTo: ev.TierTo,
	}
	if p := ev.Prices; p != nil {
		j.Prices = &jsonPrices{Input: int64(p.Input), CachedInput: int64(p.CachedInput), AudioInput: int64(p.AudioInput),
			Output: int64(p.Output), Reasoning: int64(p.Reasoning), AudioOutput: int64(p.AudioOutput)}
	}
	for _, c := range ev.Changes {
		j.Changes = append(j.Changes, jsonFieldDelta(c))
	}
	for _, f := range j.strings() {
		if v := *f.p; !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			if j.Raw == nil {
				j.Raw = map[string]string{}
			}
			j.Raw[f.name] = base64.StdEncoding.EncodeToString([]byte(v))
			*f.p = ""
		}
	}
	return json.Marshal(j)
}

// DecodeEvent reads an event EncodeEvent wrote. Its time is in UTC, as the
// store's events are.
func DecodeEvent(b []byte) (billing.Event, error) {
	var j jsonEvent
	if err := json.Unmarshal(b, &j); err != nil {
		return billing.Event{}, fmt.Errorf("pgarchive: an archived event does not decode: %w", err)
	}
	if len(j.Raw) > 0 {
		known := 0
		for _, f := range j.strings() {
			if enc, ok := j.Raw[f.name]; ok {
				raw, err := base64.StdEncoding.DecodeString(enc)
				if err != nil {
					return billing.Event{}, fmt.Errorf("pgarchive: an archived event's raw %s does not decode: %w", f.name, err)
				}
				*f.p = string(raw)
				known++
			}
		}
		if known != len(j.Raw) {
			return billing.Event{}, fmt.Errorf("pgarchive: an archived event has raw fields it does not name: %v", j.Raw)
		}
	}
	ev := billing.Event{
		ID: j.ID, Type: billing.EventType(j.Type), At: time.Unix(0, j.At).UTC(),
		Amount: money.Micros(j.Amount), BalanceAfter: money.Micros(j.BalanceAfter), CreditAfter: money.Micros(j.CreditAfter), DebtAfter: money.Micros(j.DebtAfter),
		GrantID: j.GrantID, Source: j.Source, HoldID: j.HoldID,
		RequestID: j.RequestID, KeyID: j.KeyID, Model: j.Model, Endpoint: j.Endpoint,
		PromptTokens: j.PromptTokens, CompletionTokens: j.CompletionTokens, CachedTokens: j.CachedTokens, ReasoningTokens: j.ReasoningTokens,
		AudioPromptTokens: j.AudioPromptTokens, AudioCompletionTokens: j.AudioCompletionTokens,
		LocalPromptTokens: j.LocalPromptTokens, LocalCompletionTokens: j.LocalCompletionTokens,
		TokenSource: j.TokenSource,
		Cost:        money.Micros(j.Cost), FromCredit: money.Micros(j.FromCredit), ToDebt: money.Micros(j.ToDebt),
		Excess: money.Micros(j.Excess), ExcessTokens: j.ExcessTokens,
		Note: j.Note, PaymentRef: j.PaymentRef, Actor: j.Actor, TierFrom: j.TierFrom, TierTo: j.TierTo,
	}
	if p := j.Prices; p != nil {
		ev.Prices = &billing.UnitPrices{Input: money.Micros(p.Input), CachedInput: money.Micros(p.CachedInput), AudioInput: money.Micros(p.AudioInput),
			Output: money.Micros(p.Output), Reasoning: money.Micros(p.Reasoning), AudioOutput: money.Micros(p.AudioOutput)}
	}
	for _, c := range j.Changes {
		ev.Changes = append(ev.Changes, billing.FieldChange(c))
	}
	return ev, nil
}

type stringField struct {
	name string
	p    *string
}

// strings are j's string fields by their JSON names (a change's as
// "changes.<i>.<field>").
func (j *jsonEvent) strings() []stringField {
	fs := []stringField{
		{"id", &j.ID}, {"type", &j.Type}, {"grant_id", &j.GrantID}, {"source", &j.Source}, {"hold_id", &j.HoldID},
		{"request_id", &j.RequestID}, {"key_id", &j.KeyID}, {"model", &j.Model}, {"endpoint", &j.Endpoint},
		{"token_source", &j.TokenSource}, {"note", &j.Note}, {"payment_ref", &j.PaymentRef}, {"actor", &j.Actor},
		{"tier_from", &j.TierFrom}, {"tier_to", &j.TierTo},
	}
	for i := range j.Changes {
		c := &j.Changes[i]
		n := "changes." + strconv.Itoa(i) + "."
		fs = append(fs, stringField{n + "field", &c.Field}, stringField{n + "from", &c.From}, stringField{n + "to", &c.To})
	}
	return fs
}

// columnText is s as a text column can hold it (valid UTF-8, no NUL): the
// columns beside the jsonb are for indexes and rollups; the jsonb keeps the
// exact value.
func columnText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
