package sbc

import (
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/topology"
)

// Forking behind leg B (RFC 3261 12.1.2, 13.2.2.4, 16.7): a proxy there
// may fork the INVITE, and each branch that answers makes a dialog of its
// own, told apart by its To tag. Leg A keeps one dialog whatever happens:
//
//   - Early: every branch's 18x is relayed on leg A's one early dialog,
//     its SDP through the media anchor, so leg A's early media follows the
//     latest early answer. Each early dialog of leg B is tracked (its
//     target, route set and RSeq, for PRACK and UPDATE); the latest one to
//     send an 18x is the one leg B's requests go to.
//   - Answer: the first 2xx wins and is relayed. Every other 2xx (another
//     To tag) is ACKed and then ended with BYE on its own dialog; its
//     retransmissions are ACKed again. Those dialogs never reach the call
//     table: a BYE on one is answered 481 (legByTags checks both tags) and
//     never ends the live call.
//
// sipgo hands the later 2xx over in two ways (sipgo_forks.go): while leg
// B's INVITE transaction is Accepted, to its OnRetransmission hook; after
// it is gone, to the realm's unhandled-response handler
// (onStrayResponse). Both end in afterWin.

// maxEarlyDialogs bounds leg B's early dialogs (To tags): an 18x that
// would open one more is dropped and counted, so a hostile callee cannot
// grow a call's state without end.
const maxEarlyDialogs = 16

// maxLosers bounds the losing dialogs remembered per leg (for re-ACKing
// their 2xx retransmissions); past it a losing 2xx is dropped and counted.
const maxLosers = 16

// winWait bounds how long a 2xx that reached the OnRetransmission hook
// waits for the setup goroutine to name the winner: that 2xx overtook the
// first one's relay by microseconds, not more.
func winWait() time.Duration { return sip.T1 }

// forkState is one leg B's dialogs beyond the one in Leg.d. Guarded by
// the call's mu.
type forkState struct {
	early map[string]*earlyDialog // by To tag
	// winner is the To tag of the 2xx that won; settled is closed once
	// it is known, or once the leg was given up (abandoned says why,
	// cancel.go: then every 2xx loses).
	winner, abandoned string
	settled           chan struct{}
	cancelSent        bool                    // given up: its CANCEL went (cancel.go)
	losers            map[string]*sip.Request // the ACK sent to each losing 2xx, by To tag
}

// earlyDialog is one early dialog of leg B.
type earlyDialog struct {
	target   sip.Uri
	routeSet []sip.Uri
	rseq     rseqIn // its reliable 18x (prack.go)
}

// rseqIn is the last in-order RSeq received on an early dialog, for the
// INVITE with CSeq cseq.
type rseqIn struct{ last, cseq uint32 }

// settledLocked returns the channel closed when the leg's winner is
// known. c.mu held.
func (f *forkState) settledLocked() chan struct{} {
	if f.settled == nil {
		f.settled = make(chan struct{})
	}
	return f.settled
}

// settleLocked names the winning To tag ("" with abandoned: none) once.
// c.mu held.
func (f *forkState) settleLocked(tag, abandoned string) {
	ch := f.settledLocked()
	select {
	case <-ch:
		return
	default:
	}
	f.winner, f.abandoned = tag, abandoned
	close(ch)
}

// trackEarly records the early dialog an 18x from leg B opens or
// continues, and makes it the one leg B's requests go to (Leg.d). False
// when the 18x would open one early dialog too many: it is dropped.
func (s *SBC) trackEarly(c *Call, b *Leg, res *sip.Response) bool {
	tag := toTag(res)
	if tag == "" {
		return true // no dialog: nothing to track
	}
	c.mu.Lock()
	f := &b.forks
	ed, known := f.early[tag]
	if !known {
		if len(f.early) >= maxEarlyDialogs {
			c.mu.Unlock()
			s.metrics.Forks.WithLabelValues(b.realm.Name, "early_refused").Inc()
			return false
		}
		if f.early == nil {
			f.early = map[string]*earlyDialog{}
		}
		ed = &earlyDialog{target: b.invite.Recipient, routeSet: recordRoute(res, true)}
		f.early[tag] = ed
	}
	if u, ok := contactURI(res); ok {
		ed.target = u
	}
	b.d.RemoteTag, b.d.Target, b.d.RouteSet = tag, ed.target, ed.routeSet
	c.mu.Unlock()
	if !known {
		s.metrics.Forks.WithLabelValues(b.realm.Name, "early").Inc()
	}
	return true
}

// earlyLocked is leg B's early dialog with that To tag, nil when there
// is none. c.mu held.
func (b *Leg) earlyLocked(tag string) *earlyDialog {
	return b.forks.early[tag]
}

// won names the 2xx the setup goroutine took as leg B's answer: every
// other To tag now loses.
func (c *Call) won(b *Leg, res *sip.Response) {
	c.mu.Lock()
	b.forks.settleLocked(toTag(res), "")
	c.mu.Unlock()
}

// strayOnLegB takes a response that matched no transaction and belongs
// to a leg B INVITE: a 2xx after the winner's (afterWin), or anything for
// a leg given up on (onGivenUp, cancel.go). False when it is neither.
func (s *SBC) strayOnLegB(res *sip.Response) bool {
	cid := res.CallID()
	if cid == nil {
		return false
	}
	ref, ok := s.calls.lookup(cid.Value())
	if !ok || ref.side != SideB {
		return false
	}
	c := ref.call
	if g := c.givenUpLeg(cid.Value()); g != nil {
		return s.onGivenUp(c, g, res)
	}
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	return b != nil && b.d.CallID == cid.Value() && s.afterWin(c, b, res)
}

// onLateResponse takes what leg B's INVITE transaction hands its
// OnRetransmission hook: 2xx after the first, the first's own
// retransmissions or another branch's. It waits (briefly) for the setup
// goroutine to have named the winner, which it is doing at that moment.
func (s *SBC) onLateResponse(r *Realm, c *Call, b *Leg, res *sip.Response) {
	c.mu.Lock()
	settled := b.forks.settledLocked()
	c.mu.Unlock()
	t := time.NewTimer(winWait())
	defer t.Stop()
	select {
	case <-settled:
	case <-t.C:
	}
	s.metrics.resIn(r.Name, res.StatusCode)
	if !s.afterWin(c, b, res) {
		s.metrics.DroppedStray.WithLabelValues(r.Name, "response").Inc()
	}
}

// afterWin handles a 2xx to leg B's INVITE that is not the first: the
// winner's retransmission is ACKed again (our ACK was lost); another To
// tag's, or any on a leg given up, is a losing dialog: ACKed, then hung up
// with BYE, once; its retransmissions only ACKed again. False when it
// could do nothing with res.
func (s *SBC) afterWin(c *Call, b *Leg, res *sip.Response) bool {
	cseq := res.CSeq()
	if !res.IsSuccess() || cseq == nil || cseq.MethodName != sip.INVITE || b.invite == nil || cseq.SeqNo != b.invite.CSeq().SeqNo {
		return false
	}
	tag := toTag(res)
	body := s.declined(c, b, res) // before mu: the media hook is not called under it
	c.mu.Lock()
	f := &b.forks
	settled := false
	select {
	case <-f.settledLocked():
		settled = true
	default:
	}
	if settled && f.abandoned == "" && tag == f.winner {
		var ack *sip.Request
		if b.ack != nil {
			ack = b.ack.Clone()
		}
		c.mu.Unlock()
		if ack == nil {
			return false // not ACKed yet: the ACK is on its way
		}
		s.send(b.realm, ack)
		return true
	}
	if ack, ok := f.losers[tag]; ok {
		ack = ack.Clone()
		c.mu.Unlock()
		s.metrics.Forks.WithLabelValues(b.realm.Name, "loser_retransmission").Inc()
		s.send(b.realm, ack)
		return true
	}
	if len(f.losers) >= maxLosers || tag == "" {
		c.mu.Unlock()
		return false
	}
	d := loserDialog(b, res)
	ack := topology.BuildRequest(sip.ACK, d, cseq.SeqNo, 70, b.local, nil, nil, body, "")
	if f.losers == nil {
		f.losers = map[string]*sip.Request{}
	}
	f.losers[tag] = ack
	ack = ack.Clone()
	why := f.abandoned
	c.mu.Unlock()

	if why != "" {
		s.metrics.CancelRaces.WithLabelValues(b.realm.Name, answeredAfter(why)).Inc()
		b.realm.log.Info("2xx on a leg given up: ACK and BYE", "call", c.ID, "why", why)
	} else {
		s.metrics.Forks.WithLabelValues(b.realm.Name, "loser_2xx").Inc()
		b.realm.log.Info("2xx of a losing fork: ACK and BYE", "call", c.ID, "tag", tag)
	}
	s.send(b.realm, ack)
	// RFC 3261 13.2.2.4: the UAC must ACK every 2xx and, not wanting the
	// dialog, end it with BYE. Its CSeq is the INVITE's plus one: nothing
	// else was ever sent on this dialog.
	bye := topology.BuildRequest(sip.BYE, d, cseq.SeqNo+1, 70, b.local, nil, nil, nil, "")
	s.finish(b.realm, bye)
	return true
}

// loserDialog is the dialog a losing 2xx made (RFC 3261 12.1.2): leg B's,
// with the 2xx's To tag, Contact and route set. c.mu held.
func loserDialog(b *Leg, res *sip.Response) topology.Dialog {
	d := b.d
	d.RemoteTag = toTag(res)
	if ed, ok := b.forks.early[d.RemoteTag]; ok {
		d.Target = ed.target
	} else if b.invite != nil {
		d.Target = b.invite.Recipient
	}
	if u, ok := contactURI(res); ok {
		d.Target = u
	}
	d.RouteSet = recordRoute(res, true)
	return d
}

// mediaDecline is implemented by hooks that can refuse an offer outright
// (mediarelay's Anchor.Decline), for the ACK of a 2xx nobody takes.
type mediaDecline interface {
	Decline(call mediarelay.CallRef, from Side, offer []byte) ([]byte, error)
}

// declined is the ACK body for a 2xx on leg b that is hung up at once:
// nil when leg b's INVITE carried the offer (the 2xx has the answer);
// else an answer refusing every stream of the 2xx's offer (RFC 3261
// 13.2.2.4 wants one before the BYE), where the hook can make it.
func (s *SBC) declined(c *Call, b *Leg, res *sip.Response) []byte {
	c.mu.Lock()
	inv := b.invite
	c.mu.Unlock()
	if inv == nil || len(inv.Body()) > 0 || len(res.Body()) == 0 || !isSDP(res) {
		return nil
	}
	h, ok := s.media.(mediaDecline)
	if !ok {
		return nil
	}
	body, err := h.Decline(c.media, b.side, res.Body())
	if err != nil {
		return nil // an unreadable offer: the ACK goes bare, the BYE follows
	}
	return body
}
