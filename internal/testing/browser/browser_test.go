package browser

import (
	"os"
	"path/filepath"
	"testing"
)

// Find takes CREDITGATE_TEST_BROWSER first, then the first known name on PATH,
// and finds nothing on a machine with neither.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "google-chrome")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBrowser, "/opt/my/chrome")
	if got := Find(); got != "/opt/my/chrome" {
		t.Errorf("Find() = %q with %s set", got, EnvBrowser)
	}
	t.Setenv(EnvBrowser, "")
	t.Setenv("PATH", dir)
	if got := Find(); got != fake {
		t.Errorf("Find() = %q, want %q from PATH", got, fake)
	}
	t.Setenv("PATH", t.TempDir())
	if got := Find(); got != "" {
		t.Errorf("Find() = %q with no browser anywhere", got)
	}
}
