package sbc

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

// The guard is the SBC's protection policy, in two stages.
//
// Before parsing, in the transport read filter (screen): banned sources,
// the per-source token bucket on requests and scanner User-Agents. These
// are the cheap drops a flood must not get past; nothing is answered.
//
// After parsing, as an interceptor chain wrapped around the B2BUA's
// handlers (livekit's wrapHandler idea): ACL, digest auth, admission, each
// a small piece that either answers (403, 401, 503) or calls the next.
// Those answers go out statelessly (no retransmission) and, to a source
// that has not proved its address, never larger than its request.
type guard struct {
	b2bua   guarded
	metrics *Metrics
	cfg     config.Guard
	order   []string // realm names, in config order

	bans     *policy.Bans
	limiter  *policy.SourceLimiter // strangers (guard.sources)
	peerLim  *policy.SourceLimiter // known peers (guard.peer_limits)
	calls    *sourceCalls
	strikes  *policy.Strikes
	scanners *policy.Scanners
	adm      *policy.Admission
	verified *addrSet
	trusted  *policy.ACL
	realms   map[string]*realmGuard
	now      policy.Clock // Options.Clock: time.Now when nil

	// staticPeers is a realm's configured peers in the policy snapshot in
	// force (SBC.policy: routes reload live); set by the SBC.
	staticPeers func(realm string) []netip.Prefix

	// admissionKeys, when set, adds keys (a trunk's) to the realm's own
	// for each new call; see SBC.SetAdmissionKeys.
	keysMu        sync.RWMutex
	admissionKeys func(realm string, req *sip.Request) []string

	// Per-request values the interceptors hand to what they wrap
	// (sipgo_reqvalues.go): the wire length of a UDP request (rxLen) and
	// the user its digest answer proved (authenticate, for the registrar).
	rxLens   reqValue[int]
	authUser reqValue[string]

	rejected   *prometheus.CounterVec // by realm, reason
	offered    atomic.Uint64          // new INVITEs that reached admission (stats.go)
	shed       atomic.Uint64          // calls refused for load (stats.go)
	bansActive prometheus.Gauge
	bansTotal  *prometheus.CounterVec // by reason
}

// guarded is what the guard needs of the B2BUA it stands in front of
// (the SBC; a test may fake it).
type guarded interface {
	// respond sends a response through its server transaction.
	respond(r *Realm, tx sip.ServerTransaction, res *sip.Response)
	// startedCall is the call whose leg A has this Call-ID, if any.
	startedCall(callID string) (admittedCall, bool)
}

// admittedCall is what admission needs of a call it let in.
type admittedCall interface {
	Answered() bool
	OnEnd(func())
}

type realmGuard struct {
	acl          *policy.ACL
	aclDrop      bool
	auth         *policy.Digest
	authMethods  map[sip.RequestMethod]bool
	registrar    *registrar
	peers        *realmPeers // guard_classify.go
	admissionKey string
	retryAfter   time.Duration
}

func newGuard(cfg *config.Config, b2bua guarded, m *Metrics, log *slog.Logger) *guard {
	gc, realms := cfg.Guard, cfg.Realms
	g := &guard{
		b2bua: b2bua, metrics: m, cfg: gc,
		staticPeers: func(string) []netip.Prefix { return nil },
		bans:        policy.NewBans(gc.Bans.Max),
		limiter:     policy.NewSourceLimiter(gc.Sources.Rate, gc.Sources.Burst, gc.Sources.MaxSources),
		peerLim:     policy.NewSourceLimiter(gc.PeerLimits.Rate, gc.PeerLimits.Burst, gc.Sources.MaxSources),
		calls:       newSourceCalls(gc.Sources.MaxSources),
		strikes:     policy.NewStrikes(gc.Bans.Window.Std(), gc.Sources.MaxSources),
		scanners:    policy.NewScanners(gc.Scanners()),
		adm:         policy.NewAdmission(),
		verified:    newAddrSet(gc.Sources.MaxSources, time.Hour),
		realms:      map[string]*realmGuard{},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_policy_rejected_total", Help: "Requests refused or dropped by policy, by realm and reason.",
		}, []string{"realm", "reason"}),
		bansActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sbc_bans_active", Help: "Sources banned now.",
		}),
		bansTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_bans_total", Help: "Bans imposed, by reason.",
		}, []string{"reason"}),
	}
	var trusted []netip.Prefix
	for _, c := range gc.Trusted {
		n, _ := config.ParseCIDR(c) // validated at load
		trusted = append(trusted, n)
	}
	if len(trusted) > 0 {
		g.trusted = policy.NewACL(trusted)
	}
	g.bans.OnChange = func(b policy.Ban, added bool) {
		if added {
			g.bansActive.Inc()
			g.bansTotal.WithLabelValues(b.Reason).Inc()
			log.Info("source banned", "addr", b.Addr, "reason", b.Reason, "until", b.Until.Format(time.RFC3339))
		} else {
			g.bansActive.Dec()
		}
	}
	m.Registry.MustRegister(g.rejected, g.bansActive, g.bansTotal, admissionCollector{g.adm})
	for _, rc := range realms {
		g.order = append(g.order, rc.Name)
		rg := &realmGuard{}
		if p := gc.RealmPolicy(rc.Name); p != nil {
			if p.ACL != nil {
				var nets []netip.Prefix
				for _, c := range p.ACL.Allow {
					n, _ := config.ParseCIDR(c) // validated at load
					nets = append(nets, n)
				}
				rg.acl, rg.aclDrop = policy.NewACL(nets), p.ACL.Action == "drop"
			}
			if a := p.Auth; a != nil {
				users := map[string]string{}
				for _, u := range a.Users {
					users[u.Name] = u.Password
				}
				realm := a.Realm
				if realm == "" {
					realm = rc.AdvertiseAddr()
				}
				rg.auth = policy.NewDigest(realm, a.Algorithms, users, a.NonceTTL.Std())
				rg.authMethods = map[sip.RequestMethod]bool{}
				for _, m := range a.Methods {
					rg.authMethods[sip.RequestMethod(m)] = true
				}
			}
			if p.Registrar != nil {
				rg.registrar = newRegistrar(*p.Registrar)
			}
			if a := p.Admission; a != nil {
				rg.admissionKey = "realm:" + rc.Name
				rg.retryAfter = a.RetryAfter.Std()
				g.adm.Configure(rg.admissionKey, policy.AdmissionLimits{MaxCalls: a.MaxCalls, MaxCPS: a.MaxCPS, RetryAfter: rg.retryAfter})
			}
		}
		name := rc.Name
		rg.peers = newRealmPeers(name, cfg, rg, func() []netip.Prefix { return g.staticPeers(name) })
		g.realms[rc.Name] = rg
	}
	return g
}

// sweep expires bans, bindings and idle counters once a second until ctx
// ends.
func (g *guard) sweep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case tick := <-t.C:
			now := g.now.Now() // the limiters' clock, a test's fake one
			g.bans.Expire(now)
			g.limiter.Sweep(now)
			g.peerLim.Sweep(now)
			g.strikes.Sweep(now)
			g.verified.sweep(now)
			for _, rg := range g.realms {
				if rg.registrar != nil {
					rg.registrar.loc.Expire(tick) // the registrar reads time.Now
				}
			}
		}
	}
}

// ban bans src for the configured time.
func (g *guard) ban(src netip.Addr, reason string) {
	g.bans.Ban(src, g.cfg.Bans.Duration.Std(), reason, g.now.Now())
}

// strike records a bad event and bans src at the kind's threshold.
func (g *guard) strike(src netip.Addr, kind string, threshold int) {
	if g.strikes.Add(src, kind, threshold, g.now.Now()) {
		g.ban(src, kind)
	}
}

func (g *guard) reject(realm, reason string) {
	g.rejected.WithLabelValues(realm, reason).Inc()
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// screen runs in the read filter on every datagram (UDP) or chunk (TCP)
// before sipgo parses it, and says whether to drop it. Drops are silent
// and counted.
func (g *guard) screen(r *Realm, p sip.TransportReadProps, data []byte) bool {
	src := addrOf(p.RemoteAddr)
	now := g.now.Now()
	if g.bans.Banned(src, now) {
		g.reject(r.Name, "banned")
		return true
	}
	if p.Transport != "UDP" || len(data) == 0 || data[0] == '\r' || data[0] == '\n' || bytes.HasPrefix(data, []byte("SIP/")) {
		return false // TCP is a stream, not messages (limited per request in classify); responses and keepalives pass
	}
	peer := g.peer(r, src, now)
	if !g.allow(r, src, peer, now) || g.scanner(r, src, peer, data) {
		return true
	}
	return !peer && g.screenStranger(r, src, data, now)
}

// allow takes a token from src's bucket: a peer's (over it: dropped,
// never banned, since a spoofed flood must not cut the trunk) or a
// stranger's (over it often enough: banned).
func (g *guard) allow(r *Realm, src netip.Addr, peer bool, now time.Time) bool {
	if peer {
		if g.peerLim.Allow(src, now) {
			return true
		}
		g.reject(r.Name, "peer_rate")
		return false
	}
	if g.limiter.Allow(src, now) {
		return true
	}
	g.reject(r.Name, "rate")
	g.strike(src, "rate", g.cfg.Bans.RateExcess)
	return false
}

// scanner drops a request from a scanner User-Agent and bans a stranger
// that sent it.
func (g *guard) scanner(r *Realm, src netip.Addr, peer bool, data []byte) bool {
	if !g.scanners.Match(data) {
		return false
	}
	g.reject(r.Name, "scanner")
	if !peer {
		g.ban(src, "scanner")
	}
	return true
}

// malformed counts a malformed message against its source (strangers
// only: a peer's broken stack is logged and counted, not banned).
func (g *guard) malformed(r *Realm, p sip.TransportReadProps) {
	src := addrOf(p.RemoteAddr)
	if !g.peer(r, src, g.now.Now()) {
		g.strike(src, "malformed", g.cfg.Bans.Malformed)
	}
}

// challengeFactor bounds a digest challenge to a source that has not
// proved its address: at most three times its request, QUIC's
// anti-amplification limit (RFC 9000 8.1). One challenge outgrows a
// terse REGISTER (~330 bytes), and a phone that cannot get one can never
// register; the stranger's token bucket bounds how many a spoofer
// reflects.
const challengeFactor = 3

// mayAnswer says whether a response of resLen bytes may go to src for a
// request of reqLen bytes: always to a source that proved its address,
// otherwise only when it is not larger than factor times the request (1
// for every answer but a challenge: no amplification).
func (g *guard) mayAnswer(src netip.Addr, reqLen, resLen, factor int) bool {
	return resLen <= factor*reqLen || g.known(src)
}

// amplification is the factor an answer of status may have over its
// request to an unproven source.
func amplification(status int) int {
	if status == sip.StatusUnauthorized || status == sip.StatusProxyAuthRequired {
		return challengeFactor
	}
	return 1
}

// known is a source that proved its address or that the operator trusts.
func (g *guard) known(src netip.Addr) bool {
	return g.trusted != nil && g.trusted.Allows(src) || g.verified.has(src, g.now.Now())
}

// handler is a B2BUA request handler; an interceptor wraps one.
type handler func(*Realm, *sip.Request, sip.ServerTransaction)

// chain wraps h in the guard's interceptors, outermost first.
func (g *guard) chain(h handler) handler {
	for _, ic := range []func(handler) handler{g.admission, g.authenticate, g.aclCheck, g.classify} {
		h = ic(h)
	}
	return g.rxLen(h)
}

func sourceOf(req *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// newRequest is an out-of-dialog INVITE or REGISTER, what an ACL guards.
func newRequest(req *sip.Request) bool {
	return toTag(req) == "" && (req.Method == sip.INVITE || req.Method == sip.REGISTER)
}

// aclCheck refuses INVITE and REGISTER from sources outside the realm's
// ACL: 403, or nothing when the realm says drop.
func (g *guard) aclCheck(next handler) handler {
	return func(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
		rg := g.realms[r.Name]
		if rg.acl == nil || !newRequest(req) || rg.acl.Allows(sourceOf(req).Addr()) {
			next(r, req, tx)
			return
		}
		g.reject(r.Name, "acl")
		if rg.aclDrop {
			return
		}
		g.answer(r, req, tx, sip.StatusForbidden, "Forbidden")
	}
}

// authenticate challenges the realm's configured methods (new requests
// only) and checks the answers; repeated failures ban the source.
func (g *guard) authenticate(next handler) handler {
	return func(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
		rg := g.realms[r.Name]
		if rg.auth == nil || !rg.authMethods[req.Method] || toTag(req) != "" {
			next(r, req, tx)
			return
		}
		src := sourceOf(req).Addr()
		now := g.now.Now()
		// REGISTER is answered by its realm's registrar (401); other
		// requests as a proxy would be (407), RFC 3261 22.3.
		hdrIn, hdrOut, code, reason := "Authorization", "WWW-Authenticate", sip.StatusUnauthorized, "Unauthorized"
		if req.Method != sip.REGISTER {
			hdrIn, hdrOut, code, reason = "Proxy-Authorization", "Proxy-Authenticate", sip.StatusProxyAuthRequired, "Proxy Authentication Required"
		}
		stale := false
		for _, h := range req.GetHeaders(hdrIn) {
			user, err := rg.auth.Verify(h.Value(), string(req.Method), src, now)
			switch {
			case err == nil:
				g.verified.add(src, now)
				g.authUser.with(req, user, func() { next(r, req, tx) })
				return
			case err == policy.ErrStaleNonce:
				stale = true
			case err == policy.ErrNoCredentials:
			default:
				g.reject(r.Name, "auth_failed")
				g.strike(src, "auth", g.cfg.Bans.AuthFailures)
				g.answer(r, req, tx, sip.StatusForbidden, "Forbidden")
				return
			}
		}
		g.reject(r.Name, "auth_challenge")
		var extra []sip.Header
		for _, c := range rg.auth.Challenges(src, now, stale) {
			extra = append(extra, sip.NewHeader(hdrOut, c))
		}
		// One challenge per algorithm (RFC 8760), but to a source not yet
		// known, only as many as keep the answer no larger than the request.
		for n := len(extra); n > 1; n-- {
			if g.answerFits(r, req, code, reason, extra[:n]...) {
				extra = extra[:n]
				break
			}
			extra = extra[:n-1]
		}
		g.answer(r, req, tx, code, reason, extra...)
	}
}

// admission admits new INVITEs under the realm's key (and any trunk keys)
// or answers 503 with Retry-After. The ticket is held until the call ends.
func (g *guard) admission(next handler) handler {
	return func(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
		if req.Method != sip.INVITE || toTag(req) != "" {
			next(r, req, tx)
			return
		}
		rg := g.realms[r.Name]
		var keys []string
		if rg.admissionKey != "" {
			keys = append(keys, rg.admissionKey)
		}
		g.keysMu.RLock()
		if f := g.admissionKeys; f != nil {
			keys = append(keys, f(r.Name, req)...)
		}
		g.keysMu.RUnlock()
		g.offered.Add(1)
		src := sourceOf(req).Addr()
		cid := req.CallID().Value()
		before, _ := g.b2bua.startedCall(cid)
		now := g.now.Now()
		limit := g.cfg.Sources.MaxCalls
		if g.peer(r, src, now) {
			limit = g.cfg.PeerLimits.MaxCalls
		}
		release, ok := g.calls.acquire(src, limit)
		if !ok {
			g.reject(r.Name, "source_calls")
			g.answer(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(5*time.Second))
			return
		}
		var t *policy.Ticket
		var rej *policy.Rejection
		if len(keys) > 0 {
			t, rej = g.adm.Admit(now, keys...)
		}
		if rej != nil {
			release()
			g.reject(r.Name, "admission_"+rej.Reason)
			g.shed.Add(1)
			g.answer(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", retryAfter(rej.RetryAfter))
			return
		}
		next(r, req, tx)
		c, ok := g.b2bua.startedCall(cid)
		if !ok || c == before { // no call of this INVITE's (refused, merged)
			t.Release()
			release()
			return
		}
		c.OnEnd(release)
		if c.Answered() {
			// The caller got our 2xx and ACKed (or the call went on):
			// its address is real.
			g.verified.add(src, g.now.Now())
		}
		if t != nil {
			c.OnEnd(t.Release)
		}
	}
}

// answer sends a policy answer (403, 401/407, 503) statelessly over UDP:
// straight to the packet's source, not retransmitted, and to an
// unverified source only when no larger than its request. Over TCP it
// goes through the transaction.
func (g *guard) answer(r *Realm, req *sip.Request, tx sip.ServerTransaction, status int, reason string, extra ...sip.Header) {
	res := buildLocalResponse(r, req, status, reason, newTag())
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if !strings.EqualFold(req.Transport(), "UDP") || r.udp == nil {
		g.b2bua.respond(r, tx, res)
		return
	}
	src := sourceOf(req)
	b := []byte(res.String())
	if !g.mayAnswer(src.Addr(), g.rxLenOf(req), len(b), amplification(status)) {
		g.reject(r.Name, "amplification")
		return
	}
	if _, err := r.udp.WriteToUDPAddrPort(b, src); err == nil {
		g.metrics.resOut(r.Name, status)
	}
}

// reply answers a request through its transaction (the registrar's
// answers).
func (g *guard) reply(r *Realm, req *sip.Request, tx sip.ServerTransaction, status int, reason string, extra ...sip.Header) {
	res := buildLocalResponse(r, req, status, reason, newTag())
	for _, h := range extra {
		res.AppendHeader(h)
	}
	g.b2bua.respond(r, tx, res)
}

// answerFits says whether answer would send this response.
func (g *guard) answerFits(r *Realm, req *sip.Request, status int, reason string, extra ...sip.Header) bool {
	if !strings.EqualFold(req.Transport(), "UDP") {
		return true
	}
	res := buildLocalResponse(r, req, status, reason, "0123456789abcdef")
	for _, h := range extra {
		res.AppendHeader(h)
	}
	return g.mayAnswer(sourceOf(req).Addr(), g.rxLenOf(req), len(res.String()), amplification(status))
}

// addrSet is a bounded set of addresses with expiry: the sources that
// proved their address (a digest answer to our nonce, an ACKed 2xx).
type addrSet struct {
	mu  sync.RWMutex
	m   map[netip.Addr]time.Time
	max int
	ttl time.Duration
}

func newAddrSet(max int, ttl time.Duration) *addrSet {
	return &addrSet{m: map[netip.Addr]time.Time{}, max: max, ttl: ttl}
}

func (s *addrSet) add(a netip.Addr, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[a]; ok || len(s.m) < s.max {
		s.m[a] = now.Add(s.ttl)
	}
}

func (s *addrSet) has(a netip.Addr, now time.Time) bool {
	s.mu.RLock()
	exp, ok := s.m[a]
	s.mu.RUnlock()
	return ok && now.Before(exp)
}

func (s *addrSet) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, exp := range s.m {
		if !now.Before(exp) {
			delete(s.m, a)
		}
	}
}

// admissionCollector exports each admission key's load and limits.
type admissionCollector struct{ a *policy.Admission }

var (
	admActiveDesc = prometheus.NewDesc("sbc_admission_calls_active", "Calls admitted and not yet ended, by admission key.", []string{"key"}, nil)
	admMaxDesc    = prometheus.NewDesc("sbc_admission_max_calls", "Concurrent call limit by admission key (0: none).", []string{"key"}, nil)
	admCPSDesc    = prometheus.NewDesc("sbc_admission_max_cps", "New calls per second limit by admission key (0: none).", []string{"key"}, nil)
)

func (c admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- admActiveDesc
	ch <- admMaxDesc
	ch <- admCPSDesc
}

func (c admissionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.a.State() {
		ch <- prometheus.MustNewConstMetric(admActiveDesc, prometheus.GaugeValue, float64(st.Active), st.Key)
		ch <- prometheus.MustNewConstMetric(admMaxDesc, prometheus.GaugeValue, float64(st.MaxCalls), st.Key)
		ch <- prometheus.MustNewConstMetric(admCPSDesc, prometheus.GaugeValue, st.MaxCPS, st.Key)
	}
}

// Bans is the SBC's ban list.
func (s *SBC) Bans() policy.BanList { return s.guard.bans }

// MirrorBans sends every ban and unban to m as well (the bpf package's
// XDP ban map, which drops banned sources before user space); the bans in
// force are replayed into it.
func (s *SBC) MirrorBans(m policy.BanMirror) { s.guard.bans.SetMirror(m) }

// Admission is the SBC's call admission control. Realms with an admission
// policy are configured under "realm:NAME"; trunks configure their own
// keys ("trunk:NAME") and name them per call with SetAdmissionKeys.
func (s *SBC) Admission() *policy.Admission { return s.guard.adm }

// SetAdmissionKeys adds, for each new INVITE arriving in a realm, the
// admission keys f returns (a trunk's) to the realm's own. A call is
// admitted under all of them or refused with 503.
func (s *SBC) SetAdmissionKeys(f func(realm string, req *sip.Request) []string) {
	s.guard.keysMu.Lock()
	s.guard.admissionKeys = f
	s.guard.keysMu.Unlock()
}
