package redisstore

import (
	"fmt"
	"slices"
	"testing"

	"github.com/creditgate/creditgate/billing"
)

// TestAccountDirectory: a whole SSCAN sees every account at least once, MATCH
// narrows it, and the summaries read in one pipeline agree with GetAccount's
// figures for accounts whose grants have not expired.
func TestAccountDirectory(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const n = 300
		var want []string
		for i := range n {
			id := fmt.Sprintf("acct-%03d", i)
			want = append(want, id)
			if _, err := e.CreateAccount(e.ctx, id, "tier-1"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: "acct-007", GrantID: "g1", Amount: usd("12.50"), Source: billing.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
		scan := func(match string) []string {
			seen := map[string]bool{}
			var cursor uint64
			for steps := 0; ; steps++ {
				if steps > n {
					t.Fatalf("SSCAN %q did not finish in %d steps", match, n)
				}
				ids, next, err := e.ScanAccounts(e.ctx, cursor, match, 50)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					seen[id] = true
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
			out := make([]string, 0, len(seen))
			for id := range seen {
				out = append(out, id)
			}
			slices.Sort(out)
			return out
		}
		if got := scan(""); !slices.Equal(got, want) {
			t.Errorf("a whole scan saw %d ids, want %d", len(got), len(want))
		}
		if got := scan("*-2[0-9]7"); !slices.Equal(got, []string{"acct-207", "acct-217", "acct-227", "acct-237", "acct-247", "acct-257", "acct-267", "acct-277", "acct-287", "acct-297"}) {
			t.Errorf("MATCH *-2[0-9]7 saw %v", got)
		}

		sums, err := e.AccountSummaries(e.ctx, []string{"acct-007", "nobody", "acct-001", "bad{id}"})
		if err != nil {
			t.Fatal(err)
		}
		if len(sums) != 2 || sums[0].ID != "acct-007" || sums[1].ID != "acct-001" {
			t.Fatalf("summaries %+v, want acct-007 and acct-001 in that order", sums)
		}
		for _, s := range sums {
			full, err := e.GetAccount(e.ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tier != full.Tier || !s.CreatedAt.Equal(full.CreatedAt) || s.Credit != full.Credit || s.Debt != full.Debt || s.Reserved != full.Reserved {
				t.Errorf("summary %+v disagrees with GetAccount %+v", s, full)
			}
		}
		if sums[0].Credit != usd("12.50") {
			t.Errorf("acct-007's credit %s, want 12.50", sums[0].Credit)
		}
		if total, err := e.CountAccounts(e.ctx); err != nil || total != n {
			t.Errorf("CountAccounts = %d, %v; want %d", total, err, n)
		}
		if none, err := e.AccountSummaries(e.ctx, nil); err != nil || none != nil {
			t.Errorf("no ids: %v %v", none, err)
		}
	})
}
