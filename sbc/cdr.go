package sbc

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/policy"
)

// CallRecorder takes each call's detail record when it ends. Record must
// not block: it runs on the goroutine ending the call (cdr.Writer queues).
type CallRecorder interface {
	Record(cdr.Record)
}

// callNotes is what the record needs that the call itself does not keep;
// guarded by the call's mu.
type callNotes struct {
	attempts  int    // targets leg B was sent to
	trunk     string // the trunk of the last target tried, or the inbound one
	sipCode   int    // final answer to leg A's INVITE
	sipReason string
	byeReason string // Reason header of the BYE that ended the call
}

// recordOnEnd has the call hand its record to the recorder when it ends.
// track registers it before the hook that releases the call's media, so
// the media statistics are read while they still exist.
func (s *SBC) recordOnEnd(c *Call) {
	if s.recorder == nil {
		return
	}
	c.OnEnd(func() { s.recordCall(c) })
}

// noteTargetLocked counts an attempt on target i of dec. c.mu held.
func (c *Call) noteTargetLocked(dec policy.Decision, i int) {
	c.notes.attempts++
	if t := dec.Trunk(i); t != nil {
		c.notes.trunk = t.Name
	} else if dec.InTrunk != nil {
		c.notes.trunk = dec.InTrunk.Name
	}
}

// noteByeLocked keeps the Reason of a BYE that ends the call. c.mu held.
func (c *Call) noteByeLocked(req *sip.Request) {
	if h := req.GetHeader("Reason"); h != nil && c.notes.byeReason == "" {
		c.notes.byeReason = h.Value()
	}
}

// noteFinal keeps the final answer sent to a call's leg A INVITE.
func (s *SBC) noteFinal(res *sip.Response) {
	if s.recorder == nil || res.IsProvisional() {
		return
	}
	cs, cid := res.CSeq(), res.CallID()
	if cs == nil || cid == nil || cs.MethodName != sip.INVITE {
		return
	}
	ref, ok := s.calls.lookup(cid.Value())
	if !ok || ref.side != SideA {
		return
	}
	c := ref.call
	c.mu.Lock()
	if inv := c.a.invite; inv != nil && inv.CSeq().SeqNo == cs.SeqNo && c.notes.sipCode == 0 {
		c.notes.sipCode, c.notes.sipReason = res.StatusCode, res.Reason
	}
	c.mu.Unlock()
}

// recordCall builds the call's record and hands it over. A call let go
// to another node (abandoned) goes on there and is recorded there.
func (s *SBC) recordCall(c *Call) {
	end := time.Now()
	c.mu.Lock()
	if c.abandoned {
		c.mu.Unlock()
		return
	}
	a, b := c.a, c.b
	r := cdr.Record{
		CallID: c.ID, Start: cdr.MS(c.Start), Answer: cdr.MS(c.answered), End: cdr.MS(end),
		A: cdr.Leg{CallID: a.d.CallID, Peer: a.peer}, Route: c.route, Trunk: c.notes.trunk,
		RealmIn: a.realm.Name, RealmOut: c.media.Realms[1], Attempts: c.notes.attempts,
		Result: c.result, SIPCode: c.notes.sipCode, SIPReason: c.notes.sipReason,
	}
	r.Caller.Received, r.Callee.Received = a.d.RemoteURI.User, a.d.LocalURI.User
	if a.invite != nil {
		r.Callee.Received = a.invite.Recipient.User
	}
	if b != nil {
		r.B = &cdr.Leg{CallID: b.d.CallID, Peer: b.peer}
		r.Caller.Sent, r.Callee.Sent = b.d.LocalURI.User, b.d.RemoteURI.User
		if b.invite != nil { // the Target has become the callee's Contact
			r.Callee.Sent = b.invite.Recipient.User
		}
	}
	reason := c.notes.byeReason
	if reason == "" {
		reason = c.reason // the SBC's own (media timeout)
	}
	c.mu.Unlock()

	if !r.Answer.IsZero() {
		r.DurationMs = r.End.Sub(r.Answer).Milliseconds()
	}
	r.Status, r.EndedBy = callOutcome(r.Result, !r.Answer.IsZero())
	switch {
	case r.SIPCode != 0:
	case r.Status == cdr.StatusCancelled: // sipgo answered the CANCEL and sent 487 itself
		r.SIPCode, r.SIPReason = sip.StatusRequestTerminated, "Request Terminated"
	case r.Status == cdr.StatusAnswered: // restored from the store: answered on another run
		r.SIPCode, r.SIPReason = sip.StatusOK, "OK"
	}
	r.Q850 = q850Cause(reason)
	if r.Q850 == 0 && r.Status == cdr.StatusAnswered && (r.Result == "bye_a" || r.Result == "bye_b") {
		r.Q850 = 16 // normal call clearing
	}
	if mi, ok := s.media.(mediaInfo); ok {
		if m, ok := mi.Media(c.ID); ok {
			r.Media = recordMedia(m)
		}
	}
	s.recorder.Record(r)
}

// callOutcome maps a call's result to the record's status and who ended
// it.
func callOutcome(result string, answered bool) (status, endedBy string) {
	endedBy = cdr.EndedBySBC
	switch result {
	case "bye_a", "cancelled":
		endedBy = cdr.EndedByCaller
	case "bye_b", "busy", "rejected_4xx", "rejected_6xx", "failed_5xx":
		endedBy = cdr.EndedByCallee
	}
	switch {
	case answered:
		status = cdr.StatusAnswered
	case result == "busy":
		status = cdr.StatusBusy
	case result == "cancelled":
		status = cdr.StatusCancelled
	case result == "timeout":
		status = cdr.StatusNoAnswer
	case strings.HasPrefix(result, "rejected"):
		status = cdr.StatusRejected
	default:
		status = cdr.StatusFailed
	}
	return status, endedBy
}

// q850Cause is the cause of a Reason header value (RFC 3326:
// `Q.850;cause=16;text="..."`); 0 when there is none.
func q850Cause(reason string) int {
	for part := range strings.SplitSeq(reason, ",") {
		proto, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(proto), "Q.850") {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "cause") {
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 && n < 128 {
					return n
				}
			}
		}
	}
	return 0
}

// recordMedia is the record's view of a call's media: per stream the
// codec, path, SRTP suites (names, never keys) and each direction's
// quality, with the MOS of its worse direction.
func recordMedia(m mediarelay.CallMedia) []cdr.Stream {
	out := make([]cdr.Stream, 0, len(m.Streams))
	for _, st := range m.Streams {
		cs := cdr.Stream{
			Index: st.Index, Codec: st.Codec, Path: st.Path, SRTPA: st.SRTPA, SRTPB: st.SRTPB,
			FromA: cdr.Dir{Packets: st.FromA.Packets, Lost: st.FromA.Lost, JitterMs: st.FromA.JitterMs},
			FromB: cdr.Dir{Packets: st.FromB.Packets, Lost: st.FromB.Lost, JitterMs: st.FromB.JitterMs},
		}
		worst := 0.0
		for _, d := range []cdr.Dir{cs.FromA, cs.FromB} {
			if d.Packets == 0 {
				continue
			}
			loss := 0.0
			if d.Lost > 0 {
				loss = 100 * float64(d.Lost) / float64(d.Packets+uint64(d.Lost))
			}
			if mos := mediarelay.MOS(loss, d.JitterMs, 0); worst == 0 || mos < worst {
				worst = mos
			}
		}
		cs.MOS = float64(int(worst*100+0.5)) / 100
		out = append(out, cs)
	}
	return out
}
