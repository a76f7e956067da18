package sbc

import "time"

// SetSessionSecond makes one second of Session-Expires last d on the
// clock, so tests run RFC-legal intervals (90 s and more) in a fraction
// of that; the returned func puts it back.
func SetSessionSecond(d time.Duration) (restore func()) {
	old := sessionSecond.Swap(int64(d))
	return func() { sessionSecond.Store(old) }
}
