package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// memDirectory is an AccountDirectory over a slice, scanned in steps as
// SSCAN does (the cursor is an index; a step returns count ids, or stepSize
// when set, the way a small Redis set comes back whole), MATCH by glob.
type memDirectory struct {
	accounts []billing.Account
	stepSize int // 0: count
	scans    int // ScanAccounts calls
}

func (d *memDirectory) ScanAccounts(_ context.Context, cursor uint64, match string, count int64) ([]string, uint64, error) {
	d.scans++
	n := int(count)
	if d.stepSize > 0 {
		n = d.stepSize
	}
	start := int(cursor)
	end := min(start+n, len(d.accounts))
	var ids []string
	for _, a := range d.accounts[start:end] {
		if ok, _ := path.Match(match, a.ID); ok {
			ids = append(ids, a.ID)
		}
	}
	if end == len(d.accounts) {
		return ids, 0, nil
	}
	return ids, uint64(end), nil
}

func (d *memDirectory) AccountSummaries(_ context.Context, ids []string) ([]billing.Account, error) {
	var out []billing.Account
	for _, id := range ids {
		if a, ok := d.find(id); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func (d *memDirectory) CountAccounts(context.Context) (int64, error) {
	return int64(len(d.accounts)), nil
}

func (d *memDirectory) find(id string) (billing.Account, bool) {
	for _, a := range d.accounts {
		if a.ID == id {
			return a, true
		}
	}
	return billing.Account{}, false
}

// ledger is a fake ledger whose GetAccount reads the directory.
func (d *memDirectory) ledger() *fakeLedger {
	return &fakeLedger{GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
		if a, ok := d.find(id); ok {
			return a, nil
		}
		return billing.Account{}, billing.ErrAccountNotFound
	}}
}

// fataler is what searchAll needs of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// searchAll follows next_cursor from query to the end, returning every id seen
// and how many requests it took.
func searchAll(t fataler, s *Server, query string) (ids []string, requests int) {
	t.Helper()
	cursor := ""
	for {
		requests++
		if requests > 1000 {
			t.Fatalf("the search never ended")
		}
		target := "/admin/v1/accounts?" + query
		if cursor != "" {
			target += "&cursor=" + cursor
		}
		req := httptest.NewRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		var page AccountPage
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatalf("%v", err)
		}
		if page.Scanned > searchScanBudget {
			t.Fatalf("a page scanned %d ids, over the budget of %d", page.Scanned, searchScanBudget)
		}
		for i, a := range page.Data {
			ids = append(ids, a.ID)
			if i > 0 && page.Data[i-1].ID >= a.ID {
				t.Fatalf("page not sorted by id: %q before %q", page.Data[i-1].ID, a.ID)
			}
		}
		if page.HasMore != (page.NextCursor != "") {
			t.Fatalf("has_more %v with next_cursor %q", page.HasMore, page.NextCursor)
		}
		if !page.HasMore {
			return ids, requests
		}
		cursor = page.NextCursor
	}
}

func sampleAccounts(n int) []billing.Account {
	var out []billing.Account
	for i := range n {
		a := billing.Account{ID: fmt.Sprintf("cust-%04d", i), Tier: "tier-1", CreatedAt: testNow, Credit: money.Micros(i) * money.Cent}
		if i%10 == 3 {
			a.Credit, a.Debt = 0, money.MustParse("0.25")
		}
		if i%7 == 0 {
			a.Tier = "tier-2"
		}
		if i == 42 {
			a.ID = "ACME-Corp"
		}
		out = append(out, a)
	}
	return out
}

func TestSearchAccounts(t *testing.T) {
	all := sampleAccounts(120)
	tests := []struct {
		name  string
		query string
		want  func(a billing.Account) bool
	}{
		{"every account, pages of 7", "limit=7", func(billing.Account) bool { return true }},
		{"substring of the id, any case", "q=acme&limit=5", func(a billing.Account) bool { return a.ID == "ACME-Corp" }},
		{"prefix", "q=cust-00&limit=3", func(a billing.Account) bool { return strings.HasPrefix(a.ID, "cust-00") }},
		{"tier", "tier=tier-2", func(a billing.Account) bool { return a.Tier == "tier-2" }},
		{"in debt", "in_debt=true&limit=4", func(a billing.Account) bool { return a.Debt > 0 }},
		{"balance below 0.10", "balance_below=0.10", func(a billing.Account) bool { return a.Balance() < money.MustParse("0.10") }},
		{"balance below a negative amount", "balance_below=-0.20", func(a billing.Account) bool { return a.Balance() < -money.MustParse("0.20") }},
		{"filters together", "q=1&in_debt=true&tier=tier-1&limit=2", func(a billing.Account) bool {
			return strings.Contains(a.ID, "1") && a.Debt > 0 && a.Tier == "tier-1"
		}},
		{"nothing matches", "q=zzz", func(billing.Account) bool { return false }},
	}
	for _, stepSize := range []int{0, 13, 500} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/step %d", tt.name, stepSize), func(t *testing.T) {
				d := &memDirectory{accounts: all, stepSize: stepSize}
				s := newTestServer(d.ledger(), nil)
				s.Directory = d
				got, _ := searchAll(t, s, tt.query)
				var want []string
				for _, a := range all {
					if tt.want(a) {
						want = append(want, a.ID)
					}
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("found %d accounts %v\nwant %d %v", len(got), got, len(want), want)
				}
			})
		}
	}
}

// TestSearchPageFields: a page carries the summary with next expiry and
// auto-recharge, the cursor and the index's size.
func TestSearchPageFields(t *testing.T) {
	acct := sampleAccount()
	d := &memDirectory{accounts: []billing.Account{acct}}
	s := newTestServer(d.ledger(), nil)
	s.Directory = d
	rec := call(t, s.Handler(), "GET", "/admin/v1/accounts?q=acm", "")
	var page struct {
		Object string
		Data   []map[string]any
		Total  int64 `json:"total_accounts"`
		Scan   int   `json:"scanned"`
		More   bool  `json:"has_more"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if page.Object != "list" || len(page.Data) != 1 || page.Total != 1 || page.Scan != 1 || page.More {
		t.Fatalf("page %+v", page)
	}
	var wantExpiry string
	for _, g := range acct.Grants {
		if g.Remaining > 0 && (wantExpiry == "" || g.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00") < wantExpiry) {
			wantExpiry = g.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
	}
	if got := page.Data[0]["next_expiry"]; wantExpiry == "" || got != wantExpiry {
		t.Errorf("next_expiry %v, want %q", got, wantExpiry)
	}
	if got := page.Data[0]["auto_recharge"]; got != acct.AutoRecharge.Enabled {
		t.Errorf("auto_recharge %v, want %v", got, acct.AutoRecharge.Enabled)
	}
	// The whole list (no parameters) keeps its old shape.
	l := &fakeLedger{ListAccountsFunc: func(context.Context) ([]billing.Account, error) { return []billing.Account{acct}, nil }}
	whole := call(t, newTestServer(l, nil).Handler(), "GET", "/admin/v1/accounts", "")
	if strings.Contains(whole.Body.String(), "next_cursor") || strings.Contains(whole.Body.String(), "next_expiry") {
		t.Errorf("the whole list changed shape: %s", whole.Body)
	}
}

// TestSearchStaysWithinBudget: a filter that matches nothing in 12,000
// accounts answers empty pages of at most 5,000 ids each, not one scan of all.
func TestSearchStaysWithinBudget(t *testing.T) {
	d := &memDirectory{accounts: sampleAccounts(12000)}
	s := newTestServer(d.ledger(), nil)
	s.Directory = d
	ids, requests := searchAll(t, s, "balance_below=-5.00")
	if len(ids) != 0 || requests != 3 {
		t.Errorf("%d ids in %d requests, want none in 3", len(ids), requests)
	}
	if max := (searchScanBudget/searchScanStep + 1) * 3; d.scans > max {
		t.Errorf("%d SSCAN steps, want at most %d", d.scans, max)
	}
}

func TestSearchRefusals(t *testing.T) {
	d := &memDirectory{accounts: sampleAccounts(3)}
	tests := []struct {
		query string
		want  errorCase
	}{
		{"limit=0", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{"limit=201", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "limit"}},
		{"q=a*b", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "q"}},
		{"q=" + strings.Repeat("a", 65), errorCase{400, TypeInvalidRequest, CodeInvalidValue, "q"}},
		{"in_debt=maybe", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "in_debt"}},
		{"balance_below=1e3", errorCase{400, TypeInvalidRequest, CodeInvalidAmount, "balance_below"}},
		{"cursor=abc", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "cursor"}},
		{"cursor=5.-1", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "cursor"}},
		{"q=a&q=b", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "q"}},
		{"q=a&sort=id", errorCase{400, TypeInvalidRequest, CodeInvalidValue, "sort"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			s := newTestServer(d.ledger(), nil)
			s.Directory = d
			checkError(t, call(t, s.Handler(), "GET", "/admin/v1/accounts?"+tt.query, ""), tt.want)
		})
	}
	t.Run("no directory", func(t *testing.T) {
		checkError(t, call(t, newTestServer(nil, nil).Handler(), "GET", "/admin/v1/accounts?q=a", ""),
			errorCase{501, TypeNotImplemented, CodeSearchUnavailable, ""})
	})
}

func TestMatchPattern(t *testing.T) {
	for q, want := range map[string]string{"": "*", "Ac-1": "*[aA][cC]-1*", "x.y_z": "*[xX].[yY]_[zZ]*"} {
		if got := matchPattern(q); got != want {
			t.Errorf("matchPattern(%q) = %q, want %q", q, got, want)
		}
	}
}

// TestSearchModel: whatever the accounts, filters, page size and SSCAN step
// size, following the cursor visits exactly the accounts the filter selects.
func TestSearchModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 300).Draw(rt, "accounts")
		var accts []billing.Account
		for i := range n {
			accts = append(accts, billing.Account{
				ID:     fmt.Sprintf("%s-%d", rapid.SampledFrom([]string{"a", "B", "ab", "Ba"}).Draw(rt, "name"), i),
				Tier:   rapid.SampledFrom([]string{"tier-1", "tier-2"}).Draw(rt, "tier"),
				Debt:   money.Micros(rapid.IntRange(0, 2).Draw(rt, "debt")),
				Credit: money.Micros(rapid.IntRange(0, 5).Draw(rt, "credit")),
			})
		}
		d := &memDirectory{accounts: accts, stepSize: rapid.IntRange(0, 40).Draw(rt, "step")}
		limit := rapid.IntRange(1, 20).Draw(rt, "limit")
		q := rapid.SampledFrom([]string{"", "a", "b", "AB"}).Draw(rt, "q")
		inDebt := rapid.Bool().Draw(rt, "in_debt")
		below := rapid.IntRange(-1, 6).Draw(rt, "below") // -1: no filter
		query := fmt.Sprintf("limit=%d&q=%s&in_debt=%v", limit, q, inDebt)
		if below >= 0 {
			query += "&balance_below=0.00000" + fmt.Sprint(below)
		}
		s := newTestServer(d.ledger(), nil)
		s.Directory = d
		got, _ := searchAll(rt, s, query)
		var want []string
		for _, a := range accts {
			if strings.Contains(strings.ToLower(a.ID), strings.ToLower(q)) && (!inDebt || a.Debt > 0) &&
				(below < 0 || a.Balance() < money.Micros(below)) {
				want = append(want, a.ID)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			rt.Fatalf("query %s: found %v, want %v", query, got, want)
		}
	})
}
