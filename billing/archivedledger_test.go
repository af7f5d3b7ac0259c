package billing_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
)

// history is n usage events with ids 1000-0, 1000-1, 1001-0, … (two per
// millisecond, so cursors between milliseconds and between sequence numbers
// both occur).
func history(n int) billingtest.EventLog {
	var evs billingtest.EventLog
	for i := range n {
		evs = append(evs, billing.Event{ID: fmt.Sprintf("%d-%d", 1000+i/2, i%2), Type: billing.EventUsage,
			At: time.UnixMilli(int64(1000 + i/2)).UTC(), HoldID: fmt.Sprintf("h%d", i)})
	}
	return evs
}

// storeOf is a fake store whose ledger is log (the events Redis still keeps).
func storeOf(log *billingtest.EventLog) *billingtest.Ledger {
	return &billingtest.Ledger{
		EventsFunc: func(_ context.Context, _, after string, limit int) (billing.EventPage, error) {
			return log.Events(after, limit)
		},
		EventsBeforeFunc: func(_ context.Context, _, before string, limit int) (billing.EventPage, error) {
			return log.EventsBefore(before, limit)
		},
	}
}

func pageIDs(p billing.EventPage) string {
	s := ""
	for _, ev := range p.Events {
		s += ev.ID + " "
	}
	return s + "next=" + p.Next
}

// cursors are every event id of all, the cursors between and around them,
// and "" (the start).
func cursors(all billingtest.EventLog) []string {
	out := []string{"", "0-0", "999-5", "1000-7", "99999-0"}
	for _, ev := range all {
		out = append(out, ev.ID)
	}
	return out
}

// The composite pages like one store holding the whole ledger: every cursor,
// every limit, both directions, whichever part of the ledger the archive holds
// and whichever part the store still keeps.
func TestArchivedLedgerPagesLikeOneStore(t *testing.T) {
	const n = 9
	all := history(n)
	cases := []struct {
		name string
		// archived is how many of the first events the archive holds; kept
		// is the first event the store still keeps (it always keeps the
		// newest).
		archived, kept int
	}{
		{"archive empty", 0, 0},
		{"archive empty, store trimmed without it", 0, 4},
		{"archive has everything, store too", n, 0},
		{"archive has everything, store keeps the newest", n, n - 1},
		{"overlap in the middle", 5, 2},
		{"store trimmed up to the archive's head", 5, 5},
		{"one archived, none trimmed", 1, 0},
		{"all but the newest archived and trimmed", n - 1, n - 1},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			arch := billingtest.NewArchive()
			arch.Append("acme", all[:c.archived]...)
			tail := append(billingtest.EventLog(nil), all[c.kept:]...)
			l := billing.NewArchivedLedger(storeOf(&tail), arch)
			// A store trimmed without an archive has lost its oldest events:
			// the reference is what is left.
			ref := all
			if c.archived < c.kept {
				ref = all[c.kept:]
			}
			for limit := 1; limit <= n+1; limit++ {
				for _, cur := range cursors(all) {
					got, err := l.Events(ctx, "acme", cur, limit)
					if err != nil {
						t.Fatal(err)
					}
					want, _ := ref.Events(cur, limit)
					if pageIDs(got) != pageIDs(want) {
						t.Fatalf("Events(%q, %d) = %s; want %s", cur, limit, pageIDs(got), pageIDs(want))
					}
					got, err = l.EventsBefore(ctx, "acme", cur, limit)
					if err != nil {
						t.Fatal(err)
					}
					want, _ = ref.EventsBefore(cur, limit)
					if pageIDs(got) != pageIDs(want) {
						t.Fatalf("EventsBefore(%q, %d) = %s; want %s", cur, limit, pageIDs(got), pageIDs(want))
					}
				}
			}
		})
	}
}

// movingArchive is an archive whose head moves while a read is under way:
// the first onHead calls to ArchiveHead run onHead after answering (a shipper
// and a trimmer that ran in between).
type movingArchive struct {
	*billingtest.Archive
	onHead []func()
}

func (m *movingArchive) ArchiveHead(ctx context.Context, account string) (string, error) {
	h, err := m.Archive.ArchiveHead(ctx, account)
	if len(m.onHead) > 0 {
		f := m.onHead[0]
		m.onHead = m.onHead[1:]
		f()
	}
	return h, err
}

// A ship and a trim between reading the archive's head and reading the store
// (which would have skipped the events trimmed) do not lose a page's events:
// the read starts again at the new head.
func TestArchivedLedgerSeamMovesDuringRead(t *testing.T) {
	all := history(8)
	ctx := context.Background()
	for _, dir := range []string{"forward", "newest first"} {
		t.Run(dir, func(t *testing.T) {
			arch := &movingArchive{Archive: billingtest.NewArchive()}
			arch.Append("acme", all[:2]...)
			tail := append(billingtest.EventLog(nil), all...)
			shipAndTrim := func(upTo int) func() {
				return func() {
					arch.Append("acme", all[:upTo]...)
					tail = append(billingtest.EventLog(nil), all[upTo:]...)
				}
			}
			arch.onHead = []func(){shipAndTrim(4), func() {}, shipAndTrim(6)}
			l := billing.NewArchivedLedger(storeOf(&tail), arch)
			var got billing.EventPage
			var err error
			if dir == "forward" {
				got, err = l.Events(ctx, "acme", all[2].ID, 10)
			} else {
				got, err = l.EventsBefore(ctx, "acme", "", 10)
			}
			if err != nil {
				t.Fatal(err)
			}
			var want billing.EventPage
			if dir == "forward" {
				want, _ = all.Events(all[2].ID, 10)
			} else {
				want, _ = all.EventsBefore("", 10)
			}
			if pageIDs(got) != pageIDs(want) {
				t.Fatalf("got %s; want %s", pageIDs(got), pageIDs(want))
			}
		})
	}
}

// An archive whose head never stops moving, and an archive that is down, fail
// the read as unavailable rather than answer a page with a hole.
func TestArchivedLedgerReadFailures(t *testing.T) {
	all := history(40) // more than the reads' attempts can ship
	ctx := context.Background()
	tail := append(billingtest.EventLog(nil), all...)
	arch := &movingArchive{Archive: billingtest.NewArchive()}
	i := 0
	for range 100 {
		arch.onHead = append(arch.onHead, func() {
			i = min(i+1, len(all))
			arch.Append("acme", all[:i]...)
		})
	}
	l := billing.NewArchivedLedger(storeOf(&tail), arch)
	if _, err := l.Events(ctx, "acme", "", 35); !errors.Is(err, billing.ErrUnavailable) {
		t.Errorf("forward read while the head keeps moving: %v, want ErrUnavailable", err)
	}

	down := billingtest.NewArchive()
	down.Err = fmt.Errorf("%w: archive down", billing.ErrUnavailable)
	l = billing.NewArchivedLedger(storeOf(&tail), down)
	if _, err := l.Events(ctx, "acme", "", 35); !errors.Is(err, billing.ErrUnavailable) {
		t.Errorf("archive down, forward: %v", err)
	}
	if _, err := l.EventsBefore(ctx, "acme", "", 10); !errors.Is(err, billing.ErrUnavailable) {
		t.Errorf("archive down, newest first: %v", err)
	}
	for _, bad := range []string{"x", "1-", "-1", "1-2-3", "1-a"} {
		if _, err := l.Events(ctx, "acme", bad, 10); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("Events(%q): %v, want ErrInvalid", bad, err)
		}
		if _, err := l.EventsBefore(ctx, "acme", bad, 10); !errors.Is(err, billing.ErrInvalid) {
			t.Errorf("EventsBefore(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if got := billing.NewArchivedLedger(storeOf(&tail), nil); got == nil {
		t.Error("no archive: want the store itself")
	} else if _, ok := got.(*billing.ArchivedLedger); ok {
		t.Error("no archive: got a composite, want the store itself")
	}
}

// holdFinder adds ArchivedHoldFinder to an archive, counting its calls.
type holdFinder struct {
	*billingtest.Archive
	calls int
}

func (h *holdFinder) ArchivedHoldEvents(_ context.Context, account, holdID string) ([]billing.Event, error) {
	h.calls++
	var out []billing.Event
	for _, ev := range h.Log(account) {
		if ev.HoldID == holdID {
			out = append(out, ev)
		}
	}
	return out, nil
}

// HoldOutcome: the store's answer stands unless it is HoldTrimmed; then an
// archive holding every trimmed event tells how the hold ended, by a scan or
// by its ArchivedHoldFinder.
func TestArchivedLedgerHoldOutcome(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id string, typ billing.EventType, hold string, at time.Duration) billing.Event {
		return billing.Event{ID: id, Type: typ, HoldID: hold, At: t0.Add(at)}
	}
	archived := []billing.Event{
		ev("1-0", billing.EventUsage, "settled", 0),
		ev("2-0", billing.EventRelease, "released", time.Minute),
		ev("3-0", billing.EventHoldExpired, "expired", 2*time.Minute),
		ev("4-0", billing.EventHoldExpired, "late", 3*time.Minute),
		ev("5-0", billing.EventUsage, "late", 4*time.Minute),
		ev("6-0", billing.EventUsage, "other", 5*time.Minute),
	}
	cases := []struct {
		name       string
		store      billing.HoldState
		checkpoint string // "" none
		hold       string
		since      time.Duration
		want       billing.HoldOutcome
	}{
		{"the store knows", billing.HoldSettled, "6-0", "released", 0, billing.HoldOutcome{State: billing.HoldSettled, EventID: "x"}},
		{"settled, in the archive", billing.HoldTrimmed, "6-0", "settled", 0, billing.HoldOutcome{State: billing.HoldSettled, EventID: "1-0"}},
		{"released, in the archive", billing.HoldTrimmed, "6-0", "released", 0, billing.HoldOutcome{State: billing.HoldReleased, EventID: "2-0"}},
		{"expired, in the archive", billing.HoldTrimmed, "4-0", "expired", 0, billing.HoldOutcome{State: billing.HoldExpired, EventID: "3-0"}},
		{"expired then settled late", billing.HoldTrimmed, "6-0", "late", 0, billing.HoldOutcome{State: billing.HoldSettled, EventID: "5-0"}},
		{"never booked", billing.HoldTrimmed, "6-0", "nobody", 0, billing.HoldOutcome{}},
		{"never booked, searched since", billing.HoldTrimmed, "6-0", "nobody", 3 * time.Minute, billing.HoldOutcome{}},
		{"the archive is behind the trim", billing.HoldTrimmed, "7-0", "settled", 0, billing.HoldOutcome{State: billing.HoldTrimmed}},
	}
	ctx := context.Background()
	for _, c := range cases {
		for _, finder := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/finder=%v", c.name, finder), func(t *testing.T) {
				store := &billingtest.Ledger{
					HoldOutcomeFunc: func(context.Context, string, string, time.Time) (billing.HoldOutcome, error) {
						o := billing.HoldOutcome{State: c.store}
						if c.store == billing.HoldSettled {
							o.EventID = "x"
						}
						return o, nil
					},
					GetAccountFunc: func(context.Context, string) (billing.Account, error) {
						return billing.Account{ID: "acme", Checkpoint: &billing.Checkpoint{EventID: c.checkpoint}}, nil
					},
				}
				arch := &holdFinder{Archive: billingtest.NewArchive()}
				arch.Append("acme", archived...)
				var ea billing.EventArchive = arch.Archive
				if finder {
					ea = arch
				}
				since := time.Time{}
				if c.since > 0 {
					since = t0.Add(c.since)
				}
				got, err := billing.NewArchivedLedger(store, ea).HoldOutcome(ctx, "acme", c.hold, since)
				if err != nil || got != c.want {
					t.Fatalf("HoldOutcome(%s) = %+v, %v; want %+v", c.hold, got, err, c.want)
				}
				if finder && c.store == billing.HoldTrimmed && c.checkpoint != "7-0" && arch.calls != 1 {
					t.Errorf("the archive's hold finder was called %d times, want once", arch.calls)
				}
			})
		}
	}
}
