package notify_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/creditgate/creditgate/notify"
)

// A receiver of creditgate's notices: it verifies every delivery with the
// webhook's secret, refuses what fails, and drops a webhook-id it has already
// handled (deliveries are at least once). A real receiver keeps the seen ids
// somewhere durable for longer than creditgate retries (over a day).
func ExampleVerify() {
	secret := notify.GenerateSecret() // in real life: the configured "whsec_…" secret
	var mu sync.Mutex
	seen := map[string]bool{}
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := notify.Verify([]string{secret}, r.Header, body, time.Now()); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized) // don't tell a forger why
			return
		}
		mu.Lock()
		dup := seen[r.Header.Get("webhook-id")]
		seen[r.Header.Get("webhook-id")] = true
		mu.Unlock()
		if !dup {
			fmt.Println("handling", r.Header.Get("X-Creditgate-Event"))
		}
		w.WriteHeader(http.StatusNoContent)
	})

	srv := httptest.NewServer(receiver)
	defer srv.Close()
	w, _ := notify.New(notify.Options{URL: srv.URL, Secret: secret})
	m := notify.Message{ID: notify.MessageID("notice", "acme", "ntc_acme_1"), Event: "balance.low", Body: []byte(`{"type":"balance.low"}`)}
	fmt.Println(w.Send(context.Background(), m))
	fmt.Println(w.Send(context.Background(), m)) // a redelivery: acknowledged, not handled again
	// Output:
	// handling balance.low
	// <nil>
	// <nil>
}
