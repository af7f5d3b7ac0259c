package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/internal/testing/testpg"
	"github.com/creditgate/creditgate/pgarchive"
)

// creditgate migrate applies the migrations once: the second run applies none
// and both print the schema's version.
func TestMigrateCommand(t *testing.T) {
	url, schema := testpg.Schema(t)
	run := func() string {
		t.Helper()
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs([]string{"migrate", "--url", url, "--schema", schema})
		if err := root.Execute(); err != nil {
			t.Fatalf("migrate: %v\n%s", err, out.String())
		}
		return out.String()
	}
	first, second := run(), run()
	want := "is at version " + strconv.Itoa(pgarchive.LatestVersion())
	if !strings.Contains(first, "applied migration 1") || !strings.Contains(first, want) {
		t.Fatalf("first run:\n%s", first)
	}
	if strings.Contains(second, "applied migration") || !strings.Contains(second, "(0 applied now)") {
		t.Fatalf("second run:\n%s", second)
	}
}
