package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestInDialogRelayEitherWay: UPDATE from the callee, and MESSAGE, NOTIFY
// and REFER from either side, are relayed on the other leg's dialog (its
// Call-ID and tags, never the sender's) and their answers come back with
// the sender's CSeq.
func TestInDialogRelayEitherWay(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "indialog")
	cseqA, cseqB := 2, 20
	for _, c := range []struct {
		method   string
		fromCall bool
		body     string
	}{
		{"UPDATE", false, testphone.TestSDP},
		{"MESSAGE", true, ""},
		{"MESSAGE", false, ""},
		{"NOTIFY", true, ""},
		{"NOTIFY", false, ""},
		{"REFER", true, ""},
		{"REFER", false, ""},
	} {
		from, to, d, wantCallID, cseq := caller, callee, dA, dB.CallID, &cseqA
		if !c.fromCall {
			from, to, d, wantCallID, cseq = callee, caller, dB, dA.CallID, &cseqB
		}
		*cseq++
		from.Request(d, c.method, *cseq, "rel-"+c.method, c.body)
		got := to.ExpectRequest(sip.RequestMethod(c.method), wait)
		if got.CallID().Value() != wantCallID {
			t.Errorf("%s (from caller %v) relayed with Call-ID %s, want the other leg's %s", c.method, c.fromCall, got.CallID().Value(), wantCallID)
		}
		to.Answer(got, 200, "OK", "", c.body)
		res := from.ExpectResponse(200, sip.RequestMethod(c.method), wait)
		if int(res.CSeq().SeqNo) != *cseq {
			t.Errorf("%s: 200 with CSeq %d, want the sender's %d", c.method, res.CSeq().SeqNo, *cseq)
		}
	}
	if s.ActiveCalls() != 1 {
		t.Errorf("%d calls after the in-dialog requests, want the 1 still up", s.ActiveCalls())
	}
	caller.Request(dA, "BYE", cseqA+1, "rel-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// TestCrossingByes: both sides hang up at once. Each BYE gets a final
// answer (200, or 481 once the dialog is gone), each side's BYE from the
// SBC is answered, and the call ends once, with nothing left.
func TestCrossingByes(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "crossing")
	caller.Request(dA, "BYE", 2, "x-bye-a", "")
	callee.Request(dB, "BYE", 1, "x-bye-b", "")
	for _, p := range []struct {
		name  string
		phone *testphone.Phone
	}{{"caller", caller}, {"callee", callee}} {
		answered := false
		for !answered {
			m := p.phone.Next(wait, func(m sip.Message) bool {
				if r, ok := m.(*sip.Request); ok {
					return r.Method == sip.BYE
				}
				r, ok := m.(*sip.Response)
				return ok && r.CSeq().MethodName == sip.BYE
			})
			switch m := m.(type) {
			case nil:
				t.Fatalf("%s: no answer to its BYE in %v", p.name, wait)
			case *sip.Request: // the SBC's BYE for the other side's hang-up
				p.phone.Answer(m, 200, "OK", "", "")
			case *sip.Response:
				if m.StatusCode != 200 && m.StatusCode != 481 {
					t.Errorf("%s's BYE answered %d", p.name, m.StatusCode)
				}
				answered = true
			}
		}
	}
	s.waitIdle(t)
	deadline := time.Now().Add(wait) // counted after it leaves the table (waitCalls)
	for s.calls("bye_a")+s.calls("bye_b") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a second count, which must not come
	if n := s.calls("bye_a") + s.calls("bye_b"); n != 1 {
		t.Errorf("the call was counted %v times as ended", n)
	}
}

// TestLateOffer: an INVITE without SDP (late offer). The callee's 200
// carries the offer, relayed to the caller; the caller's ACK carries the
// answer, relayed to the callee in its ACK (RFC 3261 13.2.1).
func TestLateOffer(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "late-offer", "")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if len(inv.Body()) != 0 {
		t.Fatalf("INVITE without SDP relayed with a body:\n%s", inv.Body())
	}
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	s.anchoredFor(t, "carrier", ok.Body(), "the offer in the 200, for the caller")
	answer := strings.Replace(testphone.TestSDP, "o=- 1 1", "o=- 2 2", 1)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Send(dA.SBC, fmt.Sprintf(`ACK %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-late-ack
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: 1 ACK`, dA.Target, caller.Addr, dA.LocalURI, dA.LocalTag, dA.RemoteURI, dA.RemoteTag, dA.CallID), answer)
	ack := callee.ExpectRequest(sip.ACK, wait)
	s.anchoredFor(t, "enterprise", ack.Body(), "the answer in the ACK, for the callee")
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 2, "late-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}
