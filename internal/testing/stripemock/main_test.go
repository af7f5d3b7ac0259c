package stripemock

import (
	"testing"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// TestMain runs the tests, then says which of them ran without a component they
// need (a real Redis, a browser, stripe-mock…) and fails the package for it
// unless CREDITGATE_TEST_ALLOW_MISSING accepts it: see skipreport.
func TestMain(m *testing.M) { skipreport.Main(m) }
