package sbc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// onInvite starts a call, or hands a re-INVITE to the in-dialog path. The
// handler runs for the whole setup: sipgo ends the server transaction when
// it returns, so it returns only after the final answer on leg A (and, for
// a 2xx, after its ACK).
func (s *SBC) onInvite(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		s.onInDialog(r, req, tx)
		return
	}
	if s.refuseDrained(r, req, tx) { // drain.go
		return
	}
	release, ok := s.admitSetup(r, req, tx) // overload.go: 503 past capacity
	if !ok {
		return
	}
	defer release()
	mf := maxForwards(req)
	if mf <= 0 {
		s.reply(r, req, tx, sip.StatusTooManyHops, "Too Many Hops", newTag())
		return
	}
	if bad := unsupportedRequire(req); bad != "" {
		s.reply(r, req, tx, sip.StatusBadExtension, "Bad Extension", newTag(), sip.NewHeader("Unsupported", bad))
		return
	}
	if req.Recipient.Scheme != "sip" && req.Recipient.Scheme != "sips" || sipsOverInsecure(req) {
		s.reply(r, req, tx, 416, "Unsupported URI Scheme", newTag())
		return
	}
	if s.merged(req) {
		s.reply(r, req, tx, sip.StatusLoopDetected, "Loop Detected", newTag())
		return
	}
	if s.checkSE(r, req, tx, newTag()) { // 400 or 422 (sessiontimer.go)
		return
	}
	s.respond(r, tx, buildLocalResponse(r, req, sip.StatusTrying, "Trying", ""))

	pol := s.policy() // read once: the call keeps this snapshot (reload.go)
	dec, ok := pol.router.RouteCall(policy.Call{Realm: r.Name, User: req.Recipient.User, To: toUser(req), Source: req.Source()})
	if !ok {
		s.reply(r, req, tx, sip.StatusNotFound, "Not Found", newTag())
		s.metrics.Calls.WithLabelValues("no_route").Inc()
		return
	}
	dec = s.guard.routeRegistered(dec, req.Recipient.User)
	if len(dec.Targets) == 0 { // every trunk of the route is down
		s.reply(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", newTag())
		s.metrics.Calls.WithLabelValues("trunks_down").Inc()
		return
	}
	out := s.realms[dec.ToRealm]
	dec = sipsOnly(req, dec)
	if len(dec.Targets) == 0 { // a SIPS call and no TLS target (sips.go)
		s.reply(r, req, tx, sip.StatusTemporarilyUnavailable, "Temporarily Unavailable", newTag(), sipsNotAllowed(r))
		s.metrics.Calls.WithLabelValues("sips_refused").Inc()
		return
	}

	c := s.newCall(r, req, dec.Route, out.Name, pol)
	if c == nil { // the Call-ID is shared by too many calls already
		s.reply(r, req, tx, sip.StatusLoopDetected, "Loop Detected", newTag())
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	c.mu.Lock()
	c.cancelSetup, c.setupDone = cancel, ctx.Done()
	c.mu.Unlock()
	if !tx.OnCancel(func(cr *sip.Request) {
		c.setCancelReason(relayedReason(cr, c.pol.filter(out))) // RFC 3326: it crosses
		c.markCallerCancel()                                    // cancel.go: no 2xx reaches A now
		cancel()
	}) {
		c.markCallerCancel()
		cancel() // CANCEL (and sipgo's 487) came before we could listen
	}

	offer, offerType, err := crossBody(r, out, req, func(b []byte) ([]byte, error) { return s.media.Offer(c.media, SideA, b) }) // bodies.go
	if err != nil {
		r.log.Info("offer refused", "call", c.ID, "error", err)
		code, reason, hdrs := bodyRefusal(err)
		s.reply(r, req, tx, code, reason, c.a.d.LocalTag, hdrs...)
		c.end("media_"+strconv.Itoa(code), "")
		return
	}
	c.offerType = offerType

	hold := s.holdTrunks(c) // trunk_admission.go
	var last *sip.Response
	for i, t := range dec.Targets {
		if !hold.admit(dec, i) {
			continue // the trunk is full: like a down trunk
		}
		o := s.tryTarget(ctx, c, out, dec, i, req, offer, mf-1, tx)
		if o.kind == outcomeRedirect { // redirect.go: followed, or handed back to relay
			o = s.redirected(ctx, c, out, dec, i, req, offer, mf-1, tx, o.res)
		}
		switch o.kind {
		case outcomeAnswered:
			s.confirm(c, r, req, tx, o.res, len(offer) > 0)
			return
		case outcomeCancelled:
			// sipgo has already answered the CANCEL and sent 487 when the
			// caller cancelled; a BYE or shutdown gets it here.
			s.reply(r, req, tx, sip.StatusRequestTerminated, "Request Terminated", c.a.d.LocalTag)
			c.end("cancelled", "")
			return
		case outcomeFinal:
			s.relayFinal(c, r, req, tx, o.res)
			return
		case outcomeChallenge:
			s.relayChallenge(c, r, req, tx, o.res) // authrelay.go
			return
		case outcomeRedirect:
			s.relayRedirect(c, r, req, tx, o.res) // redirect.go: relay mode
			return
		case outcomeRefused:
			s.reply(r, req, tx, o.code, statusPhrase(o.code), c.a.d.LocalTag)
			c.end(o.result, "")
			return
		case outcomeFailover:
			last = o.res
			r.log.Debug("target failed", "call", c.ID, "target", t.String(), "try", i+1, "status", statusOf(o.res))
		}
	}
	if last != nil {
		s.relayFinal(c, r, req, tx, last)
		return
	}
	if ra, full := hold.refusal(); full {
		s.reply(r, req, tx, sip.StatusServiceUnavailable, "Service Unavailable", c.a.d.LocalTag, ra)
		s.guard.shed.Add(1)
		c.end("trunks_full", "")
		return
	}
	s.reply(r, req, tx, sip.StatusRequestTimeout, "Request Timeout", c.a.d.LocalTag)
	c.end("timeout", "")
}

// merged says whether an INVITE without a To tag must be refused with 482:
// its Call-ID is one of our own leg B's (the call looped back to us), or
// its From tag, Call-ID and CSeq are those of a call's INVITE (RFC 3261
// 8.2.2.2: a copy that reached us by another path; sipgo's transaction
// layer has absorbed true retransmissions, same branch, already). A call
// still lingering counts: a late copy of its INVITE must not ring again.
// Anything else reusing a Call-ID, as a retry with CSeq + 1 after a 401,
// 407, 420, 422, 491 or 3xx, is a new call.
func (s *SBC) merged(req *sip.Request) bool {
	ft, seq := fromTag(req), req.CSeq().SeqNo
	for _, ref := range s.calls.lookupAll(req.CallID().Value()) {
		if ref.side != SideA {
			return true
		}
		if ref.call.openedBy(ft, seq) {
			return true
		}
	}
	return false
}

// mediaRefusal maps a media hook error to the answer leg A gets: 503
// when the SBC is out of media resources (an empty pool, sockets it could
// not open, a relay shutting down), 400 or 488 when the offer is at fault.
func mediaRefusal(err error) (int, string) {
	switch {
	case errors.Is(err, mediarelay.ErrPortsExhausted), errors.Is(err, mediarelay.ErrStreamUnavailable),
		errors.Is(err, mediarelay.ErrRelayClosed):
		return sip.StatusServiceUnavailable, "Service Unavailable"
	case errors.Is(err, mediarelay.ErrBadSDP):
		return sip.StatusBadRequest, "Bad SDP"
	case errors.Is(err, mediarelay.ErrSRTPRefused):
		return sip.StatusNotAcceptableHere, "Not Acceptable Here (media security)"
	default:
		return sip.StatusNotAcceptableHere, "Not Acceptable Here"
	}
}

func statusOf(res *sip.Response) int {
	if res == nil {
		return 0
	}
	return res.StatusCode
}

// newCall registers a call and its leg A, the dialog the caller opened;
// nil when the call table refuses it.
func (s *SBC) newCall(r *Realm, req *sip.Request, route, outRealm string, pol *policySnap) *Call {
	from, to := req.From(), req.To()
	a := &Leg{
		side: SideA, realm: r, local: r.localFor(req), filter: pol.filter(r),
		peer: req.Source(), invite: req, remoteCSeq: req.CSeq().SeqNo,
	}
	a.rel.mode = relModeOf(req) // prack.go
	if o, ok := s.realms[outRealm]; ok {
		a.local.From = originOf(o) // identity.go: what leg B answers
	}
	a.d = topology.Dialog{
		CallID:   req.CallID().Value(),
		LocalURI: to.Address, LocalName: to.DisplayName, LocalTag: newTag(),
		RemoteURI: from.Address, RemoteName: from.DisplayName, RemoteTag: fromTag(req),
		RouteSet: recordRoute(req, false),
	}
	if u, ok := contactURI(req); ok {
		a.d.Target = u
	} else {
		a.d.Target = from.Address
	}
	// inviteBusy until confirmed: a re-INVITE during setup gets 491.
	c := &Call{ID: newCallID(), Start: time.Now(), route: route, pol: pol, a: a, done: make(chan struct{})}
	c.beginOfferLocked() // not yet shared: no lock needed
	c.media = mediarelay.CallRef{ID: c.ID, Realms: [2]string{r.Name, outRealm}}
	if !s.track(c) {
		return nil
	}
	return c
}

type outcomeKind int

const (
	outcomeAnswered outcomeKind = iota
	outcomeFinal                // a final answer to relay as is
	outcomeFailover             // 408, 5xx or silence: try the next target
	outcomeCancelled
	outcomeChallenge // a 401/407 the caller answers (authrelay.go)
	outcomeRedirect  // a 3xx (redirect.go)
	outcomeRefused   // the SBC's own failure: code, counted as result
)

type outcome struct {
	kind   outcomeKind
	res    *sip.Response
	code   int    // outcomeRefused
	result string // outcomeRefused
}

// tryTarget sends leg B's INVITE to one target and relays what comes back
// until a final answer, a cancel, or the target's silence.
func (s *SBC) tryTarget(ctx context.Context, c *Call, out *Realm, dec policy.Decision, i int, req *sip.Request, offer []byte, mf int, txA sip.ServerTransaction) outcome {
	t := dec.Targets[i]
	b := s.newLegB(c, out, t, req)
	trunkNumbers(b, dec, i, req)
	applyRedirect(c, b)                      // redirect.go: a 3xx Contact's user
	resumed := s.resumeChallenged(c, b, req) // authrelay.go: the challenged leg B's dialog
	anonymizeFrom(b, req)                    // identity.go
	b.local.From = s.callerOrigin(c.a.realm, req, func(u string) string { return dec.CallerFor(i, u) })
	inv := topology.BuildRequest(sip.INVITE, b.d, b.cseq, mf, b.local, b.headerFilter(), req, offer, c.offerType)
	// bodies.go: the body leaves decoded.
	inv.RemoveHeader("Content-Encoding")
	s.redirectHeaders(c, b, inv) // redirect.go: Diversion / History-Info
	if resumed {
		carryCredentials(inv, req) // authrelay.go
	}
	offer100rel(inv)         // prack.go
	s.inviteTimer(c, b, inv) // sessiontimer.go
	b.invite = inv

	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return outcome{kind: outcomeCancelled}
	}
	old := c.b
	c.b = b
	c.noteTargetLocked(dec, i) // cdr.go
	c.mu.Unlock()
	if old != nil && !c.keeps(old) { // a leg given up stays findable (cancel.go)
		s.calls.dropLeg(c, old.d.CallID)
	}
	s.calls.addLeg(c, SideB, b.d.CallID)

	txB, err := out.request(s.ctx, inv)
	if err != nil {
		out.log.Info("INVITE not sent", "call", c.ID, "target", t.String(), "error", err)
		return outcome{kind: outcomeFailover}
	}
	s.metrics.reqOut(out.Name, "INVITE")
	s.followTransport(c, b, inv) // sipgo_mtu.go: a large INVITE may have gone over TCP
	// txB changes when a challenge is answered; a txB given up on is
	// abandon's (cancel.go) to end.
	handedOff := false
	defer func() {
		if !handedOff {
			txB.Terminate()
		}
	}()
	giveUp := func(cancelSent bool, reason, why string) {
		handedOff = true
		s.abandon(c, out, b, inv, txB, cancelSent, reason, why)
	}
	// Every 2xx after the first: its retransmission (our ACK was lost) or
	// another fork's (fork.go).
	onRetransmit := func(tx sip.ClientTransaction) {
		if ctx, ok := tx.(*sip.ClientTx); ok {
			ctx.OnRetransmission(func(res *sip.Response) { s.onLateResponse(out, c, b, res) })
		}
	}
	onRetransmit(txB)
	authTried, seTried := false, false

	silence := time.NewTimer(dec.Timeout(i))
	defer silence.Stop()
	// The ring timeout (the route's ring_timeout) counts from the last
	// 18x, as Timer C does (RFC 3261 16.6 step 11): a target still sending
	// them is still ringing.
	ringFor := c.pol.routeOpts(dec.Route).ring
	ring := time.NewTimer(ringFor)
	defer ring.Stop()
	heard, provisional, cancelSent := false, false, false
	for {
		select {
		case res := <-txB.Responses():
			s.metrics.resIn(out.Name, res.StatusCode)
			heard = true
			silence.Stop()
			switch {
			case res.IsProvisional():
				provisional = true
				if res.StatusCode > 100 {
					ring.Reset(ringFor)
					s.relayProvisional(c, b, req, txA, res)
				}
			case res.IsSuccess():
				c.won(b, res) // fork.go: every other To tag's 2xx loses
				c.learnDialog(b, res)
				if ctx.Err() != nil {
					// The callee answered as the caller gave up: ACK and
					// hang up the leg B dialog that now exists.
					s.answeredAfterCancel(c, b, inv, res)
					return outcome{kind: outcomeCancelled}
				}
				if len(offer) > 0 {
					s.ackLeg(c, b, inv.CSeq().SeqNo, nil)
				}
				return outcome{kind: outcomeAnswered, res: res}
			default:
				if isChallenge(res) && !trunkAnswers(dec.Trunk(i)) {
					return outcome{kind: outcomeChallenge, res: res} // authrelay.go: the caller answers it
				}
				if isRedirect(res) {
					return outcome{kind: outcomeRedirect, res: res} // redirect.go
				}
				if (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && !authTried {
					authTried = true // trunk_auth.go: re-sent once with credentials
					if next, tx, ok := s.reauthInvite(c, out, b, inv, res, dec.Trunk(i)); ok {
						txB.Terminate()
						inv, txB, heard = next, tx, false
						onRetransmit(txB)
						silence.Reset(dec.Timeout(i))
						continue
					}
				}
				if res.StatusCode == 422 && !seTried {
					seTried = true // sessiontimer.go: re-sent once with the Min-SE asked for
					if next, tx, ok := s.retry422(c, out, b, inv, res); ok {
						txB.Terminate()
						inv, txB, heard = next, tx, false
						onRetransmit(txB)
						silence.Reset(dec.Timeout(i))
						continue
					}
				}
				if res.StatusCode == sip.StatusRequestTimeout || res.StatusCode >= 500 && res.StatusCode < 600 {
					return outcome{kind: outcomeFailover, res: res}
				}
				return outcome{kind: outcomeFinal, res: res}
			}
		case <-txB.Done():
			if ctx.Err() != nil {
				return outcome{kind: outcomeCancelled}
			}
			return outcome{kind: outcomeFailover}
		case <-silence.C:
			if !heard {
				// No 100 Trying from the target in time: it is down or
				// unreachable. Stop retransmitting and move on, but if
				// it wakes up after all it is CANCELed (cancel.go).
				c.giveUp(b, abandonTarget, false)
				return outcome{kind: outcomeFailover}
			}
		case <-ring.C:
			// Rung too long without an answer: cancel it and let the next
			// target (or a 408 to the caller) have the call.
			if provisional && !cancelSent {
				cancelSent = true
				s.sendCancel(out, inv, reasonNoAnswer)
			}
			giveUp(cancelSent, reasonNoAnswer, abandonTarget)
			return outcome{kind: outcomeFailover}
		case <-ctx.Done():
			// The caller is gone: the call is over for everyone but leg B,
			// which abandon cancels (RFC 3261 9.1: once a provisional
			// came) and cleans up without holding the call open.
			c.end("cancelled", "")
			if provisional && !cancelSent {
				cancelSent = true
				s.sendCancel(out, inv, c.cancelReasonOr(""))
			}
			giveUp(cancelSent, c.cancelReasonOr(""), abandonCancelled)
			return outcome{kind: outcomeCancelled}
		}
	}
}

func (s *SBC) newLegB(c *Call, out *Realm, t config.Target, req *sip.Request) *Leg {
	transport, target := legBTarget(t, req.Recipient.User, isSIPS(req))
	from, to := req.From(), req.To()
	b := &Leg{side: SideB, realm: out, local: out.local(transport), filter: c.pol.filter(out), peer: t.String(), cseq: uint32(randUint16()) + 1}
	b.local.SIPS = target.Scheme == "sips"
	b.d = topology.Dialog{
		CallID:     newSIPCallID(),
		LocalURI:   sip.Uri{Scheme: "sip", User: from.Address.User, Host: uriHost(b.local.Host)},
		LocalName:  from.DisplayName,
		LocalTag:   newTag(),
		RemoteURI:  sip.Uri{Scheme: "sip", User: to.Address.User, Host: uriHost(t.Host)},
		RemoteName: to.DisplayName,
		Target:     target,
	}
	return b
}

func (s *SBC) relayProvisional(c *Call, b *Leg, req *sip.Request, txA sip.ServerTransaction, res *sip.Response) {
	if !s.trackEarly(c, b, res) { // fork.go: one more early dialog than allowed
		return
	}
	relay, reliable, held := s.reliableFromB(c, b, res) // prack.go: PRACKs leg B
	if !relay {
		return
	}
	op := s.media.Answer
	if held != nil {
		op = s.media.Offer // prack.go: leg B's offer, answered in A's PRACK
	}
	body, btype, err := crossBody(s.realms[c.media.Realms[SideB]], c.a.realm, res, func(sdp []byte) ([]byte, error) { return op(c.media, SideB, sdp) }) // bodies.go
	if err != nil {
		c.a.realm.log.Info("early media answer refused", "call", c.ID, "error", err)
		body = nil
	}
	c.mu.Lock()
	if c.state == StateTrying {
		c.state = StateEarly
	}
	a := c.a
	c.mu.Unlock()
	out := topology.BuildResponse(req, res.StatusCode, res.Reason, a.d.LocalTag, true, a.local, a.headerFilter(), res, body, btype)
	out.RemoveHeader("Content-Encoding")  // bodies.go: the body leaves decoded
	s.toLegA(c, txA, out, reliable, held) // prack.go: reliably as leg A allows
}

// relayFinal gives leg A the failure that ended the call's last attempt.
// A 503's Retry-After is dropped: it says when the far server that sent
// it may be tried again (RFC 3261 21.5.4), and a PBX that took it as the
// SBC's would stop routing every call through the SBC for that long. The
// route's relay_503_as may turn the 503 into another failure.
func (s *SBC) relayFinal(c *Call, r *Realm, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	code, phrase := res.StatusCode, res.Reason
	as503 := c.policy(s).routeOpts(c.route).as503
	if code == sip.StatusServiceUnavailable && as503 != 0 {
		code, phrase = as503, statusPhrase(as503)
	}
	out := topology.BuildResponse(req, code, phrase, c.a.d.LocalTag, false, c.a.local, c.a.headerFilter(), res, nil, "")
	if res.StatusCode == sip.StatusServiceUnavailable {
		out.RemoveHeader("Retry-After")
	}
	s.respond(r, tx, out)
	c.end(resultOf(res.StatusCode), "")
}

func resultOf(code int) string {
	switch {
	case code == 486 || code == 600:
		return "busy"
	case code == 487:
		return "cancelled"
	case code == 408:
		return "timeout"
	case code >= 500 && code < 600:
		return "failed_5xx"
	case code >= 600:
		return "rejected_6xx"
	default:
		return "rejected_4xx"
	}
}

// confirm relays leg B's 2xx to leg A, retransmits it until A's ACK, and
// ACKs leg B with A's answer when the offer came late (in the 2xx).
func (s *SBC) confirm(c *Call, r *Realm, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, offerSent bool) {
	op := s.media.Offer
	if offerSent {
		op = s.media.Answer
	}
	body, btype, err := crossBody(s.realms[c.media.Realms[SideB]], r, res, func(sdp []byte) ([]byte, error) { return op(c.media, SideB, sdp) }) // bodies.go
	if err != nil {
		r.log.Info("answer refused", "call", c.ID, "error", err)
		body = nil
	}
	c.mu.Lock()
	if c.state == StateEnded { // a BYE or shutdown raced the answer
		c.mu.Unlock()
		return
	}
	c.state = StateAnswered
	c.answered = time.Now()
	w := c.awaitAckLocked(SideA, req.CSeq().SeqNo)
	a, b := c.a, c.b
	c.mu.Unlock()

	out := topology.BuildResponse(req, res.StatusCode, res.Reason, a.d.LocalTag, true, a.local, a.headerFilter(), res, body, btype)
	// bodies.go: the body leaves decoded.
	out.RemoveHeader("Content-Encoding")
	s.awaitPrackBefore2xx(c)                                // prack.go: RFC 3262 3
	s.confirmTimers(c, req, res, out)                       // sessiontimer.go
	if s.answerLost(c, b, req, tx, res, offerSent, false) { // cancel.go: the 487 went instead
		return
	}
	s.respond(r, tx, out)
	if s.answerLost(c, b, req, tx, res, offerSent, true) {
		return
	}
	if !s.ackThrough(c, r, tx, out, w, b, b.invite.CSeq().SeqNo, offerSent) {
		return
	}
	c.mu.Lock()
	byeB, byeBReason := c.byeB, c.byeBReason
	if c.state == StateAnswered {
		c.state = StateConfirmed
		c.finishOfferLocked()
	}
	c.mu.Unlock()
	s.changed(c)
	if byeB {
		s.hangup(c, "bye_b", b, byeBReason)
	}
}

// ackThrough waits for the near leg's ACK to a relayed 2xx (see awaitAck)
// and, when the offer came late in the 2xx, ACKs the far leg with the
// answer the near leg's ACK carried; an offer sent in the INVITE was ACKed
// at once. Without an ACK the call is hung up and it returns false.
func (s *SBC) ackThrough(c *Call, r *Realm, tx sip.ServerTransaction, res *sip.Response, w *ackWaiter, far *Leg, farCSeq uint32, offerSent bool) bool {
	ack := s.awaitAck(c, r, tx, res, w)
	if ack == nil {
		if c.State() != StateEnded {
			r.log.Info("no ACK for 2xx, ending call", "call", c.ID)
			s.hangup(c, "no_ack", nil, reasonNoAck)
		}
		return false
	}
	if !offerSent {
		answer := ack.Body()
		if len(answer) > 0 && isSDP(ack) {
			var err error
			if answer, err = s.media.Answer(c.media, w.leg, answer); err != nil {
				answer = nil
			}
		}
		s.ackLeg(c, far, farCSeq, answer)
	}
	return true
}

// awaitAck retransmits a 2xx on an unreliable transport (RFC 3261
// 13.3.1.4: T1 doubling up to T2) until the ACK arrives, the call ends,
// or 64*T1 passes. The ACK may come through the INVITE transaction (when
// the peer reuses the INVITE's branch) or as its own request (onAck).
func (s *SBC) awaitAck(c *Call, r *Realm, tx sip.ServerTransaction, res *sip.Response, w *ackWaiter) *sip.Request {
	reliable := sip.IsReliable(res.Transport())
	interval := sip.T1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		select {
		case ack := <-tx.Acks():
			c.takeAckWaiter(w)
			return ack
		case ack := <-w.ch:
			return ack
		case <-retransmit.C:
			if !reliable {
				if err := r.srv.WriteResponse(res); err == nil {
					s.metrics.resOut(r.Name, res.StatusCode)
				}
			}
			interval = min(2*interval, sip.T2)
			retransmit.Reset(interval)
		case <-deadline.C:
			c.takeAckWaiter(w)
			return nil
		case <-c.done:
			return nil
		}
	}
}

// onAck routes an ACK for a 2xx to whoever waits for it; any other ACK
// (retransmitted, or for a call that is gone) is absorbed and counted.
func (s *SBC) onAck(r *Realm, req *sip.Request, _ sip.ServerTransaction) {
	if ref, ok := s.findLeg(r, req); ok && ref.call.ackArrived(ref.side, req) {
		return
	}
	s.metrics.DroppedStray.WithLabelValues(r.Name, "ack").Inc()
}

// ackLeg sends the ACK for a 2xx on a leg and keeps it for re-sending.
func (s *SBC) ackLeg(c *Call, l *Leg, cseq uint32, body []byte) {
	c.mu.Lock()
	ack := topology.BuildRequest(sip.ACK, l.d, cseq, 70, l.local, nil, nil, body, "")
	l.ack = ack
	ack = ack.Clone()
	c.mu.Unlock()
	c.st.sentSDP(l.side, body) // a late offer's answer (sessiontimer.go)
	s.send(l.realm, ack)
}

// send writes a request that has no transaction (ACK).
func (s *SBC) send(r *Realm, req *sip.Request) {
	if err := r.write(req); err != nil {
		r.log.Debug("send failed", "method", req.Method, "error", err)
		return
	}
	s.metrics.reqOut(r.Name, string(req.Method))
}

// sendCancel cancels leg B's INVITE (RFC 3261 9.1: same Request-URI,
// Call-ID, From, To, CSeq number and top Via as the INVITE), with a
// Reason (RFC 3326) when one is given.
func (s *SBC) sendCancel(r *Realm, inv *sip.Request, reason string) {
	cancel := sip.NewRequest(sip.CANCEL, inv.Recipient)
	cancel.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		cancel.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&mf)
	cancel.AppendHeader(sip.HeaderClone(inv.From()))
	cancel.AppendHeader(sip.HeaderClone(inv.To()))
	cancel.AppendHeader(sip.HeaderClone(inv.CallID()))
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	if reason != "" {
		cancel.AppendHeader(sip.NewHeader("Reason", reason))
	}
	cancel.SetBody(nil)
	cancel.SetTransport(inv.Transport())
	s.finish(r, cancel)
}

// finish sends a request whose answer changes nothing (CANCEL, BYE) and
// drains its transaction in the background, bounded by sipgo's timers.
func (s *SBC) finish(r *Realm, req *sip.Request) {
	tx, err := r.request(s.ctx, req)
	if err != nil {
		r.log.Debug("request not sent", "method", req.Method, "error", err)
		return
	}
	s.metrics.reqOut(r.Name, string(req.Method))
	// Close waits for these, but only for those begun before it started
	// waiting: an Add racing Wait is a WaitGroup misuse.
	s.drainMu.Lock()
	tracked := !s.draining
	if tracked {
		s.wg.Add(1)
	}
	s.drainMu.Unlock()
	go func() {
		if tracked {
			defer s.wg.Done()
		}
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				s.metrics.resIn(r.Name, res.StatusCode)
				if !res.IsProvisional() {
					return
				}
			case <-tx.Done():
				return
			}
		}
	}()
}
