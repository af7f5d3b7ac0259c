package client

import (
	"context"
	"slices"
	"testing"

	"github.com/creditgate/creditgate/admin"
)

// RecentLedger pages the ledger newest first, each page's Next the before of the
// next; together the pages are the forward ledger reversed, each event once.
func TestRecentLedgerAgainstRedis(t *testing.T) {
	c, _, _ := reportsEnv(t)
	ctx := context.Background()
	forward, err := c.Ledger(ctx, "acme", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, ev := range forward.Data {
		want = append(want, ev.ID)
	}
	slices.Reverse(want)
	var got []string
	before := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("the pages do not end")
		}
		page, err := c.RecentLedger(ctx, "acme", before, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) > 2 {
			t.Fatalf("page of %d events, asked for 2", len(page.Data))
		}
		for _, ev := range page.Data {
			got = append(got, ev.ID)
		}
		if !page.HasMore {
			break
		}
		before = page.Next
	}
	if !slices.Equal(got, want) || len(want) < 4 {
		t.Fatalf("recent pages %v, want %v", got, want)
	}
	if _, err := c.RecentLedger(ctx, "nobody", "", 0); err == nil {
		t.Error("an unknown account's recent ledger did not fail")
	}
}

// The usage report takes several groupings through the client.
func TestUsageByDayAndModel(t *testing.T) {
	c, _, _ := reportsEnv(t)
	rep, err := c.Usage(context.Background(), "acme", UsageQuery{GroupBy: admin.GroupByDay + "," + admin.GroupByModel})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GroupBy != "day,model" || len(rep.Data) != 2 || rep.Total.Requests != 3 {
		t.Fatalf("report %+v", rep)
	}
	for _, row := range rep.Data {
		if row.By["day"] == "" || row.By["model"] == "" || row.Group != row.By["day"]+"/"+row.By["model"] {
			t.Errorf("row %+v lacks its by values", row)
		}
	}
}
