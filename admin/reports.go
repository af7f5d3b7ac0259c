package admin

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

// The reporting endpoints read an account's ledger: a usage report grouped by
// model, day or key (or several of them at once); the newest events, newest
// first, page by page towards older ones; the ledger exported as JSON Lines or CSV, streamed page by
// page so a ledger of any length takes bounded memory; and an audit that replays
// the ledger against the stored state (billing.Audit).
//
// Ranges are over each event's `at` (the time the proxy recorded it), half-open:
// from ≤ at < to. Events are stored in commit order, which is `at` order as long as
// the proxies' clocks agree, so a scan stops once events are clockSkewAllowance
// past `to` instead of reading the ledger to its end. Event ids are Redis stream
// ids ("<ms>-<seq>", see billing.CompareEventIDs) whose milliseconds are the
// store's commit time, so a scan with a `from` also starts at the first event
// committed clockSkewAllowance before `from` instead of at the ledger's start.

// Usage report groupings.
const (
	GroupByModel = "model"
	GroupByDay   = "day"
	GroupByKey   = "key"
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// reportPageSize is how many events a report reads per store call.
const reportPageSize = MaxLedgerLimit

// clockSkewAllowance is how far proxies' clocks may disagree: a scan for events
// before `to` stops at the first event this much later than `to`.
const clockSkewAllowance = time.Hour

// UsageReport is the answer of GET /admin/v1/accounts/{id}/usage: settled requests
// (usage events) in [from, to), grouped.
type UsageReport struct {
	Object  string     `json:"object"` // "usage_report"
	Account string     `json:"account"`
	From    *time.Time `json:"from"` // null: from the first event
	To      time.Time  `json:"to"`
	GroupBy string     `json:"group_by"` // model, day or key
	// Data has one row per group, sorted by group (days chronologically). With
	// several groupings ("day,model") it has one row per combination that
	// occurred, sorted by the first grouping, then the next.
	Data  []UsageRow `json:"data"`
	Total UsageRow   `json:"total"` // Group is ""
}

// UsageRow sums the usage events of one group. Tokens are as the usage events
// record them: CachedTokens is the part of PromptTokens served from the prompt
// cache, ReasoningTokens the part of CompletionTokens spent on reasoning.
type UsageRow struct {
	// Group is the priced model name, the UTC day ("2006-01-02") or the key id
	// ("" for usage recorded without one).
	Group string `json:"group"`
	// By is set only when the report groups by more than one field: the row's
	// value for each of them, e.g. {"day":"2026-03-01","model":"gpt-4o"}. Group
	// then joins those values with "/" in group_by's order, for display.
	By               map[string]string `json:"by,omitempty"`
	Requests         int64             `json:"requests"`
	PromptTokens     int64             `json:"prompt_tokens"`
	CachedTokens     int64             `json:"cached_tokens"`
	CompletionTokens int64             `json:"completion_tokens"`
	ReasoningTokens  int64             `json:"reasoning_tokens"`
	Cost             money.Micros      `json:"cost"`
}

func (r *UsageRow) add(ev billing.Event) {
	r.Requests++
	r.PromptTokens += ev.PromptTokens
	r.CachedTokens += ev.CachedTokens
	r.CompletionTokens += ev.CompletionTokens
	r.ReasoningTokens += ev.ReasoningTokens
	r.Cost += ev.Cost
}

// ExportedEvent is one line of a JSON Lines export: the ledger endpoint's event
// plus the grant source of grant events.
type ExportedEvent struct {
	Event
	Source string `json:"source,omitempty"`
}

// AuditReport is the answer of GET /admin/v1/accounts/{id}/audit. OK is false
// when any check failed; Problems then says which, the first one first.
type AuditReport struct {
	Object      string         `json:"object"` // "audit"
	Account     string         `json:"account"`
	OK          bool           `json:"ok"`
	Events      int            `json:"events"`        // ledger events replayed
	LastEventID string         `json:"last_event_id"` // the snapshot's newest event
	Problems    []AuditProblem `json:"problems"`
}

// AuditProblem is one failed check. EventID is the first event where the replay
// and the ledger disagreed, or "" for a mismatch in the stored state.
type AuditProblem struct {
	Check   string `json:"check"` // amounts, balance, debt, grants, usage or state
	EventID string `json:"event_id,omitempty"`
	Message string `json:"message"`
}

// registerReports adds the reporting and audit endpoints (usage reports, ledger
// export, audit).
func (s *Server) registerReports(mux *http.ServeMux) {
	mux.Handle("GET /admin/v1/accounts/{id}/usage", handlerFunc(s.usageReport))
	mux.Handle("GET /admin/v1/accounts/{id}/ledger/recent", handlerFunc(s.recentEvents))
	mux.Handle("GET /admin/v1/accounts/{id}/ledger/export", handlerFunc(s.exportLedger))
	mux.Handle("GET /admin/v1/accounts/{id}/audit", handlerFunc(s.auditAccount))
}

// reportQuery holds the parsed query of a report endpoint.
type reportQuery struct {
	from, to time.Time // from zero: unbounded
	groupBy  []string  // distinct groupings, in the order asked
	format   string
}

// parseReportQuery reads from, to and the endpoint's own parameters (allowed).
// Unknown or repeated parameters are errors, as for the ledger listing.
func (s *Server) parseReportQuery(r *http.Request, allowed ...string) (reportQuery, *apiError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return reportQuery{}, badRequest(CodeInvalidValue, "", "the query string is malformed: %v", err)
	}
	out := reportQuery{to: s.now().UTC()}
	known := append([]string{"from", "to"}, allowed...)
	for name, values := range q {
		if !slices.Contains(known, name) {
			return reportQuery{}, badRequest(CodeInvalidValue, name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(known, ", "))
		}
		if len(values) != 1 {
			return reportQuery{}, badRequest(CodeInvalidValue, name, "query parameter %s is given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "from", "to":
			t, dateOnly, e := parseReportTime(name, v)
			if e != nil {
				return reportQuery{}, e
			}
			if name == "from" {
				out.from = t
			} else {
				if dateOnly { // "to=2026-03-31" includes that whole day
					t = t.AddDate(0, 0, 1)
				}
				out.to = t
			}
		case "group_by":
			// One grouping, or several separated by commas ("day,model").
			for _, g := range strings.Split(v, ",") {
				if g != GroupByModel && g != GroupByDay && g != GroupByKey {
					return reportQuery{}, badRequest(CodeInvalidValue, "group_by", "group_by must be model, day or key, or several of them separated by commas (day,model), not %q", v)
				}
				if slices.Contains(out.groupBy, g) {
					return reportQuery{}, badRequest(CodeInvalidValue, "group_by", "group_by names %s twice", g)
				}
				out.groupBy = append(out.groupBy, g)
			}
		case "format":
			if v != FormatJSONL && v != FormatCSV {
				return reportQuery{}, badRequest(CodeInvalidValue, "format", "format must be jsonl or csv, not %q", v)
			}
			out.format = v
		}
	}
	if !out.from.IsZero() && !out.from.Before(out.to) {
		return reportQuery{}, badRequest(CodeInvalidValue, "from", "from (%s) must be before to (%s)", out.from.Format(time.RFC3339), out.to.Format(time.RFC3339))
	}
	return out, nil
}

// parseReportTime accepts RFC 3339 ("2026-03-01T00:00:00Z") or a UTC date
// ("2026-03-01", meaning its midnight).
func parseReportTime(name, v string) (time.Time, bool, *apiError) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), true, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, badRequest(CodeInvalidValue, name, "%s %q is neither an RFC 3339 time (2026-03-01T00:00:00Z) nor a date (2026-03-01)", name, v)
	}
	return t.UTC(), false, nil
}

// inRange reports whether ev is in q's range, and whether the scan can stop
// (ev is far enough past `to` that no later event can be in range).
func (q reportQuery) inRange(ev billing.Event) (in, stop bool) {
	if !ev.At.Before(q.to) {
		return false, !ev.At.Before(q.to.Add(clockSkewAllowance))
	}
	return q.from.IsZero() || !ev.At.Before(q.from), false
}

// scanLedger calls f for each event of the snapshot a in q's range, oldest first,
// reading the ledger one page at a time.
func (s *Server) scanLedger(r *http.Request, ledger billing.Ledger, a billing.Account, q reportQuery, f func(billing.Event) error) error {
	if a.LastEventID == "" {
		return nil
	}
	after := ""
	if _, ok := parseEventID(a.LastEventID); ok && !q.from.IsZero() {
		// Skip what was committed well before `from`: see the top of this file.
		if ms := q.from.Add(-clockSkewAllowance).UnixMilli(); ms > 0 {
			after = startAfter(uint64(ms))
		}
	}
	for {
		page, err := ledger.Events(r.Context(), a.ID, after, reportPageSize)
		if err != nil {
			return err
		}
		for _, ev := range page.Events {
			if billing.CompareEventIDs(ev.ID, a.LastEventID) > 0 {
				return nil // after the snapshot
			}
			in, stop := q.inRange(ev)
			if stop {
				return nil
			}
			if in {
				if err := f(ev); err != nil {
					return err
				}
			}
			if ev.ID == a.LastEventID {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}

// snapshot validates the route's account and returns its state.
func (s *Server) snapshot(r *http.Request) (billing.Ledger, billing.Account, *apiError) {
	id, e := accountParam(r)
	if e != nil {
		return nil, billing.Account{}, e
	}
	ledger, e := s.ledger()
	if e != nil {
		return nil, billing.Account{}, e
	}
	a, err := ledger.GetAccount(r.Context(), id)
	if err != nil {
		return nil, billing.Account{}, storeError(err)
	}
	return ledger, a, nil
}

func (s *Server) usageReport(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := s.parseReportQuery(r, "group_by")
	if e != nil {
		return e
	}
	if len(q.groupBy) == 0 {
		q.groupBy = []string{GroupByModel}
	}
	ledger, a, e := s.snapshot(r)
	if e != nil {
		return e
	}
	groups := map[string]*UsageRow{}
	keys := map[*UsageRow][]string{} // each row's values, in group_by's order
	report := UsageReport{Object: "usage_report", Account: a.ID, To: q.to, GroupBy: strings.Join(q.groupBy, ","), Data: []UsageRow{}}
	if !q.from.IsZero() {
		report.From = &q.from
	}
	err := s.scanLedger(r, ledger, a, q, func(ev billing.Event) error {
		if ev.Type != billing.EventUsage {
			return nil
		}
		values := make([]string, len(q.groupBy))
		for i, g := range q.groupBy {
			switch g {
			case GroupByModel:
				values[i] = ev.Model
			case GroupByDay:
				values[i] = ev.At.UTC().Format(time.DateOnly)
			case GroupByKey:
				values[i] = ev.KeyID
			}
		}
		key := strings.Join(values, "\x00") // NUL never occurs in a model name, day or key id
		row := groups[key]
		if row == nil {
			row = &UsageRow{Group: strings.Join(values, "/")}
			if len(values) > 1 {
				row.By = make(map[string]string, len(values))
				for i, g := range q.groupBy {
					row.By[g] = values[i]
				}
			}
			groups[key] = row
			keys[row] = values
		}
		row.add(ev)
		report.Total.add(ev)
		return nil
	})
	if err != nil {
		return storeError(err)
	}
	rows := make([]*UsageRow, 0, len(groups))
	for _, row := range groups {
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b *UsageRow) int { return slices.Compare(keys[a], keys[b]) })
	for _, row := range rows {
		report.Data = append(report.Data, *row)
	}
	writeJSON(w, http.StatusOK, report)
	return nil
}

// csvHeader are the columns of a CSV export, in order.
var csvHeader = []string{"id", "type", "at", "amount", "balance_after", "credit_after", "debt_after", "grant_id", "source",
	"hold_id", "request_id", "key_id", "model", "endpoint", "prompt_tokens", "completion_tokens", "cached_tokens",
	"reasoning_tokens", "token_source", "cost", "from_credit", "to_debt", "note",
	"price_input", "price_cached_input", "price_output", "price_reasoning", "price_audio_input", "price_audio_output"}

func csvRow(ev billing.Event) []string {
	num := func(n int64) string { return strconv.FormatInt(n, 10) }
	row := []string{ev.ID, string(ev.Type), ev.At.UTC().Format(time.RFC3339Nano), ev.Amount.String(), ev.BalanceAfter.String(),
		ev.CreditAfter.String(), ev.DebtAfter.String(), ev.GrantID, ev.Source, ev.HoldID, ev.RequestID, ev.KeyID, ev.Model,
		ev.Endpoint, "", "", "", "", ev.TokenSource, "", "", "", ev.Note, "", "", "", "", "", ""}
	if ev.Type == billing.EventUsage {
		row[14], row[15], row[16], row[17] = num(ev.PromptTokens), num(ev.CompletionTokens), num(ev.CachedTokens), num(ev.ReasoningTokens)
		row[19], row[20], row[21] = ev.Cost.String(), ev.FromCredit.String(), ev.ToDebt.String()
		if p := ev.Prices; p != nil { // USD per 1M tokens
			copy(row[23:], []string{p.Input.String(), p.CachedInput.String(), p.Output.String(),
				p.Reasoning.String(), p.AudioInput.String(), p.AudioOutput.String()})
		}
	}
	return row
}

// exportLedger streams the account's ledger up to the snapshot taken at the start,
// in range, as JSON Lines (one ExportedEvent per line) or CSV (csvHeader). An
// error after the first byte aborts the connection, so a client sees a truncated
// transfer rather than a short file that looks complete.
func (s *Server) exportLedger(w http.ResponseWriter, r *http.Request) *apiError {
	q, e := s.parseReportQuery(r, "format")
	if e != nil {
		return e
	}
	if q.format == "" {
		q.format = FormatJSONL
	}
	ledger, a, e := s.snapshot(r)
	if e != nil {
		return e
	}
	h := w.Header()
	if q.format == FormatCSV {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-ledger.%s"`, a.ID, q.format))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	var write func(billing.Event) error
	var flush func() error
	if q.format == FormatCSV {
		cw := csv.NewWriter(w)
		cw.Write(csvHeader)
		write = func(ev billing.Event) error { return cw.Write(csvRow(ev)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		write = func(ev billing.Event) error {
			return enc.Encode(ExportedEvent{Event: eventFrom(ev), Source: ev.Source})
		}
		flush = func() error { return nil }
	}
	n := 0
	err := s.scanLedger(r, ledger, a, q, func(ev billing.Event) error {
		if err := write(ev); err != nil {
			return err
		}
		if n++; n%reportPageSize == 0 {
			if err := flush(); err != nil {
				return err
			}
			_ = rc.Flush() // streaming: the client sees progress; an error shows on the next write
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		if s.Logger != nil && r.Context().Err() == nil {
			s.Logger.Error("ledger export aborted", zap.String("account", a.ID), zap.Int("events_written", n), zap.Error(err))
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) auditAccount(w http.ResponseWriter, r *http.Request) *apiError {
	id, e := accountParam(r)
	if e != nil {
		return e
	}
	if q, err := url.ParseQuery(r.URL.RawQuery); err != nil || len(q) > 0 {
		return badRequest(CodeInvalidValue, "", "this endpoint takes no query parameters")
	}
	ledger, e := s.ledger()
	if e != nil {
		return e
	}
	rep, err := billing.AuditAccount(r.Context(), ledger, id)
	if err != nil {
		return storeError(err)
	}
	out := AuditReport{Object: "audit", Account: rep.Account, OK: rep.OK(), Events: rep.Events, LastEventID: rep.LastEventID, Problems: []AuditProblem{}}
	for _, p := range rep.Problems {
		out.Problems = append(out.Problems, AuditProblem{Check: p.Check, EventID: p.EventID, Message: p.Message})
	}
	if !out.OK && s.Logger != nil {
		s.Logger.Warn("audit found mismatches", zap.String("account", id), zap.Int("problems", len(out.Problems)),
			zap.String("first_check", out.Problems[0].Check), zap.String("first_event", out.Problems[0].EventID))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// eventID is a parsed ledger event id, "<ms>-<seq>".
type eventID struct{ ms, seq uint64 }

func (id eventID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id eventID) compare(o eventID) int {
	if c := cmp.Compare(id.ms, o.ms); c != 0 {
		return c
	}
	return cmp.Compare(id.seq, o.seq)
}

// next is the smallest id after id.
func (id eventID) next() eventID {
	if id.seq == ^uint64(0) {
		return eventID{id.ms + 1, 0}
	}
	return eventID{id.ms, id.seq + 1}
}

// parseEventID parses "<ms>-<seq>" strictly (decimal digits only).
func parseEventID(s string) (eventID, bool) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok || msPart == "" || seqPart == "" || strings.Trim(msPart+seqPart, "0123456789") != "" {
		return eventID{}, false
	}
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if err1 != nil || err2 != nil {
		return eventID{}, false
	}
	return eventID{ms, seq}, true
}

// startAfter is the `after` cursor whose page starts at the first event of
// millisecond ms ("" for ms 0: the ledger's start).
func startAfter(ms uint64) string {
	if ms == 0 {
		return ""
	}
	return eventID{ms - 1, ^uint64(0)}.String()
}

// recentQuery reads ?limit=&before=; unknown or repeated parameters are errors.
func recentQuery(r *http.Request) (limit int, before eventID, hasBefore bool, _ *apiError) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, eventID{}, false, badRequest(CodeInvalidValue, "", "the query string is malformed: %v", err)
	}
	limit = DefaultLedgerLimit
	for name, values := range q {
		if len(values) != 1 {
			return 0, eventID{}, false, badRequest(CodeInvalidValue, name, "query parameter %s is given %d times", name, len(values))
		}
		v := values[0]
		switch name {
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLedgerLimit {
				return 0, eventID{}, false, badRequest(CodeInvalidValue, "limit", "limit must be an integer from 1 to %d, not %q", MaxLedgerLimit, v)
			}
			limit = n
		case "before":
			id, ok := parseEventID(v)
			if !ok || len(v) > maxCursorLen {
				return 0, eventID{}, false, badRequest(CodeInvalidValue, "before", "before must be an event id from a previous page's next")
			}
			before, hasBefore = id, true
		default:
			return 0, eventID{}, false, badRequest(CodeInvalidValue, name, "unknown query parameter %q; this endpoint takes limit and before", name)
		}
	}
	return limit, before, hasBefore, nil
}

// recentEvents lists the ledger newest first:
// GET /admin/v1/accounts/{id}/ledger/recent?limit=&before= answers an EventList
// whose data are the newest `limit` events (default DefaultLedgerLimit, at most
// MaxLedgerLimit) with ids below `before` (all events when before is absent),
// newest first. Next is the oldest event's id, to pass as ?before= for the
// following, older page; "" once the ledger's first event is on the page.
//
// The store reads forward only (billing.Ledger.Events), so the newest page is
// found by probing back from the end in windows of stream-id milliseconds that
// double while they hold too few events and are halved while they hold too
// many; each probe is one store call of at most limit+1 events. A page costs
// O(log(span of the ledger in ms)) such calls, independently of the ledger's
// length.
func (s *Server) recentEvents(w http.ResponseWriter, r *http.Request) *apiError {
	limit, before, hasBefore, e := recentQuery(r)
	if e != nil {
		return e
	}
	ledger, a, e := s.snapshot(r)
	if e != nil {
		return e
	}
	list := EventList{Object: "list", Data: []Event{}}
	var events []billing.Event
	var err error
	last, ok := parseEventID(a.LastEventID)
	switch {
	case a.LastEventID == "":
		// An empty ledger.
	case !ok:
		// Ids this reader cannot seek by: read forward, keeping the newest.
		events, err = newestByScan(r, ledger, a.ID, before, hasBefore, limit+1)
	default:
		hi := last.next() // the snapshot's events, and none committed since
		if hasBefore && before.compare(hi) < 0 {
			hi = before
		}
		rd := &reverseReader{r: r, ledger: ledger, account: a.ID}
		events, err = rd.newest(hi, limit+1)
	}
	if err != nil {
		return storeError(err)
	}
	if len(events) > limit { // one more than asked: older events remain
		events = events[1:]
		list.Next, list.HasMore = events[0].ID, true
	}
	for i := len(events) - 1; i >= 0; i-- {
		list.Data = append(list.Data, eventFrom(events[i]))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// newestByScan returns the newest n events (below before, if given) by reading
// the whole ledger forward: the fallback for event ids that do not parse.
func newestByScan(r *http.Request, ledger billing.Ledger, account string, before eventID, hasBefore bool, n int) ([]billing.Event, error) {
	ring := newEventRing(n)
	after := ""
	for {
		page, err := ledger.Events(r.Context(), account, after, reportPageSize)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if hasBefore {
				if id, ok := parseEventID(ev.ID); ok && id.compare(before) >= 0 {
					return ring.events(), nil
				}
			}
			ring.push(ev)
		}
		if page.Next == "" {
			return ring.events(), nil
		}
		after = page.Next
	}
}

// reverseReader finds the newest events of a ledger that reads forward only.
type reverseReader struct {
	r       *http.Request
	ledger  billing.Ledger
	account string
}

// firstRecentWindow is the first window newest probes, in milliseconds.
const firstRecentWindow = 1024

// newest returns the newest n events with ids below hi, oldest first.
func (rd *reverseReader) newest(hi eventID, n int) ([]billing.Event, error) {
	// Grow a window [ms, top) back from hi. got holds every event in [top, hi).
	var got []billing.Event
	top, w := hi, uint64(firstRecentWindow)
	for n > 0 {
		ms := top.ms - min(w, top.ms)
		evs, more, err := rd.first(ms, top, n)
		if err != nil {
			return nil, err
		}
		if more {
			// [ms, top) holds at least n events: narrow down to the newest n.
			rest, err := rd.newestIn(ms, top, n)
			if err != nil {
				return nil, err
			}
			return append(rest, got...), nil
		}
		got = append(evs, got...)
		n -= len(evs)
		if ms == 0 {
			break // the ledger's start
		}
		top = eventID{ms, 0}
		w = min(w*2, 1<<62)
	}
	return got, nil
}

// newestIn returns the newest n events of [ms, top), which holds at least n,
// oldest first, by halving the window.
func (rd *reverseReader) newestIn(ms uint64, top eventID, n int) ([]billing.Event, error) {
	var got []billing.Event // every event in [top, the original top)
	for {
		if top.ms <= ms+1 {
			// At most two milliseconds' worth: read it all, keeping the newest n.
			evs, err := rd.all(ms, top, n)
			if err != nil {
				return nil, err
			}
			return append(evs, got...), nil
		}
		mid := ms + (top.ms-ms)/2 // ms < mid < top.ms
		evs, more, err := rd.first(mid, top, n)
		if err != nil {
			return nil, err
		}
		if more {
			ms = mid // the upper half has enough
			continue
		}
		got = append(evs, got...)
		n -= len(evs)
		if n == 0 {
			return got, nil
		}
		top = eventID{mid, 0} // the lower half has at least n more
	}
}

// first reads the oldest n events of [ms, top) in one store call. more reports
// whether there are n of them (and perhaps more); otherwise evs is all of them.
func (rd *reverseReader) first(ms uint64, top eventID, n int) (evs []billing.Event, more bool, err error) {
	page, err := rd.ledger.Events(rd.r.Context(), rd.account, startAfter(ms), n)
	if err != nil {
		return nil, false, err
	}
	for _, ev := range page.Events {
		id, ok := parseEventID(ev.ID)
		if ok && id.compare(top) >= 0 {
			break
		}
		evs = append(evs, ev)
	}
	return evs, len(evs) >= n, nil
}

// all reads every event of [ms, top) and returns the newest n, oldest first.
func (rd *reverseReader) all(ms uint64, top eventID, n int) ([]billing.Event, error) {
	ring := newEventRing(n)
	after := startAfter(ms)
	for {
		page, err := rd.ledger.Events(rd.r.Context(), rd.account, after, reportPageSize)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if id, ok := parseEventID(ev.ID); ok && id.compare(top) >= 0 {
				return ring.events(), nil
			}
			ring.push(ev)
		}
		if page.Next == "" {
			return ring.events(), nil
		}
		after = page.Next
	}
}

// eventRing keeps the newest n events pushed.
type eventRing struct {
	buf   []billing.Event
	n     int
	start int // index of the oldest once full
}

func newEventRing(n int) *eventRing { return &eventRing{n: n} }

func (r *eventRing) push(ev billing.Event) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, ev)
		return
	}
	r.buf[r.start] = ev
	r.start = (r.start + 1) % r.n
}

// events returns the kept events, oldest first.
func (r *eventRing) events() []billing.Event {
	return append(append([]billing.Event(nil), r.buf[r.start:]...), r.buf[:r.start]...)
}
