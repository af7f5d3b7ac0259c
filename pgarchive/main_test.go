package pgarchive

import (
	"testing"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// TestMain runs the tests, then says which of them ran without a component they
// need (PostgreSQL, a real Redis) and fails the package for it unless
// CREDITGATE_TEST_ALLOW_MISSING accepts it: see skipreport.
func TestMain(m *testing.M) { skipreport.Main(m) }
