package sbc

// Session timers (RFC 4028), per leg: the SBC is the UAS of leg A's INVITE
// and the UAC of leg B's, and of every refresh it relays or sends, so each
// leg has its own interval and refresher. The SBC refreshes a leg where it
// is the refresher (UPDATE without SDP where the peer allows UPDATE, else a
// re-INVITE with the SBC's last SDP for that leg, unchanged), and ends the
// call where a refresh it expects does not come. One timer per call serves
// both legs; the call's OnEnd stops it.

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
)

// reasonSessionExpired is the Reason on the BYEs of a call whose session
// timer ran out (Q.850 102: recovery on timer expiry).
const reasonSessionExpired = `Q.850;cause=102;text="session timer expired"`

// sessionSecond is how long one second of Session-Expires lasts on the
// clock: a second, except in tests, which shrink it so that RFC-legal
// intervals (90 s and more) run in a fraction of that.
var sessionSecond atomic.Int64

func init() { sessionSecond.Store(int64(time.Second)) }

func seconds(n uint32) time.Duration { return time.Duration(n) * time.Duration(sessionSecond.Load()) }

// maxDeltaSeconds bounds a delta-seconds value: RFC 4028 allows 2^32-1.
const maxDeltaSeconds = 1<<32 - 1

var (
	errBadSessionExpires = errors.New("malformed Session-Expires")
	errBadMinSE          = errors.New("malformed Min-SE")
)

// seHeaders is what one message says about the session timer.
type seHeaders struct {
	present   bool   // a Session-Expires header
	interval  uint32 // its delta-seconds
	refresher string // "uac", "uas" or "" (none given)
	minSE     uint32 // Min-SE, 0 when absent
	supported bool   // "timer" in Supported or Require
	allow     bool   // an Allow header
	update    bool   // UPDATE in it
}

// parseSE reads the session timer headers of m; an error names the header
// that is not RFC 4028 syntax (the request gets 400).
func parseSE(m sip.Message) (seHeaders, error) {
	var h seHeaders
	se := append(m.GetHeaders("Session-Expires"), m.GetHeaders("x")...)
	if len(se) > 1 {
		return h, errBadSessionExpires
	}
	if len(se) == 1 {
		v, params, _ := strings.Cut(se[0].Value(), ";")
		n, ok := deltaSeconds(v)
		if !ok {
			return h, errBadSessionExpires
		}
		h.present, h.interval = true, n
		for _, p := range strings.Split(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if !strings.EqualFold(strings.TrimSpace(k), "refresher") {
				continue
			}
			switch val = strings.ToLower(strings.TrimSpace(val)); val {
			case "uac", "uas":
				h.refresher = val
			default:
				return h, errBadSessionExpires
			}
		}
	}
	ms := m.GetHeaders("Min-SE")
	if len(ms) > 1 {
		return h, errBadMinSE
	}
	if len(ms) == 1 {
		v, _, _ := strings.Cut(ms[0].Value(), ";")
		n, ok := deltaSeconds(v)
		if !ok {
			return h, errBadMinSE
		}
		h.minSE = n
	}
	h.supported = hasOptionTag(m, "Supported", "timer") || hasOptionTag(m, "k", "timer") || hasOptionTag(m, "Require", "timer")
	if al := m.GetHeaders("Allow"); len(al) > 0 {
		h.allow = true
		h.update = hasOptionTag(m, "Allow", "UPDATE")
	}
	return h, nil
}

// deltaSeconds parses 1*DIGIT (RFC 4028 4), bounded.
func deltaSeconds(v string) (uint32, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 10 {
		return 0, false
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return 0, false
	}
	return uint32(n), true
}

func hasOptionTag(m sip.Message, header, tag string) bool {
	for _, h := range m.GetHeaders(header) {
		for _, t := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(t), tag) {
				return true
			}
		}
	}
	return false
}

// legTimer is one leg's negotiated session timer.
type legTimer struct {
	interval  uint32 // seconds; 0: no session timer on this leg
	minSE     uint32 // the largest Min-SE this leg has seen
	refresher bool   // the SBC refreshes this leg (else the peer does)
	peerOK    bool   // the peer supports timer (may be told to refresh)
	update    bool   // the peer allows UPDATE
	sdp       []byte // the SBC's last SDP sent on this leg
	due       time.Time
	expire    bool // due means the end of the session (else a refresh)
	since     time.Time
}

// sessionTimers is a call's session timer state. Its mu is its own: it
// is never held while c.mu is taken, nor across sending.
type sessionTimers struct {
	mu      sync.Mutex
	legs    [2]legTimer
	t       *time.Timer
	armed   bool // OnEnd registered
	stopped bool
}

// timerCfg is realm r's policy in seconds.
func timerCfg(r *Realm) (expires, minSE uint32) {
	st := r.cfg.SessionTimer
	return uint32(st.ExpiresOrDefault() / time.Second), uint32(max(st.MinSE.Std(), config.MinSessionExpires) / time.Second)
}

// checkSE answers a request (INVITE, re-INVITE or UPDATE) that arrived in
// r whose session timer headers are malformed (400) or ask for less than
// the realm's Min-SE (422 with it, RFC 4028 8.1); true when it answered.
func (s *SBC) checkSE(r *Realm, req *sip.Request, tx sip.ServerTransaction, localTag string) bool {
	h, err := parseSE(req)
	if err != nil {
		s.metrics.SessionTimers.WithLabelValues(r.Name, "malformed").Inc()
		s.reply(r, req, tx, sip.StatusBadRequest, "Bad Request ("+err.Error()+")", localTag)
		return true
	}
	_, min := timerCfg(r)
	min = max(min, h.minSE)
	if h.present && h.interval < min {
		s.metrics.SessionTimers.WithLabelValues(r.Name, "too_small").Inc()
		s.reply(r, req, tx, 422, "Session Interval Too Small", localTag, sip.NewHeader("Min-SE", strconv.FormatUint(uint64(min), 10)))
		return true
	}
	return false
}

// negotiateUAS is the timer a leg gets when the SBC answers 2xx to its
// peer's request req (RFC 4028 9): the interval asked for, capped at the
// realm's expires (never below Min-SE), or the realm's default where none
// was asked; the refresher asked for, else the peer when it supports
// timer, else the SBC.
func negotiateUAS(r *Realm, req *sip.Request, prev legTimer) legTimer {
	h, _ := parseSE(req) // checkSE has refused what does not parse
	expires, min := timerCfg(r)
	min = max(min, h.minSE)
	lt := legTimer{minSE: min, peerOK: h.supported, update: prev.update, sdp: prev.sdp}
	if h.allow {
		lt.update = h.update
	}
	switch {
	case h.present:
		lt.interval = h.interval
		if expires > 0 && lt.interval > expires {
			lt.interval = max(expires, min)
		}
	case expires > 0:
		lt.interval = max(expires, min)
	default:
		return lt
	}
	switch h.refresher {
	case "uac":
		lt.refresher = !h.supported // a peer that cannot refresh is not made to
	case "uas":
		lt.refresher = true
	default:
		lt.refresher = !h.supported
	}
	return lt
}

// applyUAC is the timer a leg has after the 2xx res to a request the SBC
// sent on it (RFC 4028 7.2): what the 2xx says, or, where it says
// nothing, the SBC refreshes at the interval it asked for, so a peer
// without timers still cannot keep a dead call up.
func applyUAC(r *Realm, res *sip.Response, asked uint32, prev legTimer) (legTimer, error) {
	h, err := parseSE(res)
	lt := legTimer{minSE: prev.minSE, peerOK: prev.peerOK, update: prev.update, sdp: prev.sdp}
	if err == nil && h.allow {
		lt.update = h.update
	}
	if err == nil && h.present && h.interval > 0 {
		lt.interval, lt.peerOK = h.interval, true
		lt.refresher = h.refresher != "uas" // uac (us) or none given
		return lt, nil
	}
	lt.interval, lt.refresher = asked, true
	return lt, err
}

// uacHeaders puts the session timer headers of leg side on a request the
// SBC sends on it (its own, never the other leg's; sessiontimer.go is the
// one owner of the timer tag, capabilities.go): Supported: timer, and
// Session-Expires and Min-SE when the leg has an interval.
func uacHeaders(req *sip.Request, lt legTimer) {
	stripTimerHeaders(req)
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if lt.interval == 0 {
		if lt.minSE > 0 {
			req.AppendHeader(sip.NewHeader("Min-SE", strconv.FormatUint(uint64(lt.minSE), 10)))
		}
		return
	}
	v := strconv.FormatUint(uint64(lt.interval), 10)
	if lt.due != (time.Time{}) || lt.since != (time.Time{}) { // a refresh: the roles are settled
		if lt.refresher {
			v += ";refresher=uac"
		} else {
			v += ";refresher=uas"
		}
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", v))
	if lt.minSE > 0 {
		req.AppendHeader(sip.NewHeader("Min-SE", strconv.FormatUint(uint64(lt.minSE), 10)))
	}
}

// uasHeaders puts the leg's negotiated timer on the SBC's 2xx to its
// peer's request (RFC 4028 9: Require: timer when the peer refreshes).
func uasHeaders(res *sip.Response, lt legTimer) {
	stripTimerHeaders(res)
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	if lt.interval == 0 {
		return
	}
	ref := "uac"
	if lt.refresher {
		ref = "uas"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", strconv.FormatUint(uint64(lt.interval), 10)+";refresher="+ref))
	if lt.peerOK {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// stripTimerHeaders drops the other leg's Session-Expires and Min-SE, and
// "timer" from its Supported and Require: the timer is per leg.
func stripTimerHeaders(m topology.Editable) {
	var keep, all []sip.Header
	changed := false
	for _, h := range m.Headers() {
		n := strings.ToLower(h.Name())
		switch n {
		case "session-expires", "x", "min-se":
			all = append(all, h)
			changed = true
			continue
		case "supported", "k", "require":
			all = append(all, h)
			var tags []string
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" && !strings.EqualFold(t, "timer") {
					tags = append(tags, t)
				}
			}
			if len(tags) > 0 {
				keep = append(keep, sip.NewHeader(h.Name(), strings.Join(tags, ", ")))
			}
			changed = true
		}
	}
	if !changed {
		return
	}
	for _, h := range all {
		m.RemoveHeader(h.Name())
	}
	for _, h := range keep {
		m.AppendHeader(h)
	}
}

// leg is side's timer, a copy.
func (st *sessionTimers) leg(side Side) legTimer {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.legs[side]
}

// sentSDP keeps the SDP the SBC sent on a leg: a refreshing re-INVITE
// carries it again, unchanged, so the media is untouched.
func (st *sessionTimers) sentSDP(side Side, body []byte) {
	if len(body) == 0 {
		return
	}
	st.mu.Lock()
	st.legs[side].sdp = body
	st.mu.Unlock()
}

// set gives a leg its negotiated timer and starts it over: the refresh is
// due at half the interval (RFC 4028 10), or, where the peer refreshes,
// the session ends at the interval minus the lesser of 32 s and a third.
func (s *SBC) setTimer(c *Call, side Side, lt legTimer) {
	st := &c.st
	st.mu.Lock()
	if !st.armed {
		st.armed = true
		st.mu.Unlock()
		c.OnEnd(st.stop) // at once when the call has ended already
		st.mu.Lock()
	}
	if st.legs[side].sdp != nil && lt.sdp == nil {
		lt.sdp = st.legs[side].sdp
	}
	now := time.Now()
	lt.since, lt.due, lt.expire = now, time.Time{}, false
	switch {
	case lt.interval == 0:
	case lt.refresher:
		lt.due = now.Add(seconds(lt.interval) / 2)
	default:
		lt.due, lt.expire = now.Add(expiryAfter(lt.interval)), true
	}
	st.legs[side] = lt
	st.rescheduleLocked(func() { s.timerFired(c) })
	st.mu.Unlock()
}

// expiryAfter is when, after a refresh, the side that does not refresh
// ends the session (RFC 4028 10: before it expires, by the lesser of 32 s
// and a third of the interval).
func expiryAfter(interval uint32) time.Duration {
	return seconds(interval - min(32, interval/3))
}

// rescheduleLocked sets the call's one timer to the earlier leg's due.
func (st *sessionTimers) rescheduleLocked(fire func()) {
	if st.stopped {
		return
	}
	var next time.Time
	for _, l := range st.legs {
		if !l.due.IsZero() && (next.IsZero() || l.due.Before(next)) {
			next = l.due
		}
	}
	if next.IsZero() {
		if st.t != nil {
			st.t.Stop()
		}
		return
	}
	d := time.Until(next)
	if st.t == nil {
		st.t = time.AfterFunc(d, fire)
		return
	}
	st.t.Reset(d)
}

func (st *sessionTimers) stop() {
	st.mu.Lock()
	st.stopped = true
	if st.t != nil {
		st.t.Stop()
	}
	st.mu.Unlock()
}

// timerFired runs what is due: a leg whose session ran out ends the call;
// a leg the SBC refreshes gets its refresh, and until that succeeds its
// session runs to its expiry.
func (s *SBC) timerFired(c *Call) {
	st := &c.st
	now := time.Now()
	var refresh []Side
	expired := false
	st.mu.Lock()
	for side := range st.legs {
		l := &st.legs[side]
		if l.due.IsZero() || now.Before(l.due) {
			continue
		}
		if l.expire {
			expired = true
			l.due = time.Time{}
			continue
		}
		refresh = append(refresh, Side(side))
		l.due, l.expire = l.since.Add(expiryAfter(l.interval)), true
	}
	st.rescheduleLocked(func() { s.timerFired(c) })
	st.mu.Unlock()
	if expired {
		if c.State() != StateEnded {
			c.a.realm.log.Info("session timer expired, ending call", "call", c.ID)
			s.metrics.SessionTimers.WithLabelValues(c.a.realm.Name, "expired").Inc()
		}
		s.hangup(c, "session_expired", nil, reasonSessionExpired)
		return
	}
	for _, side := range refresh {
		s.refreshLeg(c, side)
	}
}

// refreshLeg sends the SBC's refresh on a leg: UPDATE without SDP where
// the peer allows UPDATE, else a re-INVITE with the SBC's last SDP for
// the leg (same o= version: no new offer for the media). A 422 is tried
// once more with the Min-SE it gives; a 481, 408 or silence ends the call
// (the dialog is gone); any other failure leaves the session to expire.
func (s *SBC) refreshLeg(c *Call, side Side) {
	lt := c.st.leg(side)
	method := sip.UPDATE
	if !lt.update && len(lt.sdp) > 0 {
		method = sip.INVITE // without an SDP of ours a re-INVITE would be a new offer
	}
	c.mu.Lock()
	l := c.leg(side)
	if c.state != StateConfirmed || l == nil {
		c.mu.Unlock()
		return
	}
	if method == sip.INVITE {
		if c.inviteBusy { // an offer is under way: it refreshes, or try soon
			c.mu.Unlock()
			s.retryRefreshSoon(c, side)
			return
		}
		c.beginOfferLocked()
	}
	c.mu.Unlock()
	if method == sip.INVITE {
		defer c.finishOffer()
	}
	r := l.realm
	for try := 0; try < 2; try++ {
		seq, d := c.nextCSeq(l)
		var body []byte
		if method == sip.INVITE {
			body = lt.sdp
		}
		req := topology.BuildRequest(method, d, seq, 70, l.local, nil, nil, body, "application/sdp")
		uacHeaders(req, lt)
		s.metrics.SessionTimers.WithLabelValues(r.Name, "refresh_sent").Inc()
		res := s.transact(r, req)
		switch {
		case res == nil || res.StatusCode == sip.StatusCallTransactionDoesNotExists || res.StatusCode == sip.StatusRequestTimeout:
			s.metrics.SessionTimers.WithLabelValues(r.Name, "refresh_failed").Inc()
			r.log.Info("session refresh failed, ending call", "call", c.ID, "method", method, "status", statusOf(res))
			s.hangup(c, "session_refresh_failed", nil, reasonSessionExpired)
			return
		case res.IsSuccess():
			if method == sip.INVITE {
				s.ackLeg(c, l, seq, nil)
			}
			next, err := applyUAC(r, res, lt.interval, lt)
			if err != nil {
				s.metrics.SessionTimers.WithLabelValues(r.Name, "malformed_response").Inc()
			}
			if u, ok := contactURI(res); ok {
				c.mu.Lock()
				l.d.Target = u
				c.mu.Unlock()
			}
			s.setTimer(c, side, next)
			s.changed(c)
			return
		case res.StatusCode == 422 && try == 0:
			h, err := parseSE(res)
			if err != nil || h.minSE <= lt.interval {
				break
			}
			lt.interval, lt.minSE = h.minSE, h.minSE
			continue
		}
		s.metrics.SessionTimers.WithLabelValues(r.Name, "refresh_failed").Inc()
		r.log.Info("session refresh refused", "call", c.ID, "method", method, "status", res.StatusCode)
		return
	}
}

// retryRefreshSoon puts a leg's refresh a second (scaled) ahead, while
// that is still before the session expires.
func (s *SBC) retryRefreshSoon(c *Call, side Side) {
	st := &c.st
	st.mu.Lock()
	l := &st.legs[side]
	if soon := time.Now().Add(seconds(1)); l.expire && soon.Before(l.due) {
		l.due, l.expire = soon, false
	}
	st.rescheduleLocked(func() { s.timerFired(c) })
	st.mu.Unlock()
}

// inviteTimer puts leg B's session timer headers on its INVITE: the
// realm's interval and Min-SE (RFC 4028 7.1), no refresher (the callee
// picks one).
func (s *SBC) inviteTimer(c *Call, b *Leg, inv *sip.Request) {
	expires, min := timerCfg(b.realm)
	uacHeaders(inv, legTimer{interval: expires, minSE: min})
	if isSDP(inv) {
		c.st.sentSDP(SideB, inv.Body())
	}
}

// retry422 re-sends leg B's INVITE after a 422 with the interval its
// Min-SE asks for (RFC 4028 7.4: same Call-ID, CSeq + 1); false when the
// 422 gives nothing larger to try, so it fails as it is.
func (s *SBC) retry422(c *Call, out *Realm, b *Leg, inv *sip.Request, res *sip.Response) (*sip.Request, sip.ClientTransaction, bool) {
	h, err := parseSE(res)
	asked, _ := parseSE(inv)
	if err != nil || h.minSE == 0 || h.minSE <= asked.interval {
		s.metrics.SessionTimers.WithLabelValues(out.Name, "malformed_response").Inc()
		return nil, nil, false
	}
	next := inv.Clone()
	next.RemoveHeader("Via")
	next.PrependHeader(newVia(b.local))
	next.CSeq().SeqNo++
	uacHeaders(next, legTimer{interval: h.minSE, minSE: h.minSE})
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return nil, nil, false
	}
	b.invite = next
	b.cseq = next.CSeq().SeqNo
	c.mu.Unlock()
	tx, err := out.request(s.ctx, next)
	if err != nil {
		out.log.Info("INVITE after 422 not sent", "call", c.ID, "error", err)
		return nil, nil, false
	}
	s.metrics.reqOut(out.Name, "INVITE")
	s.metrics.SessionTimers.WithLabelValues(out.Name, "retry_422").Inc()
	return next, tx, true
}

// confirmTimers starts both legs' timers as the call's 2xx goes to leg A:
// leg B's from its 2xx res, leg A's negotiated from its INVITE req and put
// on out, the 2xx leg A gets.
func (s *SBC) confirmTimers(c *Call, req *sip.Request, res, out *sip.Response) {
	c.mu.Lock()
	a, b := c.a, c.b
	c.mu.Unlock()
	asked, _ := parseSE(b.invite)
	lb, err := applyUAC(b.realm, res, asked.interval, c.st.leg(SideB))
	if err != nil {
		s.metrics.SessionTimers.WithLabelValues(b.realm.Name, "malformed_response").Inc()
	}
	la := negotiateUAS(a.realm, req, c.st.leg(SideA))
	uasHeaders(out, la)
	if isSDP(out) {
		la.sdp = out.Body()
	}
	s.setTimer(c, SideB, lb)
	s.setTimer(c, SideA, la)
}

// localRefresh answers an UPDATE without SDP on an established call at
// once, as the refresh it is (RFC 4028 9): no offer is involved, so the
// other leg, whose timer is its own, hears nothing of it. True when it
// answered.
func (s *SBC) localRefresh(r *Realm, ref legRef, req *sip.Request, tx sip.ServerTransaction) bool {
	if req.Method != sip.UPDATE || len(req.Body()) > 0 {
		return false
	}
	c := ref.call
	c.mu.Lock()
	x := c.leg(ref.side)
	if c.state != StateConfirmed || x == nil {
		c.mu.Unlock()
		return false
	}
	if !inOrder(x, req) {
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusInternalServerError, "CSeq Out Of Order", "")
		return true
	}
	if u, ok := contactURI(req); ok {
		x.d.Target = u // target refresh
	}
	local := x.local
	c.mu.Unlock()
	lt := negotiateUAS(r, req, c.st.leg(ref.side))
	res := topology.BuildResponse(req, sip.StatusOK, "OK", "", true, local, nil, nil, nil, "")
	uasHeaders(res, lt)
	s.setTimer(c, ref.side, lt)
	s.metrics.SessionTimers.WithLabelValues(r.Name, "refresh_received").Inc()
	s.respond(r, tx, res)
	s.changed(c)
	return true
}

// relayedRefresh puts the far leg's timer on a re-INVITE or UPDATE the
// SBC relays to it (out, on side far).
func (s *SBC) relayedRefresh(c *Call, far Side, out *sip.Request) {
	uacHeaders(out, c.st.leg(far))
	if isSDP(out) {
		c.st.sentSDP(far, out.Body())
	}
}

// relayedAnswer restarts both legs' timers when a relayed re-INVITE or
// UPDATE (req from side near, sent on as out) got res: the far leg's from
// res, the near leg's negotiated from req and put on back, the answer the
// near leg gets. A 422 from the far leg raises its interval for the next
// try and reaches the near leg with the near leg's Min-SE.
func (s *SBC) relayedAnswer(c *Call, near Side, req, out *sip.Request, res, back *sip.Response) {
	if req.Method != sip.INVITE && req.Method != sip.UPDATE {
		return
	}
	far := near ^ 1
	c.mu.Lock()
	x, y := c.leg(near), c.leg(far)
	c.mu.Unlock()
	if res.StatusCode == 422 {
		if h, err := parseSE(res); err == nil && h.minSE > 0 {
			ly := c.st.leg(far)
			ly.interval, ly.minSE = max(ly.interval, h.minSE), max(ly.minSE, h.minSE)
			c.st.mu.Lock()
			c.st.legs[far].interval, c.st.legs[far].minSE = ly.interval, ly.minSE
			c.st.mu.Unlock()
		}
		stripTimerHeaders(back)
		_, min := timerCfg(x.realm)
		back.AppendHeader(sip.NewHeader("Min-SE", strconv.FormatUint(uint64(min), 10)))
		return
	}
	if !res.IsSuccess() {
		return
	}
	asked, _ := parseSE(out)
	ly, err := applyUAC(y.realm, res, asked.interval, c.st.leg(far))
	if err != nil {
		s.metrics.SessionTimers.WithLabelValues(y.realm.Name, "malformed_response").Inc()
	}
	lx := negotiateUAS(x.realm, req, c.st.leg(near))
	uasHeaders(back, lx)
	if isSDP(back) {
		lx.sdp = back.Body()
	}
	s.metrics.SessionTimers.WithLabelValues(x.realm.Name, "refresh_received").Inc()
	s.setTimer(c, far, ly)
	s.setTimer(c, near, lx)
}
