package sbc

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// A 3xx from a target (RFC 3261 8.1.3.4, 16.5): by default the SBC tries
// the Contacts itself, in q order, through the same route's settings, and
// the caller sees only the final outcome; routes[].redirect.mode relay
// hands the 3xx to the caller instead, its Contacts pointing at the SBC.

// maxRedirectContacts bounds the Contacts read from one 3xx, and
// maxRedirectTargets the targets a call may have queued: each is an
// INVITE transaction.
const (
	maxRedirectContacts = 8
	maxRedirectTargets  = 16
)

// redirectOpts are a route's redirect settings (config.Redirect).
type redirectOpts struct {
	relay       bool
	maxHops     int
	diversion   string
	allow, deny []netip.Prefix
}

func newRedirectOpts(r config.Redirect) redirectOpts {
	allow, deny := r.Networks()
	return redirectOpts{relay: r.Mode == config.RedirectRelay, maxHops: r.MaxHops, diversion: r.Diversion, allow: allow, deny: deny}
}

// redirectHop is one Contact of a 3xx the call is being sent to. The
// setup goroutine (onInvite) alone sets and reads Call.redirect, so it
// needs no lock.
type redirectHop struct {
	target config.Target
	user   string // the Contact's user: leg B's request-URI user
	code   int    // the 3xx's status
}

// isRedirect reports a 3xx (RFC 3261 21.3).
func isRedirect(res *sip.Response) bool { return res.StatusCode >= 300 && res.StatusCode < 400 }

// redirected deals with target i's 3xx: in relay mode it gives it back for
// relayRedirect; otherwise it follows the Contacts, depth first (a
// Contact's own 3xx queues its Contacts before the rest), and returns the
// outcome of the first that answers, or the last failure. Silent or 5xx
// Contacts fail over like any target; a 6xx ends the search (RFC 3261
// 16.7 step 5).
func (s *SBC) redirected(ctx context.Context, c *Call, out *Realm, dec policy.Decision, i int, req *sip.Request, offer []byte, mf int, txA sip.ServerTransaction, res *sip.Response) outcome {
	opts := c.policy(s).routeOpts(c.route).redirect
	if opts.relay {
		return outcome{kind: outcomeRedirect, res: res}
	}
	queue := s.redirectTargets(c, out, dec.Targets[i], res, opts)
	if len(queue) == 0 {
		return refused(sip.StatusBadGateway, "redirect_unusable")
	}
	hops := 1
	last := outcome{kind: outcomeFailover}
	for len(queue) > 0 {
		hop := queue[0]
		queue = queue[1:]
		hd := dec // the route's settings, the hop as its only target
		hd.Targets = []config.Target{hop.target}
		hd.Trunks = nil
		if tr := dec.Trunk(i); tr != nil {
			hd.Trunks = []*policy.Trunk{tr}
		}
		c.redirect = &hop
		o := s.tryTarget(ctx, c, out, hd, 0, req, offer, mf, txA)
		c.redirect = nil
		switch o.kind {
		case outcomeRedirect:
			if hops++; hops > opts.maxHops {
				out.log.Info("redirect hop limit reached", "call", c.ID, "hops", opts.maxHops)
				return refused(sip.StatusLoopDetected, "redirect_loop")
			}
			next := s.redirectTargets(c, out, hop.target, o.res, opts)
			queue = append(next, queue...)
			if len(queue) > maxRedirectTargets {
				queue = queue[:maxRedirectTargets]
			}
		case outcomeFinal:
			if o.res.StatusCode >= 600 {
				return o
			}
			last = o
		case outcomeFailover:
			if last.kind == outcomeFailover && o.res != nil {
				last = o
			}
		default: // answered, cancelled, a challenge for the caller
			return o
		}
	}
	return last
}

// refused is an outcome the SBC answers itself and counts under result.
func refused(code int, result string) outcome {
	return outcome{kind: outcomeRefused, code: code, result: result}
}

// redirectTargets are the Contacts of res that may be followed, highest q
// first (equal q in the order given). A Contact is refused, and logged,
// when it is not a sip: URI on an IP literal (no DNS from a peer's
// answer), not TLS for a SIPS call, or when it points at the SBC itself,
// at a peer of another realm, or outside the route's allowed networks.
func (s *SBC) redirectTargets(c *Call, out *Realm, from config.Target, res *sip.Response, opts redirectOpts) []redirectHop {
	type cand struct {
		hop redirectHop
		q   float64
	}
	var cands []cand
	for n, h := range res.GetHeaders("Contact") {
		if n >= maxRedirectContacts {
			break
		}
		ct, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		t, ok := contactTarget(ct.Address, out.cfg.ListenAddrPort().Addr().IsLoopback())
		if !ok {
			out.log.Info("redirect Contact not usable", "call", c.ID, "from", from.String())
			continue
		}
		if isSIPS(c.a.invite) && t.Transport != "tls" { // as sipsOnly: no insecure hop
			out.log.Info("redirect Contact refused", "call", c.ID, "from", from.String(), "why", "not TLS for a SIPS call")
			continue
		}
		ap := netip.AddrPortFrom(netip.MustParseAddr(t.Host), uint16(t.Port))
		if why := s.forbiddenRedirect(out, ap, opts, c.policy(s).cfg.Routes); why != "" {
			out.log.Info("redirect Contact refused", "call", c.ID, "from", from.String(), "contact", ap.String(), "why", why)
			continue
		}
		q := 1.0
		if v, ok := ct.Params.Get("q"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
		user := ct.Address.User
		if user == "" {
			user = c.a.invite.Recipient.User
		}
		if !safeContactUser(user) {
			out.log.Info("redirect Contact refused", "call", c.ID, "from", from.String(), "why", "user part")
			continue
		}
		cands = append(cands, cand{redirectHop{target: t, user: user, code: res.StatusCode}, q})
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].q > cands[b].q })
	hops := make([]redirectHop, len(cands))
	for k, cd := range cands {
		hops[k] = cd.hop
	}
	return hops
}

// safeContactUser: the user part a redirect may carry into a request-URI
// or a relayed Contact, 1 to 64 characters of letters, digits and RFC
// 3261's unreserved marks (and + for E.164); nothing that could end the
// user part or the URI.
func safeContactUser(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()+", c) >= 0) {
			return false
		}
	}
	return true
}

// contactTarget turns a 3xx Contact into a target: sip: or sips: on a
// unicast IP literal, the port defaulting as RFC 3263 4.2 would without
// DNS. A loopback address is a target only for a realm that lives on
// loopback itself: anywhere else it would reach the SBC host's own
// services.
func contactTarget(u sip.Uri, loopbackRealm bool) (config.Target, bool) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "sip" && scheme != "sips" || u.Port < 0 || u.Port > 65535 {
		return config.Target{}, false
	}
	addr, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil || !addr.Unmap().IsGlobalUnicast() && !(loopbackRealm && addr.Unmap().IsLoopback()) {
		return config.Target{}, false
	}
	t := config.Target{Host: addr.Unmap().String(), Port: u.Port, Transport: "udp"}
	if scheme == "sips" {
		t.Transport = "tls"
	}
	if u.UriParams != nil {
		if v, ok := u.UriParams.Get("transport"); ok {
			switch v = strings.ToLower(v); v {
			case "udp", "tcp", "tls":
				if scheme != "sips" {
					t.Transport = v
				}
			default:
				return config.Target{}, false
			}
		}
	}
	if t.Port == 0 {
		t.Port = 5060
		if t.Transport == "tls" {
			t.Port = 5061
		}
	}
	return t, true
}

// forbiddenRedirect says why a Contact at ap may not be followed into
// realm out, or "" when it may: the SBC's own SIP addresses (a loop
// through the SBC), another realm's connected network or a target of a
// route into another realm (the redirect would carry the call across to
// a network it must not reach from here), outside the route's allow
// list, or inside its deny list.
func (s *SBC) forbiddenRedirect(out *Realm, ap netip.AddrPort, opts redirectOpts, routes []config.Route) string {
	a := ap.Addr()
	for _, p := range opts.deny {
		if p.Contains(a) {
			return "denied network"
		}
	}
	if len(opts.allow) > 0 {
		in := false
		for _, p := range opts.allow {
			in = in || p.Contains(a)
		}
		if !in {
			return "outside the allowed networks"
		}
	}
	for _, r := range s.order {
		if r.ownsSIPAddr(ap) {
			return "the SBC's own address"
		}
	}
	if r := s.realmNetworkOf(out, a); r != "" {
		return "in the network of realm " + r
	}
	for _, rt := range routes { // the call's policy snapshot (reload.go)
		if rt.ToRealm == out.Name {
			continue
		}
		for _, ts := range rt.Targets {
			if t, err := config.ParseTarget(ts); err == nil && t.Host == a.String() && t.Port == int(ap.Port()) {
				return "a peer of realm " + rt.ToRealm
			}
		}
	}
	return ""
}

// realmNetworkOf names the realm other than out whose interface's
// connected network holds a, or "": a redirect from one side must not
// send the call into the other side's network, even to an address no
// route names. A network that holds out's own address too (realms that
// share one, loopback say) tells nothing and is passed over. Read from
// the host's interfaces each time: redirects are rare and HA moves the
// addresses.
func (s *SBC) realmNetworkOf(out *Realm, a netip.Addr) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	own := out.cfg.ListenAddrPort().Addr()
	for _, r := range s.order {
		if r == out {
			continue
		}
		p, ok := connectedNetwork(r.cfg.ListenAddrPort().Addr(), addrs)
		if ok && !p.Contains(own) && p.Contains(a.Unmap()) {
			return r.Name
		}
	}
	return ""
}

// connectedNetwork is the prefix of the interface address equal to a.
func connectedNetwork(a netip.Addr, addrs []net.Addr) (netip.Prefix, bool) {
	for _, ia := range addrs {
		n, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != a.Unmap() {
			continue
		}
		bits, _ := n.Mask.Size()
		if ip.Unmap().Is4() && bits > 32 {
			bits -= 96
		}
		return netip.PrefixFrom(ip.Unmap(), bits).Masked(), true
	}
	return netip.Prefix{}, false
}

// ownsSIPAddr reports whether ap is one of the realm's SIP listeners (or
// their advertised address).
func (r *Realm) ownsSIPAddr(ap netip.AddrPort) bool {
	a := ap.Addr().String()
	if a != r.cfg.ListenAddrPort().Addr().String() && a != r.cfg.AdvertiseAddr() {
		return false
	}
	p := int(ap.Port())
	return p == r.laddr.Port || (r.tls != nil && p == r.tlsPort())
}

// applyRedirect points leg B of a followed redirect at the Contact's user
// (tryTarget's hook, after the trunk's number rules).
func applyRedirect(c *Call, b *Leg) {
	if h := c.redirect; h != nil {
		b.d.Target.User = h.user
	}
}

// redirectHeaders adds to a redirected INVITE the route's record of the
// diversion (tryTarget's hook): Diversion (RFC 5806) naming the called
// user at the SBC's own address on this leg, or History-Info (RFC 7044)
// with the original target as index 1 and the new one as 1.1, its cause
// the 3xx (RFC 4458) and mp (the target changed by a 3xx); not when the
// caller's History-Info crossed (topology/identity.go).
func (s *SBC) redirectHeaders(c *Call, b *Leg, inv *sip.Request) {
	h := c.redirect
	if h == nil {
		return
	}
	orig := sip.Uri{Scheme: "sip", User: c.a.invite.Recipient.User, Host: b.local.Host}
	switch c.policy(s).routeOpts(c.route).redirect.diversion {
	case config.DiversionHeader:
		// The newest diversion comes first (RFC 5806 4): ahead of any the
		// caller's INVITE brought (rebuilt by topology's identity rules).
		v := topology.DiversionValue(orig.User, orig.Host, diversionReason(h.code))
		if v == "" { // a user part that is no safe token (topology/identity.go)
			return
		}
		old := inv.GetHeaders("Diversion")
		for inv.RemoveHeader("Diversion") {
		}
		inv.AppendHeader(sip.NewHeader("Diversion", v))
		for _, o := range old {
			inv.AppendHeader(o)
		}
	case config.DiversionHistoryInfo:
		if inv.GetHeader("History-Info") != nil {
			return // the caller's own entries crossed: ours would clash with their indices
		}
		to := inv.Recipient
		to.UriParams = sip.NewParams()
		to.UriParams.Add("cause", strconv.Itoa(h.code))
		inv.AppendHeader(sip.NewHeader("History-Info", "<"+orig.String()+">;index=1, <"+to.String()+">;index=1.1;mp=1"))
	}
}

// diversionReason is RFC 5806's reason for a 3xx: 302 Moved Temporarily
// is the usual call forwarding (unconditional); the rest say nothing more.
func diversionReason(code int) string {
	if code == sip.StatusMovedTemporarily {
		return "unconditional"
	}
	return "unknown"
}

// relayRedirect gives leg A the 3xx as it came (relay mode), each Contact
// rewritten to the SBC's own face in leg A's realm with the Contact's user
// and q: the caller's retry comes back through the SBC and its routes,
// and nothing of the far side's addresses crosses.
func (s *SBC) relayRedirect(c *Call, r *Realm, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	out := topology.BuildResponse(req, res.StatusCode, res.Reason, c.a.d.LocalTag, false, c.a.local, c.a.headerFilter(), res, nil, "")
	type cand struct {
		h *sip.ContactHeader
		q float64
	}
	var cands []cand
	for n, h := range res.GetHeaders("Contact") {
		ct, ok := h.(*sip.ContactHeader)
		if n >= maxRedirectContacts || !ok || !safeContactUser(ct.Address.User) {
			continue
		}
		u := c.a.local.Contact()
		u.User = ct.Address.User
		nh := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
		q := 1.0
		if v, ok := ct.Params.Get("q"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
				q = f
				nh.Params.Add("q", strconv.FormatFloat(f, 'f', -1, 64))
			}
		}
		cands = append(cands, cand{nh, q})
	}
	if len(cands) == 0 { // nothing the caller could retry toward
		s.reply(r, req, tx, sip.StatusBadGateway, "Bad Gateway", c.a.d.LocalTag)
		c.end("redirect_unusable", "")
		return
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].q > cands[b].q })
	for _, cd := range cands {
		out.AppendHeader(cd.h)
	}
	s.respond(r, tx, out)
	c.end("redirect_relayed", "")
}
