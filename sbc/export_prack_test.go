package sbc

import "time"

// SetRelGiveUp shortens how long a reliable provisional is retransmitted
// without a PRACK (64*T1, 32 s) for a test; the returned func restores it.
// Call it before the SBC starts and restore after it is closed.
func SetRelGiveUp(d time.Duration) (restore func()) {
	old := relGiveUp
	relGiveUp = d
	return func() { relGiveUp = old }
}
