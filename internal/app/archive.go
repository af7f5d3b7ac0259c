package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/pgarchive"
)

// The ledger's history: with ledger.archive.postgres_url, a shipper loop
// (pgarchive.Shipper) archives every event and trims Redis to the retention;
// without, a loud warning at start and, when ledger.redis_retention is set, a
// trimmer loop that trims by age alone (checkpoints keep the audit whole).

// bytesPerEvent is what one ledger event costs Redis, measured (README: the
// ledger of record): the growth figure of the no-archive warning.
const bytesPerEvent = 250

// openArchive connects the archive and brings its schema up to date
// (ledger.archive.migrate: auto) or checks it is (manual). No archive
// configured: warns how fast the ledger grows in Redis.
func (a *App) openArchive(ctx context.Context, cfg *config.Config) error {
	ac := cfg.Ledger.Archive
	if ac.PostgresURL == "" {
		fields := []zap.Field{
			zap.String("growth", growthFigure(100)),
			zap.Int("bytes_per_request", bytesPerEvent),
		}
		if r := cfg.EffectiveRedisRetention(); r > 0 {
			a.log.Warn("NO LEDGER ARCHIVE (ledger.archive.postgres_url unset): ledger events older than ledger.redis_retention are DISCARDED from Redis; only each account's checkpoint of the running totals remains",
				append(fields, zap.Duration("redis_retention", r))...)
		} else {
			a.log.Warn("NO LEDGER ARCHIVE (ledger.archive.postgres_url unset): the ledger grows WITHOUT BOUND in Redis, about "+growthFigure(100)+" at 100 requests/s, until Redis refuses writes. Set ledger.archive.postgres_url (the ledger of record in PostgreSQL), or ledger.redis_retention to discard old history",
				fields...)
		}
		return nil
	}
	arch, err := pgarchive.Open(ctx, ac.PostgresURL, ac.Schema)
	if err != nil {
		return fmt.Errorf("ledger.archive: %w", err)
	}
	a.archive = arch
	// The archive is not on the request path: PostgreSQL down at start delays
	// shipping (the loop retries), it does not stop creditgate. A schema older
	// than this binary with migrate: manual is a mistake to fix first.
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := a.ensureArchiveSchema(sctx, cfg); err != nil {
		var old *schemaTooOld
		if errors.As(err, &old) {
			arch.Close()
			a.archive = nil
			return err
		}
		a.log.Warn("ledger archive: PostgreSQL is not ready; shipping starts once it is (Redis keeps every event meanwhile)", zap.Error(err))
		return nil
	}
	a.archiveReady.Store(true)
	return nil
}

// schemaTooOld: the archive's schema is behind this binary and migrations are manual.
type schemaTooOld struct {
	schema      string
	have, needs int
}

func (e *schemaTooOld) Error() string {
	return fmt.Sprintf("ledger.archive: schema %s is at version %d, this creditgate needs %d, and ledger.archive.migrate is manual: run `creditgate migrate`", e.schema, e.have, e.needs)
}

// ensureArchiveSchema applies the missing migrations (migrate: auto) or
// checks there are none (manual: *schemaTooOld).
func (a *App) ensureArchiveSchema(ctx context.Context, cfg *config.Config) error {
	ac := cfg.Ledger.Archive
	if ac.Migrate == config.MigrateAuto {
		applied, err := a.archive.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("ledger.archive: migrating schema %s: %w", ac.Schema, err)
		}
		if len(applied) > 0 {
			a.log.Info("ledger archive: migrations applied", zap.String("schema", ac.Schema), zap.Ints("versions", applied))
		}
		return nil
	}
	v, err := pgarchive.SchemaVersion(ctx, a.archive.Pool(), ac.Schema)
	if err != nil {
		return fmt.Errorf("ledger.archive: reading the schema version of %s: %w", ac.Schema, err)
	}
	if v < pgarchive.LatestVersion() {
		return &schemaTooOld{schema: ac.Schema, have: v, needs: pgarchive.LatestVersion()}
	}
	return nil
}

// growthFigure is how much the ledger grows in Redis in a day at rps requests
// a second (one event each), e.g. "2.2 GB/day".
func growthFigure(rps int) string {
	perDay := float64(rps) * bytesPerEvent * 86400
	return fmt.Sprintf("%.1f GB/day", perDay/1e9)
}

// startLedgerLoop starts the shipper (with an archive) or the age-only
// trimmer (without one, when ledger.redis_retention is set).
func (a *App) startLedgerLoop(cfg *config.Config) {
	retention := cfg.EffectiveRedisRetention()
	interval := cfg.Ledger.Archive.Interval
	log := a.log.Named("ledger")
	ctx, stop := context.WithCancel(context.Background())
	switch {
	case a.archive != nil:
		s := pgarchive.NewShipper(a.archive, a.store, pgarchive.ShipperOptions{
			BatchSize: int(cfg.Ledger.Archive.BatchSize), Retention: retention, Observer: a.metrics.Archive(), Log: log,
		})
		a.stopLedger, a.ledgerDone = stop, make(chan struct{})
		go func() {
			defer close(a.ledgerDone)
			for !a.archiveReady.Load() {
				err := a.ensureArchiveSchema(ctx, cfg)
				if err == nil {
					a.archiveReady.Store(true)
					log.Info("ledger archive: PostgreSQL ready; shipping starts")
					break
				}
				a.metrics.Archive().ShipFailed()
				log.Warn("ledger archive: PostgreSQL still not ready; retrying", zap.Error(err))
				select {
				case <-ctx.Done():
					return
				case <-time.After(interval):
				}
			}
			s.Run(ctx, interval)
		}()
	case retention > 0:
		t := pgarchive.NewTrimmer(a.store, pgarchive.TrimmerOptions{Retention: retention, Log: log, Observer: a.metrics.Archive()})
		a.stopLedger, a.ledgerDone = stop, make(chan struct{})
		go func() {
			defer close(a.ledgerDone)
			t.Run(ctx, max(interval, time.Minute))
		}()
	default:
		stop()
	}
}

// stopLedgerLoop stops the loop and closes the archive.
func (a *App) stopLedgerLoop() {
	if a.stopLedger != nil {
		a.stopLedger()
		<-a.ledgerDone
	}
	if a.archive != nil {
		a.archive.Close()
	}
}

// archiveCheck is the audit's comparison with the archive (nil: no archive).
func (a *App) archiveCheck() func(ctx context.Context, account string) ([]billing.AuditProblem, error) {
	if a.archive == nil {
		return nil
	}
	return func(ctx context.Context, account string) ([]billing.AuditProblem, error) {
		rep, err := a.archive.Compare(ctx, a.store, account)
		if err != nil {
			return nil, err
		}
		if !rep.OK() {
			a.log.Error("ledger archive: Redis lost events the archive holds", zap.String("account", account),
				zap.Int("missing", rep.MissingCount), zap.Strings("missing_ids", rep.MissingIDs()), zap.Int("unarchived", rep.UnarchivedCount))
		}
		return rep.Problems(), nil
	}
}

// Archive is the ledger archive (nil: none configured).
func (a *App) Archive() *pgarchive.Archive { return a.archive }
