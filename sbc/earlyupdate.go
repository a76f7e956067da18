package sbc

import (
	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// earlyUpdate relays an UPDATE that arrives while the call is still being
// set up (RFC 3311: UPDATE in an early dialog), in either direction, and
// says whether it did; an UPDATE after the answer is the in-dialog path's.
func (s *SBC) earlyUpdate(r *Realm, req *sip.Request, tx sip.ServerTransaction, ref legRef) bool {
	c := ref.call
	c.mu.Lock()
	early := c.state == StateTrying || c.state == StateEarly
	c.mu.Unlock()
	if !early {
		return false
	}
	s.relayEarlyOffer(r, req, tx, ref)
	return true
}

// relayEarlyOffer sends req (an early UPDATE, or a PRACK carrying a new
// offer) to the other leg's early dialog as an UPDATE, its SDP through the
// media anchor, and answers req with what comes back. An offer is taken
// only once the early dialog's first offer/answer is done (RFC 3311 5.2:
// 500 with Retry-After before, 491 while another early offer is under
// way); a refused one is rolled back.
func (s *SBC) relayEarlyOffer(r *Realm, req *sip.Request, tx sip.ServerTransaction, ref legRef) {
	c := ref.call
	offers := isSDP(req)
	isUpdate := req.Method == sip.UPDATE
	c.mu.Lock()
	x, y := c.leg(ref.side), c.other(ref.side)
	st := &c.a.rel // the early offer/answer state is the call's, kept on leg A
	switch {
	case c.state == StateEnded:
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	case isUpdate && !inOrder(x, req):
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusInternalServerError, "CSeq Out Of Order", "")
		return
	case y == nil || y.d.RemoteTag == "":
		c.mu.Unlock()
		s.reply(r, req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", "")
		return
	case offers && st.earlyBusy:
		c.mu.Unlock()
		s.relCount(r, "early_glare")
		s.reply(r, req, tx, sip.StatusRequestPending, "Request Pending", "", sip.NewHeader("Retry-After", "1"))
		return
	case offers && !st.earlyOA:
		c.mu.Unlock()
		s.relCount(r, "early_offer_too_soon")
		s.reply(r, req, tx, sip.StatusInternalServerError, "Offer Before Answer", "", sip.NewHeader("Retry-After", "2"))
		return
	}
	if offers {
		st.earlyBusy = true
	}
	if isUpdate {
		if u, ok := contactURI(req); ok {
			x.d.Target = u // target refresh (RFC 3311 5.1)
		}
	}
	seq, d := y.nextCSeqLocked(), y.d
	c.mu.Unlock()
	// release ends this offer before its answer leaves: a peer may send
	// its next offer the moment it has the answer, which must not be 491.
	released := false
	release := func() {
		if offers && !released {
			released = true
			c.mu.Lock()
			st.earlyBusy = false
			c.mu.Unlock()
		}
	}
	defer release()

	body := req.Body()
	if offers {
		var err error
		if body, err = s.media.Offer(c.media, ref.side, body); err != nil {
			s.rollbackOffer(c)
			code, reason := mediaRefusal(err)
			s.reply(r, req, tx, code, reason, "")
			return
		}
	}
	mf := maxForwards(req) - 1
	if mf < 0 {
		if offers {
			s.rollbackOffer(c)
		}
		s.reply(r, req, tx, sip.StatusTooManyHops, "Too Many Hops", "")
		return
	}
	var src *sip.Request
	if isUpdate {
		src = req // a PRACK's own headers (RAck...) are of leg A only
	}
	out := topology.BuildRequest(sip.UPDATE, d, seq, mf, y.local, y.headerFilter(), src, body, contentType(req))
	s.relCount(y.realm, "early_update_out")
	res := s.transact(y.realm, out)
	if offers && (res == nil || !res.IsSuccess()) {
		s.rollbackOffer(c) // the early session is as before the offer
	}
	if res == nil {
		release()
		s.reply(r, req, tx, sip.StatusRequestTimeout, "Request Timeout", "")
		return
	}
	rbody := res.Body()
	if res.IsSuccess() && offers && isSDP(res) {
		var err error
		if rbody, err = s.media.Answer(c.media, ref.side^1, rbody); err != nil {
			rbody = nil
		}
	}
	if res.IsSuccess() && isUpdate {
		c.mu.Lock()
		if u, ok := contactURI(res); ok {
			y.d.Target = u
		}
		c.mu.Unlock()
	}
	var filter *topology.HeaderFilter
	var from *sip.Response
	if isUpdate {
		filter, from = x.headerFilter(), res
	}
	back := topology.BuildResponse(req, res.StatusCode, res.Reason, x.d.LocalTag, res.IsSuccess() && isUpdate, x.local, filter, from, rbody, contentType(res))
	release()
	s.respond(r, tx, back)
}
