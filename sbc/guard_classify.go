package sbc

import (
	"bytes"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/sbc/sipguard"
)

// Peer classification, as commercial SBCs classify by source: a realm
// whose peers are known (the targets of routes into it, its trunks'
// targets as resolved, its registered contacts, guard.trusted, its ACL's
// and `peers:` networks) takes dialog-creating requests only from them.
// Everyone else is a stranger: strict per-source limits, bans, and its
// INVITEs, SUBSCRIBEs, MESSAGEs, REFERs, REGISTERs and OPTIONS out of
// dialog refused before sipgo makes a transaction of them (UDP, in the
// read filter) or before the B2BUA sees them (TCP, TLS: 403). Nothing of
// a refused request is allocated or forwarded.

// realmPeers is one realm's known peers and what strangers get.
type realmPeers struct {
	// open: accept: any (digest auth guards it instead).
	open bool
	// static is the realm's configured peers in the policy snapshot in
	// force (routes are reloaded live: reload.go).
	static     func() []netip.Prefix
	trunk      func(ip netip.Addr) bool // the realm's trunks' targets; nil: none
	registrar  *registrar
	drop       string // auto, drop, reject
	optionsAny bool
}

// classifies says whether the realm takes dialog-creating requests from
// its peers only (accept: peers and some peer known). A realm with no
// known peer at all cannot tell them apart and takes any source.
func (p *realmPeers) classifies() bool {
	return !p.open && (len(p.static()) > 0 || p.trunk != nil || p.registrar != nil)
}

// known says whether a is a known peer of the realm.
func (p *realmPeers) known(a netip.Addr, now time.Time) bool {
	for _, n := range p.static() {
		if n.Contains(a) {
			return true
		}
	}
	if p.trunk != nil && p.trunk(a) {
		return true
	}
	return p.registrar != nil && p.registrar.loc.HasSource(a.String(), now)
}

// newRealmPeers builds a realm's classification from the config; static
// gives its configured peers as they are now.
func newRealmPeers(realm string, cfg *config.Config, rg *realmGuard, static func() []netip.Prefix) *realmPeers {
	gc := &cfg.Guard
	p := &realmPeers{drop: "auto", static: static, registrar: rg.registrar}
	accept, options := "peers", "peers"
	if gc.Off() {
		accept, options = "any", "any"
	}
	if pol := gc.RealmPolicy(realm); pol != nil {
		accept, options, p.drop = pol.Accept, pol.Options, pol.Unknown
	}
	p.open = accept == "any"
	p.optionsAny = options == "any"
	return p
}

// setTrunks tells each realm how to recognise its trunks' targets (after
// the trunks are set up; their addresses may change as DNS does).
func (g *guard) setTrunks(realms []string, inbound func(realm string, ip netip.Addr) bool) {
	for _, name := range realms {
		rg := g.realms[name]
		if rg == nil || rg.peers == nil {
			continue
		}
		n := name
		rg.peers.trunk = func(a netip.Addr) bool { return inbound(n, a) }
	}
}

// classifyTrunks makes each realm with trunks know their targets as
// peers (as resolved: sourceMatch follows DNS), through the policy
// snapshot in force.
func (s *SBC) classifyTrunks() {
	var realms []string
	for _, t := range s.policy().router.Trunks() {
		realms = append(realms, t.Realm)
	}
	s.guard.setTrunks(realms, func(realm string, a netip.Addr) bool {
		return s.policy().router.InboundTrunk(realm, a.String()) != nil
	})
}

// peer says whether src is a known peer of realm r: one that gets the peer
// limits and is never banned automatically. In a realm with no known
// peer, every source is a stranger.
func (g *guard) peer(r *Realm, src netip.Addr, now time.Time) bool {
	rg := g.realms[r.Name]
	if rg == nil || rg.peers == nil {
		return true
	}
	return rg.peers.known(src, now)
}

// needsPeer are the out-of-dialog requests a stranger may not send into a
// classifying realm: those that create a dialog (INVITE, SUBSCRIBE,
// REFER, MESSAGE), state (REGISTER, PUBLISH), or only probe (OPTIONS,
// answered when the realm says so); the rest have no business out of
// dialog.
func needsPeer(method []byte) bool {
	switch string(method) {
	case "ACK", "CANCEL":
		return false // matched to a transaction, never a new one
	}
	return len(method) > 0
}

// refuses says whether the realm refuses this out-of-dialog request of
// method from src. A registrar realm with auth takes REGISTER from anyone
// (the challenge decides), so that phones can become peers; an accept:
// any realm takes everything but OPTIONS (auth guards it instead).
func (g *guard) refuses(r *Realm, method []byte, src netip.Addr, now time.Time) bool {
	rg := g.realms[r.Name]
	if rg == nil || rg.peers == nil || !needsPeer(method) {
		return false
	}
	p := rg.peers
	options := string(method) == "OPTIONS"
	switch {
	case options && p.optionsAny:
		return false
	case p.open && !options:
		return false
	case !p.open && !p.classifies():
		return false
	case string(method) == "REGISTER" && rg.registrar != nil && rg.auth != nil:
		return false
	case rg.acl != nil && (string(method) == "INVITE" || string(method) == "REGISTER"):
		return false // the realm's ACL answers these as it says (acl.action)
	}
	return !p.known(src, now) && !g.known(src)
}

// screenStranger is the read filter's classification of a UDP request:
// true drops it (silently: a UDP answer to a stranger could be aimed at
// someone else, and an answer tells a scanner the port is alive; a realm
// that says reject sends its 403 from the interceptor instead).
func (g *guard) screenStranger(r *Realm, src netip.Addr, data []byte, now time.Time) bool {
	method, outOfDialog, ok := sipguard.Dialog(data)
	if !ok || !outOfDialog || bytes.Equal(method, []byte("ACK")) || bytes.Equal(method, []byte("CANCEL")) {
		return false
	}
	if !g.refuses(r, method, src, now) {
		return false
	}
	if g.realms[r.Name].peers.drop == "reject" {
		return false // classify answers 403 after parsing
	}
	g.reject(r.Name, "unknown_source")
	return true
}

// classify is the interceptor for what the read filter did not drop: TCP
// and TLS (a stream the filter cannot cut into requests), and UDP where
// the realm answers strangers with 403.
func (g *guard) classify(next handler) handler {
	return func(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
		src := sourceOf(req).Addr()
		now := g.now.Now()
		if !strings.EqualFold(req.Transport(), "UDP") && !g.streamScreen(r, req, tx, src, now) {
			return
		}
		if req.Method == sip.ACK || req.Method == sip.CANCEL {
			next(r, req, tx)
			return
		}
		if !g.refuses(r, []byte(req.Method), src, now) {
			next(r, req, tx)
			return
		}
		if toTag(req) != "" {
			next(r, req, tx)
			return
		}
		g.reject(r.Name, "unknown_source")
		udp := strings.EqualFold(req.Transport(), "UDP")
		switch g.realms[r.Name].peers.drop {
		case "drop":
			return
		case "auto":
			if udp {
				return
			}
		}
		g.answer(r, req, tx, sip.StatusForbidden, "Forbidden")
	}
}

// streamScreen gives a request that came over TCP or TLS what the read
// filter gives a UDP datagram: the per-source bucket and the scanner
// check (bans are checked on every chunk read). It says whether the
// request may go on. A request over the bucket gets 503 (a stream's
// source is proven, and the answer ends its transaction, which sipgo
// would otherwise keep); a scanner's gets nothing.
func (g *guard) streamScreen(r *Realm, req *sip.Request, tx sip.ServerTransaction, src netip.Addr, now time.Time) bool {
	peer := g.peer(r, src, now)
	if !g.allow(r, src, peer, now) {
		if req.Method != sip.ACK && tx != nil {
			g.answer(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(time.Second))
		}
		return false
	}
	if ua := req.GetHeader("User-Agent"); ua != nil && g.scanner(r, src, peer, []byte("User-Agent: "+ua.Value())) {
		return false
	}
	return true
}
