package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/creditgate/creditgate/billing"
)

// unavailableReserve is a ledger whose reserve always fails as an unreachable
// store does: the proxy answers 503.
type unavailableReserve struct{ billing.Ledger }

func (unavailableReserve) Reserve(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
	return billing.Reservation{}, fmt.Errorf("%w: test outage", billing.ErrUnavailable)
}

// countingSDK is OpenAI's Go SDK with its default retry policy (two retries),
// counting every attempt it sends.
func countingSDK(baseURL, key string) (openai.Client, *atomic.Int64) {
	var attempts atomic.Int64
	count := func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		attempts.Add(1)
		return next(r)
	}
	return openai.NewClient(option.WithBaseURL(baseURL+"/v1"), option.WithAPIKey(key), option.WithMiddleware(count)), &attempts
}

// An empty balance is a 429 with x-should-retry: false, so the official SDK
// raises it after one request instead of retrying it twice; the same SDK still
// retries a 503 (the header is only on quota 429s).
func TestOfficialGoSDKDoesNotRetryQuota(t *testing.T) {
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}
	cases := []struct {
		name         string
		opts         []harnessOption
		wantStatus   int
		wantAttempts int64
	}{
		{name: "empty balance", wantStatus: http.StatusTooManyRequests, wantAttempts: 1},
		{name: "store unavailable", opts: []harnessOption{func(o *Options) { o.Ledger = unavailableReserve{o.Ledger} }},
			wantStatus: http.StatusServiceUnavailable, wantAttempts: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts...)
			key := h.account("acme") // no credit
			client, attempts := countingSDK(h.server.URL, key)
			_, err := client.Chat.Completions.New(h.ctx, params)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.wantStatus {
				t.Fatalf("err = %v, want an *openai.Error with status %d", err, tc.wantStatus)
			}
			if got := attempts.Load(); got != tc.wantAttempts {
				t.Fatalf("the SDK sent %d requests, want %d", got, tc.wantAttempts)
			}
			want := ""
			if tc.wantStatus == http.StatusTooManyRequests {
				want = "false"
			}
			if got := apiErr.Response.Header.Get(ShouldRetryHeader); got != want {
				t.Fatalf("%s = %q, want %q", ShouldRetryHeader, got, want)
			}
		})
	}
}
