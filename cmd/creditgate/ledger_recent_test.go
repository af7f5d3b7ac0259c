package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/admin"
	"github.com/creditgate/creditgate/money"
)

// ids returns the first column of a ledger table, header left out.
func ids(t *testing.T, table string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("not a ledger table:\n%s", table)
	}
	var out []string
	for _, l := range lines[1:] {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

// ledger --recent shows the newest events first, says how to reach older ones,
// pages with --before, and with --all is the whole ledger reversed.
func TestLedgerRecentCommand(t *testing.T) {
	isolateEnv(t)
	flags := []string{"--admin-url", startReportsAdmin(t), "--admin-token", testToken}
	run := func(args ...string) (string, string) {
		t.Helper()
		out, stderr, err := runReportsCLI(t, append(args, flags...)...)
		if err != nil {
			t.Fatalf("%v: %v (stderr %q)", args, err, stderr)
		}
		return out, stderr
	}
	forward, _ := run("ledger", "acme", "--all")
	all := ids(t, forward)
	if len(all) != 4 { // the top-up and three requests
		t.Fatalf("ledger --all: %v", all)
	}
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)

	out, stderr := run("ledger", "acme", "--recent", "--limit", "2")
	if got := ids(t, out); !slices.Equal(got, newestFirst[:2]) {
		t.Errorf("--recent --limit 2: %v, want %v", got, newestFirst[:2])
	}
	if !strings.Contains(stderr, "--recent --before "+newestFirst[1]) {
		t.Errorf("stderr %q does not say how to get older events", stderr)
	}
	out, stderr = run("ledger", "acme", "--recent", "--limit", "2", "--before", newestFirst[1])
	if got := ids(t, out); !slices.Equal(got, newestFirst[2:]) || stderr != "" {
		t.Errorf("--before %s: %v (stderr %q), want %v and nothing more to fetch", newestFirst[1], got, stderr, newestFirst[2:])
	}
	out, _ = run("ledger", "acme", "--recent", "--limit", "1", "--all")
	if got := ids(t, out); !slices.Equal(got, newestFirst) {
		t.Errorf("--recent --all: %v, want %v", got, newestFirst)
	}
	// The newest event is a usage event, with its details.
	if first := strings.Split(out, "\n")[1]; !strings.Contains(first, "usage") || !strings.Contains(first, "cost=") {
		t.Errorf("newest row %q", first)
	}
	out, _ = run("ledger", "acme", "--recent", "-o", "json")
	var list admin.EventList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Data) != 4 || list.Data[0].ID != newestFirst[0] || list.HasMore {
		t.Errorf("--recent -o json: %v %+v", err, list)
	}

	for _, bad := range [][]string{
		{"ledger", "acme", "--recent", "--after", all[0]},
		{"ledger", "acme", "--before", all[1]},
		{"ledger", "nobody", "--recent"},
	} {
		if _, _, err := runReportsCLI(t, append(bad, flags...)...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}

// The ledger table shows a usage event's unit prices (input/cached/output, USD
// per 1M tokens).
func TestEventDetailsShowPrices(t *testing.T) {
	cost := money.Micros(25)
	ev := admin.Event{Type: "usage", Model: "gpt-4o", Cost: &cost,
		Prices: &admin.UnitPrices{Input: 2_500_000, CachedInput: 1_250_000, Output: 10_000_000}}
	if got := eventDetails(ev); !strings.Contains(got, "prices=2.50/1.25/10.00") {
		t.Errorf("details %q lack the prices", got)
	}
}
