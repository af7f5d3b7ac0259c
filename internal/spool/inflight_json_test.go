package spool

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
	"github.com/creditgate/creditgate/money"
)

// appendInFlight writes what json.Marshal writes, byte for byte, for every
// record it takes, and hands json.Marshal the ones it does not; whichever wrote
// it, json.Unmarshal (Replay) reads the record back as it was.
func TestInFlightJSONIsEncodingJSONs(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("half", 5*3600+1800), time.FixedZone("lmt", -(4*3600 + 56*60 + 2))}
	amount := rapid.Custom(func(t *rapid.T) money.Micros {
		return money.Micros(rapid.Int64Range(0, int64(money.MaxAmount)).Draw(t, "micros")) // the ledger's amounts: never negative
	})
	plain := rapid.StringMatching(`[A-Za-z0-9_./:-]{0,24}`)
	text := rapid.OneOf(plain, plain, plain, plain, plain, plain, plain, plain, rapid.SampledFrom([]string{"", "acme", "req_01J", "gpt-4o-mini", "/v1/chat/completions", "a\"b", "<&>", "é", "\u2028", "\x7f", "\xff"}), rapid.String())
	// Its random prices fill the price cache (past maxPriceCache with many
	// checks): empty it afterwards, for the tests that count on a cached price.
	t.Cleanup(func() {
		priceJSON.Lock()
		priceJSON.m = nil
		priceJSON.Unlock()
	})
	var fast, slow int
	rapid.Check(t, func(rt *rapid.T) {
		r := InFlight{Account: text.Draw(rt, "account"), HoldID: text.Draw(rt, "hold"), RequestID: text.Draw(rt, "request"),
			KeyID: text.Draw(rt, "key"), Model: text.Draw(rt, "model"), Endpoint: text.Draw(rt, "endpoint"),
			Price: metering.Price{Input: amount.Draw(rt, "in"), CachedInput: amount.Draw(rt, "cached"), Output: amount.Draw(rt, "out"),
				Reasoning: amount.Draw(rt, "reasoning"), MaxOutputTokens: rapid.Int64().Draw(rt, "max"), Encoding: text.Draw(rt, "encoding")},
			Prompt: metering.Tokens{Input: rapid.Int64().Draw(rt, "tin"), CachedInput: rapid.Int64().Draw(rt, "tcached"),
				AudioInput: rapid.Int64().Draw(rt, "taudio"), Output: rapid.Int64().Draw(rt, "tout")},
			Held:     amount.Draw(rt, "held"),
			Triggers: billing.Triggers{AutoRecharge: rapid.Bool().Draw(rt, "recharge"), Notices: rapid.Bool().Draw(rt, "notices"), LowBalance: amount.Draw(rt, "low")},
			Started: time.Unix(rapid.Int64Range(-70_000_000_000, 300_000_000_000).Draw(rt, "sec"), rapid.Int64Range(0, 999_999_999).Draw(rt, "nsec")).
				In(rapid.SampledFrom(zones).Draw(rt, "zone")),
		}
		if rapid.Bool().Draw(rt, "fixed cost") {
			r.Cost = amount.Draw(rt, "cost")
		}
		if rapid.IntRange(0, 9).Draw(rt, "image prices") == 0 {
			r.Price.Images = &metering.ImagePrices{PerImage: map[string]map[string]money.Micros{"standard": {"1024x1024": 40_000}}}
		}
		want, wantErr := json.Marshal(&r)
		got, ok := appendInFlight([]byte("head "), &r)
		if ok {
			fast++
			if wantErr != nil {
				rt.Fatalf("appendInFlight wrote %s; json.Marshal refuses the record: %v", got, wantErr)
			}
			if !bytes.Equal(got[len("head "):], want) {
				rt.Fatalf("appendInFlight wrote\n%s\njson.Marshal writes\n%s", got[len("head "):], want)
			}
		} else if slow++; string(got) != "head " {
			rt.Fatalf("appendInFlight declined the record but wrote %q", got)
		}
		enc, err := encodeInFlight(nil, &r)
		if (err != nil) != (wantErr != nil) {
			rt.Fatalf("encodeInFlight: %v; json.Marshal: %v", err, wantErr)
		}
		if err != nil {
			return
		}
		var back, viaJSON InFlight
		if err := json.Unmarshal(enc, &back); err != nil {
			rt.Fatalf("reading %s back: %v", enc, err)
		}
		if err := json.Unmarshal(want, &viaJSON); err != nil {
			rt.Fatalf("reading json.Marshal's %s back: %v", want, err)
		}
		if !bytes.Equal(mustJSON(rt, back), mustJSON(rt, viaJSON)) {
			rt.Fatalf("read back as %+v, json.Marshal's as %+v", back, viaJSON)
		}
	})
	if fast == 0 || slow == 0 {
		t.Errorf("%d records took the fast path and %d went to json.Marshal; the test needs both", fast, slow)
	}
	t.Logf("%d records on the fast path, %d through json.Marshal", fast, slow)
}

func mustJSON(t *rapid.T, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// The usual record takes the fast path: nothing to escape, a cached price.
func TestInFlightJSONFastPath(t *testing.T) {
	r := inFlight("req_01JXYZ", time.Now())
	if _, ok := appendInFlight(nil, &r); !ok {
		t.Fatal("a plain record went to json.Marshal")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = appendInFlight(make([]byte, 0, 640), &r) }); n > 1 {
		t.Errorf("appendInFlight allocates %.0f times, want at most 1 (the line)", n)
	}
}
