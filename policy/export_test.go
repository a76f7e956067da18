package policy

import "time"

// SetTestHooks fixes the router's clock and random source (tests only).
func (r *Router) SetTestHooks(now func() time.Time, intn func(int) int) {
	r.now, r.intn = now, intn
}
