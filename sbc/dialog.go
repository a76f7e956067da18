package sbc

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// callLinger keeps an ended call's Call-IDs known for a while, so a BYE
// that crossed ours is answered 200 (not 481) and late ACKs are absorbed.
const callLinger = 8 * time.Second

// findLeg matches an in-dialog request to a call leg: its Call-ID, the
// realm it arrived in, and both tags (Call.legByTags).
func (s *SBC) findLeg(r *Realm, req *sip.Request) (legRef, bool) {
	cid := req.CallID()
	if cid == nil {
		return legRef{}, false
	}
	for _, ref := range s.calls.lookupAll(cid.Value()) {
		if _, ok := ref.call.legByTags(ref.side, r, cid.Value(), toTag(req), fromTag(req)); ok {
			return ref, true
		}
	}
	return legRef{}, false
}

// inOrder applies RFC 3261 12.2.2: a request with a CSeq not above the
// last one seen on the leg is out of order (500).
func inOrder(l *Leg, req *sip.Request) bool {
	seq := req.CSeq().SeqNo
	if l.remoteCSeq != 0 && seq <= l.remoteCSeq {
		return false
	}
	l.remoteCSeq = seq
	return true
}

// onBye ends a call from either side: 200 at once to the sender, BYE to
// the other leg.
func (s *SBC) onBye(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	ref, ok := s.findLeg(r, req)
	if !ok {
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	}
	c := ref.call
	c.mu.Lock()
	l := c.leg(ref.side)
	if !inOrder(l, req) {
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusInternalServerError, "CSeq Out Of Order", "")
		return
	}
	c.noteByeLocked(req) // cdr.go
	state := c.state
	setup := state == StateTrying || state == StateEarly
	var reason string
	if y := c.other(ref.side); y != nil {
		reason = relayedReason(req, y.headerFilter()) // RFC 3326: it crosses
	}
	if setup && ref.side == SideB {
		// The callee's BYE overtook its own 2xx (each packet has its own
		// goroutine): the answer is still relayed, then A gets its BYE.
		c.byeB, c.byeBReason = true, reason
	}
	if setup && ref.side == SideA && c.cancelReason == "" {
		c.cancelReason = reason
	}
	cancel := c.cancelSetup
	c.mu.Unlock()

	s.reply(r, req, tx, sip.StatusOK, "OK", "")
	switch {
	case state == StateEnded:
	case setup && ref.side == SideA:
		// A caller may BYE an early dialog: that is a CANCEL of leg B.
		if cancel != nil {
			cancel()
		}
	case setup:
	default:
		s.hangup(c, "bye_"+sideName(ref.side), l, reason)
	}
}

// hangup ends a call and sends BYE, with the Reason header (RFC 3326)
// when one is given, on every established leg except from (the leg whose
// BYE ended it). A call still being set up is cancelled instead, with
// that Reason on the CANCEL: its setup goroutine ends it.
func (s *SBC) hangup(c *Call, result string, from *Leg, reason string) {
	c.mu.Lock()
	state, cancel, a, b := c.state, c.cancelSetup, c.a, c.b
	c.mu.Unlock()
	switch state {
	case StateEnded:
		return
	case StateTrying, StateEarly:
		if reason != "" {
			c.setCancelReason(reason)
		}
		if cancel != nil {
			cancel()
		}
		return
	}
	if !c.end(result, reason) {
		return
	}
	for _, l := range []*Leg{a, b} {
		if l != nil && l != from {
			s.sendBye(c, l, reason)
		}
	}
}

// track puts a call in the table, and has it release what it held there
// when it ends; false when the table refused it (callTable.add).
func (s *SBC) track(c *Call) bool {
	if !s.calls.add(c) {
		return false
	}
	s.recordOnEnd(c) // cdr.go: before ended releases the media
	// ended runs after every other OnEnd hook (the guard's and the trunk's
	// holds included, registered after this), so a call gone from the
	// table holds nothing: a caller told "call over" may call again.
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		s.ended(c)
	} else {
		c.leave = func() { s.ended(c) }
		c.mu.Unlock()
	}
	s.metrics.ActiveCalls.Inc()
	return true
}

// ended releases what an ended call held: its place in the table (its
// Call-IDs linger), its media and its record; and counts and logs it.
func (s *SBC) ended(c *Call) {
	c.mu.Lock()
	ids := []string{c.a.d.CallID}
	if c.b != nil {
		ids = append(ids, c.b.d.CallID)
	}
	for _, l := range c.givenUp { // cancel.go
		if l != c.b {
			ids = append(ids, l.d.CallID)
		}
	}
	answered, result := c.answered, c.result
	c.mu.Unlock()

	s.hepMedia(c, ids[0]) // hep.go: before the media hook forgets the call
	s.media.End(c.ID)
	s.recordEnded(c)
	s.metrics.ActiveCalls.Dec()
	s.metrics.Calls.WithLabelValues(result).Inc()
	// Last: a call no longer listed as active is counted and released.
	s.calls.removeActive(c)
	time.AfterFunc(callLinger, func() { s.calls.remove(c, ids...) })
	attrs := []any{"call", c.ID, "result", result, "route", c.route}
	if !answered.IsZero() {
		attrs = append(attrs, "talk", time.Since(answered).Round(time.Millisecond))
	}
	c.a.realm.log.Info("call ended", attrs...)
}

func (s *SBC) sendBye(c *Call, l *Leg, reason string) {
	seq, d := c.nextCSeq(l)
	bye := topology.BuildRequest(sip.BYE, d, seq, 70, l.local, nil, nil, nil, "")
	if reason != "" {
		bye.AppendHeader(sip.NewHeader("Reason", reason))
	}
	s.finish(l.realm, bye)
}

// onMediaTimeout ends an established call whose media went silent (the
// hook only reports calls not on hold). A call still ringing has no media
// yet by right, and is left alone.
func (s *SBC) onMediaTimeout(callID string) {
	c := s.calls.byID(callID)
	if c == nil || c.State() != StateConfirmed {
		return
	}
	c.a.realm.log.Info("media timeout, ending call", "call", c.ID)
	s.hangup(c, "media_timeout", nil, reasonMediaTimeout)
}

// onInDialog relays a request inside a call (re-INVITE, UPDATE, INFO,
// OPTIONS, MESSAGE, NOTIFY, REFER) to the other leg and its final answer
// back, rebuilt for each side.
func (s *SBC) onInDialog(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	ref, ok := s.findLeg(r, req)
	if !ok {
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	}
	if req.Method == sip.UPDATE && s.earlyUpdate(r, req, tx, ref) {
		return // RFC 3311 in an early dialog (earlyupdate.go)
	}
	c := ref.call
	// Session timers (sessiontimer.go): bad Session-Expires or Min-SE, and
	// a refresh without an offer, are answered here.
	if (req.Method == sip.INVITE || req.Method == sip.UPDATE) && (s.checkSE(r, req, tx, "") || s.localRefresh(r, ref, req, tx)) {
		return
	}
	defer s.changed(c) // CSeqs, targets, media: record what changed
	isInvite := req.Method == sip.INVITE
	offers := (isInvite || req.Method == sip.UPDATE) && offersSDP(req) // bodies.go

	c.mu.Lock()
	if (isInvite || offers) && c.inviteBusy && (c.ackWait != nil || c.ackSeen) {
		// The last INVITE is only waiting for its ACK, which the peer sent
		// before this request but which reaches us on another goroutine:
		// give it up to T1 before calling this glare.
		c.waitOfferLocked(sip.T1)
	}
	x, y := c.leg(ref.side), c.other(ref.side)
	switch {
	case c.state == StateEnded:
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	case !inOrder(x, req):
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusInternalServerError, "CSeq Out Of Order", "")
		return
	case y == nil || y.d.RemoteTag == "":
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	case (isInvite || offers) && c.inviteBusy:
		// Glare: an offer is already under way (RFC 3261 14.2, 3311 5.2).
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusRequestPending, "Request Pending", "", sip.NewHeader("Retry-After", "1"))
		return
	}
	if isInvite || offers {
		c.beginOfferLocked()
	}
	if isInvite || req.Method == sip.UPDATE {
		if u, ok := contactURI(req); ok {
			x.d.Target = u // target refresh
		}
	}
	seq, d := y.nextCSeqLocked(), y.d
	c.mu.Unlock()
	release := func() {
		if isInvite || offers {
			c.finishOffer()
		}
	}

	offer := asIs
	if offers {
		offer = func(b []byte) ([]byte, error) { return s.media.Offer(c.media, ref.side, b) }
	}
	body, btype, err := crossBody(x.realm, y.realm, req, offer) // bodies.go
	if err != nil {
		if offers && !isBodyError(err) {
			s.rollbackOffer(c) // what the refused offer changed before failing
		}
		release()
		code, reason, hdrs := bodyRefusal(err)
		s.reply(r, req, tx, code, reason, "", hdrs...)
		return
	}
	var cancel *cancelOnce
	if isInvite {
		s.respond(r, tx, buildLocalResponse(r, req, sip.StatusTrying, "Trying", ""))
		cancel = watchCancel(tx) // cancel.go: a CANCEL crosses to the far leg
	}
	mf := maxForwards(req) - 1
	if mf < 0 {
		if offers {
			s.rollbackOffer(c)
		}
		release()
		s.reply(r, req, tx, sip.StatusTooManyHops, "Too Many Hops", "")
		return
	}
	out := topology.BuildRequest(req.Method, d, seq, mf, y.local, y.headerFilter(), req, body, btype)
	out.RemoveHeader("Content-Encoding") // bodies.go: the body leaves decoded
	if isInvite || req.Method == sip.UPDATE {
		s.relayedRefresh(c, ref.side^1, out) // sessiontimer.go
	}
	var res *sip.Response
	if isInvite {
		res = s.transactInvite(y.realm, out, cancel)
	} else {
		res = s.transact(y.realm, out)
	}
	if res != nil && isInvite && s.reinviteLost(c, y, out, res, offers, cancel) {
		release()
		return // the near side has its 487 (cancel.go)
	}
	if offers && (res == nil || !res.IsSuccess()) {
		// Refused (488, 606, 491 glare...) or unanswered: the session is
		// as it was before the offer (RFC 3261 14.1), and so is its media.
		s.rollbackOffer(c)
	}
	if res == nil {
		release()
		s.reply(r, req, tx, sip.StatusRequestTimeout, "Request Timeout", "")
		if dialogGone(req.Method, sip.StatusRequestTimeout) {
			s.hangup(c, "timeout_in_dialog", nil, reasonInDialogTimeout)
		}
		return
	}

	answer := asIs
	switch {
	case res.IsSuccess() && offers:
		answer = func(b []byte) ([]byte, error) { return s.media.Answer(c.media, ref.side^1, b) }
	case isInvite && res.IsSuccess():
		// Late offer: the re-INVITE had no SDP, the 2xx carries the offer.
		answer = func(b []byte) ([]byte, error) { return s.media.Offer(c.media, ref.side^1, b) }
	}
	rbody, rtype, err := crossBody(y.realm, x.realm, res, answer) // bodies.go
	if err != nil {
		rbody = nil
	}
	refresh := res.IsSuccess() && (isInvite || req.Method == sip.UPDATE)
	if refresh {
		c.mu.Lock()
		if u, ok := contactURI(res); ok {
			y.d.Target = u
		}
		c.mu.Unlock()
	}
	back := topology.BuildResponse(req, res.StatusCode, res.Reason, x.d.LocalTag, refresh, x.local, x.headerFilter(), res, rbody, rtype)
	// bodies.go: the body leaves decoded.
	back.RemoveHeader("Content-Encoding")
	s.relayedAnswer(c, ref.side, req, out, res, back) // sessiontimer.go

	if !(isInvite && res.IsSuccess()) {
		release()
		s.respond(r, tx, back)
		if dialogGone(req.Method, res.StatusCode) {
			s.hangup(c, "peer_lost_dialog", nil, reasonDialogLost)
		}
		return
	}

	// A re-INVITE's 2xx: ACK the far leg (with the answer if the offer came
	// late), and retransmit the 2xx to the near leg until its ACK.
	c.mu.Lock()
	w := c.awaitAckLocked(ref.side, req.CSeq().SeqNo)
	c.mu.Unlock()
	if offers {
		s.ackLeg(c, y, seq, nil)
	}
	s.respond(r, tx, back)
	s.ackThrough(c, r, tx, back, w, y, seq, offers)
	release()
}

// dialogGone says whether a failure of an in-dialog request relayed to
// the far leg means the call is over there. RFC 3261 12.2.1.2 would end
// the dialog on any 481 or 408 (or no answer); RFC 5057 5.1 narrows that
// to the usage the request belongs to. The call is the invite usage, so
// only a re-INVITE's failure ends it; an INFO or OPTIONS is no usage of
// its own and an UPDATE that fails leaves the session as it was (RFC 3311
// 5.1), and a NOTIFY or REFER belongs to a subscription usage.
func dialogGone(m sip.RequestMethod, status int) bool {
	return m == sip.INVITE && (status == sip.StatusCallTransactionDoesNotExists || status == sip.StatusRequestTimeout)
}

// transact sends a request and waits for its final response; nil when the
// transaction failed (timeout or transport error). Provisional responses
// to in-dialog requests are hop-by-hop and stop here.
func (s *SBC) transact(r *Realm, req *sip.Request) *sip.Response {
	tx, err := r.request(s.ctx, req)
	if err != nil {
		r.log.Debug("request not sent", "method", req.Method, "error", err)
		return nil
	}
	s.metrics.reqOut(r.Name, string(req.Method))
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			s.metrics.resIn(r.Name, res.StatusCode)
			if !res.IsProvisional() {
				return res
			}
		case <-tx.Done():
			return nil
		}
	}
}
