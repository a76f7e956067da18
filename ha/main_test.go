package ha

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every node a test opens must be closed without leaving goroutines.
// Raft's own helpers may outlive Shutdown briefly (a leadership transfer
// waits up to an election timeout): allow them 5 s to finish.
//
// One waiter is let go: leadership.verify's goroutine blocked in raft's
// deferError.Error. raft v1.8.0's verifyFuture has no ShutdownCh, so a
// VerifyLeader in flight when the node shuts down can stay unanswered
// forever (seen once in a -race run on a loaded machine, 5 s after
// Shutdown). The waiter holds no lock and writes to a buffered channel
// nobody reads; verify itself gave up at its 2*LeaderLease timer. Every
// other goroutine, raft's included, is still checked.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err = goleak.Find(goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error")); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
