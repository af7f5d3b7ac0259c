package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Purchases live under the account's hash tag next to its ledger: one hash per
// purchase ("purchase:<id>"), a zset of the account's purchase ids by creation
// time ("purchases"), and the take-back records of the payments that credited
// a grant ("payments": payment_ref → "grant_id upto claimed taken short
// event_id"). A refund or a dispute names only the payment, so one key outside
// any account, "payref:<sha256 of the payment_ref>", says which account and
// grant it credited; it is written before the credit (see index_payment.lua).
// The payment profile is four fields of the account hash (pp_provider,
// pp_customer, pp_method, pp_email).

var _ billing.PurchaseStore = (*Store)(nil)

// Key suffixes of the purchase records.
const (
	purchasesKey = "purchases"
	paymentsKey  = "payments"
)

func purchaseKey(id string) string { return "purchase:" + id }

// tagged is the key suffix of account's hash tag.
func (s *Store) tagged(account, suffix string) string {
	return s.prefix + "{acct:" + account + "}:" + suffix
}

// payRefKey is a payment's index record. The reference is hashed: it comes from
// a provider, and a brace in it would move the key to another hash tag.
func (s *Store) payRefKey(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return s.prefix + "payref:" + hex.EncodeToString(sum[:])
}

// moneyIn runs a script that credits a payment or takes a refunded one back
// (purchases, provider-charged recharges, take-backs); each caller confirms the
// change's event with durable before acknowledging it.
func (s *Store) moneyIn(ctx context.Context, sc *script, keys []string, args ...interface{}) (reply, error) {
	return s.run(ctx, sc, keys, args...)
}

var (
	createPurchaseScript   = newScript("create_purchase.lua")
	attachCheckoutScript   = newScript("attach_checkout.lua")
	completePurchaseScript = newScript("complete_purchase.lua")
	endPurchaseScript      = newScript("end_purchase.lua")
	takeBackScript         = newScript("take_back.lua")
	listPurchasesScript    = newScript("list_purchases.lua")
	indexPaymentScript     = newScript("index_payment.lua")
)

// CreatePurchase records a pending purchase after checking it as a top-up of
// its amount would be checked (min_purchase, the tier's max_topup and
// max_balance). The same id with the same request answers the purchase as it is
// now; with another request it is billing.ErrIdempotencyConflict.
func (s *Store) CreatePurchase(ctx context.Context, p billing.Policy, q billing.NewPurchaseRequest) (billing.Purchase, error) {
	if err := billing.ValidAccountID(q.Account); err != nil {
		return billing.Purchase{}, err
	}
	if err := checkPurchaseID(q.ID); err != nil {
		return billing.Purchase{}, err
	}
	if q.Amount <= 0 || q.Amount > money.MaxAmount {
		return billing.Purchase{}, fmt.Errorf("%w: amount %s must be positive and at most %s", billing.ErrInvalid, q.Amount, money.MaxAmount)
	}
	if q.Provider == "" || len(q.Provider) > 64 || !isToken(q.Provider) {
		return billing.Purchase{}, fmt.Errorf("%w: provider %q", billing.ErrInvalid, q.Provider)
	}
	if err := checkText("actor", q.Actor, 200); err != nil {
		return billing.Purchase{}, err
	}
	fp := purchaseFingerprint(q)
	keys := s.accountKeys(q.Account, purchaseKey(q.ID), purchasesKey)
	// As TopUp: the tier lives in Redis, its limits in the policy; retry when the
	// tier changed in between.
	for attempt := 0; attempt < 3; attempt++ {
		tier, err := s.c.HGet(ctx, s.acctKey(q.Account), "tier").Result()
		if errors.Is(err, redis.Nil) {
			return billing.Purchase{}, notFound(q.Account)
		}
		if err != nil {
			return billing.Purchase{}, wrap(err)
		}
		limits, ok := p.TierFor(tier)
		if !ok {
			return billing.Purchase{}, fmt.Errorf("%w: account %q has tier %q, which is not configured", billing.ErrUnknownTier, q.Account, tier)
		}
		r, err := s.run(ctx, createPurchaseScript, keys,
			msArg(s.now()), q.ID, amountArg(q.Amount), q.Provider, flag(q.SaveCard), q.Actor, fp, tier,
			amountArg(p.MinPurchase), amountArg(limits.MaxTopUp), amountArg(limits.MaxBalance))
		if err != nil {
			return billing.Purchase{}, err
		}
		pur, retry, err := decodeCreatePurchase(r, q)
		if !retry {
			return pur, err
		}
	}
	return billing.Purchase{}, fmt.Errorf("redisstore: account %q changed tier during the purchase; try again", q.Account)
}

func decodeCreatePurchase(r reply, q billing.NewPurchaseRequest) (_ billing.Purchase, retry bool, _ error) {
	switch r.status() {
	case "OK":
		r.flag(1) // replayed: the record says all there is
		f := r.hash(2)
		if err := r.done(3); err != nil {
			return billing.Purchase{}, false, err
		}
		p, err := parsePurchase(r.script+" reply", q.Account, q.ID, f)
		return p, false, err
	case "TIER":
		r.str(1)
		err := r.done(2)
		return billing.Purchase{}, err == nil, err
	case "NOACCOUNT":
		return billing.Purchase{}, false, r.refusal(1, notFound(q.Account))
	case "CONFLICT":
		return billing.Purchase{}, false, r.refusal(1, fmt.Errorf("%w: purchase %q exists with another amount, provider, card consent or actor", billing.ErrIdempotencyConflict, q.ID))
	case "BELOW":
		return billing.Purchase{}, false, r.refusal(2, &billing.LimitError{Err: billing.ErrBelowMinimum, Limit: r.micros(1), Amount: q.Amount})
	case "ABOVE_TOPUP":
		return billing.Purchase{}, false, r.refusal(2, &billing.LimitError{Err: billing.ErrAboveMaxTopUp, Limit: r.micros(1), Amount: q.Amount})
	case "ABOVE_BALANCE":
		return billing.Purchase{}, false, r.refusal(3, &billing.LimitError{Err: billing.ErrAboveMaxBalance, Limit: r.micros(1), Amount: r.micros(2)})
	}
	return billing.Purchase{}, false, r.unexpected()
}

// purchaseFingerprint identifies what a purchase request asks for.
func purchaseFingerprint(q billing.NewPurchaseRequest) string {
	sum := sha256.Sum256([]byte("purchase\namount=" + strconv.FormatInt(int64(q.Amount), 10) +
		"\nprovider=" + q.Provider + "\nsave_card=" + flag(q.SaveCard) + "\nactor=" + q.Actor))
	return hex.EncodeToString(sum[:])
}

// AttachCheckout stores the provider's checkout session of a purchase, once:
// the same session again answers the purchase, another one is
// billing.ErrIdempotencyConflict.
func (s *Store) AttachCheckout(ctx context.Context, account, purchaseID, checkoutID, url string, expiresAt time.Time) (billing.Purchase, error) {
	if err := checkPurchase(account, purchaseID); err != nil {
		return billing.Purchase{}, err
	}
	if checkoutID == "" || !isToken(checkoutID) || len(checkoutID) > 255 {
		return billing.Purchase{}, fmt.Errorf("%w: checkout id %q", billing.ErrInvalid, checkoutID)
	}
	if err := checkText("checkout url", url, 4096); err != nil {
		return billing.Purchase{}, err
	}
	r, err := s.run(ctx, attachCheckoutScript, []string{s.tagged(account, purchaseKey(purchaseID))}, checkoutID, url, msArg(expiresAt))
	if err != nil {
		return billing.Purchase{}, err
	}
	return decodeAttachCheckout(r, account, purchaseID)
}

func decodeAttachCheckout(r reply, account, purchaseID string) (billing.Purchase, error) {
	switch r.status() {
	case "OK":
		f := r.hash(1)
		if err := r.done(2); err != nil {
			return billing.Purchase{}, err
		}
		return parsePurchase(r.script+" reply", account, purchaseID, f)
	case "NOPURCHASE":
		return billing.Purchase{}, r.refusal(1, purchaseNotFound(account, purchaseID))
	case "CONFLICT":
		other := r.str(1)
		return billing.Purchase{}, r.refusal(2, fmt.Errorf("%w: purchase %q already has checkout %q", billing.ErrIdempotencyConflict, purchaseID, other))
	}
	return billing.Purchase{}, r.unexpected()
}

// CompletePurchase credits a paid purchase once: a grant of source purchase
// whose id is the purchase id, for what was paid (past the tier's limits: the
// customer has paid), paying debt first, with payment_ref on its topup event. The
// payment is indexed first, so a refund or a dispute of it finds the grant. A
// second report, whatever its event, answers the first credit with Replayed set.
func (s *Store) CompletePurchase(ctx context.Context, p billing.Policy, account, purchaseID string, q billing.PaymentReport) (billing.TopUpResult, error) {
	if err := checkPurchase(account, purchaseID); err != nil {
		return billing.TopUpResult{}, err
	}
	if q.Amount <= 0 || q.Amount > money.MaxAmount {
		return billing.TopUpResult{}, fmt.Errorf("%w: paid amount %s must be positive and at most %s", billing.ErrInvalid, q.Amount, money.MaxAmount)
	}
	if p.CreditTTL <= 0 {
		return billing.TopUpResult{}, fmt.Errorf("%w: credit lifetime %s", billing.ErrInvalid, p.CreditTTL)
	}
	for _, id := range []struct{ name, v string }{{"customer id", q.CustomerID}, {"payment method id", q.PaymentMethodID}} {
		if id.v != "" && (!isToken(id.v) || len(id.v) > 255) {
			return billing.TopUpResult{}, fmt.Errorf("%w: %s %q", billing.ErrInvalid, id.name, id.v)
		}
	}
	if q.PaymentRef != "" {
		if err := s.indexPayment(ctx, q.PaymentRef, account, purchaseID); err != nil {
			return billing.TopUpResult{}, err
		}
	}
	now := s.now()
	r, err := s.moneyIn(ctx, completePurchaseScript, s.accountKeys(account, purchaseKey(purchaseID), paymentsKey, "outbox"),
		msArg(now), purchaseID, amountArg(q.Amount), msArg(now.Add(p.CreditTTL)), q.PaymentRef, q.CustomerID, q.PaymentMethodID,
		ladderArg(p.Ladder()))
	if err != nil {
		return billing.TopUpResult{}, err
	}
	res, err := decodeCompletePurchase(r, account, purchaseID)
	if err != nil {
		return billing.TopUpResult{}, err
	}
	// Acknowledged only once replicas have it (redis.wait.*), as top-ups are.
	if err := s.durable(ctx, account, res.EventID); err != nil {
		return billing.TopUpResult{}, err
	}
	return res, nil
}

func decodeCompletePurchase(r reply, account, purchaseID string) (billing.TopUpResult, error) {
	switch status := r.status(); status {
	case "OK", "REPLAY":
		res := grantReply(&r)
		res.Replayed = status == "REPLAY"
		return decoded(&r, 10, res)
	case "NOACCOUNT":
		return billing.TopUpResult{}, r.refusal(1, notFound(account))
	case "NOPURCHASE":
		return billing.TopUpResult{}, r.refusal(1, purchaseNotFound(account, purchaseID))
	case "REF_TAKEN":
		grant := r.str(1)
		return billing.TopUpResult{}, r.refusal(2, refTaken(account, grant))
	}
	return billing.TopUpResult{}, r.unexpected()
}

// indexPayment records that ref credits grant of account (see index_payment.lua).
func (s *Store) indexPayment(ctx context.Context, ref, account, grant string) error {
	if err := billing.ValidPaymentRef(ref); err != nil {
		return err
	}
	r, err := s.run(ctx, indexPaymentScript, []string{s.payRefKey(ref)}, ref, account, grant)
	if err != nil {
		return err
	}
	return decodeIndexPayment(r, ref)
}

func decodeIndexPayment(r reply, ref string) error {
	switch r.status() {
	case "OK":
		return r.done(1)
	case "TAKEN":
		otherAccount, otherGrant := r.str(1), r.str(2)
		return r.refusal(3, fmt.Errorf("%w: payment %q already credited grant %q of account %q", billing.ErrIdempotencyConflict, ref, otherGrant, otherAccount))
	}
	return r.unexpected()
}

func refTaken(account, grant string) error {
	return fmt.Errorf("%w: this payment already credited grant %q of account %q", billing.ErrIdempotencyConflict, grant, account)
}

// EndPurchase marks a pending purchase failed or expired; a paid one, or one
// already ended, is returned as it is.
func (s *Store) EndPurchase(ctx context.Context, account, purchaseID string, status billing.PurchaseStatus, reason string) (billing.Purchase, error) {
	if err := checkPurchase(account, purchaseID); err != nil {
		return billing.Purchase{}, err
	}
	if status != billing.PurchaseFailed && status != billing.PurchaseExpired {
		return billing.Purchase{}, fmt.Errorf("%w: a purchase ends failed or expired, not %q", billing.ErrInvalid, status)
	}
	reason = oneLine(reason, billing.MaxAdjustReasonLen)
	if reason == "" {
		reason = string(status)
	}
	r, err := s.run(ctx, endPurchaseScript, []string{s.tagged(account, purchaseKey(purchaseID))}, msArg(s.now()), string(status), reason)
	if err != nil {
		return billing.Purchase{}, err
	}
	return decodeEndPurchase(r, account, purchaseID)
}

func decodeEndPurchase(r reply, account, purchaseID string) (billing.Purchase, error) {
	switch r.status() {
	case "OK":
		r.flag(1) // changed: the record says all there is
		f := r.hash(2)
		if err := r.done(3); err != nil {
			return billing.Purchase{}, err
		}
		return parsePurchase(r.script+" reply", account, purchaseID, f)
	case "NOPURCHASE":
		return billing.Purchase{}, r.refusal(1, purchaseNotFound(account, purchaseID))
	}
	return billing.Purchase{}, r.unexpected()
}

// TakeBack takes back the credit of a refunded or disputed payment (see
// billing.TakeBackRequest): what is left of the grant the payment credited, up
// to what the provider reports taken back in all, as an adjustment event. A
// payment creditgate never credited is billing.ErrPaymentNotFound.
func (s *Store) TakeBack(ctx context.Context, q billing.TakeBackRequest) (billing.TakeBackResult, error) {
	if err := billing.ValidPaymentRef(q.PaymentRef); err != nil {
		return billing.TakeBackResult{}, err
	}
	if q.Upto <= 0 || q.Upto > money.MaxAmount {
		return billing.TakeBackResult{}, fmt.Errorf("%w: amount taken back %s must be positive and at most %s", billing.ErrInvalid, q.Upto, money.MaxAmount)
	}
	if err := billing.ValidAdjustReason(q.Reason); err != nil {
		return billing.TakeBackResult{}, err
	}
	idx, err := s.c.HGetAll(ctx, s.payRefKey(q.PaymentRef)).Result()
	if err != nil {
		return billing.TakeBackResult{}, wrap(err)
	}
	if len(idx) == 0 || idx["ref"] != q.PaymentRef {
		return billing.TakeBackResult{}, fmt.Errorf("%w: %q", billing.ErrPaymentNotFound, q.PaymentRef)
	}
	account, grant := idx["account"], idx["grant"]
	if billing.ValidAccountID(account) != nil || checkPurchaseID(grant) != nil {
		return billing.TakeBackResult{}, &malformedError{where: fmt.Sprintf("payment index record of %q", q.PaymentRef), detail: fmt.Sprintf("account %s, grant %s", show(account), show(grant))}
	}
	r, err := s.moneyIn(ctx, takeBackScript, s.accountKeys(account, paymentsKey, purchaseKey(grant)),
		msArg(s.now()), q.PaymentRef, amountArg(q.Upto), q.Reason)
	if err != nil {
		return billing.TakeBackResult{}, err
	}
	res, err := decodeTakeBack(r, q.PaymentRef, account)
	if err != nil || res.EventID == "" {
		return res, err
	}
	if err := s.durable(ctx, account, res.EventID); err != nil {
		return billing.TakeBackResult{}, err
	}
	return res, nil
}

func decodeTakeBack(r reply, ref, account string) (billing.TakeBackResult, error) {
	switch r.status() {
	case "OK":
		return decoded(&r, 5, billing.TakeBackResult{Account: account, Taken: r.micros(1), Total: r.micros(2), Short: r.micros(3), EventID: r.str(4)})
	case "UNKNOWN", "NOACCOUNT":
		return billing.TakeBackResult{}, r.refusal(1, fmt.Errorf("%w: %q (indexed for account %q, never credited)", billing.ErrPaymentNotFound, ref, account))
	}
	return billing.TakeBackResult{}, r.unexpected()
}

// GetPurchase returns one purchase.
func (s *Store) GetPurchase(ctx context.Context, account, purchaseID string) (billing.Purchase, error) {
	if err := checkPurchase(account, purchaseID); err != nil {
		return billing.Purchase{}, purchaseNotFound(account, purchaseID)
	}
	f, err := s.c.HGetAll(ctx, s.tagged(account, purchaseKey(purchaseID))).Result()
	if err != nil {
		return billing.Purchase{}, wrap(err)
	}
	if len(f) == 0 {
		return billing.Purchase{}, purchaseNotFound(account, purchaseID)
	}
	return parsePurchase("purchase record", account, purchaseID, f)
}

// ListPurchases returns up to limit (default 100) of the account's purchases,
// newest first.
func (s *Store) ListPurchases(ctx context.Context, account string, limit int) ([]billing.Purchase, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return nil, notFound(account)
	}
	if limit <= 0 {
		limit = 100
	}
	r, err := s.run(ctx, listPurchasesScript, []string{s.acctKey(account), s.tagged(account, purchasesKey)}, limit)
	if err != nil {
		return nil, err
	}
	ids, err := decodeListPurchases(r, account)
	if err != nil {
		return nil, err
	}
	out := make([]billing.Purchase, 0, len(ids))
	for _, id := range ids {
		p, err := s.GetPurchase(ctx, account, id)
		if errors.Is(err, billing.ErrPurchaseNotFound) {
			continue // listed, then removed behind the store's back: not one to show
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func decodeListPurchases(r reply, account string) ([]string, error) {
	switch r.status() {
	case "OK":
		ids := r.strings(1)
		return decoded(&r, max(1, len(r.v)), ids)
	case "NOACCOUNT":
		return nil, r.refusal(1, notFound(account))
	}
	return nil, r.unexpected()
}

// SetPaymentProfile stores the account's customer and saved card at the
// payment provider (provider ids only), replacing the one it had.
func (s *Store) SetPaymentProfile(ctx context.Context, account string, pp billing.PaymentProfile) error {
	for _, f := range []struct{ name, v string }{{"provider", pp.Provider}, {"customer id", pp.CustomerID}, {"payment method id", pp.PaymentMethodID}} {
		if f.v != "" && (!isToken(f.v) || len(f.v) > 255) {
			return fmt.Errorf("%w: %s %q", billing.ErrInvalid, f.name, f.v)
		}
	}
	if err := checkText("email", pp.Email, 254); err != nil {
		return err
	}
	return s.setFields(ctx, account, "pp_provider", pp.Provider, "pp_customer", pp.CustomerID,
		"pp_method", pp.PaymentMethodID, "pp_email", pp.Email)
}

// GetPaymentProfile returns the account's payment profile (zero when it has none).
func (s *Store) GetPaymentProfile(ctx context.Context, account string) (billing.PaymentProfile, error) {
	if err := billing.ValidAccountID(account); err != nil {
		return billing.PaymentProfile{}, notFound(account)
	}
	f, err := s.c.HGetAll(ctx, s.acctKey(account)).Result()
	if err != nil {
		return billing.PaymentProfile{}, wrap(err)
	}
	if f["tier"] == "" {
		return billing.PaymentProfile{}, notFound(account)
	}
	return billing.PaymentProfile{Provider: f["pp_provider"], CustomerID: f["pp_customer"], PaymentMethodID: f["pp_method"], Email: f["pp_email"]}, nil
}

// parsePurchase reads a purchase record (where: whose reply it came in).
func parsePurchase(where, account, id string, f map[string]string) (billing.Purchase, error) {
	d := record{where: fmt.Sprintf("%s, purchase %q of account %q", where, id, account)}
	for _, k := range []string{"fp", "amount", "status", "provider", "save_card", "created"} {
		if _, ok := f[k]; !ok {
			d.fail("no %s", k)
		}
	}
	p := billing.Purchase{
		ID:          id,
		Account:     account,
		Amount:      d.microsOf(f, "amount"),
		Status:      billing.PurchaseStatus(f["status"]),
		Provider:    f["provider"],
		SaveCard:    f["save_card"] == "1",
		CheckoutID:  f["checkout_id"],
		CheckoutURL: f["checkout_url"],
		PaymentRef:  f["payment_ref"],
		PaidAmount:  d.microsOf(f, "paid"),
		TakenBack:   d.microsOf(f, "taken_back"),
		Reason:      f["reason"],
		CreatedAt:   d.msOf(f, "created"),
		Actor:       f["actor"],
	}
	if _, ok := f["checkout_expires"]; ok {
		p.CheckoutExpiresAt = d.msOf(f, "checkout_expires")
	}
	if _, ok := f["settled"]; ok {
		p.SettledAt = d.msOf(f, "settled")
	}
	switch p.Status {
	case billing.PurchasePending, billing.PurchasePaid, billing.PurchaseFailed, billing.PurchaseExpired, billing.PurchaseRefunded:
	default:
		d.fail("status is %s, want pending, paid, failed, expired or refunded", show(string(p.Status)))
	}
	if v := f["save_card"]; v != "1" && v != "0" {
		d.fail("save_card is %s, want \"1\" or \"0\"", show(v))
	}
	if d.err != nil {
		return billing.Purchase{}, d.err
	}
	return p, nil
}

func purchaseNotFound(account, id string) error {
	return fmt.Errorf("%w: %q of account %q", billing.ErrPurchaseNotFound, id, account)
}

// checkPurchaseID checks a purchase (and so grant) id as grant ids are checked.
func checkPurchaseID(id string) error {
	if id == "" || len(id) > 128 || !isToken(id) {
		return fmt.Errorf("%w: purchase id %q", billing.ErrInvalid, id)
	}
	return nil
}

func checkPurchase(account, id string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return err
	}
	return checkPurchaseID(id)
}

// isToken reports whether s is printable ASCII without spaces or braces: an id
// that goes into space-separated records and key names.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// checkText checks an optional free-text field: at most n bytes, no control
// characters.
func checkText(name, v string, n int) error {
	if len(v) > n || strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("%w: %s must be one line of at most %d bytes", billing.ErrInvalid, name, n)
	}
	return nil
}

// oneLine folds s into one line of single spaces, cut to at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
