package admin

import (
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
	"github.com/creditgate/creditgate/billing/report"
)

// The reporting endpoints read an account's ledger: a usage report grouped by
// model, day or key (or several of them at once); the newest events, newest
// first, page by page towards older ones; the ledger exported as JSON Lines or
// CSV, streamed page by page so a ledger of any length takes bounded memory; and
// an audit that replays the ledger against the stored state (billing.Audit).
// The reading itself (ranges, grouping, the newest-first probe) is package
// billing/report, which the customer's Billing page shares; this file parses
// queries and writes answers.

// Usage report groupings.
const (
	GroupByModel = report.ByModel
	GroupByDay   = report.ByDay
	GroupByKey   = report.ByKey
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// reportPageSize is how many events a report reads per store call (and how
// many an export writes between flushes).
const reportPageSize = report.PageSize

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

// UsageRow sums the usage events of one group (see report.Row).
type UsageRow = report.Row

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
	Check   string `json:"check"` // amounts, balance, debt, grants, usage, state, or archive (Redis lost events the ledger archive holds)
	EventID string `json:"event_id,omitempty"`
	Message string `json:"message"`
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
				if !report.ValidGrouping(g) {
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

// rng is the query's range as the report package takes it.
func (q reportQuery) rng() report.Range { return report.Range{From: q.from, To: q.to} }

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
	rep, err := report.Usage(r.Context(), ledger, report.SnapshotOf(a), q.rng(), q.groupBy...)
	if err != nil {
		return storeError(err)
	}
	out := UsageReport{Object: "usage_report", Account: a.ID, To: q.to, GroupBy: strings.Join(q.groupBy, ","), Data: rep.Rows, Total: rep.Total}
	if !q.from.IsZero() {
		out.From = &q.from
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// csvHeader are the columns of a CSV export, in order.
var csvHeader = []string{"id", "type", "at", "amount", "balance_after", "credit_after", "debt_after", "grant_id", "source",
	"hold_id", "request_id", "key_id", "model", "endpoint", "prompt_tokens", "completion_tokens", "cached_tokens",
	"reasoning_tokens", "token_source", "cost", "from_credit", "to_debt", "note", "payment_ref",
	"price_input", "price_cached_input", "price_output", "price_reasoning", "price_audio_input", "price_audio_output"}

func csvRow(ev billing.Event) []string {
	num := func(n int64) string { return strconv.FormatInt(n, 10) }
	row := []string{ev.ID, string(ev.Type), ev.At.UTC().Format(time.RFC3339Nano), ev.Amount.String(), ev.BalanceAfter.String(),
		ev.CreditAfter.String(), ev.DebtAfter.String(), ev.GrantID, ev.Source, ev.HoldID, ev.RequestID, ev.KeyID, ev.Model,
		ev.Endpoint, "", "", "", "", ev.TokenSource, "", "", "", ev.Note, ev.PaymentRef, "", "", "", "", "", ""}
	if ev.Type == billing.EventUsage {
		row[14], row[15], row[16], row[17] = num(ev.PromptTokens), num(ev.CompletionTokens), num(ev.CachedTokens), num(ev.ReasoningTokens)
		row[19], row[20], row[21] = ev.Cost.String(), ev.FromCredit.String(), ev.ToDebt.String()
		if p := ev.Prices; p != nil { // USD per 1M tokens
			copy(row[24:], []string{p.Input.String(), p.CachedInput.String(), p.Output.String(),
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
	err := report.Scan(r.Context(), ledger, report.SnapshotOf(a), q.rng(), func(ev billing.Event) error {
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
	if s.ArchiveCheck != nil {
		ps, err := s.ArchiveCheck(r.Context(), id)
		if err != nil {
			// Not proven either way: said, as a failed check.
			ps = []billing.AuditProblem{{Check: "archive", Message: "comparing with the ledger archive failed: " + err.Error()}}
		}
		rep.Problems = append(rep.Problems, ps...)
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

// eventID is a parsed ledger event id, "<ms>-<seq>": the `before` cursor as
// recentQuery checks it (report.EventID does the work).
type eventID struct{ ms, seq uint64 }

func (id eventID) String() string { return report.EventID{MS: id.ms, Seq: id.seq}.String() }

// next is the smallest id after id.
func (id eventID) next() eventID {
	n := report.EventID{MS: id.ms, Seq: id.seq}.Next()
	return eventID{n.MS, n.Seq}
}

// parseEventID parses "<ms>-<seq>" strictly (decimal digits only).
func parseEventID(s string) (eventID, bool) {
	id, ok := report.ParseEventID(s)
	return eventID{id.MS, id.Seq}, ok
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
// following, older page; "" once the ledger's first event is on the page
// (report.Recent, over Ledger.EventsBefore).
func (s *Server) recentEvents(w http.ResponseWriter, r *http.Request) *apiError {
	limit, before, hasBefore, e := recentQuery(r)
	if e != nil {
		return e
	}
	ledger, a, e := s.snapshot(r)
	if e != nil {
		return e
	}
	cursor := ""
	if hasBefore {
		cursor = before.String()
	}
	page, err := report.Recent(r.Context(), ledger, report.SnapshotOf(a), cursor, limit)
	if err != nil {
		return storeError(err)
	}
	list := EventList{Object: "list", Data: make([]Event, 0, len(page.Events)), Next: page.Next, HasMore: page.HasMore}
	for _, ev := range page.Events {
		list.Data = append(list.Data, eventFrom(ev))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}
