package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/internal/mockupstream"
	"github.com/creditgate/creditgate/money"
)

// With an archive (Options.Archive), the admin API's ledger pages, newest-first
// pages, export and audit read the archive and the store's tail: after the
// store was trimmed up to the archive's head, every event is still served once,
// and the audit replays from the first event.
func TestReadersUseTheArchive(t *testing.T) {
	up := httptest.NewServer(mockupstream.New())
	t.Cleanup(up.Close)
	cfg, err := config.LoadBytes([]byte(fmt.Sprintf(`
listen: "127.0.0.1:0"
admin: { listen: "127.0.0.1:0", tokens: [%q] }
upstream: { base_url: %q }
redis: { url: "memory://" }
`, adminToken, up.URL+"/v1")), nil)
	if err != nil {
		t.Fatal(err)
	}
	arch := billingtest.NewArchive()
	a := serveApp(t, cfg, Options{Logger: zap.NewNop(), Archive: arch})

	ctx := context.Background()
	store := a.Store()
	makeAccount(t, store, "acme", "10.00")
	for i := range 6 {
		hold := fmt.Sprintf("h%d", i)
		if _, err := store.Reserve(ctx, billing.ReserveRequest{Account: "acme", HoldID: hold, Estimate: money.MustParse("0.10"), TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Settle(ctx, billing.SettleRequest{Account: "acme", HoldID: hold, Cost: money.MustParse("0.01")}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := store.Events(ctx, "acme", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	all := page.Events // a top-up and six usages
	arch.Append("acme", all...)
	if r, err := store.TrimLedger(ctx, "acme", all[len(all)-1].ID, time.Now().Add(time.Hour)); err != nil || r.Removed != int64(len(all)-1) {
		t.Fatalf("trim: %+v, %v; want all but the newest removed", r, err)
	}
	var want []string
	for _, ev := range all {
		want = append(want, ev.ID)
	}

	base := "http://" + a.AdminAddr().String() + "/admin/v1/accounts/acme/"
	get := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		if lines, ok := out.(*[]string); ok {
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				var ev admin.ExportedEvent
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatal(err)
				}
				*lines = append(*lines, ev.ID)
			}
			return
		}
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}

	var forward []string
	for cursor := ""; ; {
		var list admin.EventList
		get("ledger?limit=2&after="+cursor, &list)
		for _, ev := range list.Data {
			forward = append(forward, ev.ID)
		}
		if list.Next == "" {
			break
		}
		cursor = list.Next
	}
	if !slices.Equal(forward, want) {
		t.Errorf("ledger pages: %v, want %v", forward, want)
	}

	var backward []string
	for cursor := ""; ; {
		var list admin.EventList
		q := "ledger/recent?limit=3"
		if cursor != "" {
			q += "&before=" + cursor
		}
		get(q, &list)
		for _, ev := range list.Data {
			backward = append(backward, ev.ID)
		}
		if list.Next == "" {
			break
		}
		cursor = list.Next
	}
	slices.Reverse(backward)
	if !slices.Equal(backward, want) {
		t.Errorf("newest-first pages, reversed: %v, want %v", backward, want)
	}

	var exported []string
	get("ledger/export", &exported)
	if !slices.Equal(exported, want) {
		t.Errorf("export: %v, want %v", exported, want)
	}

	var rep admin.AuditReport
	get("audit", &rep)
	if !rep.OK || rep.Events != len(all) {
		t.Errorf("audit: %+v; want ok over all %d events (from the first, not the checkpoint)", rep, len(all))
	}
}
