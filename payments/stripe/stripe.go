// Package stripe is the Stripe payments.Provider, through the official library
// (github.com/stripe/stripe-go, pinned to its API version). A purchase is a Checkout
// Session in mode payment whose client_reference_id is the account and whose
// metadata (on the session and on its PaymentIntent) names the account and the
// purchase; with the customer's consent the card is saved (setup_future_usage
// off_session) and auto-recharge charges it with an off-session PaymentIntent
// whose Idempotency-Key is the recharge id. One Stripe customer per account,
// created on first purchase, found again by metadata. Webhooks are verified with
// the library's signature check, within five minutes either way of the caller's
// clock, and decoded into payments.Event. Errors never carry the secret key, the
// webhook secret or a PaymentIntent's client secret.
package stripe

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v85"

	"github.com/creditgate/creditgate/payments"
)

// Defaults of Config.
const (
	DefaultAPIBase     = "https://api.stripe.com"
	DefaultProductName = "creditgate credit"
	// DefaultNetworkRetries is how often the library resends, with the same
	// Idempotency-Key, a request that got no answer (or a 429 lock_timeout); a 5xx
	// carrying a Stripe error comes back as an error for the caller to resend.
	DefaultNetworkRetries = 2
)

// APIVersion is the Stripe API version every request uses and every webhook event
// must have been rendered in (any version of the same release, e.g. any
// "….dahlia"): create the webhook endpoint with it.
const APIVersion = stripego.APIVersion

// Config configures a Provider.
type Config struct {
	// SecretKey is the API key (payments.stripe.secret_key): sk_test_…, sk_live_…
	// or a restricted rk_… key with write access to Customers, Checkout Sessions
	// and PaymentIntents and read access to PaymentMethods.
	SecretKey string
	// WebhookSecret is the webhook endpoint's signing secret
	// (payments.stripe.webhook_secret): whsec_….
	WebhookSecret string
	// APIBase is Stripe's API URL (payments.stripe.api_base, default
	// DefaultAPIBase). Plain http is accepted for loopback hosts only (a local
	// stand-in), so the key never crosses a network in the clear.
	APIBase string
	// Currency is payments.currency (default usd; see payments.Currency).
	Currency string
	// ProductName is the line item customers see on Stripe's page and receipt
	// (default DefaultProductName).
	ProductName string
	// HTTPClient sends the requests (default: 30 s timeout).
	HTTPClient *http.Client
	// NetworkRetries overrides DefaultNetworkRetries; negative means none.
	NetworkRetries int
}

// Provider is the Stripe payments.Provider. It is safe for concurrent use.
type Provider struct {
	client        *stripego.Client
	webhookSecret string
	currency      payments.Currency
	productName   string
	// keyInUseWait is the first pause before resending a request whose
	// Idempotency-Key another request is still using (it doubles each time).
	keyInUseWait time.Duration
}

var _ payments.Provider = (*Provider)(nil)

// New checks cfg and returns a Provider. Errors name the config key, never its value.
func New(cfg Config) (*Provider, error) {
	var problems []string
	if !strings.HasPrefix(cfg.SecretKey, "sk_") && !strings.HasPrefix(cfg.SecretKey, "rk_") {
		problems = append(problems, "payments.stripe.secret_key: want a Stripe secret key (sk_test_…, sk_live_… or rk_…)")
	}
	if !strings.HasPrefix(cfg.WebhookSecret, "whsec_") {
		problems = append(problems, "payments.stripe.webhook_secret: want the webhook endpoint's signing secret (whsec_…)")
	}
	base := cfg.APIBase
	if base == "" {
		base = DefaultAPIBase
	}
	if err := checkAPIBase(base); err != nil {
		problems = append(problems, "payments.stripe.api_base: "+err.Error())
	}
	currency, err := payments.ParseCurrency(cfg.Currency)
	if err != nil {
		problems = append(problems, "payments.currency: "+err.Error())
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", payments.ErrInvalid, strings.Join(problems, "; "))
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	retries := int64(DefaultNetworkRetries)
	if cfg.NetworkRetries > 0 {
		retries = int64(cfg.NetworkRetries)
	} else if cfg.NetworkRetries < 0 {
		retries = 0
	}
	backends := stripego.NewBackendsWithConfig(&stripego.BackendConfig{
		URL:               stripego.String(strings.TrimRight(base, "/")),
		HTTPClient:        httpClient,
		MaxNetworkRetries: stripego.Int64(retries),
		// The library would log failed requests itself; the caller logs the
		// errors this package returns, which say what matters and nothing secret.
		LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull},
	})
	product := cfg.ProductName
	if product == "" {
		product = DefaultProductName
	}
	return &Provider{
		client:        stripego.NewClient(cfg.SecretKey, stripego.WithBackends(backends)),
		webhookSecret: cfg.WebhookSecret,
		currency:      currency,
		productName:   product,
		keyInUseWait:  100 * time.Millisecond,
	}, nil
}

// Name is "stripe".
func (p *Provider) Name() string { return "stripe" }

func checkAPIBase(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
		return errors.New("want an absolute http(s) URL such as " + DefaultAPIBase)
	}
	if u.Path != "" && u.Path != "/" {
		return errors.New("want the API's root, without a path (requests go to <base>/v1/…)")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return errors.New("plain http is only accepted for a loopback host (a local stand-in); use https")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
