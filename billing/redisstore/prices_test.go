package redisstore

import (
	"errors"
	"testing"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// A usage event records the unit prices it was charged at and reads them back
// whole: the three main classes always, a reasoning or audio price only where it
// differs from its parent class's (and then exactly). A settle without prices
// records none.
func TestUsageEventRecordsUnitPrices(t *testing.T) {
	plain := &billing.UnitPrices{Input: usd("2.50"), CachedInput: usd("1.25"), AudioInput: usd("2.50"),
		Output: usd("10"), Reasoning: usd("10"), AudioOutput: usd("10")}
	special := &billing.UnitPrices{Input: usd("2.50"), CachedInput: usd("0.25"), AudioInput: usd("40"),
		Output: usd("10"), Reasoning: usd("12"), AudioOutput: usd("80")}
	free := &billing.UnitPrices{}
	tests := []struct {
		name       string
		prices     *billing.UnitPrices
		wantFields []string // price fields the stream entry holds
	}{
		{"plain", plain, []string{fieldPriceInput, fieldPriceCachedInput, fieldPriceOutput}},
		{"every class its own", special, []string{fieldPriceInput, fieldPriceCachedInput, fieldPriceOutput, fieldPriceReasoning, fieldPriceAudioInput, fieldPriceAudioOutput}},
		{"free model", free, []string{fieldPriceInput, fieldPriceCachedInput, fieldPriceOutput}},
		{"none recorded", nil, nil},
	}
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme", "50.00")
		for i, tt := range tests {
			hold := "h" + string(rune('a'+i))
			e.reserve(t, "acme", hold, usd("1"), 0)
			st, err := e.Settle(e.ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: usd("0.01"),
				Usage: billing.Usage{RequestID: hold, Model: "gpt-4o", PromptTokens: 10, TokenSource: billing.TokenSourceUpstream, Prices: tt.prices}})
			if err != nil {
				t.Fatalf("%s: settle: %v", tt.name, err)
			}
			var ev billing.Event
			for _, x := range e.events(t, "acme") {
				if x.ID == st.EventID {
					ev = x
				}
			}
			switch {
			case tt.prices == nil && ev.Prices != nil:
				t.Errorf("%s: prices %+v, want none", tt.name, *ev.Prices)
			case tt.prices != nil && (ev.Prices == nil || *ev.Prices != *tt.prices):
				t.Errorf("%s: prices %+v, want %+v", tt.name, ev.Prices, *tt.prices)
			}
			msgs, err := e.redis.Client.XRange(e.ctx, e.ledgerKey("acme"), st.EventID, st.EventID).Result()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("%s: XRANGE %v %v", tt.name, msgs, err)
			}
			var got []string
			for _, f := range []string{fieldPriceInput, fieldPriceCachedInput, fieldPriceOutput, fieldPriceReasoning, fieldPriceAudioInput, fieldPriceAudioOutput} {
				if _, ok := msgs[0].Values[f]; ok {
					got = append(got, f)
				}
			}
			if len(got) != len(tt.wantFields) {
				t.Errorf("%s: price fields %v, want %v", tt.name, got, tt.wantFields)
			}
		}
	})
}

func TestSettleRefusesPricesOutOfRange(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.account(t, "acme", "50.00")
		e.reserve(t, "acme", "h1", usd("1"), 0)
		for _, p := range []billing.UnitPrices{{Input: -1}, {Reasoning: money.MaxAmount + 1}} {
			_, err := e.Settle(e.ctx, billing.SettleRequest{Account: "acme", HoldID: "h1", Cost: 1, Usage: billing.Usage{Prices: &p}})
			if !errors.Is(err, billing.ErrInvalid) {
				t.Errorf("prices %+v: %v, want ErrInvalid", p, err)
			}
		}
	})
}
