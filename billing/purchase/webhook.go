package purchase

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/payments"
)

// MaxWebhookBytes caps a provider webhook's body. Stripe's events are a few
// kilobytes; a larger body is refused unread.
const MaxWebhookBytes = 1 << 20

// WebhookPath is where the Stripe webhook endpoint is mounted on the data-plane
// listener.
const WebhookPath = "/webhooks/stripe"

// Webhook returns the provider's webhook endpoint (POST /webhooks/stripe). It
// reads the raw body (at most MaxWebhookBytes: any re-encoding would break the
// signature), has the provider verify and decode it, and acts on the event:
//
//   - 200 once HandleEvent succeeded, for every event creditgate does not act on
//     too, so the provider stops sending it;
//   - 400 for a missing, bad or stale signature (nothing is credited), and for
//     a correctly signed event creditgate cannot use (logged at error: an
//     operator must look, e.g. an endpoint created with another API version);
//   - 413 for a body over the limit, 405 for a method other than POST;
//   - 503 when the ledger could not be updated: the provider retries.
//
// The answers are small JSON bodies that the provider's dashboard shows; they
// never carry the event, a secret or an internal error.
func (s *Service) Webhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		provider := s.providerName()
		log := s.log().With(zap.String("provider", provider))
		reject := func(status int, outcome Outcome, message string) {
			if s.Observer != nil {
				s.Observer.Event(provider, "", outcome)
			}
			answer(w, status, map[string]string{"error": message})
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			reject(http.StatusMethodNotAllowed, NotAllowed, "POST only")
			return
		}
		if s.Provider == nil {
			reject(http.StatusNotFound, Ignored, "payments are off")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				log.Warn("payment webhook: body over the limit refused", zap.Int64("limit", tooLarge.Limit))
				reject(http.StatusRequestEntityTooLarge, TooLarge, "body too large")
				return
			}
			reject(http.StatusBadRequest, Unusable, "the body could not be read")
			return
		}
		ev, err := s.Provider.ParseWebhook(r.Header, body, s.now())
		switch {
		case errors.Is(err, payments.ErrBadSignature):
			// Anyone can reach this endpoint: a warning, not an error.
			log.Warn("payment webhook: bad signature refused; nothing credited", zap.Error(err), zap.String("remote_addr", r.RemoteAddr))
			reject(http.StatusBadRequest, BadSig, "bad signature")
			return
		case err != nil:
			log.Error("payment webhook: a correctly signed event creditgate cannot use; check the webhook endpoint's settings (API version, currency)", zap.Error(err))
			reject(http.StatusBadRequest, Unusable, "unusable event: "+err.Error())
			return
		}
		if _, err := s.HandleEvent(r.Context(), ev); err != nil {
			answer(w, http.StatusServiceUnavailable, map[string]string{"error": "the event could not be recorded; send it again"})
			return
		}
		answer(w, http.StatusOK, map[string]bool{"received": true})
	})
}

func answer(w http.ResponseWriter, status int, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
