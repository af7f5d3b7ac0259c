package pgarchive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// failingTrims is the store with TrimLedger failing for one account.
type failingTrims struct {
	*crashingSource
	account string
}

func (f failingTrims) TrimLedger(ctx context.Context, account, upTo string, before time.Time) (billing.TrimResult, error) {
	if account == f.account {
		return billing.TrimResult{}, errCrash
	}
	return f.crashingSource.Store.TrimLedger(ctx, account, upTo, before)
}

// Without an archive the trimmer bounds every account's ledger to the
// retention (its newest event always stays), the audit still passes from the
// checkpoints, a failing account does not stop the round, and a round again
// removes nothing more.
func TestTrimmerWithoutArchive(t *testing.T) {
	e := newShipEnv(t)
	const retention = 2 * time.Minute
	for _, id := range []string{"n1", "n2", "n3"} {
		e.book(t, id, 200) // 200 s each, one after another
	}
	tr := NewTrimmer(failingTrims{&crashingSource{Store: e.store}, "n2"}, TrimmerOptions{Retention: retention, Now: e.clock.Now})
	removed, err := tr.Round(e.ctx)
	if !errors.Is(err, errCrash) {
		t.Fatalf("round with n2 failing: %v", err)
	}
	cutoff := e.clock.Now().Add(-retention)
	for _, c := range []struct {
		id      string
		trimmed bool
	}{{"n1", true}, {"n2", false}, {"n3", true}} {
		evs := e.storeEvents(t, c.id)
		old := 0
		for _, ev := range evs[:len(evs)-1] {
			if ev.At.Before(cutoff) {
				old++
			}
		}
		if c.trimmed != (old == 0) {
			t.Fatalf("%s: %d events older than the retention left (of %d)", c.id, old, len(evs))
		}
		r, err := billing.AuditAccount(e.ctx, e.store, c.id)
		if err != nil || !r.OK() {
			t.Fatalf("%s: audit %+v, %v", c.id, r, err)
		}
	}
	if removed == 0 {
		t.Fatal("the round removed nothing")
	}
	again, err := NewTrimmer(e.store, TrimmerOptions{Retention: retention, Now: e.clock.Now}).Round(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n2 := len(e.storeEvents(t, "n2")); again == 0 || n2 > int(retention/time.Second)+2 {
		t.Fatalf("the second round removed %d; n2 keeps %d events", again, n2)
	}
	if third, err := NewTrimmer(e.store, TrimmerOptions{Retention: retention, Now: e.clock.Now}).Round(e.ctx); err != nil || third != 0 {
		t.Fatalf("a third round removed %d, %v; want nothing", third, err)
	}
}
