package ha

import (
	"testing"

	"go.uber.org/goleak"
)

// Every node a test opens must be closed without leaving goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
