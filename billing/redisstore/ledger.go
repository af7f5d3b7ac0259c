package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var createAccountScript = newScript("create_account.lua")

// CreateAccount creates an account with no credit.
func (s *Store) CreateAccount(ctx context.Context, id, tier string) (billing.Account, error) {
	if err := billing.ValidAccountID(id); err != nil {
		return billing.Account{}, err
	}
	if tier == "" {
		return billing.Account{}, fmt.Errorf("%w: tier is empty", billing.ErrInvalid)
	}
	now := s.now()
	r, err := s.run(ctx, createAccountScript, []string{s.acctKey(id)}, id, tier, ms(now), newCreationID())
	if err != nil {
		return billing.Account{}, err
	}
	// The index is a separate key (another slot on a cluster), written after the
	// account; listing tolerates an id whose account is missing. Added even when the
	// account existed, which repairs an index write lost to a crash.
	if err := wrap(s.c.SAdd(ctx, s.accountsKey(), id).Err()); err != nil {
		return billing.Account{}, err
	}
	return decodeCreateAccount(r, id, tier)
}

func decodeCreateAccount(r reply, id, tier string) (billing.Account, error) {
	switch r.status() {
	case "OK":
		return decoded(&r, 2, billing.Account{ID: id, Tier: tier, CreatedAt: r.ms(1)})
	case "EXISTS":
		return billing.Account{}, r.refusal(1, fmt.Errorf("%w: %q", billing.ErrAccountExists, id))
	}
	return billing.Account{}, r.unexpected()
}

// newCreationID names one CreateAccount call (see lua/create_account.lua).
func newCreationID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

var stateScript = newScript("state.lua")

// GetAccount returns the account's current state, with its grants. Expired grants
// are forfeited (and recorded) first, so the answer never counts expired credit.
func (s *Store) GetAccount(ctx context.Context, id string) (billing.Account, error) {
	if err := billing.ValidAccountID(id); err != nil {
		return billing.Account{}, notFound(id)
	}
	now := s.now()
	r, err := s.run(ctx, stateScript, s.accountKeys(id, "checkpoint"), ms(now))
	if err != nil {
		return billing.Account{}, err
	}
	a, err := parseState(id, r)
	a.AsOf = time.UnixMilli(now.UnixMilli()).UTC()
	return a, err
}

func parseState(id string, r reply) (billing.Account, error) {
	if r.is(0, "NOACCOUNT") {
		return billing.Account{}, r.refusal(1, notFound(id))
	}
	f, grants, last, checkpoint := r.hash(0), r.hash(1), r.str(2), r.hash(3)
	if err := r.done(4); err != nil {
		return billing.Account{}, err
	}
	d := record{where: fmt.Sprintf("%s reply, account %q", r.script, id)}
	a := billing.Account{
		ID:        id,
		Tier:      f["tier"],
		CreatedAt: d.msOf(f, "created_at"),
		Credit:    d.microsOf(f, "credit"),
		Debt:      d.microsOf(f, "debt"),
		Reserved:  d.microsOf(f, "reserved"),
		Depleted:  f["depleted"],
		Totals:    d.totalsOf(f),
		AutoRecharge: billing.AutoRecharge{
			Enabled:      f["ar_enabled"] == "1",
			Threshold:    d.microsOf(f, "ar_threshold"),
			Amount:       d.microsOf(f, "ar_amount"),
			MonthlyLimit: d.microsOf(f, "ar_monthly_limit"),
		},
		Recharge: billing.RechargeState{
			Pending:    f["rc_id"],
			Month:      f["ar_month"],
			MonthTotal: d.microsOf(f, "ar_month_total"),
			Failures:   d.countOf(f, "rc_fails"),
		},
		LastEventID: last,
	}
	accountSettings(&d, &a, f)
	if until := d.msOf(f, "rc_backoff"); until.UnixMilli() > 0 {
		a.Recharge.BackoffUntil = until
	}
	if d.err != nil {
		return billing.Account{}, d.err
	}
	if f["tier"] == "" {
		return billing.Account{}, &malformedError{where: d.where, detail: "no tier"}
	}
	cp, err := parseCheckpoint(d.where, checkpoint)
	if err != nil {
		return billing.Account{}, err
	}
	a.Checkpoint = cp
	for gid, raw := range grants {
		g, err := parseGrant(r.script+" reply", gid, raw)
		if err != nil {
			return billing.Account{}, err
		}
		a.Grants = append(a.Grants, g)
	}
	sortGrants(a.Grants)
	return a, nil
}

// sortGrants orders live grants by expiry (consumption order), then spent or
// expired ones newest first.
func sortGrants(gs []billing.Grant) {
	sort.Slice(gs, func(i, j int) bool {
		li, lj := gs[i].Remaining > 0, gs[j].Remaining > 0
		switch {
		case li != lj:
			return li
		case li:
			if !gs[i].ExpiresAt.Equal(gs[j].ExpiresAt) {
				return gs[i].ExpiresAt.Before(gs[j].ExpiresAt)
			}
			return gs[i].ID < gs[j].ID
		default:
			if !gs[i].GrantedAt.Equal(gs[j].GrantedAt) {
				return gs[i].GrantedAt.After(gs[j].GrantedAt)
			}
			return gs[i].ID < gs[j].ID
		}
	})
}

// parseGrant reads a grant record "amount remaining granted_ms expires_ms source
// event_id repaid balance" (where: whose reply it came in).
func parseGrant(where, id, raw string) (billing.Grant, error) {
	d := record{where: fmt.Sprintf("%s, grant %q", where, id)}
	p := strings.Split(raw, " ")
	if len(p) != 8 {
		d.fail("%d fields, want 8", len(p))
		return billing.Grant{}, d.err
	}
	g := billing.Grant{
		ID:        id,
		Amount:    d.micros("amount", p[0]),
		Remaining: d.micros("remaining", p[1]),
		GrantedAt: d.ms("granted_at", p[2]),
		ExpiresAt: d.ms("expires_at", p[3]),
		Source:    p[4],
	}
	if d.err != nil {
		return billing.Grant{}, d.err
	}
	return g, nil
}

// ListAccounts returns every account's state without grants, sorted by id: one
// state script per account (an admin operation; fine for thousands of accounts).
func (s *Store) ListAccounts(ctx context.Context) ([]billing.Account, error) {
	ids, err := s.c.SMembers(ctx, s.accountsKey()).Result()
	if err != nil {
		return nil, wrap(err)
	}
	sort.Strings(ids)
	out := make([]billing.Account, 0, len(ids))
	for _, id := range ids {
		a, err := s.GetAccount(ctx, id)
		if errors.Is(err, billing.ErrAccountNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a.Grants = nil
		out = append(out, a)
	}
	return out, nil
}

// SetTier changes an account's tier, booked as a tier_change with no actor
// (UpdateAccount with the tier alone).
func (s *Store) SetTier(ctx context.Context, id, tier string) error {
	if tier == "" {
		return fmt.Errorf("%w: tier is empty", billing.ErrInvalid)
	}
	_, err := s.UpdateAccount(ctx, id, billing.AccountUpdate{Tier: &tier})
	return err
}

// SetAutoRecharge stores the account's auto-recharge settings.
func (s *Store) SetAutoRecharge(ctx context.Context, id string, ar billing.AutoRecharge) error {
	enabled := "0"
	if ar.Enabled {
		enabled = "1"
	}
	return s.setFields(ctx, id,
		"ar_enabled", enabled,
		"ar_threshold", amountArg(ar.Threshold),
		"ar_amount", amountArg(ar.Amount),
		"ar_monthly_limit", amountArg(ar.MonthlyLimit))
}

var setFieldsScript = newScript("set_fields.lua")

func (s *Store) setFields(ctx context.Context, id string, kv ...interface{}) error {
	if err := billing.ValidAccountID(id); err != nil {
		return notFound(id)
	}
	r, err := s.run(ctx, setFieldsScript, []string{s.acctKey(id)}, kv...)
	if err != nil {
		return err
	}
	return decodeExists(r, id)
}

// decodeExists decodes the 1-or-0 reply of a script that needs the account.
func decodeExists(r reply, id string) error {
	if exists := r.boolean(0); !exists {
		return r.refusal(1, notFound(id))
	}
	return r.done(1)
}

var reserveScript = newScript("reserve.lua")

// Reserve admits a request by holding its estimated cost (see billing.ReserveRequest).
func (s *Store) Reserve(ctx context.Context, q billing.ReserveRequest) (billing.Reservation, error) {
	if err := checkHold(q.Account, q.HoldID); err != nil {
		return billing.Reservation{}, err
	}
	if q.Estimate < 0 || q.Minimum < 0 || q.Grace < 0 || q.Estimate > money.MaxAmount || q.TTL <= 0 {
		return billing.Reservation{}, fmt.Errorf("%w: reserve estimate %s, minimum %s, grace %s, ttl %s", billing.ErrInvalid, q.Estimate, q.Minimum, q.Grace, q.TTL)
	}
	if err := checkReserveLimits(q); err != nil {
		return billing.Reservation{}, err
	}
	now := s.now()
	a := newArgList(reserveScript, s.holdKeys(q.Account, q.HoldID))
	a.num(msArg(now))
	a.str(q.HoldID)
	a.num(amountArg(q.Estimate))
	a.num(amountArg(q.Minimum))
	a.num(amountArg(q.Grace))
	a.num(q.TTL.Milliseconds())
	a.num((q.TTL + s.retention).Milliseconds())
	s.appendLimits(a, q, now)
	appendRequest(a, q.RequestID, q.KeyID, q.Model, q.Endpoint)
	r, err := s.runArgs(ctx, reserveScript, a)
	if err != nil {
		return billing.Reservation{}, err
	}
	return decodeReserve(r, q)
}

func decodeReserve(r reply, q billing.ReserveRequest) (billing.Reservation, error) {
	switch r.status() {
	case "OK":
		return decoded(&r, 5, billing.Reservation{Admitted: true, Held: r.micros(1), Available: r.micros(2), ExpiresAt: r.ms(3), LimitedBy: r.str(4)})
	case "DENY":
		return decoded(&r, 3, billing.Reservation{Reason: r.str(1), Available: r.micros(2)})
	case "NOACCOUNT":
		return billing.Reservation{}, r.refusal(1, notFound(q.Account))
	case "DONE":
		state := r.str(1)
		return billing.Reservation{}, r.refusal(2, fmt.Errorf("%w: hold %q was already %s", billing.ErrInvalid, q.HoldID, state))
	}
	return billing.Reservation{}, r.unexpected()
}

var settleScript = newScript("settle.lua")

// Settle charges a request's actual cost and releases its hold.
func (s *Store) Settle(ctx context.Context, q billing.SettleRequest) (billing.Settlement, error) {
	if err := checkHold(q.Account, q.HoldID); err != nil {
		return billing.Settlement{}, err
	}
	if q.Cost < 0 || q.Cost > money.MaxAmount {
		return billing.Settlement{}, fmt.Errorf("%w: cost %s out of range", billing.ErrInvalid, q.Cost)
	}
	if err := checkPrices(q.Usage.Prices); err != nil {
		return billing.Settlement{}, err
	}
	now := s.now()
	t := q.Triggers
	a := newArgList(settleScript, s.holdKeys(q.Account, q.HoldID, "outbox", "recharges"))
	a.num(msArg(now))
	a.str(q.HoldID)
	a.num(amountArg(q.Cost))
	a.num(s.recordTTL())
	a.str(billing.MonthOf(now))
	a.flag(t.AutoRecharge)
	if t.Notices {
		a.num(amountArg(t.LowBalance))
	} else {
		a.str("")
	}
	a.flag(t.Notices)
	a.str(q.Usage.KeyID)
	appendPeriods(a, now)
	appendUsage(a, q.Usage, true)
	r, err := s.runArgs(ctx, settleScript, a)
	if err != nil {
		return billing.Settlement{}, err
	}
	return decodeSettle(r, q)
}

func decodeSettle(r reply, q billing.SettleRequest) (billing.Settlement, error) {
	switch r.status() {
	case "OK":
		return decoded(&r, 7, billing.Settlement{EventID: r.str(1), Cost: q.Cost, FromCredit: r.micros(2), ToDebt: r.micros(3),
			BalanceAfter: r.micros(4), RechargeID: r.str(5), Notices: fieldsOf(r.str(6))})
	case "REPLAY":
		st := replayed(&r, false)
		st.RechargeID, st.Notices = r.str(7), fieldsOf(r.str(8))
		return decoded(&r, 9, st)
	case "NOACCOUNT":
		return billing.Settlement{}, r.refusal(1, notFound(q.Account))
	}
	return billing.Settlement{}, r.unexpected()
}

var releaseScript = newScript("release.lua")

// Release frees a hold without charging (the upstream failed before any token).
func (s *Store) Release(ctx context.Context, account, holdID string, u billing.Usage) (billing.Settlement, error) {
	if err := checkHold(account, holdID); err != nil {
		return billing.Settlement{}, err
	}
	a := newArgList(releaseScript, s.holdKeys(account, holdID))
	a.num(msArg(s.now()))
	a.str(holdID)
	a.num(s.recordTTL())
	appendUsage(a, u, false)
	r, err := s.runArgs(ctx, releaseScript, a)
	if err != nil {
		return billing.Settlement{}, err
	}
	return decodeRelease(r, account)
}

func decodeRelease(r reply, account string) (billing.Settlement, error) {
	switch r.status() {
	case "OK":
		return decoded(&r, 3, billing.Settlement{EventID: r.str(1), BalanceAfter: r.micros(2)})
	case "REPLAY":
		return decoded(&r, 7, replayed(&r, true))
	case "NOACCOUNT":
		return billing.Settlement{}, r.refusal(1, notFound(account))
	}
	return billing.Settlement{}, r.unexpected()
}

// recordTTL bounds how long a finished hold's record stays. A settle may come long
// after the hold (a stream longer than hold_ttl), so it is counted from the settle.
func (s *Store) recordTTL() int64 { return s.retention.Milliseconds() }

// flag is a boolean script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// fieldsOf splits a space-separated script reply; nil for "".
func fieldsOf(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// replayed decodes the head of a settle's or release's REPLAY reply: {'REPLAY',
// state, event_id, cost, from_credit, to_debt, balance, …}. A release answers
// state "expired" for a hold that already has its hold_expired event (release
// is true for a release's reply).
func replayed(r *reply, release bool) billing.Settlement {
	switch state := r.str(1); {
	case r.err != nil, state == "settled", state == "released", state == "expired" && release:
	default:
		r.fail("element 1 is %s, want \"settled\" or \"released\"", show(state))
	}
	return billing.Settlement{EventID: r.str(2), Cost: r.micros(3), FromCredit: r.micros(4), ToDebt: r.micros(5), BalanceAfter: r.micros(6), Replayed: true}
}

func checkHold(account, holdID string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return err
	}
	if holdID == "" || len(holdID) > 128 || strings.ContainsAny(holdID, "{} ") {
		return fmt.Errorf("%w: hold id %q", billing.ErrInvalid, holdID)
	}
	return nil
}

// appendRequest adds the fields that name a request (usage, release and
// hold_expired events, hold records), skipping empty ones.
func appendRequest(a *argList, requestID, keyID, model, endpoint string) {
	a.field("request_id", requestID)
	a.field("key_id", keyID)
	a.field("model", model)
	a.field("endpoint", endpoint)
}

// appendUsage adds the usage event's descriptive fields, skipping empty ones.
func appendUsage(a *argList, u billing.Usage, tokens bool) {
	appendRequest(a, u.RequestID, u.KeyID, u.Model, u.Endpoint)
	if tokens {
		a.numField("prompt_tokens", u.PromptTokens)
		a.numField("completion_tokens", u.CompletionTokens)
		a.numField("cached_tokens", u.CachedTokens)
		a.numField("reasoning_tokens", u.ReasoningTokens)
		a.numField("local_prompt_tokens", u.LocalPromptTokens)
		a.numField("local_completion_tokens", u.LocalCompletionTokens)
		if u.AudioPromptTokens != 0 || u.AudioCompletionTokens != 0 {
			a.numField("audio_prompt_tokens", u.AudioPromptTokens)
			a.numField("audio_completion_tokens", u.AudioCompletionTokens)
		}
		a.field("token_source", u.TokenSource)
		appendPrices(a, u.Prices)
		if u.Excess != 0 || u.ExcessTokens != 0 {
			a.numField("excess", int64(u.Excess))
			a.numField("excess_tokens", u.ExcessTokens)
		}
	}
	a.field("note", u.Note)
}

// The usage event's price fields, micro-USD per 1M tokens. Reasoning and audio
// prices are written only where they differ from their parent class's (output,
// input), which is rare, so an event carries three fields, not six; parsePrices
// fills the others back in.
const (
	fieldPriceInput       = "price_input"
	fieldPriceCachedInput = "price_cached_input"
	fieldPriceOutput      = "price_output"
	fieldPriceReasoning   = "price_reasoning"
	fieldPriceAudioInput  = "price_audio_input"
	fieldPriceAudioOutput = "price_audio_output"
)

func appendPrices(a *argList, p *billing.UnitPrices) {
	if p == nil {
		return
	}
	a.numField(fieldPriceInput, amountArg(p.Input))
	a.numField(fieldPriceCachedInput, amountArg(p.CachedInput))
	a.numField(fieldPriceOutput, amountArg(p.Output))
	for _, c := range [...]struct {
		field         string
		price, parent money.Micros
	}{{fieldPriceReasoning, p.Reasoning, p.Output}, {fieldPriceAudioInput, p.AudioInput, p.Input}, {fieldPriceAudioOutput, p.AudioOutput, p.Output}} {
		if c.price != c.parent {
			a.numField(c.field, amountArg(c.price))
		}
	}
}

// checkPrices refuses unit prices the ledger cannot hold.
func checkPrices(p *billing.UnitPrices) error {
	if p == nil {
		return nil
	}
	for _, m := range [...]money.Micros{p.Input, p.CachedInput, p.AudioInput, p.Output, p.Reasoning, p.AudioOutput} {
		if m < 0 || m > money.MaxAmount {
			return fmt.Errorf("%w: unit price %s out of range", billing.ErrInvalid, m)
		}
	}
	return nil
}

// parsePrices reads a usage event's unit prices: nil when it has none (an event
// booked before they were recorded).
func parsePrices(d *record, f map[string]string) *billing.UnitPrices {
	if _, ok := f[fieldPriceInput]; !ok {
		return nil
	}
	p := &billing.UnitPrices{
		Input:       d.microsOf(f, fieldPriceInput),
		CachedInput: d.microsOf(f, fieldPriceCachedInput),
		Output:      d.microsOf(f, fieldPriceOutput),
	}
	p.Reasoning, p.AudioInput, p.AudioOutput = p.Output, p.Input, p.Output
	for field, dst := range map[string]*money.Micros{fieldPriceReasoning: &p.Reasoning, fieldPriceAudioInput: &p.AudioInput, fieldPriceAudioOutput: &p.AudioOutput} {
		if _, ok := f[field]; ok {
			*dst = d.microsOf(f, field)
		}
	}
	return p
}

var topUpScript = newScript("top_up.lua")

// TopUp credits a grant under the policy's limits, paying debt first.
func (s *Store) TopUp(ctx context.Context, p billing.Policy, q billing.TopUpRequest) (billing.TopUpResult, error) {
	if err := billing.ValidAccountID(q.Account); err != nil {
		return billing.TopUpResult{}, err
	}
	if q.GrantID == "" || len(q.GrantID) > 128 || strings.ContainsAny(q.GrantID, "{} ") {
		return billing.TopUpResult{}, fmt.Errorf("%w: grant id %q", billing.ErrInvalid, q.GrantID)
	}
	if q.Amount <= 0 || q.Amount > money.MaxAmount {
		return billing.TopUpResult{}, fmt.Errorf("%w: amount %s must be positive and at most %s", billing.ErrInvalid, q.Amount, money.MaxAmount)
	}
	source := q.Source
	if source == "" {
		source = billing.SourcePurchase
	}
	if strings.ContainsAny(source, " ") {
		return billing.TopUpResult{}, fmt.Errorf("%w: source %q", billing.ErrInvalid, source)
	}
	if q.PaymentRef != "" {
		if err := billing.ValidPaymentRef(q.PaymentRef); err != nil {
			return billing.TopUpResult{}, err
		}
	}
	if err := billing.ValidNote(q.Note); err != nil {
		return billing.TopUpResult{}, err
	}
	if err := checkActor(q.Actor); err != nil {
		return billing.TopUpResult{}, err
	}
	evType := billing.EventTopUp
	if source == billing.SourceAutoRecharge {
		evType = billing.EventAutoRecharge
	}
	idemKey := "idem:"
	if q.IdempotencyKey != "" {
		if q.Fingerprint == "" {
			return billing.TopUpResult{}, fmt.Errorf("%w: an idempotency key needs a fingerprint", billing.ErrInvalid)
		}
		idemKey += q.IdempotencyKey
	} else {
		q.Fingerprint = ""
	}
	// The tier lives in Redis, its limits in the policy: read the tier, run the script
	// with its limits, and retry if the tier changed in between.
	for attempt := 0; attempt < 3; attempt++ {
		tier, err := s.c.HGet(ctx, s.acctKey(q.Account), "tier").Result()
		if errors.Is(err, redis.Nil) {
			return billing.TopUpResult{}, notFound(q.Account)
		}
		if err != nil {
			return billing.TopUpResult{}, wrap(err)
		}
		limits, ok := p.TierFor(tier)
		if !ok && !q.SkipLimits {
			return billing.TopUpResult{}, fmt.Errorf("%w: account %q has tier %q, which is not configured", billing.ErrUnknownTier, q.Account, tier)
		}
		now := s.now()
		expires := q.ExpiresAt
		if expires.IsZero() {
			expires = now.Add(p.CreditTTL)
		}
		skip := "0"
		if q.SkipLimits {
			skip = "1"
		}
		explicitExpiry := "0"
		if !q.ExpiresAt.IsZero() {
			explicitExpiry = "1"
		}
		r, err := s.run(ctx, topUpScript, s.accountKeys(q.Account, idemKey, "outbox"),
			ms(now), q.GrantID, amountArg(q.Amount), ms(expires), source, string(evType), tier,
			amountArg(p.MinPurchase), amountArg(limits.MaxTopUp), amountArg(limits.MaxBalance),
			skip, q.Fingerprint, s.idemTTL.Milliseconds(), explicitExpiry, q.PaymentRef, q.Note, q.Actor, ladderArg(p.Ladder()))
		if err != nil {
			return billing.TopUpResult{}, err
		}
		res, retry, err := decodeTopUp(r, q, expires)
		if !retry {
			if err == nil {
				if err := s.durable(ctx, q.Account, res.EventID); err != nil {
					return billing.TopUpResult{}, err
				}
			}
			return res, err
		}
	}
	return billing.TopUpResult{}, fmt.Errorf("redisstore: account %q changed tier during the top-up; try again", q.Account)
}

// decodeTopUp decodes top_up.lua's reply; retry when the account's tier changed
// since TopUp read it.
func decodeTopUp(r reply, q billing.TopUpRequest, expires time.Time) (_ billing.TopUpResult, retry bool, _ error) {
	switch r.status() {
	case "OK":
		res := grantReply(&r)
		res.Replayed = r.flag(10)
		res, err := decoded(&r, 11, res)
		return res, false, err
	case "TIER":
		r.str(1) // the tier it has now: TopUp reads it again
		err := r.done(2)
		return billing.TopUpResult{}, err == nil, err
	case "NOACCOUNT":
		return billing.TopUpResult{}, false, r.refusal(1, notFound(q.Account))
	case "CONFLICT":
		return billing.TopUpResult{}, false, r.refusal(1, fmt.Errorf("%w: Idempotency-Key %q", billing.ErrIdempotencyConflict, q.IdempotencyKey))
	case "BELOW":
		return billing.TopUpResult{}, false, r.refusal(2, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: r.micros(1), Amount: q.Amount})
	case "ABOVE_TOPUP":
		return billing.TopUpResult{}, false, r.refusal(2, &billing.LimitError{Err: billing.ErrAboveMaxTopUp, Limit: r.micros(1), Amount: q.Amount})
	case "ABOVE_BALANCE":
		return billing.TopUpResult{}, false, r.refusal(3, &billing.LimitError{Err: billing.ErrAboveMaxBalance, Limit: r.micros(1), Amount: r.micros(2)})
	case "PAST_EXPIRY":
		return billing.TopUpResult{}, false, r.refusal(1, fmt.Errorf("%w: expires_at %s is not in the future", billing.ErrInvalid, expires.UTC().Format(time.RFC3339)))
	}
	return billing.TopUpResult{}, false, r.unexpected()
}

// grantReply decodes the scripts' grant_reply: {status, grant id, amount,
// remaining, granted_ms, expires_ms, source, event id, repaid, balance, …}.
func grantReply(r *reply) billing.TopUpResult {
	return billing.TopUpResult{
		Grant: billing.Grant{
			ID: r.str(1), Amount: r.micros(2), Remaining: r.micros(3),
			GrantedAt: r.ms(4), ExpiresAt: r.ms(5), Source: r.str(6),
		},
		EventID: r.str(7), DebtRepaid: r.micros(8), BalanceAfter: r.micros(9),
	}
}

// Events returns up to limit ledger events after the cursor (exclusive), oldest
// first. A cursor older than a trimmed ledger's head (TrimLedger) continues at
// the head: the oldest event still kept.
func (s *Store) Events(ctx context.Context, account, after string, limit int) (billing.EventPage, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.EventPage{}, notFound(account)
	}
	if limit <= 0 {
		limit = 100
	}
	start := "-"
	if after != "" {
		next, err := nextStreamID(after)
		if err != nil {
			return billing.EventPage{}, err
		}
		start = next
	}
	msgs, err := s.c.XRangeN(ctx, s.ledgerKey(account), start, "+", int64(limit)+1).Result()
	if err != nil {
		return billing.EventPage{}, wrap(err)
	}
	return eventPage(account, msgs, limit)
}

// eventPage decodes a page of up to limit events from msgs, read with one more
// than limit: that one, when there, says a next page follows the last.
func eventPage(account string, msgs []redis.XMessage, limit int) (billing.EventPage, error) {
	page := billing.EventPage{}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		page.Next = msgs[limit-1].ID
	}
	page.Events = make([]billing.Event, len(msgs))
	for i, m := range msgs {
		ev, err := parseEvent(account, m)
		if err != nil {
			return billing.EventPage{}, err
		}
		page.Events[i] = ev
	}
	return page, nil
}

// EventsBefore returns up to limit ledger events with ids below the cursor
// (exclusive; "" from the newest), newest first (billing.Ledger.EventsBefore).
// On a trimmed ledger the oldest event still kept is the last one served.
func (s *Store) EventsBefore(ctx context.Context, account, before string, limit int) (billing.EventPage, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.EventPage{}, notFound(account)
	}
	if limit <= 0 {
		limit = 100
	}
	end := "+"
	if before != "" {
		prev, ok, err := prevStreamID(before)
		if err != nil {
			return billing.EventPage{}, err
		}
		if !ok {
			return billing.EventPage{}, nil // nothing is below 0-0
		}
		end = prev
	}
	msgs, err := s.c.XRevRangeN(ctx, s.ledgerKey(account), end, "-", int64(limit)+1).Result()
	if err != nil {
		return billing.EventPage{}, wrap(err)
	}
	return eventPage(account, msgs, limit)
}

// prevStreamID returns the largest stream id before id; ok is false for 0-0,
// which has none. Like nextStreamID, it makes XREVRANGE exclusive everywhere.
func prevStreamID(id string) (prev string, ok bool, _ error) {
	if _, err := nextStreamID(id); err != nil {
		return "", false, err
	}
	msPart, seqPart, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseUint(msPart, 10, 64)
	seq, _ := strconv.ParseUint(seqPart, 10, 64)
	switch {
	case seq > 0:
		return msPart + "-" + strconv.FormatUint(seq-1, 10), true, nil
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-" + strconv.FormatUint(^uint64(0), 10), true, nil
	}
	return "", false, nil
}

// nextStreamID returns the smallest stream id after id ("ms-seq" → "ms-(seq+1)"),
// which makes XRANGE exclusive on every Redis version and on miniredis.
func nextStreamID(id string) (string, error) {
	msPart, seqPart, ok := strings.Cut(id, "-")
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return "", fmt.Errorf("%w: ledger cursor %q is not an event id", billing.ErrInvalid, id)
	}
	if seq == ^uint64(0) {
		return strconv.FormatUint(ms+1, 10) + "-0", nil
	}
	return msPart + "-" + strconv.FormatUint(seq+1, 10), nil
}

// parseEvent reads one ledger event. Fields an event type does not have are
// absent (zero); every field present must parse.
func parseEvent(account string, m redis.XMessage) (billing.Event, error) {
	d := record{where: fmt.Sprintf("ledger event %s of account %q", m.ID, account)}
	f := make(map[string]string, len(m.Values))
	for k, v := range m.Values {
		s, ok := v.(string)
		if !ok {
			d.fail("%s is %s, want a string", k, show(v))
			return billing.Event{}, d.err
		}
		f[k] = s
	}
	ev := billing.Event{
		ID:                    m.ID,
		Type:                  billing.EventType(f["type"]),
		At:                    d.msOf(f, "at"),
		Amount:                d.microsOf(f, "amount"),
		BalanceAfter:          d.microsOf(f, "balance_after"),
		CreditAfter:           d.microsOf(f, "credit_after"),
		DebtAfter:             d.microsOf(f, "debt_after"),
		GrantID:               f["grant_id"],
		HoldID:                f["hold_id"],
		RequestID:             f["request_id"],
		KeyID:                 f["key_id"],
		Model:                 f["model"],
		Endpoint:              f["endpoint"],
		PromptTokens:          d.tokensOf(f, "prompt_tokens"),
		CompletionTokens:      d.tokensOf(f, "completion_tokens"),
		CachedTokens:          d.tokensOf(f, "cached_tokens"),
		ReasoningTokens:       d.tokensOf(f, "reasoning_tokens"),
		AudioPromptTokens:     d.tokensOf(f, "audio_prompt_tokens"),
		AudioCompletionTokens: d.tokensOf(f, "audio_completion_tokens"),
		LocalPromptTokens:     d.tokensOf(f, "local_prompt_tokens"),
		LocalCompletionTokens: d.tokensOf(f, "local_completion_tokens"),
		TokenSource:           f["token_source"],
		Cost:                  d.microsOf(f, "cost"),
		FromCredit:            d.microsOf(f, "from_credit"),
		ToDebt:                d.microsOf(f, "to_debt"),
		Excess:                d.microsOf(f, "excess"),
		ExcessTokens:          d.tokensOf(f, "excess_tokens"),
		Source:                f["source"],
		Note:                  f["note"],
		PaymentRef:            f["payment_ref"],
		Prices:                parsePrices(&d, f),
		Actor:                 f["actor"],
		TierFrom:              f["tier_from"],
		TierTo:                f["tier_to"],
	}
	if raw, ok := f["changes"]; ok {
		ev.Changes = parseChanges(&d, raw)
	}
	if d.err != nil {
		return billing.Event{}, d.err
	}
	if ev.Type == "" {
		return billing.Event{}, &malformedError{where: d.where, detail: "no type"}
	}
	return ev, nil
}

// totalsOf decodes the running totals an account hash and a checkpoint both
// keep under the same field names.
func (d *record) totalsOf(f map[string]string) billing.Totals {
	return billing.Totals{
		Granted:     d.microsOf(f, "granted"),
		Usage:       d.microsOf(f, "usage"),
		Consumed:    d.microsOf(f, "consumed"),
		DebtRepaid:  d.microsOf(f, "repaid"),
		Expired:     d.microsOf(f, "expired"),
		AdjustedOut: d.microsOf(f, "adjusted_out"),
	}
}
