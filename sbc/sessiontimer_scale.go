package sbc

import "time"

// ScaleSessionTimers makes the session-timer clock (sessiontimer.go) run k
// times faster for the whole process: one second of Session-Expires lasts
// 1/k s, while every value on the wire stays what RFC 4028 negotiated.
// sbcd calls it only for the test hook (watchdog.TimeScale,
// EDGESBC_TEST_HOOKS=1 and EDGESBC_TEST_TIMESCALE=k), before the SBC
// starts; k <= 1 leaves the clock real.
func ScaleSessionTimers(k int) {
	if k <= 1 {
		return
	}
	sessionSecond.Store(int64(time.Second) / int64(k))
}
