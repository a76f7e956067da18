package sbc

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// SIPS (RFC 3261 26.2, RFC 5630): a sips: request-URI asks for TLS on
// every hop. The SBC honours it on leg A (refused when it did not come
// over TLS), sends the call on only over TLS targets with a sips: leg B,
// and says so in its Contact.

// localFor is the SBC's face toward the peer that sent req: a SIPS
// request-URI on a TLS connection makes the leg a SIPS one (Contact
// sips:, RFC 3261 8.1.1.8 and 12.1.1).
func (r *Realm) localFor(req *sip.Request) topology.Local {
	l := r.local(req.Transport())
	l.SIPS = isSIPS(req) && l.Transport == "TLS"
	return l
}

func isSIPS(req *sip.Request) bool { return strings.EqualFold(req.Recipient.Scheme, "sips") }

// sipsOverInsecure: a SIPS request-URI that did not arrive over TLS. RFC
// 5630 makes SIPS mean TLS on every hop; the SBC cannot honour it, so it
// answers 416 rather than pretend.
func sipsOverInsecure(req *sip.Request) bool {
	return isSIPS(req) && !strings.EqualFold(req.Transport(), "TLS")
}

// legBTarget maps a route target to leg B's transport and Request-URI:
// sips: (no transport parameter) when the call is SIPS, otherwise
// sip:...;transport=tcp|tls for a stream target.
func legBTarget(t config.Target, user string, sips bool) (transport string, uri sip.Uri) {
	transport = strings.ToUpper(t.Transport)
	if transport == "" {
		transport = "UDP"
	}
	uri = sip.Uri{Scheme: "sip", User: user, Host: uriHost(t.Host), Port: t.Port}
	switch {
	case sips && transport == "TLS":
		uri.Scheme = "sips"
	case transport != "UDP":
		uri.UriParams = sip.NewParams()
		uri.UriParams.Add("transport", strings.ToLower(transport))
	}
	return transport, uri
}

// sipsOnly keeps only the TLS targets of a SIPS call's decision (and
// their trunks, which run parallel to the targets): a SIPS call may not
// leave over an insecure hop.
func sipsOnly(req *sip.Request, dec policy.Decision) policy.Decision {
	if !isSIPS(req) {
		return dec
	}
	var ts []config.Target
	var trunks []*policy.Trunk
	for i, t := range dec.Targets {
		if t.Transport != "tls" {
			continue
		}
		ts = append(ts, t)
		if len(dec.Trunks) > 0 {
			trunks = append(trunks, dec.Trunk(i))
		}
	}
	dec.Targets, dec.Trunks = ts, trunks
	return dec
}

// sipsNotAllowed is RFC 5630's warning for a SIPS call the SBC cannot
// carry securely to its target (answered with 480).
func sipsNotAllowed(r *Realm) sip.Header {
	return sip.NewHeader("Warning", fmt.Sprintf(`380 %s "SIPS Not Allowed"`, r.cfg.AdvertiseAddr()))
}

// restoredLocal is a restored leg's face (HA takeover): the record keeps
// the transport; a TLS leg is SIPS when its remote target is sips:, as
// RFC 3261 8.1.1.8 makes it on a SIPS dialog.
func restoredLocal(r *Realm, lr legRecord) topology.Local {
	l := r.local(lr.Transport)
	l.SIPS = l.Transport == "TLS" && strings.EqualFold(lr.Dialog.Target.Scheme, "sips")
	return l
}
