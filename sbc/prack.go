package sbc

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// Reliable provisional responses (RFC 3262), per leg. The SBC is the UAS
// of leg A and the UAC of leg B, and each leg gets 100rel exactly as far
// as its own peer asked for it:
//
//   - Leg A: a caller that requires 100rel gets every 18x reliably, with
//     an RSeq of the SBC's, retransmitted until its PRACK (answered here);
//     a caller that only supports it gets reliably what came reliably
//     from leg B. Any other caller gets plain 18x.
//   - Leg B: the SBC offers 100rel (Supported) and PRACKs reliable 18x
//     itself, in RSeq order; out-of-order ones are dropped unPRACKed.
//
// The one case where a PRACK crosses the SBC is an offer in leg B's
// reliable 18x (the INVITE had none): the answer is the caller's, so leg
// B's PRACK waits for leg A's and carries its SDP.

// relMode is what a peer said of 100rel in its INVITE.
type relMode uint8

const (
	relNone relMode = iota
	relSupported
	relRequired
)

// relMaxQueue bounds the 18x waiting behind an unacknowledged reliable one
// (RFC 3262 3: one at a time); beyond it plain ones are dropped.
const relMaxQueue = 8

// relState is one leg's 100rel state. Guarded by its call's mu.
type relState struct {
	// Leg A (SBC as UAS).
	mode    relMode
	rseq    uint32       // last RSeq sent
	pending *relPending  // the reliable 18x awaiting its PRACK
	queue   []*relQueued // 18x waiting for pending's PRACK
	txA     sip.ServerTransaction
	// Leg B (SBC as UAC): the last in-order RSeq received on a 18x
	// without a To tag; each early dialog keeps its own (fork.go).
	untagged rseqIn
	// earlyOA: an offer/answer completed in the early dialog (an answer
	// went through in a reliable 18x or a PRACK): an UPDATE may carry a new
	// offer (RFC 3311 5.1). earlyBusy: an early UPDATE's offer is under
	// way (a second gets 491).
	earlyOA, earlyBusy bool
}

// relPending is a reliable 18x sent on leg A and not yet PRACKed.
type relPending struct {
	res    *sip.Response
	rseq   uint32
	cseq   uint32
	hasSDP bool
	acked  chan struct{} // closed on PRACK, or when given up
	held   *heldPrack    // leg B's PRACK that waits for this one's
}

type relQueued struct {
	res  *sip.Response
	held *heldPrack
}

// heldPrack is leg B's PRACK, not yet sent: its 18x carried an offer whose
// answer comes in leg A's PRACK.
type heldPrack struct {
	b    *Leg
	d    topology.Dialog
	rack string
}

// reasonNoPrack is the Reason (RFC 3326) of a call ended because the
// caller never PRACKed a reliable provisional.
const reasonNoPrack = `Q.850;cause=102;text="no PRACK for reliable provisional"`

// relGiveUp is how long a reliable 18x is retransmitted without a PRACK
// (RFC 3262 3: 64*T1); a variable for tests.
var relGiveUp = 64 * sip.T1

// optionTags lists the option tags of every header with that name.
func optionTags(m sip.Message, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		for _, t := range strings.Split(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, strings.ToLower(t))
			}
		}
	}
	return out
}

func hasTag(m sip.Message, name, tag string) bool {
	for _, t := range optionTags(m, name) {
		if t == tag {
			return true
		}
	}
	return false
}

// relModeOf is what an INVITE says of 100rel (k is Supported's compact form).
func relModeOf(req *sip.Request) relMode {
	switch {
	case hasTag(req, "Require", "100rel"):
		return relRequired
	case hasTag(req, "Supported", "100rel") || hasTag(req, "k", "100rel"):
		return relSupported
	}
	return relNone
}

// parseRSeq reads an RSeq value: 1 to 2**32-1 (RFC 3262 7.1).
func parseRSeq(v string) (uint32, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// parseRAck reads "response-num CSeq-num Method" (RFC 3262 7.2).
func parseRAck(req *sip.Request) (rseq, cseq uint32, method string, ok bool) {
	hs := req.GetHeaders("RAck")
	if len(hs) != 1 {
		return 0, 0, "", false
	}
	f := strings.Fields(hs[0].Value())
	if len(f) != 3 {
		return 0, 0, "", false
	}
	if rseq, ok = parseRSeq(f[0]); !ok {
		return 0, 0, "", false
	}
	n, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil || len(f[1]) > 10 {
		return 0, 0, "", false
	}
	return rseq, uint32(n), f[2], true
}

// offer100rel says on leg B's INVITE that the SBC supports 100rel there,
// whatever the caller did. prack.go is the one owner of the 100rel tag
// (capabilities.go); the caller's Supported never crosses.
func offer100rel(inv *sip.Request) {
	var tags []string
	for _, name := range []string{"Supported", "k"} {
		for _, h := range inv.GetHeaders(name) {
			tags = append(tags, h.Value())
		}
		inv.RemoveHeader(name)
	}
	tags = append(tags, "100rel")
	inv.AppendHeader(sip.NewHeader("Supported", strings.Join(tags, ", ")))
}

// relCount counts one 100rel event on a realm.
func (s *SBC) relCount(r *Realm, event string) {
	s.metrics.Reliable.WithLabelValues(r.Name, event).Inc()
}

// reliableFromB checks a provisional from leg B for 100rel and PRACKs it.
// It says whether the 18x is to be relayed, whether it came reliably, and
// the PRACK held for leg A's when its SDP is an offer.
func (s *SBC) reliableFromB(c *Call, b *Leg, res *sip.Response) (relay, reliable bool, held *heldPrack) {
	if !hasTag(res, "Require", "100rel") {
		return true, false, nil
	}
	r := b.realm
	hs := res.GetHeaders("RSeq")
	var rseq uint32
	ok := len(hs) == 1
	if ok {
		rseq, ok = parseRSeq(hs[0].Value())
	}
	if !ok {
		// A response cannot be answered 400: it is dropped, and the callee
		// retransmits it until it gives up.
		s.metrics.Malformed.WithLabelValues(r.Name, "rseq").Inc()
		return false, false, nil
	}
	cseq, tag := res.CSeq().SeqNo, toTag(res)
	c.mu.Lock()
	st := &b.rel.untagged
	if ed := b.earlyLocked(tag); ed != nil {
		st = &ed.rseq // RSeq counts per early dialog (RFC 3262 4; fork.go)
	}
	if st.last != 0 && st.cseq == cseq {
		switch {
		case rseq == st.last: // a retransmission: already PRACKed
			c.mu.Unlock()
			s.relCount(r, "retransmission_in")
			return false, false, nil
		case rseq != st.last+1: // RFC 3262 4: neither PRACKed nor processed
			c.mu.Unlock()
			s.relCount(r, "rseq_out_of_order")
			return false, false, nil
		}
	}
	st.last, st.cseq = rseq, cseq
	if tag != "" {
		b.d.RemoteTag = tag
	}
	if u, ok := contactURI(res); ok {
		b.d.Target = u
	}
	if rr := recordRoute(res, true); len(rr) > 0 {
		b.d.RouteSet = rr
	}
	d := b.d
	offerSent := b.invite != nil && isSDP(b.invite)
	aMode := c.a.rel.mode
	if isSDP(res) && offerSent {
		c.a.rel.earlyOA, b.rel.earlyOA = true, true
	}
	c.mu.Unlock()
	s.relCount(r, "reliable_in")

	h := &heldPrack{b: b, d: d, rack: strconv.FormatUint(uint64(rseq), 10) + " " + strconv.FormatUint(uint64(cseq), 10) + " INVITE"}
	if isSDP(res) && !offerSent && aMode != relNone {
		return true, true, h // the answer is the caller's: in its PRACK
	}
	go s.sendPrack(c, h, nil, nil)
	return true, true, nil
}

// sendPrack PRACKs a reliable 18x on leg B, with an SDP answer when one
// is given; it returns the final response (nil without one) on done when
// done is not nil.
func (s *SBC) sendPrack(c *Call, h *heldPrack, body []byte, done chan<- *sip.Response) {
	c.mu.Lock()
	seq := h.b.nextCSeqLocked()
	c.mu.Unlock()
	pr := topology.BuildRequest(sip.PRACK, h.d, seq, 70, h.b.local, nil, nil, body, "")
	pr.AppendHeader(sip.NewHeader("RAck", h.rack))
	s.relCount(h.b.realm, "prack_out")
	if done == nil {
		s.finish(h.b.realm, pr)
		return
	}
	done <- s.transact(h.b.realm, pr)
}

// toLegA sends a provisional response built for leg A: reliably when the
// caller requires 100rel, or supports it and the far side sent it
// reliably; plainly otherwise. held is leg B's PRACK that waits for leg
// A's.
func (s *SBC) toLegA(c *Call, txA sip.ServerTransaction, out *sip.Response, reliable bool, held *heldPrack) {
	c.mu.Lock()
	st := &c.a.rel
	rel := st.mode == relRequired || st.mode == relSupported && reliable
	if !rel || c.state == StateEnded {
		c.mu.Unlock()
		if held != nil { // cannot be answered through A: PRACK it bare
			go s.sendPrack(c, held, nil, nil)
		}
		s.respond(c.a.realm, txA, out)
		return
	}
	st.txA = txA
	if st.pending != nil {
		if len(st.queue) >= relMaxQueue {
			c.mu.Unlock()
			s.relCount(c.a.realm, "queue_full")
			if held != nil {
				go s.sendPrack(c, held, nil, nil)
			}
			return
		}
		st.queue = append(st.queue, &relQueued{res: out, held: held})
		c.mu.Unlock()
		return
	}
	p := s.armReliableLocked(c, out, held)
	c.mu.Unlock()
	s.startReliable(c, txA, p)
}

// armReliableLocked numbers a provisional for leg A and makes it the
// pending one. c.mu held.
func (s *SBC) armReliableLocked(c *Call, out *sip.Response, held *heldPrack) *relPending {
	st := &c.a.rel
	if st.rseq == 0 {
		st.rseq = uint32(randUint16()) + 1 // RFC 3262 3: start below 2**31
	} else {
		st.rseq++
	}
	out.RemoveHeader("Require")
	out.RemoveHeader("RSeq")
	out.AppendHeader(sip.NewHeader("Require", "100rel"))
	out.AppendHeader(sip.NewHeader("RSeq", strconv.FormatUint(uint64(st.rseq), 10)))
	p := &relPending{res: out, rseq: st.rseq, cseq: c.a.invite.CSeq().SeqNo, hasSDP: len(out.Body()) > 0, acked: make(chan struct{}), held: held}
	st.pending = p
	return p
}

// startReliable sends a reliable 18x and retransmits it, T1 doubling, until
// its PRACK, the call's end or relGiveUp; a caller that never PRACKs has
// its call ended (RFC 3262 3 would reject the INVITE with a 5xx).
func (s *SBC) startReliable(c *Call, txA sip.ServerTransaction, p *relPending) {
	r := c.a.realm
	s.respond(r, txA, p.res)
	s.relCount(r, "reliable_out")
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
		interval := sip.T1
		t := time.NewTimer(interval)
		defer t.Stop()
		giveUp := time.NewTimer(relGiveUp)
		defer giveUp.Stop()
		for {
			select {
			case <-p.acked:
				return
			case <-c.done:
				return
			case <-s.ctx.Done():
				return
			case <-txA.Done():
				return
			case <-t.C:
				if !sip.IsReliable(p.res.Transport()) {
					if err := txA.Respond(p.res); err == nil {
						s.metrics.resOut(r.Name, p.res.StatusCode)
						s.relCount(r, "retransmission_out")
					}
				}
				interval *= 2 // RFC 3262 3: doubling, with no T2 cap
				t.Reset(interval)
			case <-giveUp.C:
				c.mu.Lock()
				mine := c.a.rel.pending == p
				if mine {
					c.a.rel.pending, c.a.rel.queue = nil, nil
				}
				c.mu.Unlock()
				if !mine {
					return
				}
				s.relCount(r, "no_prack")
				r.log.Info("no PRACK for reliable provisional, ending call", "call", c.ID)
				// Ended here so the result says why; the setup goroutine
				// then CANCELs leg B and answers leg A.
				c.setCancelReason(reasonNoPrack)
				c.mu.Lock()
				cancel := c.cancelSetup
				c.mu.Unlock()
				if c.end("no_prack", reasonNoPrack) && cancel != nil {
					cancel()
				}
				return
			}
		}
	}()
}

// onPrack answers a PRACK from leg A's caller: 200 when its RAck names the
// reliable 18x awaiting it, 481 when it names nothing, 400 when it cannot
// be read. Its SDP is the answer to an offer leg B made in that 18x
// (relayed in leg B's PRACK), or a new offer (relayed as an UPDATE).
func (s *SBC) onPrack(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	rseq, cseq, method, ok := parseRAck(req)
	if !ok {
		s.metrics.Malformed.WithLabelValues(r.Name, "rack").Inc()
		s.reply(r, req, tx, sip.StatusBadRequest, "Bad RAck", "")
		return
	}
	ref, found := s.findLeg(r, req)
	if !found || ref.side != SideA {
		s.relCount(r, "prack_unmatched")
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	}
	c := ref.call
	c.mu.Lock()
	st := &c.a.rel
	p := st.pending
	if c.state == StateEnded || p == nil || p.rseq != rseq || p.cseq != cseq || !strings.EqualFold(method, "INVITE") {
		c.mu.Unlock()
		s.relCount(r, "prack_unmatched")
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	}
	if !inOrder(c.a, req) {
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusInternalServerError, "CSeq Out Of Order", "")
		return
	}
	st.pending = nil
	close(p.acked)
	var next *relPending
	if len(st.queue) > 0 {
		q := st.queue[0]
		st.queue = st.queue[1:]
		next = s.armReliableLocked(c, q.res, q.held)
	}
	txA := st.txA
	c.mu.Unlock()
	s.relCount(r, "prack_in")
	if next != nil {
		defer s.startReliable(c, txA, next)
	}

	body := req.Body()
	switch {
	case p.held != nil:
		// The answer to leg B's offer in its 18x: PRACK leg B with it.
		var answer []byte
		if len(body) > 0 && isSDP(req) {
			var err error
			if answer, err = s.media.Answer(c.media, SideA, body); err != nil {
				r.log.Info("PRACK answer refused", "call", c.ID, "error", err)
				answer = nil
			} else {
				c.mu.Lock()
				c.a.rel.earlyOA, p.held.b.rel.earlyOA = true, true
				c.mu.Unlock()
			}
		}
		done := make(chan *sip.Response, 1)
		s.sendPrack(c, p.held, answer, done)
		<-done
		s.reply(r, req, tx, sip.StatusOK, "OK", "")
	case len(body) > 0 && isSDP(req):
		// A new offer in the PRACK: leg B hears it as an early UPDATE.
		s.relayEarlyOffer(r, req, tx, ref)
	default:
		s.reply(r, req, tx, sip.StatusOK, "OK", "")
	}
}

// awaitPrackBefore2xx holds leg A's 2xx while a reliable 18x with SDP is
// unacknowledged (RFC 3262 3: the 2xx MUST wait for it), bounded by the
// call's end and relGiveUp. The other 18x still queued are dropped: the
// 2xx makes them moot.
func (s *SBC) awaitPrackBefore2xx(c *Call) {
	c.mu.Lock()
	st := &c.a.rel
	p := st.pending
	st.queue = nil
	c.mu.Unlock()
	if p != nil && p.hasSDP {
		t := time.NewTimer(relGiveUp)
		defer t.Stop()
		select {
		case <-p.acked:
		case <-c.done:
		case <-c.setupDone: // the caller's CANCEL: no 2xx will reach it (cancel.go)
		case <-s.ctx.Done():
		case <-t.C:
		}
	}
	// The 2xx ends the reliable 18x's retransmissions, PRACKed or not.
	c.mu.Lock()
	if st.pending == p && p != nil {
		st.pending = nil
		close(p.acked)
	}
	c.mu.Unlock()
}
