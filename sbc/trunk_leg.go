package sbc

import (
	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/policy"
)

// trunkNumbers sets leg B's numbers for target i of the decision: the
// request-URI and To user become the called number (E.164 after the
// inbound trunk's rules, then in the outbound trunk's format), the From
// user the calling number the same way; To carries the trunk's domain.
func trunkNumbers(b *Leg, dec policy.Decision, i int, req *sip.Request) {
	called := dec.CalledFor(i, req.Recipient.User)
	if req.To() != nil && req.To().Address.User != req.Recipient.User {
		// A To that differs from the request-URI is converted on its own.
		b.d.RemoteURI.User = dec.CallerFor(i, req.To().Address.User)
	} else {
		b.d.RemoteURI.User = called
	}
	b.d.Target.User = called
	b.d.LocalURI.User = dec.CallerFor(i, b.d.LocalURI.User)
	if tr := dec.Trunk(i); tr != nil && tr.Domain != "" {
		b.d.RemoteURI.Host = uriHost(tr.Domain)
	}
}

// toUser is the To header's user part ("" without a To).
func toUser(req *sip.Request) string {
	if to := req.To(); to != nil {
		return to.Address.User
	}
	return ""
}
