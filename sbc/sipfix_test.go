package sbc_test

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// inviteAs sends an out-of-dialog INVITE with the given Call-ID, From tag,
// CSeq and branch: what a UAC sends when it retries after a challenge (RFC
// 3261 8.1.3.5, 22.2), or a copy of one that took another path (a merge).
func inviteAs(p *testphone.Phone, sbcAddr, callID, fromTag string, cseq int, branch string) {
	p.Send(sbcAddr, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: %d INVITE
		Contact: <sip:alice@%s>`, sbcAddr, p.Addr, branch, p.Addr, fromTag, sbcAddr, callID, cseq, p.Addr), testphone.TestSDP)
}

// ackFailure acknowledges a non-2xx final answer to an INVITE (RFC 3261
// 17.1.1.3: same branch as the INVITE, To with the answer's tag).
func ackFailure(p *testphone.Phone, sbcAddr string, res *sip.Response, branch string) {
	p.Send(sbcAddr, fmt.Sprintf(`ACK sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport
		Max-Forwards: 70
		From: %s
		To: %s
		Call-ID: %s
		CSeq: %d ACK`, sbcAddr, p.Addr, branch, res.From().Value(), res.To().Value(), res.CallID().Value(), res.CSeq().SeqNo), "")
}

// Bug 1 (issue 14): a UAC that retries with the same Call-ID and CSeq+1
// after a 4xx/3xx the SBC relayed gets a new call, not 482; only a request
// whose From tag, Call-ID and CSeq match one in progress is a merge (RFC
// 3261 8.2.2.2).
func TestRetrySameCallIDIsNotMerged(t *testing.T) {
	for _, code := range []int{401, 407, 420, 422, 491, 302} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := startSBC(t, []string{callee.Addr}, nil)
			cid := fmt.Sprintf("retry-%d", code)
			caller.Invite(s.carrier, "1000", cid, testphone.TestSDP)
			caller.ExpectResponse(100, sip.INVITE, wait)
			inv := callee.ExpectRequest(sip.INVITE, wait)
			callee.Answer(inv, code, "Try Again", "c1", "")
			callee.ExpectRequest(sip.ACK, wait)
			res := caller.ExpectResponse(code, sip.INVITE, wait)
			ackFailure(caller, s.carrier, res, cid+"-inv")
			s.waitIdle(t)

			inviteAs(caller, s.carrier, cid, "ft"+cid, 2, cid+"-retry")
			caller.ExpectResponse(100, sip.INVITE, wait)
			inv2 := callee.ExpectRequest(sip.INVITE, wait)

			// A copy of the retry through another path (other branch,
			// same From tag, Call-ID and CSeq) while it is in progress
			// is the merged request 8.2.2.2 means.
			inviteAs(caller, s.carrier, cid, "ft"+cid, 2, cid+"-merged")
			caller.ExpectResponse(482, sip.INVITE, wait)
			if n := s.ActiveCalls(); n != 1 {
				t.Fatalf("%d calls after the merged copy, want the retry's only", n)
			}

			callee.Answer(inv2, 200, "OK", "c2", testphone.TestSDP)
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			if ok.CSeq().SeqNo != 2 {
				t.Fatalf("200 for CSeq %d, want the retry's 2", ok.CSeq().SeqNo)
			}
			dA := testphone.CallerDialog(ok, s.carrier)
			caller.Ack(dA, 2, cid+"-ack")
			callee.ExpectRequest(sip.ACK, wait)
			s.waitState(t, "confirmed")
			caller.Request(dA, "BYE", 3, cid+"-bye", "")
			caller.ExpectResponse(200, sip.BYE, wait)
			bye := callee.ExpectRequest(sip.BYE, wait)
			callee.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
		})
	}
}
