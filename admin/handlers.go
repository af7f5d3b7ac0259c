package admin

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Limits of the ledger listing.
const (
	DefaultLedgerLimit = 100
	MaxLedgerLimit     = 1000
)

// Limits of free-form input that ends up in the store and in CLI tables.
const (
	maxKeyNameLen        = billing.MaxKeyNameLen // the store's bound, as the portal's
	maxIdempotencyKeyLen = 255
	maxCursorLen         = 128
)

// idempotencyHeader carries a client's key for a retry-safe top-up (as in Stripe's API).
const idempotencyHeader = "Idempotency-Key"

// replayedHeader marks an answer replayed for a reused Idempotency-Key.
const replayedHeader = "Idempotent-Replayed"

func (s *Server) policy() billing.Policy {
	if s.Policy == nil {
		return billing.Policy{}
	}
	return s.Policy()
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Server) ledger() (billing.Ledger, *apiError) {
	if s.Ledger == nil {
		return nil, internalError(fmt.Errorf("admin.Server.Ledger is nil"))
	}
	return s.Ledger, nil
}

func (s *Server) keys() (billing.KeyStore, *apiError) {
	if s.Keys == nil {
		return nil, internalError(fmt.Errorf("admin.Server.Keys is nil"))
	}
	return s.Keys, nil
}

// accountParam returns the validated {id} of the route.
func accountParam(r *http.Request) (string, *apiError) {
	id := r.PathValue("id")
	noteAccount(r, id)
	if err := checkAccountID(id); err != nil {
		return "", err
	}
	return id, nil
}

func checkAccountID(id string) *apiError {
	if err := billing.ValidAccountID(id); err != nil {
		msg := strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": ")
		return badRequest(CodeInvalidValue, "id", "%s", msg)
	}
	return nil
}

// parseAmount reads an optional money field given as "25.00" or 25.00. present is
// false for an absent or null field.
func parseAmount(raw json.RawMessage, param string) (m money.Micros, present bool, _ *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if err := m.UnmarshalJSON(raw); err != nil {
		return 0, true, invalidAmount(param, err)
	}
	return m, true, nil
}

// requireAmount is parseAmount for a field that must be present.
func requireAmount(raw json.RawMessage, param, why string) (money.Micros, *apiError) {
	m, present, e := parseAmount(raw, param)
	if e != nil {
		return 0, e
	}
	if !present {
		return 0, badRequest(CodeInvalidAmount, param, "%s is required%s", param, why)
	}
	return m, nil
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) *apiError {
	var body CreateAccountRequest
	if e := decodeBody(r, &body, false); e != nil {
		return e
	}
	noteAccount(r, body.ID)
	if body.ID == "" {
		return missingField("id")
	}
	if e := checkAccountID(body.ID); e != nil {
		return e
	}
	p := s.policy()
	tier := body.Tier
	if tier == "" {
		tier = p.DefaultTier
		if tier == "" {
			return badRequest(CodeMissingField, "tier", "tier is required: no default tier is configured")
		}
	}
	if _, ok := p.TierFor(tier); !ok {
		return badRequest(CodeUnknownTier, "tier", "unknown tier %q; configured tiers: %s", tier, tierNames(p))
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	acct, err := ledger.CreateAccount(r.Context(), body.ID, tier)
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusCreated, accountFrom(acct, p.Grace))
	return nil
}

func tierNames(p billing.Policy) string {
	if len(p.Tiers) == 0 {
		return "none"
	}
	names := make([]string, 0, len(p.Tiers))
	for name := range p.Tiers {
		names = append(names, strconv.Quote(name))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) *apiError {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest(CodeInvalidValue, "", "the query string is malformed: %v", err)
	}
	if isSearch(q) {
		return s.searchAccounts(w, r, q)
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	accounts, err := ledger.ListAccounts(r.Context())
	if err != nil {
		return storeError(err)
	}
	list := AccountList{Object: "list", Data: make([]AccountSummary, 0, len(accounts))}
	for _, a := range accounts {
		list.Data = append(list.Data, summaryFrom(a))
	}
	// The store keeps ids in a set, in no order; sorted output is stable for people and diffs.
	slices.SortFunc(list.Data, func(a, b AccountSummary) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	acct, err := ledger.GetAccount(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, accountFrom(acct, s.policy().Grace))
	return nil
}

// checkKeyName keeps names printable: they are shown in CLI tables. (encoding/json
// has already replaced invalid UTF-8 with U+FFFD.)
func checkKeyName(name string) *apiError {
	if len(name) > maxKeyNameLen {
		return badRequest(CodeInvalidValue, "name", "name is longer than %d bytes", maxKeyNameLen)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return badRequest(CodeInvalidValue, "name", "name contains a control character")
	}
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	keys, e := s.keys()
	if e != nil {
		return e
	}
	stored, err := keys.ListKeys(r.Context(), id)
	if err != nil {
		return storeError(err)
	}
	list := KeyList{Object: "list", Data: make([]Key, 0, len(stored))}
	for _, k := range stored {
		list.Data = append(list.Data, keyFrom(k))
	}
	slices.SortFunc(list.Data, func(a, b Key) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	keyID := r.PathValue("key_id")
	// Key ids come from billing.NewID; the same character rules as account ids
	// keep anything else (braces, colons) away from the store's key names.
	if billing.ValidAccountID(keyID) != nil {
		return badRequest(CodeInvalidValue, "key_id", "key id %q is malformed (want letters, digits, '.', '_' or '-')", keyID)
	}
	keys, e := s.keys()
	if e != nil {
		return e
	}
	if err := keys.RevokeKey(r.Context(), id, keyID); err != nil {
		return storeError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// addCreditsBody is AddCreditsRequest as the server reads it: the amount raw, so
// its errors can name the field and a bare JSON number is read exactly.
type addCreditsBody struct {
	Amount     json.RawMessage `json:"amount"`
	ExpiresAt  *string         `json:"expires_at"`
	ExternalID *string         `json:"external_id"`
	Note       *string         `json:"note"`
}

func (s *Server) addCredits(w http.ResponseWriter, r *http.Request) *apiError {
	var body addCreditsBody
	id, idemKey, hasIdemKey, e := readCreditRequest(r, &body)
	if e != nil {
		return e
	}
	amount, e := requireAmount(body.Amount, "amount", "")
	if e != nil {
		return e
	}
	if amount == 0 {
		return badRequest(CodeInvalidAmount, "amount", "amount must be greater than zero")
	}
	req := billing.TopUpRequest{Account: id, Amount: amount, Source: billing.SourcePurchase, Actor: actor(r)}
	if body.ExpiresAt != nil {
		if req.ExpiresAt, e = s.futureTime(*body.ExpiresAt, "expires_at"); e != nil {
			return e
		}
		req.Source = billing.SourcePromo
	}
	if body.ExternalID != nil {
		if err := billing.ValidPaymentRef(*body.ExternalID); err != nil {
			return badRequest(CodeInvalidValue, "external_id", "external_id: %s", strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": "))
		}
		req.PaymentRef = *body.ExternalID
	}
	if body.Note != nil {
		if err := billing.ValidNote(*body.Note); err != nil {
			return badRequest(CodeInvalidValue, "note", "note: %s", strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": "))
		}
		req.Note = *body.Note
	}
	if hasIdemKey {
		req.GrantID = idempotentGrantID(id, idemKey)
		req.IdempotencyKey = idemKey
		req.Fingerprint = topUpFingerprint(amount, req.ExpiresAt, req.PaymentRef, req.Note)
	} else {
		// A fresh id per HTTP request: the store's retries of this call stay
		// idempotent, while a second request is a second purchase.
		req.GrantID = billing.NewID("grant_")
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	res, err := ledger.TopUp(r.Context(), s.policy(), req)
	if err != nil {
		return moneyError(err, hasIdemKey)
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
		w.Header().Set(replayedHeader, "true")
	} else if s.Observer != nil {
		s.Observer.ToppedUp(req.Source, amount)
	}
	writeJSON(w, status, creditResultFrom(res))
	return nil
}

// adjustmentBody is AdjustmentRequest as the server reads it.
type adjustmentBody struct {
	Amount    json.RawMessage `json:"amount"`
	Reason    *string         `json:"reason"`
	ExpiresAt *string         `json:"expires_at"`
}

// parseSignedAmount reads a required signed money field: "-1.50", "1.50", or the
// same as bare JSON numbers, read exactly (money.ParseSigned).
func parseSignedAmount(raw json.RawMessage, param string) (money.Micros, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, badRequest(CodeInvalidAmount, param, "%s is required: a signed decimal such as \"-1.50\" or \"2.00\"", param)
	}
	m, err := money.ParseJSON(raw, money.ParseSigned)
	if err != nil {
		return 0, invalidAmount(param, err)
	}
	return m, nil
}

// adjust records an operator's correction: a signed amount, a reason, and for a
// positive one an optional expiry. Not a purchase: no purchase limits apply.
func (s *Server) adjust(w http.ResponseWriter, r *http.Request) *apiError {
	var body adjustmentBody
	id, idemKey, hasIdemKey, e := readCreditRequest(r, &body)
	if e != nil {
		return e
	}
	amount, e := parseSignedAmount(body.Amount, "amount")
	if e != nil {
		return e
	}
	if amount == 0 {
		return badRequest(CodeInvalidAmount, "amount", "amount must not be zero: positive credits, negative takes credit back")
	}
	if body.Reason == nil || strings.TrimSpace(*body.Reason) == "" {
		return badRequest(CodeMissingField, "reason", "reason is required: say why the account is adjusted (it goes into the ledger)")
	}
	if err := billing.ValidAdjustReason(*body.Reason); err != nil {
		return badRequest(CodeInvalidValue, "reason", "%s", strings.TrimPrefix(err.Error(), billing.ErrInvalid.Error()+": "))
	}
	req := billing.AdjustRequest{Amount: amount, Reason: *body.Reason, IdempotencyKey: idemKey, Actor: actor(r)}
	if body.ExpiresAt != nil {
		if amount < 0 {
			return badRequest(CodeInvalidValue, "expires_at", "expires_at applies only to a positive adjustment, which credits a grant")
		}
		if req.ExpiresAt, e = s.futureTime(*body.ExpiresAt, "expires_at"); e != nil {
			return e
		}
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	res, err := ledger.Adjust(r.Context(), s.policy(), id, req)
	if err != nil {
		e := moneyError(err, hasIdemKey)
		if errors.Is(err, billing.ErrInvalid) && strings.Contains(err.Error(), "expires_at") {
			e.code, e.param = CodeInvalidValue, "expires_at"
		}
		return e
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
		w.Header().Set(replayedHeader, "true")
	} else if s.Observer != nil {
		s.Observer.Adjusted(amount)
	}
	writeJSON(w, status, adjustmentResultFrom(res))
	return nil
}

// readCreditRequest reads what a request that changes an account's credit
// carries: the account in its path, its Idempotency-Key (if any) and its JSON
// body, into body.
func readCreditRequest(r *http.Request, body any) (account, idemKey string, hasIdemKey bool, e *apiError) {
	if account, e = accountParam(r); e != nil {
		return "", "", false, e
	}
	if idemKey, hasIdemKey, e = idempotencyKey(r); e != nil {
		return "", "", false, e
	}
	if e = decodeBody(r, body, false); e != nil {
		return "", "", false, e
	}
	return account, idemKey, hasIdemKey, nil
}

// futureTime parses the RFC 3339 time v of field, which must be in the future.
func (s *Server) futureTime(v, field string) (time.Time, *apiError) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badRequest(CodeInvalidValue, field, "%s %q is not an RFC 3339 time such as \"2030-01-31T00:00:00Z\"", field, v)
	}
	if !t.After(s.now()) {
		return time.Time{}, badRequest(CodeInvalidValue, field, "%s %s is not in the future", field, t.UTC().Format(time.RFC3339))
	}
	return t.UTC(), nil
}

// idempotencyKey returns the request's Idempotency-Key, if it has one.
func idempotencyKey(r *http.Request) (key string, ok bool, _ *apiError) {
	values, ok := r.Header[idempotencyHeader]
	if !ok {
		return "", false, nil
	}
	if len(values) != 1 {
		return "", false, badRequest(CodeInvalidValue, idempotencyHeader, "send one %s header, not %d", idempotencyHeader, len(values))
	}
	key = values[0]
	if key == "" || len(key) > maxIdempotencyKeyLen {
		return "", false, badRequest(CodeInvalidValue, idempotencyHeader, "%s must be 1 to %d characters", idempotencyHeader, maxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return "", false, badRequest(CodeInvalidValue, idempotencyHeader, "%s may only contain printable ASCII without spaces", idempotencyHeader)
		}
	}
	return key, true, nil
}

// idempotentGrantID derives the grant id of a keyed top-up, so that the same key
// names the same grant even if the store lost its idempotency record. Account ids
// cannot contain a newline, so the encoding is unambiguous.
func idempotentGrantID(account, key string) string {
	sum := sha256.Sum256([]byte(account + "\n" + key))
	return "grant_" + hex.EncodeToString(sum[:12])
}

// topUpFingerprint identifies a top-up request's meaning, not its spelling:
// "25", "25.00" and 25 are the same request. The external id and the note are
// part of it (a key reused with another reference is another request); a
// request with neither has the fingerprint it had before they existed, so
// Idempotency-Keys recorded then still replay.
func topUpFingerprint(amount money.Micros, expiresAt time.Time, externalID, note string) string {
	exp := ""
	if !expiresAt.IsZero() {
		exp = expiresAt.UTC().Format(time.RFC3339Nano)
	}
	text := "amount=" + strconv.FormatInt(int64(amount), 10) + "\nexpires_at=" + exp
	if externalID != "" || note != "" {
		// strconv.Quote keeps the encoding unambiguous whatever the texts hold
		text += "\nexternal_id=" + strconv.Quote(externalID) + "\nnote=" + strconv.Quote(note)
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// autoRechargeBody is AutoRechargeRequest as the server reads it.
type autoRechargeBody struct {
	Enabled      *bool           `json:"enabled"`
	Threshold    json.RawMessage `json:"threshold"`
	Amount       json.RawMessage `json:"amount"`
	MonthlyLimit json.RawMessage `json:"monthly_limit"`
}

func (s *Server) setAutoRecharge(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	var body autoRechargeBody
	if e := decodeBody(r, &body, false); e != nil {
		return e
	}
	if body.Enabled == nil {
		return missingField("enabled")
	}
	var ar billing.AutoRecharge
	ar.Enabled = *body.Enabled
	for _, f := range []struct {
		dst   *money.Micros
		raw   json.RawMessage
		param string
	}{
		{&ar.Threshold, body.Threshold, "threshold"},
		{&ar.Amount, body.Amount, "amount"},
		{&ar.MonthlyLimit, body.MonthlyLimit, "monthly_limit"},
	} {
		var e *apiError
		if ar.Enabled {
			*f.dst, e = requireAmount(f.raw, f.param, " when enabled is true")
		} else {
			*f.dst, _, e = parseAmount(f.raw, f.param)
		}
		if e != nil {
			return e
		}
	}
	if ar.Enabled {
		p := s.policy()
		if ar.Amount == 0 {
			return badRequest(CodeInvalidAmount, "amount", "amount must be greater than zero")
		}
		if ar.Amount < p.AutoRechargeMin {
			return badRequest(CodeBelowMinimum, "amount", "amount %s is below the minimum auto-recharge amount of %s", ar.Amount, p.AutoRechargeMin)
		}
		if ar.Amount < p.MinPurchase {
			return badRequest(CodeBelowMinimum, "amount", "amount %s is below the minimum purchase of %s", ar.Amount, p.MinPurchase)
		}
		if ar.MonthlyLimit < ar.Amount {
			return badRequest(CodeInvalidAmount, "monthly_limit", "monthly_limit %s is less than amount %s, so no recharge could ever happen", ar.MonthlyLimit, ar.Amount)
		}
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	if err := ledger.SetAutoRecharge(r.Context(), id, ar); err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, autoRechargeFrom(ar))
	return nil
}

func (s *Server) ledgerEvents(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	limit, after, e := ledgerQuery(r)
	if e != nil {
		return e
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	page, err := ledger.Events(r.Context(), id, after, limit)
	if err != nil {
		e := storeError(err)
		if after != "" && errors.Is(err, billing.ErrInvalid) {
			// The store checks the cursor's format; the cursor is the likely culprit.
			e.code, e.param = CodeInvalidValue, "after"
		}
		return e
	}
	list := EventList{Object: "list", Data: make([]Event, 0, len(page.Events)), Next: page.Next, HasMore: page.Next != ""}
	for _, ev := range page.Events {
		list.Data = append(list.Data, eventFrom(ev))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// ledgerQuery reads ?limit=&after=. Unknown parameters are errors: a mistyped
// "limt" silently ignored would return a page the caller did not ask for.
func ledgerQuery(r *http.Request) (limit int, after string, _ *apiError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, "", badRequest(CodeInvalidValue, "", "the query string is malformed: %v", err)
	}
	limit = DefaultLedgerLimit
	for name, values := range q {
		if len(values) != 1 {
			return 0, "", badRequest(CodeInvalidValue, name, "query parameter %s is given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLedgerLimit {
				return 0, "", badRequest(CodeInvalidValue, "limit", "limit must be an integer from 1 to %d, not %q", MaxLedgerLimit, v)
			}
			limit = n
		case "after":
			if len(v) > maxCursorLen || strings.ContainsFunc(v, func(c rune) bool { return c <= ' ' || c > '~' }) {
				return 0, "", badRequest(CodeInvalidValue, "after", "after must be an event id from a previous page's next")
			}
			after = v
		default:
			return 0, "", badRequest(CodeInvalidValue, name, "unknown query parameter %q; this endpoint takes limit and after", name)
		}
	}
	return limit, after, nil
}
