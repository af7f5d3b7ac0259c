package client

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/redisstore"
	"github.com/creditgate/creditgate/internal/testing/testredis"
	"github.com/creditgate/creditgate/money"
)

// reportsEnv is the admin API over HTTP on a real Redis ledger, with some usage.
func reportsEnv(t *testing.T) (*Client, *redisstore.Store, *testredis.Store) {
	t.Helper()
	r := testredis.New(t)
	store, err := redisstore.New(r.Client, redisstore.Options{Prefix: r.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&admin.Server{Ledger: store, Keys: store, Policy: testPolicy,
		Tokens: func() []string { return []string{testToken} }}).Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if _, err := store.CreateAccount(ctx, "acme", "tier-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TopUp(ctx, testPolicy(), billing.TopUpRequest{Account: "acme", GrantID: "g1", Amount: money.MustParse("20"), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i, model := range []string{"gpt-4o-mini", "gpt-4o", "gpt-4o-mini"} {
		hold := fmt.Sprintf("req_%d", i)
		if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: money.MustParse("1"), TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: money.MustParse("0.25"),
			Usage: billing.Usage{RequestID: hold, KeyID: "key_1", Model: model, PromptTokens: 100, CompletionTokens: 20, TokenSource: billing.TokenSourceUpstream}}); err != nil {
			t.Fatal(err)
		}
	}
	return &Client{BaseURL: srv.URL, Token: testToken}, store, r
}

func TestUsageAndAuditAgainstRedis(t *testing.T) {
	c, _, r := reportsEnv(t)
	ctx := context.Background()
	rep, err := c.Usage(ctx, "acme", UsageQuery{GroupBy: admin.GroupByModel})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Data) != 2 || rep.Data[0].Group != "gpt-4o" || rep.Data[1].Requests != 2 || rep.Total.Cost != money.MustParse("0.75") || rep.Total.PromptTokens != 300 {
		t.Fatalf("usage %+v", rep)
	}
	if _, err := c.Usage(ctx, "acme", UsageQuery{GroupBy: "week"}); !isAPIError(err, http.StatusBadRequest, "group_by") {
		t.Fatalf("bad group_by: %v", err)
	}
	au, err := c.Audit(ctx, "acme")
	if err != nil || !au.OK || au.Events != 4 {
		t.Fatalf("audit %+v %v", au, err)
	}
	r.Client.HSet(ctx, r.Prefix+"{acct:acme}:acct", "debt", "1") // tamper behind the scripts' back
	au, err = c.Audit(ctx, "acme")
	if err != nil || au.OK || au.Problems[0].Check != "state" {
		t.Fatalf("tampered audit %+v %v", au, err)
	}
	if _, err := c.Audit(ctx, "nobody"); !isAPIError(err, http.StatusNotFound, "") {
		t.Fatalf("audit of a missing account: %v", err)
	}

}

func TestExportLedgerStreams(t *testing.T) {
	c, _, _ := reportsEnv(t)
	ctx := context.Background()
	var jsonl bytes.Buffer
	n, err := c.ExportLedger(ctx, "acme", ExportQuery{}, &jsonl)
	if err != nil || n != int64(jsonl.Len()) || strings.Count(jsonl.String(), "\n") != 4 || !strings.Contains(jsonl.String(), `"source":"purchase"`) {
		t.Fatalf("jsonl export (%d bytes, %v):\n%s", n, err, jsonl.String())
	}
	var csvOut bytes.Buffer
	if _, err := c.ExportLedger(ctx, "acme", ExportQuery{Format: admin.FormatCSV, From: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, &csvOut); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 5 || rows[0][0] != "id" || rows[2][1] != "usage" || rows[2][12] != "gpt-4o-mini" {
		t.Fatalf("csv export %v %v", rows, err)
	}
	if _, err := c.ExportLedger(ctx, "acme", ExportQuery{Format: "xml"}, &bytes.Buffer{}); !isAPIError(err, http.StatusBadRequest, "format") {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := c.ExportLedger(ctx, "..", ExportQuery{}, &bytes.Buffer{}); err == nil {
		t.Fatal("a dot-segment account id was sent")
	}
}

// TestExportLedgerTruncated: the server cuts an export it cannot finish; the
// client reports it instead of returning a short file as complete.
func TestExportLedgerTruncated(t *testing.T) {
	var events []billing.Event
	for i := 0; i < 2500; i++ {
		events = append(events, billing.Event{ID: fmt.Sprintf("%d-0", 1000+i), Type: billing.EventRelease, At: testNow.Add(-time.Hour)})
	}
	l := &fakeLedger{
		GetAccountFunc: func(context.Context, string) (billing.Account, error) {
			return billing.Account{ID: "acme", LastEventID: events[len(events)-1].ID}, nil
		},
		EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
			if after != "" {
				return billing.EventPage{}, fmt.Errorf("%w: gone", billing.ErrUnavailable)
			}
			return billing.EventPage{Events: events[:limit], Next: events[limit-1].ID}, nil
		},
	}
	c, _ := newServer(t, l, nil)
	var out bytes.Buffer
	n, err := c.ExportLedger(context.Background(), "acme", ExportQuery{}, &out)
	if err == nil || n == 0 || !strings.Contains(err.Error(), "stopped after") {
		t.Fatalf("truncated export: %d bytes, err %v", n, err)
	}
}

func isAPIError(err error, status int, param string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status && e.Param == param
}
