package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/purchase"
	"github.com/creditgate/creditgate/billing/recharge"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/metrics"
	"github.com/creditgate/creditgate/notify"
	"github.com/creditgate/creditgate/payments"
	"github.com/creditgate/creditgate/payments/demo"
	"github.com/creditgate/creditgate/payments/stripe"
)

// DemoCheckoutPath is where the demo provider's checkout page is served on the
// data-plane listener (the Billing page mounts App.DemoCheckout there).
const DemoCheckoutPath = "/billing/checkout/demo/"

// sales is the money-in side of a running creditgate: the purchase and portal
// stores, the payment provider (payments.provider) and the purchase service.
type sales struct {
	store    billing.PurchaseStore // nil: the ledger's store keeps no purchases
	portal   billing.PortalStore   // nil: no Billing page links
	provider payments.Provider     // nil: payments.provider none (or no store for it)
	demo     *demo.Provider        // the demo provider's checkout page, when it is the provider
	service  *purchase.Service     // set by finishSales, once the recharge worker exists
}

// newSales builds the payment provider over the purchase store (o.Purchases, or
// the ledger's store when it keeps purchases). A provider configured without a
// store for its purchases is left out, loudly: the proxy still serves.
func (a *App) newSales(cfg *config.Config, o Options) (*sales, error) {
	s := &sales{store: o.Purchases, portal: o.Portal}
	if s.store == nil {
		s.store, _ = any(a.store).(billing.PurchaseStore)
	}
	if s.portal == nil {
		s.portal, _ = any(a.store).(billing.PortalStore)
	}
	if cfg.Payments.Provider == config.ProviderNone {
		return s, nil
	}
	if s.store == nil {
		a.log.Error("payments are off: payments.provider is set, but this build's ledger store keeps no purchases", zap.String("provider", cfg.Payments.Provider))
		return s, nil
	}
	switch cfg.Payments.Provider {
	case config.ProviderStripe:
		st := cfg.Payments.Stripe
		p, err := stripe.New(stripe.Config{SecretKey: st.SecretKey, WebhookSecret: st.WebhookSecret, APIBase: st.APIBase,
			Currency: cfg.Payments.Currency, ProductName: st.ProductName})
		if err != nil {
			return nil, fmt.Errorf("payments.stripe: %w", err)
		}
		s.provider = p
	case config.ProviderDemo:
		p, err := demo.New(demo.Config{BaseURL: cfg.PortalURL() + DemoCheckoutPath, Currency: cfg.Payments.Currency,
			// The service exists by the time a customer can press Pay.
			OnPaid: func(ctx context.Context, ev payments.Event) error {
				if s.service == nil {
					return errors.New("the purchase service is not ready")
				}
				return s.service.OnPaid(ctx, ev)
			}})
		if err != nil {
			return nil, fmt.Errorf("payments.provider demo: %w", err)
		}
		s.provider, s.demo = p, p
	}
	return s, nil
}

// finishSales builds the purchase service, which settles the recharges the
// provider reports through the worker, and logs what is on.
func (a *App) finishSales(cfg *config.Config) {
	s := a.sales
	if s.store == nil {
		return
	}
	s.service = &purchase.Service{
		Store: s.store, Provider: s.provider, Recharges: a.worker,
		Policy:    func() billing.Policy { return *a.policy.Load() },
		PublicURL: cfg.PortalURL(), Logger: a.log.Named("payments"), Observer: a.metrics,
	}
	if s.provider == nil {
		return
	}
	fields := []zap.Field{zap.String("provider", s.provider.Name()), zap.String("currency", cfg.Payments.Currency),
		zap.String("charger", a.chargerName()), zap.String("public_url", cfg.PortalURL())}
	if s.provider.Name() == config.ProviderStripe {
		fields = append(fields, zap.String("webhook_url", cfg.PortalURL()+purchase.WebhookPath), zap.String("stripe_api_version", stripe.APIVersion))
	}
	a.log.Info("payments on", fields...)
}

// newCharger is the auto-recharge charger billing.auto_recharge.charger names
// (config.Config.Charger), or nil when there is none.
func (a *App) newCharger(cfg *config.Config) (recharge.Charger, error) {
	switch name := cfg.Charger(); name {
	case "":
		return nil, nil
	case config.ChargerWebhook:
		wh := cfg.Billing.AutoRecharge.Webhook
		s, err := notify.New(notify.Options{URL: wh.URL, Secret: wh.Secret, Secrets: wh.Secrets, Timeout: wh.Timeout,
			Observer: a.metrics.WebhookObserver(metrics.WebhookCharger)})
		if err != nil {
			return nil, fmt.Errorf("billing.auto_recharge.webhook: %w", err)
		}
		return recharge.WebhookCharger{Sender: s}, nil
	default:
		if a.sales.provider == nil || a.sales.provider.Name() != name {
			a.log.Error("auto-recharge is off: its charger is the payment provider, which is not available", zap.String("charger", name))
			return nil, nil
		}
		return &recharge.ProviderCharger{Provider: a.sales.provider, Profiles: a.sales.store}, nil
	}
}

// chargerName is the running auto-recharge charger's name ("" when none).
func (a *App) chargerName() string {
	if a.charger == nil {
		return ""
	}
	return a.charger.Name()
}

// dataHandler is the data-plane listener's handler: the provider's webhook
// endpoint beside the proxy, which answers everything else.
func (a *App) dataHandler(p http.Handler) http.Handler {
	mux := http.NewServeMux()
	if s := a.sales; s.service != nil && s.provider != nil && s.provider.Name() == config.ProviderStripe {
		mux.Handle(purchase.WebhookPath, s.service.Webhook())
	}
	mux.Handle("/", p)
	return mux
}

// Purchases is the purchase service (for the Billing page): nil when the
// ledger's store keeps no purchases.
func (a *App) Purchases() *purchase.Service { return a.sales.service }

// PortalStore keeps Billing page links and sessions (nil when the store has none).
func (a *App) PortalStore() billing.PortalStore { return a.sales.portal }

// DemoCheckout is the demo provider's checkout page, to mount at
// DemoCheckoutPath on the data-plane listener; nil unless payments.provider is
// demo.
func (a *App) DemoCheckout() http.Handler {
	if a.sales.demo == nil {
		return nil
	}
	return a.sales.demo
}
