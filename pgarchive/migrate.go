package pgarchive

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one file of migrations/: "<version>_<name>.sql".
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		v, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(v)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("pgarchive: migration %s is not named <version>_<name>.sql", base)
		}
		body, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: version, name: base, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("pgarchive: migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// LatestVersion is the schema version the embedded migrations lead to.
func LatestVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema checks a schema name: lower-case letters, digits and '_', not
// starting with a digit, at most 63 bytes (PostgreSQL's identifier limit), so
// it needs no quoting anywhere.
func ValidSchema(s string) error {
	if !schemaName.MatchString(s) {
		return fmt.Errorf("pgarchive: schema %q: want lower-case letters, digits and _ (at most 63, not starting with a digit)", s)
	}
	return nil
}

// Migrate brings schema up to LatestVersion: it creates the schema if needed,
// then applies each embedded migration not yet recorded in
// <schema>.creditgate_schema_migrations, each in its own transaction with its
// record. A session advisory lock (keyed by the schema) serialises concurrent
// migrators: instances starting together apply each migration once. It returns
// the versions it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) ([]int, error) {
	if err := ValidSchema(schema); err != nil {
		return nil, err
	}
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgarchive: migrate: %w", err)
	}
	defer conn.Release()
	lockKey := "creditgate_migrate:" + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return nil, fmt.Errorf("pgarchive: migrate: lock: %w", err)
	}
	defer func() {
		// A fresh context: the unlock must run even when ctx ended.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey)
	}()
	setup := fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %[1]s;
CREATE TABLE IF NOT EXISTS %[1]s.creditgate_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`, schema)
	if _, err := conn.Exec(ctx, setup); err != nil {
		return nil, fmt.Errorf("pgarchive: migrate: %w", err)
	}
	applied := map[int]bool{}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT version FROM %s.creditgate_schema_migrations", schema))
	if err != nil {
		return nil, fmt.Errorf("pgarchive: migrate: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("pgarchive: migrate: %w", err)
	}
	for _, v := range versions {
		applied[int(v)] = true
	}
	var done []int
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// The migrations name their tables unqualified: they land in schema.
			if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO creditgate_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("pgarchive: migration %s: %w", m.name, err)
		}
		done = append(done, m.version)
	}
	return done, nil
}

// SchemaVersion is the newest migration recorded in schema (0: none, or no
// schema at all).
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool, schema string) (int, error) {
	if err := ValidSchema(schema); err != nil {
		return 0, err
	}
	var exists bool
	err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".creditgate_schema_migrations").Scan(&exists)
	if err != nil || !exists {
		return 0, wrapPG(err)
	}
	var v int32
	err = pool.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(max(version), 0) FROM %s.creditgate_schema_migrations", schema)).Scan(&v)
	return int(v), wrapPG(err)
}
