package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/creditgate/creditgate/billing"
)

// The account directory: bounded reads over the account index (cg:accounts)
// for an operator's search, so a console never loads 100k accounts at once.
// Plain reads, no script: nothing here changes an account.

// setScanner is the part of go-redis's clients the directory needs (Client
// leaves it out: nothing on the request path scans).
type setScanner interface {
	SScan(ctx context.Context, key string, cursor uint64, match string, count int64) *redis.ScanCmd
	SCard(ctx context.Context, key string) *redis.IntCmd
}

// summaryFields are the account hash fields AccountSummaries reads.
var summaryFields = []string{"tier", "created_at", "credit", "debt", "reserved", "ar_enabled"}

// ScanAccounts reads one step of SSCAN over the account index from cursor
// (0 starts), with MATCH match ("" or "*": every id) and COUNT count. It
// returns the ids of the step, at most a few times count, and the cursor of
// the next step (0: the scan is complete). As SSCAN guarantees, an id present
// for the whole scan is returned at least once; one added or removed meanwhile
// may or may not be.
func (s *Store) ScanAccounts(ctx context.Context, cursor uint64, match string, count int64) ([]string, uint64, error) {
	sc, ok := s.c.(setScanner)
	if !ok {
		return nil, 0, errors.New("redisstore: the client cannot SSCAN, which the account directory needs")
	}
	ids, next, err := sc.SScan(ctx, s.accountsKey(), cursor, match, count).Result()
	if err != nil {
		return nil, 0, wrap(err)
	}
	return ids, next, nil
}

// AccountSummaries reads the stored figures of accounts ids (tier, creation,
// credit, debt, reserved, whether auto-recharge is on) in one pipeline: a
// round trip per node, no script. They are the hash as the scripts last left
// it: credit of a grant that expired since the account's last script or sweep
// is still in it (GetAccount forfeits it first). Ids without an account (an
// index entry whose account write was lost) are left out; the order of ids is
// kept.
func (s *Store) AccountSummaries(ctx context.Context, ids []string) ([]billing.Account, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pc, ok := s.c.(pipeliner)
	if !ok {
		return nil, errors.New("redisstore: the client cannot run pipelines, which the account directory needs")
	}
	pipe := pc.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		if billing.ValidAccountID(id) != nil {
			continue // never a key name built from a malformed id
		}
		cmds[i] = pipe.HMGet(ctx, s.acctKey(id), summaryFields...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrap(err)
	}
	out := make([]billing.Account, 0, len(ids))
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		vals, err := cmd.Result()
		if err != nil {
			return nil, wrap(err)
		}
		f := make(map[string]string, len(summaryFields))
		for j, v := range vals {
			if str, ok := v.(string); ok {
				f[summaryFields[j]] = str
			}
		}
		if f["tier"] == "" {
			continue // no such account
		}
		d := record{where: fmt.Sprintf("account %q", ids[i])}
		a := billing.Account{
			ID:           ids[i],
			Tier:         f["tier"],
			CreatedAt:    d.msOf(f, "created_at"),
			Credit:       d.microsOf(f, "credit"),
			Debt:         d.microsOf(f, "debt"),
			Reserved:     d.microsOf(f, "reserved"),
			AutoRecharge: billing.AutoRecharge{Enabled: f["ar_enabled"] == "1"},
		}
		if d.err != nil {
			return nil, d.err
		}
		out = append(out, a)
	}
	return out, nil
}

// CountAccounts is the number of ids in the account index (SCARD).
func (s *Store) CountAccounts(ctx context.Context) (int64, error) {
	sc, ok := s.c.(setScanner)
	if !ok {
		return 0, errors.New("redisstore: the client cannot SCARD, which the account directory needs")
	}
	n, err := sc.SCard(ctx, s.accountsKey()).Result()
	return n, wrap(err)
}
