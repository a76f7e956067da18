package sbc_test

import (
	"os"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

// t1Env, when set (a duration), is the SIP T1 this test process runs with.
// sipgo keeps T1 and the timers derived from it in package variables that
// every transaction reads, so a test that needs a short T1 (a 64*T1
// timeout) runs itself in a child process with this set before anything
// starts (see runWithT1), instead of writing them under other tests'
// transactions.
const t1Env = "SBC_TEST_T1"

// TestMain fails the package when its tests leave a goroutine behind:
// every SBC, UA and carrier a test starts must stop all it started.
func TestMain(m *testing.M) {
	if v := os.Getenv(t1Env); v != "" {
		t1, err := time.ParseDuration(v)
		if err != nil || t1 <= 0 {
			panic(t1Env + ": not a duration: " + v)
		}
		sip.SetTimers(t1, sip.T2, sip.T4)
	}
	goleak.VerifyTestMain(m,
		// sipgo (v1.7.2) starts a reader per client UDP connection it
		// creates for a send (TransportUDP.createConnection). Close clears
		// the connection pool once; a send that races it (a retransmission
		// or an ACK of a transaction still ending) creates a connection
		// after the clear, whose reader nothing closes. Seen once in a
		// -race run of this package; it ends with the process.
		goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"),
	)
}
