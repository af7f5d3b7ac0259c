package payments

import (
	"fmt"
	"net/url"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Metadata keys creditgate writes on provider objects and reads back from events,
// so an event maps to its account and purchase or recharge.
const (
	MetaAccount  = "creditgate_account"
	MetaPurchase = "creditgate_purchase"
	MetaRecharge = "creditgate_recharge"
)

// WebhookTolerance is how far a webhook's signed timestamp may be from now, either
// way: a captured delivery cannot be replayed later.
const WebhookTolerance = 5 * time.Minute

// MaxIDLen bounds purchase and recharge ids: they become idempotency keys and
// metadata values, which providers limit (Stripe: 255 and 500 characters).
const MaxIDLen = 200

// ValidAccount checks an account id as billing does (1–64 characters of
// [A-Za-z0-9._-], starting with a letter or digit), so it is safe inside a search
// query and an idempotency key.
func ValidAccount(id string) error {
	if id == "" {
		return fmt.Errorf("%w: account id is empty", ErrInvalid)
	}
	if len(id) > 64 {
		return fmt.Errorf("%w: account id %.20q… is longer than 64 characters", ErrInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return fmt.Errorf("%w: account id %q: want letters, digits, '.', '_' and '-', starting with a letter or digit", ErrInvalid, id)
		}
	}
	return nil
}

// ValidID checks a purchase or recharge id (what names it in errors): 1–MaxIDLen
// characters of [A-Za-z0-9._:-].
func ValidID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %s %.20q… is longer than %d characters", ErrInvalid, what, id, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("%w: %s %q: want letters, digits, '.', '_', ':' and '-'", ErrInvalid, what, id)
		}
	}
	return nil
}

// Validate checks a Checkout before anything is sent to a provider.
func (c Checkout) Validate() error {
	if err := ValidID("purchase id", c.PurchaseID); err != nil {
		return err
	}
	if err := ValidAccount(c.Account); err != nil {
		return err
	}
	if err := validAmount(c.Amount); err != nil {
		return err
	}
	for _, u := range []struct{ name, url string }{{"success URL", c.SuccessURL}, {"cancel URL", c.CancelURL}} {
		if err := validRedirect(u.name, u.url); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a Charge before anything is sent to a provider.
func (c Charge) Validate() error {
	if err := ValidID("recharge id", c.ID); err != nil {
		return err
	}
	if err := ValidAccount(c.Account); err != nil {
		return err
	}
	if c.CustomerID == "" {
		return fmt.Errorf("%w: charge %s has no customer", ErrInvalid, c.ID)
	}
	if c.PaymentMethodID == "" {
		return fmt.Errorf("%w: charge %s has no payment method", ErrInvalid, c.ID)
	}
	return validAmount(c.Amount)
}

// validAmount accepts a positive whole number of cents.
func validAmount(m money.Micros) error {
	if m <= 0 {
		return fmt.Errorf("%w: amount %s must be positive", ErrInvalid, m)
	}
	_, err := ToMinor(m)
	return err
}

// validRedirect accepts an absolute http(s) URL.
func validRedirect(name, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, name)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%w: %s %q is not an absolute http(s) URL", ErrInvalid, name, s)
	}
	return nil
}
