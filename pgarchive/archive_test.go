package pgarchive

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/money"
)

// Migrate applies every migration once, even with several migrators at once,
// and again applies nothing.
func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	url, schema := testpg.Schema(t)
	ctx := context.Background()
	a, err := Open(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = Migrate(ctx, a.Pool(), schema)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != LatestVersion() || LatestVersion() == 0 {
		t.Fatalf("migrators applied %d migrations in all, want %d", total, LatestVersion())
	}
	if again, err := a.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("migrate again: applied %v, %v", again, err)
	}
	if v, err := SchemaVersion(ctx, a.Pool(), schema); err != nil || v != LatestVersion() {
		t.Fatalf("schema version %d, %v; want %d", v, err, LatestVersion())
	}
	if err := ValidSchema("Robert'); DROP"); err == nil {
		t.Fatal("a schema name with quotes was accepted")
	}
}

// Append is idempotent: appending the same events again, or an overlapping
// batch, archives each once, moves the head only forward and counts each
// usage once in the rollup.
func TestAppendIdempotentAndRollup(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	day := time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC) // the events cross midnight
	evs := usageEvents(120, day, 1773183600000)
	steps := []struct {
		name     string
		batch    []billing.Event
		inserted int64
	}{
		{"first half", evs[:60], 60},
		{"the same again", evs[:60], 0},
		{"overlapping", evs[30:90], 30},
		{"an old part after a newer one", evs[:10], 0},
		{"the rest", evs[90:], 30},
	}
	for _, s := range steps {
		r, err := a.Append(ctx, "acct1", s.batch)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if r.Inserted != s.inserted {
			t.Fatalf("%s: inserted %d, want %d", s.name, r.Inserted, s.inserted)
		}
		wantHead := evs[89].ID
		if s.name == "first half" || s.name == "the same again" {
			wantHead = evs[59].ID
		}
		if s.name == "the rest" {
			wantHead = evs[119].ID
		}
		if r.Head != wantHead {
			t.Fatalf("%s: head %s, want %s", s.name, r.Head, wantHead)
		}
	}
	if got := allArchived(t, a, "acct1"); !reflect.DeepEqual(got, evs) {
		t.Fatalf("archived %d events, not the %d appended (in order)", len(got), len(evs))
	}
	rows, err := a.UsageByDay(ctx, "acct1", day, day.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var want [2]UsageRow
	for _, ev := range evs {
		i := 0
		if ev.At.Day() != day.Day() {
			i = 1
		}
		want[i].Requests++
		want[i].PromptTokens += ev.PromptTokens
		want[i].CompletionTokens += ev.CompletionTokens
		want[i].Cost += ev.Cost
	}
	if len(rows) != 2 {
		t.Fatalf("usage rows %+v, want two days", rows)
	}
	for i, r := range rows {
		w := want[i]
		w.Day, w.KeyID, w.Model = time.Date(2026, 3, 10+i, 0, 0, 0, 0, time.UTC), "key_a", "gpt-4o"
		if r != w {
			t.Fatalf("day %d: %+v, want %+v", i, r, w)
		}
	}
	if _, err := a.Append(ctx, "acct1", []billing.Event{evs[5], evs[4]}); !errors.Is(err, billing.ErrInvalid) {
		t.Fatalf("a batch out of order: %v, want ErrInvalid", err)
	}
}

// Pages both ways see every event once, in order, and Next says where the
// next page starts ("" at the end).
func TestArchivedPages(t *testing.T) {
	a := newArchive(t)
	ctx := context.Background()
	evs := usageEvents(25, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), 1772323200000)
	evs[3].Type, evs[3].Cost, evs[3].Amount = billing.EventTopUp, 0, money.Micros(5_000_000)
	evs[5].Model, evs[6].KeyID = "nul\x00model", "bad\xffutf8" // neither text nor jsonb holds these as they are
	if _, err := a.Append(ctx, "pages", evs); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, "other", evs[:3]); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 7, 25, 100} {
		var fwd []billing.Event
		after, pages := "", 0
		for {
			p, err := a.ArchivedEvents(ctx, "pages", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			fwd, pages = append(fwd, p.Events...), pages+1
			if p.Next == "" {
				break
			}
			after = p.Next
		}
		if !reflect.DeepEqual(fwd, evs) {
			t.Fatalf("limit %d: forward pages gave %d events, want the 25 in order", limit, len(fwd))
		}
		var back []billing.Event
		before := ""
		for {
			p, err := a.ArchivedEventsBefore(ctx, "pages", before, limit)
			if err != nil {
				t.Fatal(err)
			}
			back = append(back, p.Events...)
			if p.Next == "" {
				break
			}
			before = p.Next
		}
		if len(back) != len(evs) {
			t.Fatalf("limit %d: backward pages gave %d events", limit, len(back))
		}
		for i := range back {
			if !reflect.DeepEqual(back[i], evs[len(evs)-1-i]) {
				t.Fatalf("limit %d: backward event %d is %s, want %s", limit, i, back[i].ID, evs[len(evs)-1-i].ID)
			}
		}
	}
	p, err := a.ArchivedEventsBefore(ctx, "pages", evs[2].ID, 10)
	if err != nil || len(p.Events) != 2 || p.Next != "" || p.Events[0].ID != evs[1].ID {
		t.Fatalf("before the third: %+v, %v", p, err)
	}
	if head, err := a.ArchiveHead(ctx, "pages"); err != nil || head != evs[24].ID {
		t.Fatalf("head %q, %v; want %s", head, err, evs[24].ID)
	}
	if head, err := a.ArchiveHead(ctx, "nobody"); err != nil || head != "" {
		t.Fatalf("head of an account never shipped: %q, %v", head, err)
	}
	if _, err := a.ArchivedEvents(ctx, "pages", "not-an-id", 10); !errors.Is(err, billing.ErrInvalid) {
		t.Fatalf("a malformed cursor: %v, want ErrInvalid", err)
	}
	heads, err := a.Heads(ctx)
	if err != nil || len(heads) != 2 || heads["other"] != evs[2].ID {
		t.Fatalf("heads %v, %v", heads, err)
	}
}
