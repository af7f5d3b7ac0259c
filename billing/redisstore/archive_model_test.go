package redisstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/billing/billingtest"
)

// archiveModel is one account's ledger on the real store, an in-memory
// archive a shipper copies it into, and billing.ArchivedLedger reading both;
// booked lists every event id the account ever had, in order.
type archiveModel struct {
	e      *env
	id     string
	arch   *billingtest.Archive
	reads  billing.Ledger
	booked []string
	// marked is the shipper's own progress (what it believes shipped): a
	// crash after copying but before marking ships the same events again.
	marked string
	holds  int
	seen   *seamShapes
}

// seamShapes counts the shapes the checks met, so the test can insist it
// exercised the seam: a trimmed store, and a store still holding archived events.
type seamShapes struct{ trimmed, overlap int }

// sync appends what the store booked since the model last looked.
func (m *archiveModel) sync(t *rapid.T) {
	after := ""
	if n := len(m.booked); n > 0 {
		after = m.booked[n-1] // the store always keeps its newest event
	}
	for {
		p, err := m.e.Events(m.e.ctx, m.id, after, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			m.booked = append(m.booked, ev.ID)
		}
		if p.Next == "" {
			return
		}
		after = p.Next
	}
}

func (m *archiveModel) request(t *rapid.T, release bool) {
	m.holds++
	hold := fmt.Sprintf("h%d", m.holds)
	m.e.clock.Advance(time.Second)
	if _, err := m.e.Reserve(m.e.ctx, billing.ReserveRequest{Account: m.id, HoldID: hold, Estimate: usd("0.10"), Grace: testPolicy.Grace, TTL: testPolicy.HoldTTL}); err != nil {
		t.Fatal(err)
	}
	var err error
	if release {
		_, err = m.e.Release(m.e.ctx, m.id, hold, billing.Usage{})
	} else {
		_, err = m.e.Settle(m.e.ctx, billing.SettleRequest{Account: m.id, HoldID: hold, Cost: usd("0.03")})
	}
	if err != nil {
		t.Fatal(err)
	}
	m.sync(t)
}

// ship copies up to n events after the shipper's mark from the store into the
// archive; crash stops after copying k of them, before the mark moves.
func (m *archiveModel) ship(t *rapid.T, n int, crash bool) {
	p, err := m.e.Events(m.e.ctx, m.id, m.marked, n)
	if err != nil {
		t.Fatal(err)
	}
	batch := p.Events
	if crash {
		k := rapid.IntRange(0, len(batch)).Draw(t, "copied before the crash")
		m.arch.Append(m.id, batch[:k]...)
		return
	}
	m.arch.Append(m.id, batch...)
	if len(batch) > 0 {
		m.marked = batch[len(batch)-1].ID
	}
}

// trim trims the store up to the archive's head, as the shipper's trimmer does.
func (m *archiveModel) trim(t *rapid.T) {
	head, err := m.arch.ArchiveHead(m.e.ctx, m.id)
	if err != nil {
		t.Fatal(err)
	}
	if head == "" {
		return
	}
	if _, err := m.e.TrimLedger(m.e.ctx, m.id, head, m.e.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// check pages the composite both ways with a drawn page size, from the start
// and from a drawn cursor, against booked, and audits it.
func (m *archiveModel) check(t *rapid.T) {
	limit := rapid.IntRange(1, 8).Draw(t, "page size")
	var forward []string
	for after := ""; ; {
		p, err := m.reads.Events(m.e.ctx, m.id, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) > limit || (p.Next != "" && (len(p.Events) == 0 || p.Next != p.Events[len(p.Events)-1].ID)) {
			t.Fatalf("forward page after %q: %d events, next %q", after, len(p.Events), p.Next)
		}
		for _, ev := range p.Events {
			forward = append(forward, ev.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if !slices.Equal(forward, m.booked) {
		t.Fatalf("forward pages of %d: %v\nwant %v", limit, forward, m.booked)
	}
	var backward []string
	for before := ""; ; {
		p, err := m.reads.EventsBefore(m.e.ctx, m.id, before, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) > limit || (p.Next != "" && (len(p.Events) == 0 || p.Next != p.Events[len(p.Events)-1].ID)) {
			t.Fatalf("newest-first page before %q: %d events, next %q", before, len(p.Events), p.Next)
		}
		for _, ev := range p.Events {
			backward = append(backward, ev.ID)
		}
		if p.Next == "" {
			break
		}
		before = p.Next
	}
	slices.Reverse(backward)
	if !slices.Equal(backward, m.booked) {
		t.Fatalf("newest-first pages of %d, reversed: %v\nwant %v", limit, backward, m.booked)
	}
	// One page from a cursor in the middle, each way, exactly as the whole
	// ledger would answer it.
	whole := billingtest.EventLog{}
	for _, id := range m.booked {
		whole = append(whole, billing.Event{ID: id})
	}
	cur := m.booked[rapid.IntRange(0, len(m.booked)-1).Draw(t, "cursor")]
	for _, dir := range []string{"after", "before"} {
		var got, want billing.EventPage
		var err error
		if dir == "after" {
			got, err = m.reads.Events(m.e.ctx, m.id, cur, limit)
			want, _ = whole.Events(cur, limit)
		} else {
			got, err = m.reads.EventsBefore(m.e.ctx, m.id, cur, limit)
			want, _ = whole.EventsBefore(cur, limit)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got.Events), ids(want.Events)) || got.Next != want.Next {
			t.Fatalf("page %s %s of %d: %v next %q; want %v next %q", dir, cur, limit, ids(got.Events), got.Next, ids(want.Events), want.Next)
		}
	}
	a, err := m.e.GetAccount(m.e.ctx, m.id)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := m.arch.ArchiveHead(m.e.ctx, m.id)
	oldest, err := m.e.Events(m.e.ctx, m.id, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Checkpoint != nil {
		m.seen.trimmed++
	}
	if head != "" && billing.CompareEventIDs(oldest.Events[0].ID, head) < 0 {
		m.seen.overlap++
	}
	r, err := billing.AuditAccount(m.e.ctx, m.reads, m.id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("audit over archive and tail: %+v", r.Problems)
	}
	// The archive holds every event trimmed, so the audit starts at the first
	// event, never at a checkpoint.
	if r.Checkpoint != "" || r.Events != len(m.booked) {
		t.Fatalf("audit replayed %d events from checkpoint %q; want all %d from the first", r.Events, r.Checkpoint, len(m.booked))
	}
}

// Any interleaving of appends, ships, crashed ships and trims leaves the
// composite's pages, both ways and at any page size, returning each event
// exactly once and in order, and the audit passing over archive and tail from
// the first event.
func TestArchivedLedgerModel(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		n := 0
		seen := &seamShapes{}
		rapid.Check(t, func(rt *rapid.T) {
			n++
			m := &archiveModel{e: e, id: fmt.Sprintf("am%d", n), arch: billingtest.NewArchive(), seen: seen}
			m.reads = billing.NewArchivedLedger(e.Store, m.arch)
			if _, err := e.CreateAccount(e.ctx, m.id, "tier-1"); err != nil {
				rt.Fatal(err)
			}
			if _, err := e.TopUp(e.ctx, testPolicy, billing.TopUpRequest{Account: m.id, GrantID: "g_" + m.id, Amount: usd("50.00")}); err != nil {
				rt.Fatal(err)
			}
			m.sync(rt)
			rt.Repeat(map[string]func(*rapid.T){
				"settle":  func(t *rapid.T) { m.request(t, false) },
				"release": func(t *rapid.T) { m.request(t, true) },
				"ship":    func(t *rapid.T) { m.ship(t, rapid.IntRange(1, 6).Draw(t, "batch"), false) },
				"crash":   func(t *rapid.T) { m.ship(t, rapid.IntRange(1, 6).Draw(t, "batch"), true) },
				"trim":    m.trim,
				"":        m.check,
			})
		})
		if seen.trimmed == 0 || seen.overlap == 0 {
			t.Errorf("the runs never met a trimmed store (%d checks) or an overlap (%d checks)", seen.trimmed, seen.overlap)
		}
		t.Logf("checks over a trimmed store: %d, with an overlap: %d", seen.trimmed, seen.overlap)
	})
}
