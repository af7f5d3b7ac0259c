package config

import (
	"os"
	"testing"
)

// TestMain describes a machine that is not a container to every test, so a run
// inside Docker warns exactly as one outside; the tests of the probe itself
// (host_test.go) call the real functions.
func TestMain(m *testing.M) {
	host = notAContainer
	os.Exit(m.Run())
}

var notAContainer = hostProbe{
	inContainer: func() bool { return false },
	onRootFS:    func(string) (bool, error) { return false, nil },
}
