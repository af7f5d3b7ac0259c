package billing

import (
	"context"
	"time"

	"github.com/creditgate/creditgate/money"
)

// Batch is a batch (/v1/batches) an account created through the proxy: the hold
// its worst case was reserved under, and what its usage is billed at when it
// ends. The hold is the request's (HoldID): settling or releasing it is
// idempotent by that id, and the batch record maps the batch's id to it.
type Batch struct {
	ID        string // the upstream's batch id
	Account   string
	KeyID     string
	HoldID    string // the hold, also the create request's id
	Endpoint  string // the endpoint its lines call, e.g. "/v1/chat/completions"
	Model     string // the priced model its lines are billed as
	Prices    UnitPrices
	Discount  int64 // millionths of the list prices it is billed at (500000: half price)
	Requests  int   // lines of its input file
	Held      money.Micros
	CreatedAt time.Time
	// HoldExpires is when the hold stops counting as reserved: the batch's
	// completion window and a margin after its creation.
	HoldExpires time.Time
	// Background marks a background response (POST /v1/responses with
	// background: true) rather than a batch: ID is the response's, Discount
	// the whole price, and the poller bills the response's usage when it ends.
	Background bool
	// InputTokens and OutputCap are a background response's prompt as counted
	// locally and the output cap it was sent: with its prices and hold, the
	// limit its bill stays within, and what it is billed by when the upstream
	// reports no usage.
	InputTokens, OutputCap int64
}

// BatchRef names an open batch.
type BatchRef struct {
	Account, ID string
}

// BatchStore keeps the batches that hold money until they end. OpenBatch
// records one (with its ownership record's partner, PutObject of kind
// ObjectBatch, written by the caller); OpenBatches lists those not yet closed,
// for the poller that settles them; CloseBatch takes one off that list once its
// hold is settled or released. TryLease lets one poller among many proxies run
// per round.
type BatchStore interface {
	OpenBatch(ctx context.Context, b Batch) error
	// GetBatch returns the batch record, or ErrObjectNotFound.
	GetBatch(ctx context.Context, account, id string) (Batch, error)
	// OpenBatches returns up to limit open batches, oldest first.
	OpenBatches(ctx context.Context, limit int) ([]BatchRef, error)
	CloseBatch(ctx context.Context, account, id string) error
	// TryLease takes lease name for ttl and reports whether this caller got it.
	TryLease(ctx context.Context, name string, ttl time.Duration) (bool, error)
}
