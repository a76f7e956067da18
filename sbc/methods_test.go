package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestMethodNotAllowed: methods the B2BUA does not take (SUBSCRIBE,
// PUBLISH, REGISTER without a registrar) are answered 405 with an Allow
// that lists what it does take (RFC 3261 8.2.1), out of dialog; in a
// dialog it does not know, 481. Nothing is relayed, no call is left.
func TestMethodNotAllowed(t *testing.T) {
	caller := testphone.NewLoopback(t)
	s := startSBC(t, []string{"127.0.0.1:9"}, nil)
	for i, m := range []string{"SUBSCRIBE", "PUBLISH", "REGISTER"} {
		caller.Send(s.carrier, fmt.Sprintf(`%s sip:1000@%s SIP/2.0
			Via: SIP/2.0/UDP %s;branch=z9hG4bK-na%d
			Max-Forwards: 70
			From: <sip:a@%s>;tag=na%d
			To: <sip:1000@%s>
			Call-ID: not-allowed-%d
			CSeq: 1 %s
			Contact: <sip:a@%s>
			Event: presence
			Expires: 60`, m, s.carrier, caller.Addr, i, caller.Addr, i, s.carrier, i, m, caller.Addr), "")
		res := caller.ExpectResponse(405, sip.RequestMethod(m), wait)
		allow := res.GetHeaders("Allow")
		if len(allow) != 1 || !strings.Contains(allow[0].Value(), "INVITE") || strings.Contains(allow[0].Value(), m) {
			t.Errorf("%s: 405 Allow = %v, want the B2BUA's methods without %s", m, allow, m)
		}
	}
	caller.Send(s.carrier, fmt.Sprintf(`SUBSCRIBE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-na-dlg
		Max-Forwards: 70
		From: <sip:a@%s>;tag=na-dlg
		To: <sip:1000@%s>;tag=unknown
		Call-ID: not-allowed-dialog
		CSeq: 2 SUBSCRIBE
		Contact: <sip:a@%s>
		Event: presence`, s.carrier, caller.Addr, caller.Addr, s.carrier, caller.Addr), "")
	caller.ExpectResponse(481, sip.SUBSCRIBE, wait)
	if s.ActiveCalls() != 0 {
		t.Error("a rejected request left a call behind")
	}
}

// TestMergedRequest: the same INVITE (Call-ID, From tag, CSeq) arriving
// again by another path (a new Via branch) while the first is in progress
// is a merged request: 482 for the copy (RFC 3261 8.2.2.2), the callee
// sees one INVITE, and the first call completes.
func TestMergedRequest(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "merged-1", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	caller.Send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-merged-1-other-path;rport
		Max-Forwards: 69
		From: "Caller" <sip:alice@%s>;tag=ftmerged-1
		To: <sip:1000@%s>
		Call-ID: merged-1
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>`, s.carrier, caller.Addr, caller.Addr, s.carrier, caller.Addr), testphone.TestSDP)
	loop := caller.ExpectResponse(482, sip.INVITE, wait)
	if b, _ := loop.Via().Params.Get("branch"); b != "z9hG4bK-merged-1-other-path" {
		t.Errorf("482 for branch %q, want the copy's", b)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "a second INVITE for the merged copy")
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if b, _ := ok.Via().Params.Get("branch"); b != "z9hG4bK-merged-1-inv" {
		t.Errorf("200 for branch %q, want the first INVITE's", b)
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "merged-1-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 2, "merged-1-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}
