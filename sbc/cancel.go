package sbc

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// CANCEL races (RFC 3261 9, 13.2.2.4, 15). A CANCEL and a 2xx can cross
// anywhere, and every way they cross must leave no call up on one leg
// that the other leg knows nothing of:
//
//   - The caller's CANCEL wins over a 2xx the SBC has from leg B but has
//     not yet relayed (sipgo's server transaction sends the 487 and drops
//     our 2xx after it): leg B's dialog is ACKed and hung up with BYE.
//   - A leg B INVITE the call gives up on (the caller cancelled, the
//     target stayed silent past target_timeout or rang past ring_timeout)
//     is not forgotten: it is CANCELed as soon as a provisional allows
//     (9.1), and any 2xx it still sends is ACKed and hung up, so a late
//     answer makes no ghost call. abandon keeps reading the transaction
//     of one that was heard from; a silent one's transaction ends at once
//     (its INVITE stops being retransmitted) and onGivenUp takes what it
//     sends later, its Call-ID staying in the call table with the call.
//   - A CANCEL of a re-INVITE still pending on the far leg is relayed
//     there; a far 2xx that crosses it is ACKed and the session left as it
//     was, since the near side has its 487.

// abandonFor bounds how long a given-up INVITE is listened to after its
// CANCEL could go: RFC 3261 9.1 lets a UAC consider it cancelled when no
// final answer came in 64*T1.
func abandonFor() time.Duration { return 64 * sip.T1 }

// reasonTargetSilent is the Reason of the CANCEL a target gets when it
// wakes up after it was given up as silent (target_timeout).
const reasonTargetSilent = `Q.850;cause=18;text="no response from target"`

// Why a leg B INVITE was given up, for abandon's counts.
const (
	abandonCancelled = "cancel"    // the caller (or shutdown) ended the call
	abandonTarget    = "abandoned" // silent or ringing too long: next target
)

// markCallerCancel notes, from inside sipgo's OnCancel (which runs in the
// server transaction's state machine before its 487, and only while no
// final response was sent), that leg A's INVITE is answered 487 now: a
// 2xx the SBC sends after this never reaches the caller.
func (c *Call) markCallerCancel() {
	c.mu.Lock()
	c.callerCancelled = true
	c.mu.Unlock()
}

// answerLost is confirm's check, made before and after it sends leg A's
// 2xx (sent): when the caller's CANCEL came first, it puts sipgo's 487
// back (sipgo_forks.go), ACKs leg B (if the offer came late), hangs it up
// with BYE, ends the call and says true.
func (s *SBC) answerLost(c *Call, b *Leg, req *sip.Request, tx sip.ServerTransaction, res *sip.Response, offerSent, sent bool) bool {
	c.mu.Lock()
	lost := c.callerCancelled
	reason := c.cancelReason
	if w := c.ackWait; lost && w != nil && w.leg == SideA {
		c.ackWait = nil
	}
	c.mu.Unlock()
	if !lost {
		return false
	}
	if sent {
		s.restore487(tx, req)
	}
	b.realm.log.Info("2xx lost to the caller's CANCEL: ACK and BYE on leg B", "call", c.ID)
	s.metrics.CancelRaces.WithLabelValues(b.realm.Name, "answer_after_cancel").Inc()
	c.end("cancelled", "")
	if !offerSent {
		// The 2xx carried the offer and the caller will never answer it:
		// the ACK refuses it and the BYE follows at once (13.2.2.4).
		s.ackLeg(c, b, b.invite.CSeq().SeqNo, s.declined(c, b, res))
	}
	s.sendBye(c, b, orReason(reason, reasonCancelled))
	return true
}

// answeredAfterCancel ends a call whose leg B answered as the caller
// gave up (tryTarget took the 2xx after the CANCEL): leg B's new dialog
// is ACKed and hung up.
func (s *SBC) answeredAfterCancel(c *Call, b *Leg, inv *sip.Request, res *sip.Response) {
	s.metrics.CancelRaces.WithLabelValues(b.realm.Name, "answer_after_cancel").Inc()
	c.end("cancelled", "")
	s.ackLeg(c, b, inv.CSeq().SeqNo, s.declined(c, b, res))
	s.sendBye(c, b, c.cancelReasonOr(reasonCancelled))
}

func orReason(r, def string) string {
	if r != "" {
		return r
	}
	return def
}

// answeredAfter is the count a 2xx on a leg given up for why makes.
func answeredAfter(why string) string {
	if why == abandonCancelled {
		return "answer_after_cancel"
	}
	return "abandoned_answered"
}

// maxGivenUp bounds the legs B a call keeps listening to after giving up
// on them: one per target tried, and routes have few.
const maxGivenUp = 16

// giveUp marks leg B given up for why: every 2xx from it loses (fork.go),
// and its Call-ID stays in the call table with the call, so that what it
// sends after its transaction is gone still finds it (onGivenUp).
func (c *Call) giveUp(b *Leg, why string, cancelSent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b.forks.settleLocked("", why)
	b.forks.cancelSent = b.forks.cancelSent || cancelSent
	if len(c.givenUp) < maxGivenUp {
		c.givenUp = append(c.givenUp, b)
	}
}

// givenUpLeg is the leg B with that Call-ID that the call gave up on.
func (c *Call) givenUpLeg(callID string) *Leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.givenUp {
		if l.d.CallID == callID {
			return l
		}
	}
	return nil
}

// keeps says whether l is a leg the call gave up on (and so keeps
// indexed until it ends).
func (c *Call) keeps(l *Leg) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.givenUp {
		if g == l {
			return true
		}
	}
	return false
}

// abandon takes over a leg B INVITE transaction the setup has given up
// on (the target rang too long, or the caller cancelled), in the
// background: a provisional makes it send the CANCEL it could not send
// before (cancelSent false), any 2xx is ACKed and hung up (fork.go's
// losing-dialog path), and a final answer, the transaction's end,
// abandonFor or the SBC's shutdown stop it. It owns tx and terminates it.
func (s *SBC) abandon(c *Call, r *Realm, b *Leg, inv *sip.Request, tx sip.ClientTransaction, cancelSent bool, reason, why string) {
	c.giveUp(b, why, cancelSent)
	go func() {
		defer tx.Terminate()
		bound := time.NewTimer(abandonFor())
		defer bound.Stop()
		for {
			select {
			case res := <-tx.Responses():
				s.metrics.resIn(r.Name, res.StatusCode)
				switch {
				case res.IsProvisional():
					s.cancelGivenUp(c, b, inv, reason)
				case res.IsSuccess():
					s.afterWin(c, b, res)
					// Stay: other branches may answer too, and this
					// one's retransmissions reach the hook until Timer M.
				default:
					return // 3xx-6xx: sipgo ACKs it; nothing rings
				}
			case <-tx.Done():
				return
			case <-bound.C:
				return
			case <-s.ctx.Done():
				return
			}
		}
	}()
}

// cancelGivenUp sends the CANCEL of a given-up leg B once, when a
// provisional shows the target is there after all (RFC 3261 9.1).
func (s *SBC) cancelGivenUp(c *Call, b *Leg, inv *sip.Request, reason string) {
	c.mu.Lock()
	sent, why := b.forks.cancelSent, b.forks.abandoned
	b.forks.cancelSent = true
	c.mu.Unlock()
	if sent {
		return
	}
	if why == abandonTarget {
		s.metrics.CancelRaces.WithLabelValues(b.realm.Name, "abandoned_cancelled").Inc()
	}
	s.sendCancel(b.realm, inv, reason)
}

// onGivenUp handles a response to the INVITE of a leg B given up on whose
// transaction is gone (a target abandoned as silent: its transaction ends
// at once, so that its INVITE stops being retransmitted): a provisional
// gets the CANCEL, a 2xx its ACK and BYE, any other final its ACK (RFC
// 3261 17.1.1.3: sipgo's transaction would have sent it).
func (s *SBC) onGivenUp(c *Call, b *Leg, res *sip.Response) bool {
	cseq := res.CSeq()
	c.mu.Lock()
	inv := b.invite
	c.mu.Unlock()
	if cseq == nil || cseq.MethodName != sip.INVITE || inv == nil || cseq.SeqNo != inv.CSeq().SeqNo {
		return false
	}
	switch {
	case res.IsProvisional():
		s.cancelGivenUp(c, b, inv, reasonTargetSilent)
		return true
	case res.IsSuccess():
		return s.afterWin(c, b, res)
	default:
		s.send(b.realm, ackNon2xx(inv, res))
		return true
	}
}

// ackNon2xx is the ACK for a non-2xx final answer to inv (RFC 3261
// 17.1.1.3): the INVITE's top Via, Request-URI, From, Call-ID, CSeq number
// and Route, and the answer's To.
func ackNon2xx(inv *sip.Request, res *sip.Response) *sip.Request {
	return sameTransaction(sip.ACK, inv, res.To())
}

// sameTransaction is a request of the INVITE's own transaction (its ACK
// for a non-2xx, or its CANCEL): the INVITE's Request-URI, top Via,
// Route, From, Call-ID and CSeq number, with to as To and no body.
func sameTransaction(method sip.RequestMethod, inv *sip.Request, to *sip.ToHeader) *sip.Request {
	req := sip.NewRequest(method, inv.Recipient)
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(to))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: method})
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	return req
}

// cancelOnce is a CANCEL that came for a server transaction: done is
// closed once, from sipgo's OnCancel.
type cancelOnce struct{ done chan struct{} }

// watchCancel registers for tx's CANCEL; done is closed at once when it
// already came.
func watchCancel(tx sip.ServerTransaction) *cancelOnce {
	w := &cancelOnce{done: make(chan struct{})}
	if !tx.OnCancel(func(*sip.Request) { close(w.done) }) {
		close(w.done)
	}
	return w
}

func (w *cancelOnce) came() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// transactInvite is transact for a re-INVITE relayed to the far leg, that
// the near leg may CANCEL: then it CANCELs it on the far leg too, once a
// provisional from there allows (RFC 3261 9.1), and waits for its final
// answer as before.
func (s *SBC) transactInvite(r *Realm, req *sip.Request, cancel *cancelOnce) *sip.Response {
	tx, err := r.request(s.ctx, req)
	if err != nil {
		r.log.Debug("request not sent", "method", req.Method, "error", err)
		return nil
	}
	s.metrics.reqOut(r.Name, string(req.Method))
	defer tx.Terminate()
	provisional, sent := false, false
	cancelled := cancel.done
	for {
		select {
		case res := <-tx.Responses():
			s.metrics.resIn(r.Name, res.StatusCode)
			if !res.IsProvisional() {
				return res
			}
			provisional = true
		case <-cancelled:
			cancelled = nil
		case <-tx.Done():
			return nil
		}
		if cancelled == nil && provisional && !sent {
			sent = true
			s.metrics.CancelRaces.WithLabelValues(r.Name, "reinvite_cancelled").Inc()
			s.sendCancel(r, req, "")
		}
	}
}

// reinviteLost handles a far 2xx to a re-INVITE whose near side got 487
// (its CANCEL came first): the far leg is ACKed (bare, if the 2xx carried
// an offer the near side will never answer) and the media left as before
// the offer, the session the near side still has. True when it did.
func (s *SBC) reinviteLost(c *Call, far *Leg, out *sip.Request, res *sip.Response, offers bool, cancel *cancelOnce) bool {
	if !res.IsSuccess() || !cancel.came() {
		return false
	}
	far.realm.log.Info("re-INVITE cancelled but answered: ACK, session kept as it was", "call", c.ID)
	s.metrics.CancelRaces.WithLabelValues(far.realm.Name, "reinvite_answer_after_cancel").Inc()
	if offers {
		s.rollbackOffer(c)
	}
	c.mu.Lock()
	if u, ok := contactURI(res); ok {
		far.d.Target = u // a 2xx refreshes the target all the same
	}
	ack := topology.BuildRequest(sip.ACK, far.d, out.CSeq().SeqNo, 70, far.local, nil, nil, nil, "")
	far.ack = ack
	ack = ack.Clone()
	c.mu.Unlock()
	s.send(far.realm, ack)
	return true
}
