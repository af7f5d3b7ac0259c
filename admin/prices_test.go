package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// A usage event's unit prices appear in the event JSON (the ledger pages and the
// JSON Lines export) as USD per 1M tokens, and in the CSV export's price
// columns; an event without recorded prices has neither.
func TestEventUnitPrices(t *testing.T) {
	usd := money.MustParse
	priced := billing.Event{ID: "1-1", Type: billing.EventUsage, At: time.Unix(0, 0), Model: "gpt-4o", Cost: 25,
		Prices: &billing.UnitPrices{Input: usd("2.50"), CachedInput: usd("1.25"), AudioInput: usd("40"), Output: usd("10"), Reasoning: usd("10"), AudioOutput: usd("80")}}
	unpriced := priced
	unpriced.Prices = nil
	topup := billing.Event{ID: "1-2", Type: billing.EventTopUp, At: time.Unix(0, 0), Prices: priced.Prices}

	tests := []struct {
		name     string
		ev       billing.Event
		wantJSON string // the "prices" member, "" for none
		wantCSV  []string
	}{
		{"priced usage", priced, `{"input":"2.500000","cached_input":"1.250000","output":"10.000000","reasoning":"10.000000","audio_input":"40.000000","audio_output":"80.000000"}`,
			[]string{"2.500000", "1.250000", "10.000000", "10.000000", "40.000000", "80.000000"}},
		{"usage booked before prices were recorded", unpriced, "", []string{"", "", "", "", "", ""}},
		{"not a usage event", topup, "", []string{"", "", "", "", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(eventFrom(tt.ev))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if got := string(m["prices"]); got != tt.wantJSON {
				t.Errorf("prices JSON %s, want %q", got, tt.wantJSON)
			}
			row := csvRow(tt.ev)
			if len(row) != len(csvHeader) {
				t.Fatalf("row has %d columns, header %d", len(row), len(csvHeader))
			}
			if got := strings.Join(row[len(row)-6:], ","); got != strings.Join(tt.wantCSV, ",") {
				t.Errorf("CSV price columns %s, want %v", got, tt.wantCSV)
			}
		})
	}
	if got := strings.Join(csvHeader[len(csvHeader)-6:], ","); got != "price_input,price_cached_input,price_output,price_reasoning,price_audio_input,price_audio_output" {
		t.Errorf("price columns %s", got)
	}
}
