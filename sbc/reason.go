package sbc

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// The Reason (RFC 3326) on each BYE and CANCEL the SBC originates, so the
// peer's CDR says why the SBC ended the call, not merely that it did.
const (
	reasonMediaTimeout    = `Q.850;cause=102;text="media timeout"`
	reasonNoAck           = `Q.850;cause=102;text="no ACK for 2xx"`
	reasonInDialogTimeout = `Q.850;cause=102;text="in-dialog request timed out"`
	reasonDialogLost      = `Q.850;cause=41;text="dialog lost on the other leg"`
	reasonShutdown        = `Q.850;cause=41;text="SBC shutdown"`
	reasonCancelled       = `Q.850;cause=16;text="caller cancelled"` // a 2xx that came after the CANCEL
	reasonNoAnswer        = `Q.850;cause=19;text="no answer"`        // the ring timeout
)

// maxReasons bounds the Reason headers relayed from one request: RFC 3326
// has one per protocol (SIP, Q.850), a peer may send any number.
const maxReasons = 4

// relayedReason is the Reason of a BYE or CANCEL that arrived, as it may
// cross to a leg whose realm has filter f ("" when none, or filtered out).
func relayedReason(req *sip.Request, f *topology.HeaderFilter) string {
	if f != nil && !f.Pass("Reason") {
		return ""
	}
	var v []string
	for _, h := range req.GetHeaders("Reason") {
		if len(v) == maxReasons {
			break
		}
		if s := strings.TrimSpace(h.Value()); s != "" {
			v = append(v, s)
		}
	}
	return strings.Join(v, ", ")
}

// setCancelReason keeps the Reason the CANCEL of leg B will carry: the
// first one given wins (the caller's, or the SBC's own).
func (c *Call) setCancelReason(reason string) {
	c.mu.Lock()
	if c.cancelReason == "" {
		c.cancelReason = reason
	}
	c.mu.Unlock()
}

// cancelReasonOr is that Reason, or def when none was given.
func (c *Call) cancelReasonOr(def string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelReason != "" {
		return c.cancelReason
	}
	return def
}
