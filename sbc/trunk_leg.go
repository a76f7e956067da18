package sbc

import (
	"regexp"

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

// identityUser is the user part of a sip:, sips: or tel: URI in an
// identity header value.
var identityUser = regexp.MustCompile(`((?:sips?|tel):)([^@;>?\s]{1,64})`)

// trunkIdentity converts the user part of P-Asserted-Identity and
// P-Preferred-Identity on leg B's INVITE like the calling number.
func trunkIdentity(inv *sip.Request, dec policy.Decision, i int) {
	if dec.Trunk(i) == nil && dec.InTrunk == nil {
		return
	}
	for _, name := range []string{"P-Asserted-Identity", "P-Preferred-Identity"} {
		hs := inv.GetHeaders(name)
		if len(hs) == 0 {
			continue
		}
		vals := make([]string, 0, len(hs))
		for _, h := range hs {
			vals = append(vals, identityUser.ReplaceAllStringFunc(h.Value(), func(m string) string {
				p := identityUser.FindStringSubmatch(m)
				return p[1] + dec.CallerFor(i, p[2])
			}))
		}
		for _, h := range hs {
			inv.RemoveHeader(h.Name())
		}
		for j, h := range hs {
			inv.AppendHeader(sip.NewHeader(h.Name(), vals[j]))
		}
	}
}

// toUser is the To header's user part ("" without a To).
func toUser(req *sip.Request) string {
	if to := req.To(); to != nil {
		return to.Address.User
	}
	return ""
}
