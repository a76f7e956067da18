package sbc_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when its tests leave a goroutine behind:
// every SBC, UA and carrier a test starts must stop all it started.
func TestMain(m *testing.M) {
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
