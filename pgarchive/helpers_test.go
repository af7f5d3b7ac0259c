package pgarchive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/money"
)

// tb is what the helpers need of a test: *testing.T, or a rapid.T inside a
// property.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// newArchive opens a migrated archive in a schema of t's own (dropped after).
func newArchive(t testing.TB) *Archive {
	t.Helper()
	url, schema := testpg.Schema(t)
	return openArchive(t, url, schema)
}

func openArchive(t testing.TB, url, schema string) *Archive {
	t.Helper()
	ctx := context.Background()
	a, err := Open(ctx, url, schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// usageEvents are n usage events of key k and model m, a minute apart from
// start, with stream ids from startMS.
func usageEvents(n int, start time.Time, startMS int64) []billing.Event {
	evs := make([]billing.Event, n)
	for i := range evs {
		evs[i] = billing.Event{
			ID: fmt.Sprintf("%d-%d", startMS+int64(i/2), i%2), Type: billing.EventUsage,
			At: start.Add(time.Duration(i) * time.Minute).UTC(), Amount: money.Micros(1000 + i), Cost: money.Micros(1000 + i),
			KeyID: "key_a", Model: "gpt-4o", Endpoint: "/v1/chat/completions", HoldID: fmt.Sprintf("h%d", i),
			PromptTokens: 10, CompletionTokens: int64(i),
		}
	}
	return evs
}

func allArchived(t tb, a *Archive, account string) []billing.Event {
	t.Helper()
	var out []billing.Event
	after := ""
	for {
		p, err := a.ArchivedEvents(context.Background(), account, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		after = p.Next
	}
}
