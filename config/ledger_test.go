package config

import (
	"slices"
	"testing"
	"time"
)

// The ledger section: defaults, the environment variable of the archive's
// URL, the effective retention, and every problem reported at once.
func TestLedgerSection(t *testing.T) {
	cfg := mustLoad(t, "", tokenEnv)
	if cfg.Ledger.Archive.PostgresURL != "" || cfg.EffectiveRedisRetention() != 0 || cfg.Ledger.Archive.Migrate != MigrateAuto || cfg.Ledger.Archive.BatchSize != 500 {
		t.Fatalf("defaults: %+v, retention %s", cfg.Ledger, cfg.EffectiveRedisRetention())
	}
	env := map[string]string{"CREDITGATE_ADMIN_TOKENS": testToken, "CREDITGATE_LEDGER_ARCHIVE_POSTGRES_URL": "postgres://u:p@db:5432/cg"}
	cfg = mustLoad(t, "", env)
	if cfg.Ledger.Archive.PostgresURL != "postgres://u:p@db:5432/cg" || cfg.EffectiveRedisRetention() != 24*time.Hour {
		t.Fatalf("with the env URL: %+v, retention %s", cfg.Ledger, cfg.EffectiveRedisRetention())
	}
	cfg = mustLoad(t, "ledger:\n  redis_retention: 2h\n", tokenEnv)
	if cfg.EffectiveRedisRetention() != 2*time.Hour {
		t.Fatalf("explicit retention without an archive: %s", cfg.EffectiveRedisRetention())
	}
	cases := []struct {
		name, yaml string
		keys       []string
	}{
		{"all wrong at once", `ledger:
  redis_retention: -1h
  archive:
    postgres_url: "mysql://x"
    schema: "Bad-Schema"
    migrate: sometimes
    batch_size: 0
    interval: 0s
`, []string{"ledger.archive.batch_size", "ledger.archive.interval", "ledger.archive.migrate", "ledger.archive.postgres_url", "ledger.archive.schema", "ledger.redis_retention"}},
		{"retention under 10s", "ledger:\n  redis_retention: 5s\n", []string{"ledger.redis_retention"}},
		{"retention shorter than a round", "ledger:\n  redis_retention: 2m\n  archive:\n    postgres_url: postgres://db/x\n    interval: 5m\n", []string{"ledger.redis_retention"}},
		{"batch too large", "ledger:\n  archive:\n    batch_size: 100000\n", []string{"ledger.archive.batch_size"}},
		{"unknown key", "ledger:\n  archive:\n    url: x\n", []string{"ledger.archive.url"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, c.yaml, tokenEnv)
			got := keysOf(ps)
			slices.Sort(got)
			if !slices.Equal(got, c.keys) {
				t.Fatalf("problems %v, want keys %v", ps, c.keys)
			}
		})
	}
}
