package sbc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// cancelInvite sends the caller's CANCEL for the INVITE that Invite or
// inviteWith sent with that Call-ID (same branch, RFC 3261 9.1).
func cancelInvite(caller *testphone.Phone, sbcAddr, callID string) {
	caller.Send(sbcAddr, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-inv
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ft%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: 1 CANCEL`, sbcAddr, caller.Addr, callID, caller.Addr, callID, sbcAddr, callID), "")
}

func isFinalTo(method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200 && r.CSeq().MethodName == method
	}
}

// Bug 4 (issue 14): the callee's 2xx and the caller's CANCEL cross. The
// 2xx has reached the SBC but not yet leg A (it waits for the PRACK of a
// reliable 183 with SDP, RFC 3262 3) when the CANCEL comes: the caller
// gets 487 and never a 2xx, and leg B, ACKed, is hung up with BYE at once
// rather than ringing on in a call nobody is in.
func TestCancelCrossesAnswerHeldForPrack(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	inviteWith(caller, s.carrier, "x-cancel", "Require: 100rel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 183, "Session Progress", "cb", testphone.TestSDP)
	rseqOf(t, caller.ExpectResponse(183, sip.INVITE, wait)) // not PRACKed
	callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP)
	callee.ExpectRequest(sip.ACK, wait) // the offer was in the INVITE: ACKed at once
	time.Sleep(100 * time.Millisecond)  // the 2xx is held for the PRACK now

	cancelInvite(caller, s.carrier, "x-cancel")
	caller.ExpectResponse(200, sip.CANCEL, wait)
	if got := caller.Next(wait, isFinalTo(sip.INVITE)); got == nil || got.(*sip.Response).StatusCode != 487 {
		t.Fatalf("caller's INVITE ended with %v, want 487", got)
	}
	start := time.Now()
	bye := callee.Next(2*time.Second, isRequest(sip.BYE))
	if bye == nil {
		t.Fatal("callee's answered leg never hung up after the caller's CANCEL")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("callee hung up %v after the CANCEL", d)
	}
	callee.Answer(bye.(*sip.Request), 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "cancelled", 1)
	caller.Quiet(700*time.Millisecond, isResponseTo(200, sip.INVITE), "2xx to a cancelled INVITE")
	if got := testutil.ToFloat64(s.Metrics().CancelRaces.WithLabelValues("enterprise", "answer_after_cancel")); got != 1 {
		t.Errorf("sbc_cancel_races_total{event=answer_after_cancel} = %v, want 1", got)
	}
}

// The callee answers 200 to an INVITE the SBC has just CANCELed (the two
// cross on the wire): the 2xx is ACKed and hung up, the caller has its
// 487, and nothing rings on.
func TestAnswerCrossesSBCCancel(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "x-cancel2", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "cb", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	cancelInvite(caller, s.carrier, "x-cancel2")
	caller.ExpectResponse(487, sip.INVITE, wait)
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP) // it answered first
	callee.Answer(cancel, 200, "OK", "", "")
	callee.ExpectRequest(sip.ACK, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	callee.Answer(inv, 180, "Ringing", "cb", "") // stale: must not ring on
	caller.Quiet(500*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.CSeq().MethodName == sip.INVITE && r.StatusCode != 487
	}, "response after the 487")
	s.waitIdle(t)
}

// A target abandoned as silent (no 100 Trying within target_timeout) is
// not forgotten: when it wakes up with a provisional it is CANCELed, and a
// 2xx from it is ACKed and hung up, so it can make no ghost call. The
// caller is connected to the target that took over.
func TestAbandonedTargetCancelledWhenItWakes(t *testing.T) {
	ringer, answerer, good, caller := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{ringer.Addr, answerer.Addr, good.Addr}, nil)
	caller.Invite(s.carrier, "1000", "abandoned", testphone.TestSDP)
	invR := ringer.ExpectRequest(sip.INVITE, wait)
	invA := answerer.ExpectRequest(sip.INVITE, wait)
	invG := good.ExpectRequest(sip.INVITE, wait)

	ringer.Answer(invR, 180, "Ringing", "late1", "")
	cancel := ringer.ExpectRequest(sip.CANCEL, wait)
	if cancel.Via().Params.GetOr("branch", "") != invR.Via().Params.GetOr("branch", "x") {
		t.Error("CANCEL to the abandoned target does not match its INVITE's branch")
	}
	ringer.Answer(cancel, 200, "OK", "", "")
	ringer.Answer(invR, 487, "Request Terminated", "late1", "")
	ringer.ExpectRequest(sip.ACK, wait)

	answerer.Answer(invA, 200, "OK", "late2", testphone.TestSDP)
	if answerer.Next(wait, isInDialog(sip.ACK, "late2")) == nil {
		t.Fatal("abandoned target's 2xx not ACKed")
	}
	bye := answerer.Next(wait, isInDialog(sip.BYE, "late2"))
	if bye == nil {
		t.Fatal("abandoned target's 2xx not hung up: a ghost call")
	}
	answerer.Answer(bye.(*sip.Request), 200, "OK", "", "")

	good.Answer(invG, 200, "OK", "good", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "abandoned-ack")
	good.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	caller.Quiet(300*time.Millisecond, isResponseTo(200, sip.INVITE), "a second 200 for the caller")
	caller.Request(dA, "BYE", 2, "abandoned-bye", "")
	good.Answer(good.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
	if got := testutil.ToFloat64(s.Metrics().CancelRaces.WithLabelValues("enterprise", "abandoned_cancelled")); got != 1 {
		t.Errorf("sbc_cancel_races_total{event=abandoned_cancelled} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.Metrics().CancelRaces.WithLabelValues("enterprise", "abandoned_answered")); got != 1 {
		t.Errorf("sbc_cancel_races_total{event=abandoned_answered} = %v, want 1", got)
	}
}

// A CANCEL of a re-INVITE still pending on the far leg cancels it there
// (once the far side has sent a provisional, RFC 3261 9.1); the call goes
// on as before. When the far side's 2xx crosses that CANCEL, the 2xx is
// ACKed and the call still goes on: the caller has its 487, not a 2xx
// it will never ACK (which would end the call for want of an ACK).
func TestCancelPendingReInvite(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, _, _ := established(t, s, caller, callee, "re-cancel")

	reinvite := func(cseq int, branch string) *sip.Request {
		t.Helper()
		caller.Request(dA, "INVITE", cseq, branch, testphone.TestSDP)
		caller.ExpectResponse(100, sip.INVITE, wait)
		re := callee.ExpectRequest(sip.INVITE, wait)
		callee.Answer(re, 100, "Trying", "", "")
		time.Sleep(50 * time.Millisecond) // the 100 is in before the CANCEL
		caller.Send(dA.SBC, fmt.Sprintf(`CANCEL %s SIP/2.0
			Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
			Max-Forwards: 70
			From: <%s>;tag=%s
			To: <%s>;tag=%s
			Call-ID: %s
			CSeq: %d CANCEL`, dA.Target, caller.Addr, branch, dA.LocalURI, dA.LocalTag, dA.RemoteURI, dA.RemoteTag, dA.CallID, cseq), "")
		caller.ExpectResponse(200, sip.CANCEL, wait)
		caller.ExpectResponse(487, sip.INVITE, wait)
		return re
	}

	re := reinvite(2, "re-cancel-2")
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	if cancel.Via().Params.GetOr("branch", "") != re.Via().Params.GetOr("branch", "x") || cancel.CSeq().SeqNo != re.CSeq().SeqNo {
		t.Errorf("CANCEL does not match the far re-INVITE: branch %q CSeq %d", cancel.Via().Params.GetOr("branch", ""), cancel.CSeq().SeqNo)
	}
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(re, 487, "Request Terminated", "", "")
	callee.ExpectRequest(sip.ACK, wait)
	// sipgo ACKs the 487 before the SBC has it: give the offer time to
	// be released, or the next re-INVITE is glare (491).
	time.Sleep(200 * time.Millisecond)

	re = reinvite(3, "re-cancel-3")
	callee.ExpectRequest(sip.CANCEL, wait)
	callee.Answer(re, 200, "OK", "", testphone.TestSDP) // crossed the CANCEL
	if ack := callee.ExpectRequest(sip.ACK, wait); ack.CSeq().SeqNo != re.CSeq().SeqNo {
		t.Errorf("ACK CSeq %d, want the re-INVITE's %d", ack.CSeq().SeqNo, re.CSeq().SeqNo)
	}
	caller.Quiet(1500*time.Millisecond, func(m sip.Message) bool {
		if r, ok := m.(*sip.Request); ok {
			return r.Method == sip.BYE
		}
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}, "a 2xx for the cancelled re-INVITE, or the call hung up")
	s.waitState(t, "confirmed")

	caller.Request(dA, "BYE", 4, "re-cancel-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// Bug 4: the callee answers just as the ring timeout CANCELs it (the 2xx
// and the CANCEL cross). The caller has its 408; the callee's 2xx is ACKed
// and hung up, not left as a call with no one on the other end.
func TestAnswerCrossesRingTimeoutCancel(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRouteSBC(t, callee.Addr, ", ring_timeout: 300ms")
	caller.Invite(s.carrier, "1000", "ring-cross", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "rc", "")
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	callee.Answer(inv, 200, "OK", "rc", testphone.TestSDP) // sent before the CANCEL came
	callee.Answer(cancel, 200, "OK", "", "")
	caller.ExpectResponse(408, sip.INVITE, wait)
	if callee.Next(wait, isInDialog(sip.ACK, "rc")) == nil {
		t.Fatal("2xx that crossed the ring-timeout CANCEL not ACKed")
	}
	bye := callee.Next(wait, isInDialog(sip.BYE, "rc"))
	if bye == nil {
		t.Fatal("2xx that crossed the ring-timeout CANCEL not hung up: a ghost call")
	}
	callee.Answer(bye.(*sip.Request), 200, "OK", "", "")
	caller.Quiet(300*time.Millisecond, isResponseTo(200, sip.INVITE), "a 2xx after the 408")
	s.waitIdle(t)
	if got := testutil.ToFloat64(s.Metrics().CancelRaces.WithLabelValues("enterprise", "abandoned_answered")); got != 1 {
		t.Errorf("sbc_cancel_races_total{event=abandoned_answered} = %v, want 1", got)
	}
}
