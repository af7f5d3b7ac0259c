package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ObjectKind names a kind of object the upstream stores for an app, which the
// proxy serves only to the account that created it.
type ObjectKind string

// The stored objects.
const (
	ObjectFile           ObjectKind = "file"            // /v1/files
	ObjectBatch          ObjectKind = "batch"           // /v1/batches
	ObjectResponse       ObjectKind = "response"        // /v1/responses/{id}
	ObjectChatCompletion ObjectKind = "chat_completion" // /v1/chat/completions/{id}
)

// Retention is how long the record of an object of kind k is kept after its
// creation: the upstream's retention where it has one (stored responses and
// chat completions: 30 days), 0 (until deleted) for files and batches.
func (k ObjectKind) Retention() time.Duration {
	switch k {
	case ObjectResponse, ObjectChatCompletion:
		return 30 * 24 * time.Hour
	}
	return 0
}

// ObjectQuery asks for one page of an account's objects of one kind.
type ObjectQuery struct {
	Account string
	Kind    ObjectKind
	// After is the id the page starts after ("" from the first); an id the
	// account does not have gives an empty page.
	After  string
	Limit  int  // at most this many ids (1 to MaxObjectPage)
	Newest bool // newest first, else oldest first
}

// MaxObjectPage bounds ObjectQuery.Limit.
const MaxObjectPage = 1000

// ObjectPage is one page of an account's object ids, in the order asked.
type ObjectPage struct {
	IDs     []string
	HasMore bool // more ids follow the last one
}

// ObjectStore remembers which account created each stored object, per account
// (an object is looked up by the account asking for it): a record is the only
// thing that lets the proxy answer an object's routes, so an object without one
// (another account's, or one creditgate never saw created) is answered 404:
// fail closed. A record lives for its kind's Retention.
type ObjectStore interface {
	// PutObject records that account created object id of kind at the time
	// given; again is harmless (the first time stays).
	PutObject(ctx context.Context, account string, kind ObjectKind, id string, at time.Time) error
	// OwnsObject reports whether account created object id of kind (and its
	// record has not outlived its retention).
	OwnsObject(ctx context.Context, account string, kind ObjectKind, id string) (bool, error)
	// DeleteObject forgets account's object id of kind; nothing when absent.
	DeleteObject(ctx context.Context, account string, kind ObjectKind, id string) error
	// ListObjects returns a page of the account's object ids of one kind, by
	// creation.
	ListObjects(ctx context.Context, q ObjectQuery) (ObjectPage, error)
}

// ErrObjectNotFound says an object (a batch record) is not there.
var ErrObjectNotFound = errors.New("object not found")

// ValidObjectID checks an upstream object id before it becomes part of a key:
// 1 to 128 characters of [A-Za-z0-9._-] (OpenAI's ids: file-…, batch_…,
// resp_…, chatcmpl-…).
func ValidObjectID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: object id of %d bytes", ErrInvalid, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: object id %q may only contain letters, digits, '.', '_' and '-'", ErrInvalid, id)
		}
	}
	return nil
}

// ValidObjectKind checks k is one of the kinds above.
func ValidObjectKind(k ObjectKind) error {
	switch k {
	case ObjectFile, ObjectBatch, ObjectResponse, ObjectChatCompletion:
		return nil
	}
	return fmt.Errorf("%w: object kind %q", ErrInvalid, k)
}
