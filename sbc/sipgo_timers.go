package sbc

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sipgo keeps its transaction timers as package variables (sip.Timer_D and
// the others), read by every transaction of every user agent in the
// process; it has no per-UA option. So they are set here, once per
// process, by the first New: several SBCs in one process (tests) share the
// first one's linger, and setting them only once keeps the write from
// racing transactions already running.
var lingerOnce sync.Once

// setLingerOnce shortens how long finished transactions are kept to absorb
// retransmissions (RFC 3261 timers D, J, L, M; I and K are T4), once per
// process.
func setLingerOnce(d time.Duration) {
	lingerOnce.Do(func() { setLinger(d) })
}

func setLinger(d time.Duration) {
	sip.Timer_D = d
	sip.Timer_J = d
	sip.Timer_L = d
	sip.Timer_M = d
	if d < sip.T4 {
		sip.Timer_I, sip.Timer_K = d, d
	}
}
