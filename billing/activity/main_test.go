package activity

import (
	"testing"

	"github.com/creditgate/creditgate/internal/testing/skipreport"
)

// TestMain runs the tests, then reports those that ran without a component
// they need (a real Redis): see skipreport.
func TestMain(m *testing.M) { skipreport.Main(m) }
