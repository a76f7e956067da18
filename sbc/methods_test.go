package sbc_test

import (
	"fmt"
	"strings"
	"testing"

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
