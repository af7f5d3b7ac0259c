package proxy

import (
	"net/http"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// Each usage event records the unit prices its cost was computed with, so a
// price change (a hot reload) shows in the ledger from the first request it
// priced: the same request before and after carries the old and the new prices.
func TestUsageEventsRecordTheirUnitPrices(t *testing.T) {
	h := newHarness(t)
	key := h.account("acme", "5.00")
	charge := func() billing.Event {
		t.Helper()
		res := h.post("/v1/chat/completions", key, chatBody("mini", false, ""))
		if body := readAll(t, res); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		h.inflight.Wait()
		return h.lastEvent("acme")
	}
	before := charge()
	want := billing.UnitPrices{Input: usd("0.15"), CachedInput: usd("0.075"), AudioInput: usd("0.15"), Output: usd("0.60"), Reasoning: usd("0.60"), AudioOutput: usd("0.60")}
	if before.Type != billing.EventUsage || before.Model != "gpt-4o-mini" || before.Prices == nil || *before.Prices != want {
		t.Fatalf("event %+v: prices %+v, want gpt-4o-mini's (the alias's target) %+v", before, before.Prices, want)
	}

	// The operator doubles gpt-4o-mini's prices.
	s := *h.settings.Load()
	dearer := metering.Price{Input: usd("0.30"), CachedInput: usd("0.15"), AudioInput: usd("0.30"), Output: usd("1.20"), Reasoning: usd("2.40"), AudioOutput: usd("1.20"), MaxOutputTokens: 16384}
	p, err := metering.NewPricing(map[string]metering.Price{"gpt-4o-mini": dearer}, map[string]string{"mini": "gpt-4o-mini"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Pricing = p
	h.settings.Store(&s)

	after := charge()
	want = billing.UnitPrices{Input: usd("0.30"), CachedInput: usd("0.15"), AudioInput: usd("0.30"), Output: usd("1.20"), Reasoning: usd("2.40"), AudioOutput: usd("1.20")}
	if after.Prices == nil || *after.Prices != want {
		t.Fatalf("after the change: prices %+v, want %+v", after.Prices, want)
	}
	if after.Cost <= before.Cost {
		t.Errorf("cost %s after doubling the prices, %s before", after.Cost, before.Cost)
	}
	// The earlier event keeps the prices it was charged at.
	for _, ev := range h.events("acme") {
		if ev.ID == before.ID && (ev.Prices == nil || ev.Prices.Input != usd("0.15")) {
			t.Errorf("the first event's prices changed: %+v", ev.Prices)
		}
	}
}
