package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"time"

	"github.com/creditgate/creditgate/billing"
)

// Stored objects (billing.ObjectStore): which account created each file, batch,
// stored response and stored chat completion at the upstream. Each account
// keeps one zset per kind under its hash tag, "{acct:<id>}:objects:<kind>",
// object id scored by creation (ms): an object is looked up by the account
// asking for it, so the record answers both "is it yours" and "list yours",
// in one key. A record costs about 130 bytes (MEMORY USAGE on Redis 7); records older than their kind's
// Retention are dropped as new ones come.

var (
	objectPutScript    = newScript("object_put.lua")
	objectOwnsScript   = newScript("object_owns.lua")
	objectForgetScript = newScript("object_forget.lua")
	objectListScript   = newScript("object_list.lua")
)

// objectsKey is account's zset of objects of kind.
func (s *Store) objectsKey(account string, kind billing.ObjectKind) string {
	return s.prefix + "{acct:" + account + "}:objects:" + string(kind)
}

func checkObject(account string, kind billing.ObjectKind, id string) error {
	if err := billing.ValidAccountID(account); err != nil {
		return err
	}
	if err := billing.ValidObjectKind(kind); err != nil {
		return err
	}
	return billing.ValidObjectID(id)
}

// PutObject records that account created object id of kind at at.
func (s *Store) PutObject(ctx context.Context, account string, kind billing.ObjectKind, id string, at time.Time) error {
	if err := checkObject(account, kind, id); err != nil {
		return err
	}
	r, err := s.run(ctx, objectPutScript, []string{s.objectsKey(account, kind)}, msArg(at), id, kind.Retention().Milliseconds())
	if err != nil {
		return err
	}
	return decodeOK(r)
}

// decodeOK decodes the {'OK'} reply of a script that only says it is done.
func decodeOK(r reply) error {
	if r.status() == "OK" {
		return r.done(1)
	}
	return r.unexpected()
}

// OwnsObject reports whether account created object id of kind. An id that
// could not be an object's is no account's.
func (s *Store) OwnsObject(ctx context.Context, account string, kind billing.ObjectKind, id string) (bool, error) {
	if err := checkObject(account, kind, id); err != nil {
		return false, nil
	}
	r, err := s.run(ctx, objectOwnsScript, []string{s.objectsKey(account, kind)}, msArg(s.now()), id, kind.Retention().Milliseconds())
	if err != nil {
		return false, err
	}
	return decodeObjectOwns(r)
}

func decodeObjectOwns(r reply) (bool, error) {
	switch r.status() {
	case "YES":
		return true, r.done(1)
	case "NO":
		return false, r.done(1)
	}
	return false, r.unexpected()
}

// DeleteObject forgets account's object id of kind.
func (s *Store) DeleteObject(ctx context.Context, account string, kind billing.ObjectKind, id string) error {
	if err := checkObject(account, kind, id); err != nil {
		return err
	}
	r, err := s.run(ctx, objectForgetScript, []string{s.objectsKey(account, kind)}, id)
	if err != nil {
		return err
	}
	return decodeObjectForget(r)
}

func decodeObjectForget(r reply) error {
	if r.status() == "OK" {
		r.flag(1)
		return r.done(2)
	}
	return r.unexpected()
}

// ListObjects returns one page of account's object ids of kind.
func (s *Store) ListObjects(ctx context.Context, q billing.ObjectQuery) (billing.ObjectPage, error) {
	if err := billing.ValidAccountID(q.Account); err != nil {
		return billing.ObjectPage{}, err
	}
	if err := billing.ValidObjectKind(q.Kind); err != nil {
		return billing.ObjectPage{}, err
	}
	if q.Limit < 1 || q.Limit > billing.MaxObjectPage {
		return billing.ObjectPage{}, fmt.Errorf("%w: object page limit %d (1 to %d)", billing.ErrInvalid, q.Limit, billing.MaxObjectPage)
	}
	if q.After != "" && billing.ValidObjectID(q.After) != nil {
		return billing.ObjectPage{}, nil // no object has that id
	}
	r, err := s.run(ctx, objectListScript, []string{s.objectsKey(q.Account, q.Kind)},
		msArg(s.now()), q.After, strconv.Itoa(q.Limit), flag(q.Newest), q.Kind.Retention().Milliseconds())
	if err != nil {
		return billing.ObjectPage{}, err
	}
	return decodeObjectList(r, q.Limit)
}

func decodeObjectList(r reply, limit int) (billing.ObjectPage, error) {
	if r.status() != "OK" {
		return billing.ObjectPage{}, r.unexpected()
	}
	page := billing.ObjectPage{HasMore: r.flag(1), IDs: r.strings(2)}
	if r.err == nil && len(r.v) < 2 {
		r.fail("%d elements, want at least 2", len(r.v))
	}
	if r.err == nil && (len(page.IDs) > limit || page.HasMore && len(page.IDs) < limit) {
		r.fail("%d ids (has_more %v) for a page of %d", len(page.IDs), page.HasMore, limit)
	}
	if r.err != nil {
		return billing.ObjectPage{}, r.err
	}
	return page, nil
}
