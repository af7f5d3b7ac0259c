package billing

import "context"

// An EventArchive is the ledger of record: a durable copy of every account's
// events, shipped from the store in order per account, each event id once.
// What it holds of an account is always a prefix of that account's ledger (the
// shipper appends in order and never skips), so a read can serve the archive up
// to ArchiveHead and the store's tail after it, and see each event exactly once.
//
// The PostgreSQL archive (package pgarchive) implements it; tests use an
// in-memory one.
type EventArchive interface {
	// ArchivedEvents returns up to limit of account's archived events with an id
	// after after ("" from the first), oldest first. Next is "" when no archived
	// event follows the page.
	ArchivedEvents(ctx context.Context, account, after string, limit int) (EventPage, error)
	// ArchivedEventsBefore returns up to limit of account's archived events with
	// an id before before ("" from the newest), newest first. Next is the cursor
	// for the following (older) page, "" at the first event.
	ArchivedEventsBefore(ctx context.Context, account, before string, limit int) (EventPage, error)
	// ArchiveHead is the id of account's newest archived event ("" when none is).
	ArchiveHead(ctx context.Context, account string) (string, error)
}
