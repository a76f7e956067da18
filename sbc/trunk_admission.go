package sbc

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/policy"
)

// Admission control per trunk. A trunk with trunks[].admission has the
// key "trunk:NAME" in the SBC's Admission, shared by both directions:
//
//   - in: a new INVITE from one of the trunk's targets (recognised by
//     source as routing does) is admitted under the trunk's key together
//     with its realm's, all or none, by the guard's admission interceptor
//     (503 + Retry-After when refused);
//   - out: before leg B goes to a target of the trunk, the call takes a
//     place under the key; a full trunk is skipped like a down one. The
//     place is held until the call ends, or given back when the call fails
//     over to another trunk. When every trunk tried was full, leg A gets
//     503 with Retry-After.
//
// Admit takes its places under one lock, so the limits hold exactly under
// any number of concurrent calls.

// trunkKey is a trunk's admission key.
func trunkKey(name string) string { return "trunk:" + name }

// setupTrunkAdmission configures the trunks' admission keys and names the
// inbound trunk's key for each new INVITE.
func (s *SBC) setupTrunkAdmission(ts *trunkSet) {
	ts.limited = map[string]bool{}
	for _, tc := range s.cfg.Trunks {
		a := tc.Admission
		if a == nil {
			continue
		}
		ts.limited[tc.Name] = true
		s.Admission().Configure(trunkKey(tc.Name), policy.AdmissionLimits{MaxCalls: a.MaxCalls, MaxCPS: a.MaxCPS, RetryAfter: a.RetryAfter.Std()})
	}
	if len(ts.limited) == 0 {
		return
	}
	s.SetAdmissionKeys(func(realm string, req *sip.Request) []string {
		if t := s.policy().router.InboundTrunk(realm, req.Source()); t != nil && ts.limited[t.Name] {
			return []string{trunkKey(t.Name)}
		}
		return nil
	})
}

// trunkHold is one call's place on the trunk its leg B goes to: at most
// one trunk at a time.
type trunkHold struct {
	c       *Call
	adm     trunkAdmitter
	limited map[string]bool            // trunks with an admission policy
	reject  func(realm, reason string) // counts a refusal (guard.reject)
	now     policy.Clock               // the guard's clock (Options.Clock)

	mu       sync.Mutex
	trunk    *policy.Trunk
	ticket   *policy.Ticket
	refused  *policy.Rejection // the soonest retry among the full trunks
	watching bool              // release is registered to run at call end
	ended    bool
}

// trunkAdmitter is what a trunk hold needs of admission control
// (policy.Admission): places under a trunk's key.
type trunkAdmitter interface {
	Admit(now time.Time, keys ...string) (*policy.Ticket, *policy.Rejection)
}

func (s *SBC) holdTrunks(c *Call) *trunkHold {
	h := &trunkHold{c: c, adm: s.guard.adm, reject: s.guard.reject, now: s.guard.now}
	if s.trunks != nil {
		h.limited = s.trunks.limited
	}
	return h
}

// admit says whether target i of dec may be tried: a plain target or an
// unlimited trunk's always; a target of the trunk already held, yes; a
// limited trunk's when it admits the call, after giving back the place on
// the previous trunk (failover). No means skip it, like a down trunk.
func (h *trunkHold) admit(dec policy.Decision, i int) bool {
	t := dec.Trunk(i)
	h.mu.Lock()
	defer h.mu.Unlock()
	if t != nil && t == h.trunk {
		return true
	}
	h.ticket.Release()
	h.ticket, h.trunk = nil, nil
	if t == nil || !h.limited[t.Name] {
		return true
	}
	if h.ended {
		return false // the call is over; nothing would release a new place
	}
	tk, rej := h.adm.Admit(h.now.Now(), trunkKey(t.Name))
	if rej != nil {
		if h.refused == nil || rej.RetryAfter < h.refused.RetryAfter {
			h.refused = rej
		}
		h.reject(t.Realm, "trunk_admission_"+rej.Reason)
		return false
	}
	h.ticket, h.trunk = tk, t
	if !h.watching {
		h.watching = true
		h.c.OnEnd(h.release)
	}
	return true
}

// release gives the place back for good (the call ended).
func (h *trunkHold) release() {
	h.mu.Lock()
	h.ended = true
	h.ticket.Release()
	h.ticket, h.trunk = nil, nil
	h.mu.Unlock()
}

// refusal is the Retry-After for leg A's 503 when a trunk was skipped for
// being full (and no target gave an answer to relay); false when none was.
func (h *trunkHold) refusal() (sip.Header, bool) {
	h.mu.Lock()
	rej := h.refused
	h.mu.Unlock()
	if rej == nil {
		return nil, false
	}
	return retryAfter(rej.RetryAfter), true
}
