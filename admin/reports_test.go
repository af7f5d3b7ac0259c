package admin

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/money"
)

var mu = money.MustParse

// reportLedger is a fake ledger holding one account's snapshot and its events.
// A non-nil failAfter makes Events fail once that many events have been served.
func reportLedger(a billing.Account, events []billing.Event, failAfter *int) *fakeLedger {
	served := 0
	return &fakeLedger{
		GetAccountFunc: func(_ context.Context, id string) (billing.Account, error) {
			if id != a.ID {
				return billing.Account{}, fmt.Errorf("%w: %q", billing.ErrAccountNotFound, id)
			}
			return a, nil
		},
		EventsFunc: func(_ context.Context, id, after string, limit int) (billing.EventPage, error) {
			start := 0
			if after != "" {
				for i, ev := range events {
					if ev.ID == after {
						start = i + 1
					}
				}
			}
			if failAfter != nil && served >= *failAfter {
				return billing.EventPage{}, fmt.Errorf("%w: connection reset", billing.ErrUnavailable)
			}
			end := min(start+limit, len(events))
			page := billing.EventPage{Events: events[start:end]}
			served += end - start
			if end < len(events) {
				page.Next = events[end-1].ID
			}
			return page, nil
		},
	}
}

// usageEvents makes n usage events one hour apart from start, alternating models
// and keys, each costing 0.001 and using 10 prompt (2 cached) and 5 completion
// (1 reasoning) tokens, with a top-up first.
func usageEvents(start time.Time, n int) []billing.Event {
	evs := []billing.Event{{ID: fmt.Sprintf("%d-0", start.UnixMilli()-1), Type: billing.EventTopUp, At: start.Add(-time.Minute), Amount: mu("10"),
		BalanceAfter: mu("10"), CreditAfter: mu("10"), GrantID: "g1", Source: billing.SourcePurchase}}
	bal := mu("10")
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * time.Hour)
		bal -= mu("0.001")
		evs = append(evs, billing.Event{
			ID: fmt.Sprintf("%d-%d", at.UnixMilli(), i), Type: billing.EventUsage, At: at, Amount: mu("0.001"), Cost: mu("0.001"), FromCredit: mu("0.001"),
			BalanceAfter: bal, CreditAfter: bal, HoldID: fmt.Sprintf("req_%d", i), RequestID: fmt.Sprintf("req_%d", i),
			KeyID: []string{"key_a", "key_b"}[i%2], Model: []string{"gpt-4o-mini", "gpt-4o"}[i%3%2], Endpoint: "/v1/chat/completions",
			PromptTokens: 10, CachedTokens: 2, CompletionTokens: 5, ReasoningTokens: 1, TokenSource: billing.TokenSourceUpstream,
		})
	}
	return evs
}

func snapshotOf(id string, evs []billing.Event) billing.Account {
	last := evs[len(evs)-1]
	return billing.Account{ID: id, Credit: last.CreditAfter, LastEventID: last.ID, AsOf: testNow}
}

func TestUsageReport(t *testing.T) {
	start := time.Date(2025, 2, 27, 22, 0, 0, 0, time.UTC)
	evs := usageEvents(start, 30) // 2025-02-27T22:00 … 2025-03-01T03:00
	h := newTestServer(reportLedger(snapshotOf("acme", evs), evs, nil), nil).Handler()
	tests := []struct {
		name, query string
		wantGroups  string // group:requests,…
		wantTotal   int64
		wantCost    string
	}{
		{"by model, everything", "", "gpt-4o:10 gpt-4o-mini:20", 30, "0.030000"},
		{"by key", "?group_by=key", "key_a:15 key_b:15", 30, "0.030000"},
		{"by day", "?group_by=day", "2025-02-27:2 2025-02-28:24 2025-03-01:4", 30, "0.030000"},
		{"one day by date", "?group_by=day&from=2025-02-28&to=2025-02-28", "2025-02-28:24", 24, "0.024000"},
		{"RFC 3339 range, half-open", "?from=2025-02-28T00:00:00Z&to=2025-02-28T02:00:00Z&group_by=day", "2025-02-28:2", 2, "0.002000"},
		{"empty range", "?from=2024-01-01&to=2024-02-01", "", 0, "0.000000"},
		{"by day and model", "?group_by=day,model", "2025-02-27/gpt-4o:1 2025-02-27/gpt-4o-mini:1 2025-02-28/gpt-4o:8 2025-02-28/gpt-4o-mini:16 " +
			"2025-03-01/gpt-4o:1 2025-03-01/gpt-4o-mini:3", 30, "0.030000"},
		{"by model and day: sorted by model first", "?group_by=model,day&from=2025-02-28", "gpt-4o/2025-02-28:8 gpt-4o/2025-03-01:1 gpt-4o-mini/2025-02-28:16 gpt-4o-mini/2025-03-01:3", 28, "0.028000"},
		{"by day, model and key", "?group_by=day,model,key&from=2025-03-01", "2025-03-01/gpt-4o/key_a:1 2025-03-01/gpt-4o-mini/key_a:1 2025-03-01/gpt-4o-mini/key_b:2", 4, "0.004000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage"+tc.query, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var rep UsageReport
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			var groups []string
			for _, row := range rep.Data {
				groups = append(groups, fmt.Sprintf("%s:%d", row.Group, row.Requests))
			}
			for _, row := range rep.Data {
				if n := len(strings.Split(tc.query, ",")); (n > 1) != (row.By != nil) || len(row.By) != n && n > 1 {
					t.Fatalf("row %+v: by should name each of the %d groupings", row, n)
				}
			}
			if strings.Join(groups, " ") != tc.wantGroups || rep.Total.Requests != tc.wantTotal || rep.Total.Cost.String() != tc.wantCost || rep.Object != "usage_report" {
				t.Fatalf("groups %v total %+v; want %s, %d requests, cost %s", groups, rep.Total, tc.wantGroups, tc.wantTotal, tc.wantCost)
			}
			if rep.Total.PromptTokens != 10*tc.wantTotal || rep.Total.CachedTokens != 2*tc.wantTotal || rep.Total.CompletionTokens != 5*tc.wantTotal || rep.Total.ReasoningTokens != tc.wantTotal {
				t.Fatalf("token totals %+v", rep.Total)
			}
		})
	}
	// The wire shape, exactly.
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage?from=2025-03-01T02:00:00Z&to=2025-03-01T03:00:00Z", "")
	checkJSON(t, rec, http.StatusOK, `{"object":"usage_report","account":"acme","from":"2025-03-01T02:00:00Z","to":"2025-03-01T03:00:00Z","group_by":"model",
		"data":[{"group":"gpt-4o","requests":1,"prompt_tokens":10,"cached_tokens":2,"completion_tokens":5,"reasoning_tokens":1,"cost":"0.001000"}],
		"total":{"group":"","requests":1,"prompt_tokens":10,"cached_tokens":2,"completion_tokens":5,"reasoning_tokens":1,"cost":"0.001000"}}`)
	rec = call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage?from=2025-03-01T02:00:00Z&to=2025-03-01T03:00:00Z&group_by=day,model", "")
	checkJSON(t, rec, http.StatusOK, `{"object":"usage_report","account":"acme","from":"2025-03-01T02:00:00Z","to":"2025-03-01T03:00:00Z","group_by":"day,model",
		"data":[{"group":"2025-03-01/gpt-4o","by":{"day":"2025-03-01","model":"gpt-4o"},"requests":1,"prompt_tokens":10,"cached_tokens":2,"completion_tokens":5,"reasoning_tokens":1,"cost":"0.001000"}],
		"total":{"group":"","requests":1,"prompt_tokens":10,"cached_tokens":2,"completion_tokens":5,"reasoning_tokens":1,"cost":"0.001000"}}`)
}

// TestReportsStopAtSnapshotAndRange: events after the snapshot (activity during
// the report) are not counted, and the scan stops well past `to` instead of
// reading the whole ledger.
func TestReportsStopAtSnapshotAndRange(t *testing.T) {
	start := testNow.Add(-3500 * time.Hour).Truncate(24 * time.Hour)
	evs := usageEvents(start, 3000)
	a := snapshotOf("acme", evs[:2001]) // the newest 1000 events came after the snapshot
	served := 0
	l := reportLedger(a, evs, nil)
	events := l.EventsFunc
	l.EventsFunc = func(ctx context.Context, id, after string, limit int) (billing.EventPage, error) {
		p, err := events(ctx, id, after, limit)
		served += len(p.Events)
		return p, err
	}
	h := newTestServer(l, nil).Handler()
	var rep UsageReport
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rep.Total.Requests != 2000 {
		t.Fatalf("requests %d (%v), want the 2000 in the snapshot", rep.Total.Requests, err)
	}
	served = 0
	rec = call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage?to="+start.Format(time.DateOnly), "")
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rep.Total.Requests != 24 || served > reportPageSize {
		t.Fatalf("requests %d, %d events read (%v); want 24 from the first page", rep.Total.Requests, served, err)
	}
}

func TestReportQueryErrors(t *testing.T) {
	evs := usageEvents(testNow.Add(-time.Hour), 1)
	h := newTestServer(reportLedger(snapshotOf("acme", evs), evs, nil), nil).Handler()
	bad := func(param string) errorCase {
		return errorCase{http.StatusBadRequest, TypeInvalidRequest, CodeInvalidValue, param}
	}
	tests := []struct {
		target string
		want   errorCase
	}{
		{"/admin/v1/accounts/acme/usage?group_by=hour", bad("group_by")},
		{"/admin/v1/accounts/acme/usage?group_by=day,hour", bad("group_by")},
		{"/admin/v1/accounts/acme/usage?group_by=day,day", bad("group_by")},
		{"/admin/v1/accounts/acme/usage?group_by=day,", bad("group_by")},
		{"/admin/v1/accounts/acme/usage?group_by=", bad("group_by")},
		{"/admin/v1/accounts/acme/usage?from=yesterday", bad("from")},
		{"/admin/v1/accounts/acme/usage?to=2025-13-01", bad("to")},
		{"/admin/v1/accounts/acme/usage?from=2025-03-02&to=2025-03-01", bad("from")},
		{"/admin/v1/accounts/acme/usage?from=2025-03-01&from=2025-03-02", bad("from")},
		{"/admin/v1/accounts/acme/usage?format=csv", bad("format")},
		{"/admin/v1/accounts/acme/ledger/export?format=xml", bad("format")},
		{"/admin/v1/accounts/acme/ledger/export?group_by=day", bad("group_by")},
		{"/admin/v1/accounts/acme/audit?deep=1", bad("")},
		{"/admin/v1/accounts/nobody/usage", errorCase{http.StatusNotFound, TypeNotFound, CodeAccountNotFound, ""}},
		{"/admin/v1/accounts/nobody/ledger/export", errorCase{http.StatusNotFound, TypeNotFound, CodeAccountNotFound, ""}},
		{"/admin/v1/accounts/bad%7Bid/usage", bad("id")},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			checkError(t, call(t, h, http.MethodGet, tc.target, ""), tc.want)
		})
	}
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/usage", "", "Authorization", "<none>")
	checkError(t, rec, errorCase{http.StatusUnauthorized, TypeAuthentication, CodeInvalidAdminToken, ""})
}

func TestExportJSONLines(t *testing.T) {
	evs := usageEvents(testNow.Add(-2600*time.Hour), 2500) // three pages
	srv := httptest.NewServer(newTestServer(reportLedger(snapshotOf("acme", evs), evs, nil), nil).Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/accounts/acme/ledger/export", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/x-ndjson" || res.Header.Get("Content-Length") != "" ||
		res.Header.Get("Content-Disposition") != `attachment; filename="acme-ledger.jsonl"` {
		t.Fatalf("answer %d %v: want a streamed JSON Lines download", res.StatusCode, res.Header)
	}
	sc := bufio.NewScanner(res.Body)
	n := 0
	for sc.Scan() {
		var ev ExportedEvent
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if ev.ID != evs[n].ID || ev.Type != string(evs[n].Type) || money.Micros(ev.BalanceAfter) != evs[n].BalanceAfter {
			t.Fatalf("line %d: %+v, want event %+v", n+1, ev, evs[n])
		}
		if n == 0 && ev.Source != billing.SourcePurchase {
			t.Fatalf("the top-up line lacks its source: %s", sc.Text())
		}
		n++
	}
	if sc.Err() != nil || n != len(evs) {
		t.Fatalf("%d lines (%v), want %d", n, sc.Err(), len(evs))
	}
}

func TestExportCSVRange(t *testing.T) {
	evs := usageEvents(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 50)
	h := newTestServer(reportLedger(snapshotOf("acme", evs), evs, nil), nil).Handler()
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/ledger/export?format=csv&from=2025-01-01T10:00:00Z&to=2025-01-01T12:00:00Z", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("answer %d %v", rec.Code, rec.Header())
	}
	rows, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("rows %v: want the header and two events", rows)
	}
	want := []string{evs[11].ID, "usage", "2025-01-01T10:00:00Z", "0.001000", "9.989000", "9.989000", "0.000000", "", "", "req_10", "req_10", "key_a",
		"gpt-4o", "/v1/chat/completions", "10", "5", "2", "1", "upstream", "0.001000", "0.001000", "0.000000", "", "",
		"", "", "", "", "", ""} // no payment_ref; no unit prices recorded on these events
	if strings.Join(rows[1], ",") != strings.Join(want, ",") {
		t.Fatalf("row\n got %v\nwant %v", rows[1], want)
	}
}

// TestExportAbortsOnStoreFailure: a store failure after streaming began cuts the
// connection, so the client sees an error instead of a file that looks complete.
func TestExportAbortsOnStoreFailure(t *testing.T) {
	evs := usageEvents(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 2500)
	failAfter := 1000
	srv := httptest.NewServer(newTestServer(reportLedger(snapshotOf("acme", evs), evs, &failAfter), nil).Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/admin/v1/accounts/acme/ledger/export?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rows, err := csv.NewReader(res.Body).ReadAll()
	if err == nil {
		t.Fatalf("read %d rows without an error: a truncated export must not look complete", len(rows))
	}
}

func TestAuditEndpoint(t *testing.T) {
	evs := usageEvents(testNow.Add(-48*time.Hour), 5)
	good := snapshotOf("acme", evs)
	good.Grants = []billing.Grant{{ID: "g1", Amount: mu("10"), Remaining: good.Credit, ExpiresAt: testNow.Add(time.Hour), Source: billing.SourcePurchase}}
	good.Totals = billing.Totals{Granted: mu("10"), Usage: mu("0.005"), Consumed: mu("0.005")}
	h := newTestServer(reportLedger(good, evs, nil), nil).Handler()
	rec := call(t, h, http.MethodGet, "/admin/v1/accounts/acme/audit", "")
	checkJSON(t, rec, http.StatusOK, fmt.Sprintf(`{"object":"audit","account":"acme","ok":true,"events":6,"last_event_id":%q,"problems":[]}`, good.LastEventID))

	bad := good
	bad.Credit += mu("1") // stored credit no longer what the ledger explains
	bad.Grants = []billing.Grant{{ID: "g1", Amount: mu("10"), Remaining: bad.Credit, ExpiresAt: testNow.Add(time.Hour), Source: billing.SourcePurchase}}
	h = newTestServer(reportLedger(bad, evs, nil), nil).Handler()
	rec = call(t, h, http.MethodGet, "/admin/v1/accounts/acme/audit", "")
	var rep AuditReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rec.Code != 200 || rep.OK || len(rep.Problems) == 0 || rep.Problems[0].Check != "state" {
		t.Fatalf("tampered audit %d %+v %v", rec.Code, rep, err)
	}

	l := reportLedger(good, evs, nil)
	l.GetAccountFunc = func(context.Context, string) (billing.Account, error) {
		return billing.Account{}, fmt.Errorf("%w: timeout", billing.ErrUnavailable)
	}
	checkError(t, call(t, newTestServer(l, nil).Handler(), http.MethodGet, "/admin/v1/accounts/acme/audit", ""),
		errorCase{http.StatusServiceUnavailable, TypeUnavailable, CodeStoreUnavailable, ""})
}
