// Package testpg gives a test its own PostgreSQL schema on the machine's real
// PostgreSQL (CREDITGATE_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable), dropped with
// everything in it when the test ends. Without a reachable PostgreSQL the test
// is skipped visibly (skipreport.Postgres).
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// DefaultURL is the PostgreSQL the tests use unless CREDITGATE_TEST_POSTGRES_URL says otherwise.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL is the test PostgreSQL's URL; it skips t when that PostgreSQL does not answer.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("CREDITGATE_TEST_POSTGRES_URL")
	if url == "" {
		url = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		skipreport.Skip(t, skipreport.Postgres, "PostgreSQL at "+url+" is unreachable: "+err.Error())
	}
	return url
}

// Schema names a fresh schema for t ("cgtest_<random>"), not created yet; it
// is dropped (CASCADE) when t ends. It skips t when PostgreSQL does not answer.
func Schema(t testing.TB) (url, schema string) {
	t.Helper()
	url = URL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema = "cgtest_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("testpg: dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Logf("testpg: dropping schema %s: %v", schema, err)
		}
	})
	return url, schema
}
