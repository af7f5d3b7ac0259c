package recharge

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// A spend_limit.alert notice's body carries alert_at as threshold and the
// month's usage as amount.
func TestSpendAlertNoticeBody(t *testing.T) {
	n := billing.Notice{ID: "ntc_a_1", Type: billing.NoticeSpendAlert, Account: "a", At: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC),
		Balance: money.MustParse("8.90"), Threshold: money.MustParse("1.00"), Amount: money.MustParse("1.10")}
	b, err := noticeJSON(n)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["type"] != "spend_limit.alert" || got["threshold"] != "1.000000" || got["amount"] != "1.100000" || got["balance"] != "8.900000" {
		t.Fatalf("body %s", b)
	}
}
