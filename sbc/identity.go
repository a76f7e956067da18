package sbc

import (
	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// Identity across the call's legs (topology/identity.go does the headers):
// each leg's Local carries where what is relayed onto it comes from, so
// every message built for that leg, in the dialog or out of it, gets its
// P-Asserted-Identity, Diversion and History-Info rebuilt by the same rules.

// originOf is a realm as the source of identity: whether it is trusted,
// and what it wants done with Remote-Party-ID.
func originOf(r *Realm) *topology.Origin {
	return &topology.Origin{Trusted: r.trusted, RPID: r.cfg.RPID}
}

// callerOrigin is leg A's realm as leg B sees it: the caller's preferred
// identity is asserted if the guard verified the INVITE's digest answer
// (RFC 3325 6), and identities are converted like the From (normalize).
func (s *SBC) callerOrigin(r *Realm, req *sip.Request, normalize func(string) string) *topology.Origin {
	o := originOf(r)
	if s.guard != nil {
		_, o.Authenticated = s.guard.authUser.get(req)
	}
	o.Normalize = normalize
	return o
}

// anonymizeFrom gives leg B the anonymous From (RFC 3323 4.1.1.3) when the
// caller asked for privacy of its identity and leg B's realm is not
// trusted: nothing of who called goes there (its PAI is removed too).
func anonymizeFrom(b *Leg, req *sip.Request) {
	if b.realm.trusted {
		return
	}
	for _, p := range []string{"id", "user", "header"} {
		if topology.Privacy(req, p) {
			b.d.LocalName, b.d.LocalURI = topology.AnonymousFrom()
			return
		}
	}
}
