package cdr_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Writer a test opens must stop its goroutines on Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
