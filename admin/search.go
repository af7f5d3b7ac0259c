package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// Account search: GET /admin/v1/accounts with any of q, tier, in_debt,
// balance_below, limit or cursor answers one page of an SSCAN over the account
// index instead of every account. A request examines at most
// searchScanBudget ids (searchScanStep per SSCAN step, their figures read in one
// pipeline per step) and at most limit accounts' full state, however many
// accounts there are; a filter that matches few accounts answers a short (or
// empty) page with next_cursor, and the caller asks again to scan further.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 200
	searchScanStep     = 200  // SSCAN COUNT; fixed, so a cursor resumes a step the same way
	searchScanBudget   = 5000 // ids examined per request
	maxSearchQueryLen  = 64   // an account id's longest
)

// CodeSearchUnavailable: the store has no account directory to search.
const CodeSearchUnavailable = "search_unavailable"

// AccountDirectory pages through every account for the search
// (billing/redisstore.Store implements it).
type AccountDirectory interface {
	// ScanAccounts is one SSCAN step over the account ids from cursor (0
	// starts; a next of 0 ends), with a MATCH glob and a COUNT.
	ScanAccounts(ctx context.Context, cursor uint64, match string, count int64) (ids []string, next uint64, err error)
	// AccountSummaries reads the stored figures of ids in one round trip, in
	// their order, leaving out ids without an account.
	AccountSummaries(ctx context.Context, ids []string) ([]billing.Account, error)
	// CountAccounts is the number of ids in the index.
	CountAccounts(ctx context.Context) (int64, error)
}

// accountSearch is a parsed search query.
type accountSearch struct {
	q            string // substring of the id, any case; "" matches every id
	tier         string
	inDebt       bool
	balanceBelow *money.Micros
	limit        int
	cursor       searchCursor
}

// searchCursor is where a search resumes: the SSCAN cursor of a step, and how
// many ids of that step the previous page consumed. Written "STEP.SKIP".
type searchCursor struct {
	step uint64
	skip int
}

func (c searchCursor) String() string {
	return strconv.FormatUint(c.step, 10) + "." + strconv.Itoa(c.skip)
}

func parseSearchCursor(s string) (searchCursor, bool) {
	step, skip, ok := strings.Cut(s, ".")
	if !ok {
		return searchCursor{}, false
	}
	c := searchCursor{}
	var err error
	if c.step, err = strconv.ParseUint(step, 10, 64); err != nil {
		return searchCursor{}, false
	}
	n, err := strconv.Atoi(skip)
	if err != nil || n < 0 || n > 100*searchScanStep {
		return searchCursor{}, false
	}
	c.skip = n
	return c, true
}

// searchParams are the query parameters that make GET /admin/v1/accounts a search.
var searchParams = []string{"q", "tier", "in_debt", "balance_below", "limit", "cursor"}

// isSearch reports whether q asks for a search page rather than the whole list.
func isSearch(q url.Values) bool {
	return slices.ContainsFunc(searchParams, q.Has)
}

// parseAccountSearch reads the search's query parameters; unknown ones are errors.
func parseAccountSearch(q url.Values) (accountSearch, *apiError) {
	s := accountSearch{limit: DefaultSearchLimit}
	for name, values := range q {
		if len(values) != 1 {
			return s, badRequest(CodeInvalidValue, name, "query parameter %s is given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "q":
			if len(v) > maxSearchQueryLen || strings.ContainsFunc(v, func(c rune) bool { return !idChar(c) }) {
				return s, badRequest(CodeInvalidValue, "q", "q is part of an account id: at most %d letters, digits, '.', '_' or '-'", maxSearchQueryLen)
			}
			s.q = v
		case "tier":
			s.tier = v
		case "in_debt":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, badRequest(CodeInvalidValue, "in_debt", "in_debt must be true or false, not %q", v)
			}
			s.inDebt = b
		case "balance_below":
			m, err := money.ParseSigned(v)
			if err != nil {
				return s, invalidAmount("balance_below", err)
			}
			s.balanceBelow = &m
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxSearchLimit {
				return s, badRequest(CodeInvalidValue, "limit", "limit must be an integer from 1 to %d, not %q", MaxSearchLimit, v)
			}
			s.limit = n
		case "cursor":
			c, ok := parseSearchCursor(v)
			if !ok {
				return s, badRequest(CodeInvalidValue, "cursor", "cursor must be a previous page's next_cursor")
			}
			s.cursor = c
		default:
			return s, badRequest(CodeInvalidValue, name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(searchParams, ", "))
		}
	}
	return s, nil
}

// idChar reports whether c may appear in an account id (billing.ValidAccountID).
func idChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// matchPattern is the SSCAN MATCH glob of a case-insensitive substring: every
// letter becomes a class of both cases ("Ac" → "*[aA][cC]*"). Id characters
// are never glob syntax, so nothing else needs escaping.
func matchPattern(q string) string {
	if q == "" {
		return "*"
	}
	var b strings.Builder
	b.WriteByte('*')
	for _, c := range q {
		lower, upper := strings.ToLower(string(c)), strings.ToUpper(string(c))
		if lower != upper {
			b.WriteString("[" + lower + upper + "]")
		} else {
			b.WriteRune(c)
		}
	}
	b.WriteByte('*')
	return b.String()
}

// matches reports whether a's figures pass the search's filters (q is left to
// MATCH, and checked again here for a directory that ignores it).
func (s accountSearch) matches(a billing.Account) bool {
	switch {
	case s.q != "" && !strings.Contains(strings.ToLower(a.ID), strings.ToLower(s.q)):
		return false
	case s.tier != "" && a.Tier != s.tier:
		return false
	case s.inDebt && a.Debt <= 0:
		return false
	case s.balanceBelow != nil && a.Balance() >= *s.balanceBelow:
		return false
	}
	return true
}

// directory is the search's AccountDirectory: Server.Directory, else the
// ledger when it is one.
func (s *Server) directory() (AccountDirectory, *apiError) {
	if s.Directory != nil {
		return s.Directory, nil
	}
	if d, ok := s.Ledger.(AccountDirectory); ok {
		return d, nil
	}
	return nil, &apiError{status: http.StatusNotImplemented, typ: TypeNotImplemented, code: CodeSearchUnavailable,
		message: "this store cannot search accounts; GET /admin/v1/accounts without parameters lists them all"}
}

// searchAccounts answers one page of an account search.
func (s *Server) searchAccounts(w http.ResponseWriter, r *http.Request, q url.Values) *apiError {
	query, e := parseAccountSearch(q)
	if e != nil {
		return e
	}
	dir, e := s.directory()
	if e != nil {
		return e
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	ctx := r.Context()
	page, err := searchPage(ctx, dir, ledger, query)
	if err != nil {
		return storeError(err)
	}
	if page.Total, err = dir.CountAccounts(ctx); err != nil {
		return storeError(err)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// searchPage scans from the query's cursor until the page is full, the scan
// ends or the budget is spent. Candidates are judged on their stored figures;
// the page's accounts are then read whole (GetAccount, which forfeits expired
// credit first) and judged again, so what the page shows is exact.
func searchPage(ctx context.Context, dir AccountDirectory, ledger billing.Ledger, q accountSearch) (AccountPage, error) {
	page := AccountPage{Object: "list", Data: []AccountSummary{}}
	seen := map[string]bool{} // SSCAN may return an id twice
	cur := q.cursor
	for page.Scanned < searchScanBudget {
		ids, next, err := dir.ScanAccounts(ctx, cur.step, matchPattern(q.q), searchScanStep)
		if err != nil {
			return page, err
		}
		if cur.skip > len(ids) {
			cur.skip = len(ids) // the set changed since the cursor was made
		}
		rest := ids[cur.skip:]
		sums, err := dir.AccountSummaries(ctx, rest)
		if err != nil {
			return page, err
		}
		byID := make(map[string]billing.Account, len(sums))
		for _, a := range sums {
			byID[a.ID] = a
		}
		for i, id := range rest {
			page.Scanned++
			a, ok := byID[id]
			if !ok || seen[id] || !q.matches(a) {
				continue
			}
			seen[id] = true
			full, err := ledger.GetAccount(ctx, id)
			if errors.Is(err, billing.ErrAccountNotFound) {
				continue
			}
			if err != nil {
				return page, err
			}
			if !q.matches(full) {
				continue // its stored figures were stale (an expired grant)
			}
			page.Data = append(page.Data, searchResultFrom(full))
			if len(page.Data) == q.limit {
				switch {
				case i+1 < len(rest):
					page.NextCursor = searchCursor{step: cur.step, skip: cur.skip + i + 1}.String()
				case next != 0:
					page.NextCursor = searchCursor{step: next}.String()
				}
				page.HasMore = page.NextCursor != ""
				sortPage(page.Data)
				return page, nil
			}
		}
		if next == 0 {
			sortPage(page.Data)
			return page, nil
		}
		cur = searchCursor{step: next}
	}
	page.NextCursor, page.HasMore = cur.String(), true
	sortPage(page.Data)
	return page, nil
}

func sortPage(data []AccountSummary) {
	slices.SortFunc(data, func(a, b AccountSummary) int { return strings.Compare(a.ID, b.ID) })
}

// searchResultFrom is an account's summary with its next expiry: the earliest
// expiry of a grant with credit left.
func searchResultFrom(a billing.Account) AccountSummary {
	sum := summaryFrom(a)
	sum.AutoRecharge = &a.AutoRecharge.Enabled
	for _, g := range a.Grants {
		if g.Remaining > 0 && (sum.NextExpiry == nil || g.ExpiresAt.Before(*sum.NextExpiry)) {
			t := g.ExpiresAt.UTC()
			sum.NextExpiry = &t
		}
	}
	return sum
}
