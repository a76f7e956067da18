package sbc

import "github.com/emiago/sipgo/sip"

// Drain stops new calls: every INVITE that would start one gets 503 from
// now on (in-dialog requests and the calls already up carry on), so the
// node can be taken out once its calls have ended. It cannot be undone:
// a drained sbcd exits (cmd/sbcd).
func (s *SBC) Drain() { s.drained.Store(true) }

// Draining reports whether Drain was called.
func (s *SBC) Draining() bool { return s.drained.Load() }

// refuseDrained answers a new call's INVITE 503 while draining and
// reports whether it did. No Retry-After: RFC 3261 21.5.4 would have the
// caller wait on this node, and the point is that it tries another.
func (s *SBC) refuseDrained(r *Realm, req *sip.Request, tx sip.ServerTransaction) bool {
	if !s.drained.Load() {
		return false
	}
	s.reply(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", newTag(), sip.NewHeader("Warning", `399 edgesbc "draining"`))
	s.metrics.Calls.WithLabelValues("draining").Inc()
	return true
}
