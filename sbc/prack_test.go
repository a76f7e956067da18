package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/sbc"
)

// inviteWith sends an INVITE to the SBC with extra header lines.
func inviteWith(p *testphone.Phone, sbcAddr, callID, extra, sdp string) {
	p.Send(sbcAddr, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-inv
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ft%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		%s`, sbcAddr, p.Addr, callID, p.Addr, callID, sbcAddr, callID, p.Addr, extra), sdp)
}

// respondWith answers req as a UAS, with extra header lines and an SDP
// body (none when empty).
func respondWith(p *testphone.Phone, req *sip.Request, code int, reason, tag, extra, body string) {
	ctype := ""
	if body != "" {
		ctype = "application/sdp"
	}
	p.AnswerTyped(req, code, reason, tag, extra, ctype, []byte(body))
}

// inDialogWith sends a request in dialog d with extra header lines.
func inDialogWith(p *testphone.Phone, d testphone.Dialog, method string, cseq int, branch, extra, body string) {
	p.Send(d.SBC, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: <sip:x@%s>
		%s`, method, d.Target, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, p.Addr, extra), body)
}

func header(m sip.Message, name string) string {
	if hs := m.GetHeaders(name); len(hs) > 0 {
		return hs[0].Value()
	}
	return ""
}

func isResponseTo(code int, method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method
	}
}

func relEvents(s *testSBC, realm, event string) float64 {
	return testutil.ToFloat64(s.Metrics().Reliable.WithLabelValues(realm, event))
}

// rseqOf reads a reliable provisional's RSeq, failing the test when it has
// none or it is not reliable.
func rseqOf(t *testing.T, res *sip.Response) uint32 {
	t.Helper()
	if !strings.Contains(header(res, "Require"), "100rel") {
		t.Fatalf("%d not sent reliably (Require %q)", res.StatusCode, header(res, "Require"))
	}
	var n uint32
	if _, err := fmt.Sscan(header(res, "RSeq"), &n); err != nil || n == 0 {
		t.Fatalf("%d has RSeq %q", res.StatusCode, header(res, "RSeq"))
	}
	return n
}

func prack(p *testphone.Phone, d testphone.Dialog, cseq int, branch, rack, body string) {
	inDialogWith(p, d, "PRACK", cseq, branch, "RAck: "+rack, body)
}

// A caller that requires 100rel toward a callee that knows nothing of it:
// the SBC sends each 18x reliably with its own RSeq, retransmits it (T1,
// then 2*T1) until the PRACK, which it answers itself, and sends the next
// 18x only then. Bad PRACKs get 481 and 400 and are counted.
func TestRequire100relTowardPlainCallee(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	inviteWith(caller, s.carrier, "rel-req", "Require: 100rel\nSupported: timer", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	// Every Supported header: the session timers write their own "timer".
	var sup []string
	for _, h := range inv.GetHeaders("Supported") {
		sup = append(sup, h.Value())
	}
	if got := strings.Join(sup, ", "); !strings.Contains(got, "100rel") || !strings.Contains(got, "timer") {
		t.Errorf("leg B Supported %q, want timer and the SBC's own 100rel", got)
	}
	if got := header(inv, "Require"); strings.Contains(got, "100rel") {
		t.Errorf("leg B requires 100rel (%q): the callee need not know it", got)
	}
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	first := caller.ExpectResponse(180, sip.INVITE, wait)
	callee.Answer(inv, 183, "Session Progress", "callee1", "") // queued behind the 180's PRACK
	sent := time.Now()
	n := rseqOf(t, first)
	again := caller.ExpectResponse(180, sip.INVITE, wait)
	if gap := time.Since(sent); gap < 350*time.Millisecond {
		t.Errorf("180 retransmitted after %v, want about T1 (500ms)", gap)
	}
	if rseqOf(t, again) != n {
		t.Errorf("retransmission has RSeq %s, want %d", header(again, "RSeq"), n)
	}
	if m := caller.Next(300*time.Millisecond, isResponseTo(183, sip.INVITE)); m != nil {
		t.Fatal("183 sent before the 180 was PRACKed (RFC 3262 3)")
	}
	d := testphone.CallerDialog(first, s.carrier)

	// Bad input first: nothing matches, or nothing can be read.
	prack(caller, d, 2, "pr-bad1", fmt.Sprintf("%d 1 INVITE", n+5), "")
	caller.ExpectResponse(481, "PRACK", wait)
	prack(caller, d, 3, "pr-bad2", "one 1 INVITE", "")
	caller.ExpectResponse(400, "PRACK", wait)
	prack(caller, d, 4, "pr-bad3", fmt.Sprintf("%d 1", n), "")
	caller.ExpectResponse(400, "PRACK", wait)
	if got := testutil.ToFloat64(s.Metrics().Malformed.WithLabelValues("carrier", "rack")); got != 2 {
		t.Errorf("malformed RAck counted %v, want 2", got)
	}
	if got := relEvents(s, "carrier", "prack_unmatched"); got != 1 {
		t.Errorf("unmatched PRACK counted %v, want 1", got)
	}

	prack(caller, d, 5, "pr-ok1", fmt.Sprintf("%d 1 INVITE", n), "")
	caller.ExpectResponse(200, "PRACK", wait)
	if m := callee.Next(300*time.Millisecond, isRequest("PRACK")); m != nil {
		t.Fatal("the caller's PRACK crossed to a callee that sent nothing reliably")
	}
	p183 := caller.ExpectResponse(183, sip.INVITE, wait)
	if rseqOf(t, p183) != n+1 {
		t.Errorf("183 RSeq %s, want %d", header(p183, "RSeq"), n+1)
	}
	caller.Quiet(1200*time.Millisecond, isResponseTo(180, sip.INVITE), "180 retransmitted after its PRACK")
	prack(caller, d, 6, "pr-ok2", fmt.Sprintf("%d 1 INVITE", n+1), "")
	caller.ExpectResponse(200, "PRACK", wait)
	prack(caller, d, 7, "pr-late", fmt.Sprintf("%d 1 INVITE", n+1), "")
	caller.ExpectResponse(481, "PRACK", wait) // already acknowledged

	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "rel-req-ack")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 8, "rel-req-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
	if got := relEvents(s, "carrier", "prack_in"); got != 2 {
		t.Errorf("PRACKs taken %v, want 2", got)
	}
}

// A callee's reliable 183 with SDP toward a plain caller: the SBC PRACKs
// it itself and relays it plainly with the answer. A retransmission is
// not PRACKed again, an RSeq out of order is neither PRACKed nor relayed,
// and a malformed RSeq is dropped and counted.
// Media off: the test checks that SDP crosses byte for byte through
// the reliable-provisional paths.
func TestReliable183FromCalleeWithSDP(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBCMedia(t, []string{callee.Addr}, nil, false)
	caller.Invite(s.carrier, "1000", "rel-183", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	rel := "Require: 100rel\nRSeq: %d\n"
	respondWith(callee, inv, 183, "Session Progress", "callee1", fmt.Sprintf(rel, 7), testphone.TestSDP)

	pr := callee.ExpectRequest("PRACK", wait)
	if want := fmt.Sprintf("7 %d INVITE", inv.CSeq().SeqNo); header(pr, "RAck") != want {
		t.Errorf("PRACK RAck %q, want %q", header(pr, "RAck"), want)
	}
	if tag, _ := pr.To().Params.Get("tag"); tag != "callee1" || pr.CallID().Value() != inv.CallID().Value() {
		t.Errorf("PRACK outside the early dialog: To %q, Call-ID %q", pr.To().Value(), pr.CallID().Value())
	}
	if pr.Recipient.Port != callee.Port() {
		t.Errorf("PRACK sent to %s, want the 183's Contact", pr.Recipient.String())
	}
	callee.Answer(pr, 200, "OK", "", "")
	got := caller.ExpectResponse(183, sip.INVITE, wait)
	if header(got, "RSeq") != "" || strings.Contains(header(got, "Require"), "100rel") {
		t.Errorf("183 relayed reliably to a caller that never asked: Require %q RSeq %q", header(got, "Require"), header(got, "RSeq"))
	}
	if string(got.Body()) != testphone.TestSDP {
		t.Errorf("183 SDP %q", got.Body())
	}

	respondWith(callee, inv, 183, "Session Progress", "callee1", fmt.Sprintf(rel, 7), testphone.TestSDP) // retransmitted
	respondWith(callee, inv, 180, "Ringing", "callee1", fmt.Sprintf(rel, 9), "")                         // out of order
	respondWith(callee, inv, 180, "Ringing", "callee1", "Require: 100rel\nRSeq: x9\n", "")               // malformed
	callee.Quiet(600*time.Millisecond, isRequest("PRACK"), "PRACK for a retransmitted, out-of-order or malformed RSeq")
	caller.Quiet(100*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode > 100 && r.StatusCode < 200
	}, "relayed provisional that was not in order")
	if got := relEvents(s, "enterprise", "rseq_out_of_order"); got != 1 {
		t.Errorf("out-of-order RSeq counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.Metrics().Malformed.WithLabelValues("enterprise", "rseq")); got != 1 {
		t.Errorf("malformed RSeq counted %v, want 1", got)
	}

	respondWith(callee, inv, 180, "Ringing", "callee1", fmt.Sprintf(rel, 8), "")
	pr2 := callee.ExpectRequest("PRACK", wait)
	if want := fmt.Sprintf("8 %d INVITE", inv.CSeq().SeqNo); header(pr2, "RAck") != want {
		t.Errorf("second PRACK RAck %q, want %q", header(pr2, "RAck"), want)
	}
	if pr2.CSeq().SeqNo <= pr.CSeq().SeqNo {
		t.Errorf("second PRACK CSeq %d not above the first's %d", pr2.CSeq().SeqNo, pr.CSeq().SeqNo)
	}
	callee.Answer(pr2, 200, "OK", "", "")
	caller.ExpectResponse(180, sip.INVITE, wait)

	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "rel-183-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 2, "rel-183-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// A caller that supports 100rel gets reliably what the callee sent
// reliably, and the 2xx waits for the PRACK of a reliable 183 with SDP
// (RFC 3262 3). Then early UPDATEs with SDP both ways, and an early offer
// before any answer refused with 500 and Retry-After (RFC 3311 5.2).
// Media off: the test checks that SDP crosses byte for byte through
// the reliable-provisional paths.
func TestReliableRelayedAndEarlyUpdate(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBCMedia(t, []string{callee.Addr}, nil, false)
	inviteWith(caller, s.carrier, "rel-upd", "Supported: 100rel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)

	// A plain 180 stays plain toward a caller that only supports 100rel,
	// and an offer in an UPDATE before any answer is refused.
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	r180 := caller.ExpectResponse(180, sip.INVITE, wait)
	if header(r180, "RSeq") != "" {
		t.Errorf("plain 180 relayed reliably: RSeq %q", header(r180, "RSeq"))
	}
	d := testphone.CallerDialog(r180, s.carrier)
	inDialogWith(caller, d, "UPDATE", 2, "upd-soon", "", testphone.TestSDP)
	soon := caller.ExpectResponse(500, sip.UPDATE, wait)
	if header(soon, "Retry-After") == "" {
		t.Error("500 to an early offer before the answer has no Retry-After")
	}

	respondWith(callee, inv, 183, "Session Progress", "callee1", "Require: 100rel\nRSeq: 1\n", testphone.TestSDP)
	callee.Answer(callee.ExpectRequest("PRACK", wait), 200, "OK", "", "")
	r183 := caller.ExpectResponse(183, sip.INVITE, wait)
	n := rseqOf(t, r183)
	prack(caller, d, 3, "upd-pr", fmt.Sprintf("%d 1 INVITE", n), "")
	caller.ExpectResponse(200, "PRACK", wait)

	// Early UPDATE from the caller, with SDP.
	offerA := strings.Replace(testphone.TestSDP, "o=- 1 1", "o=- 1 2", 1)
	inDialogWith(caller, d, "UPDATE", 4, "upd-a", "", offerA)
	upd := callee.ExpectRequest(sip.UPDATE, wait)
	if string(upd.Body()) != offerA {
		t.Errorf("early UPDATE SDP %q", upd.Body())
	}
	if tag, _ := upd.To().Params.Get("tag"); tag != "callee1" {
		t.Errorf("early UPDATE To tag %q, want the early dialog's", tag)
	}
	answerB := strings.Replace(testphone.TestSDP, "o=- 1 1", "o=- 5 5", 1)
	callee.Answer(upd, 200, "OK", "", answerB)
	if got := caller.ExpectResponse(200, sip.UPDATE, wait); string(got.Body()) != answerB {
		t.Errorf("early UPDATE answer %q", got.Body())
	}

	// And one from the callee.
	dB := testphone.CalleeDialog(inv, "callee1")
	offerB := strings.Replace(testphone.TestSDP, "o=- 1 1", "o=- 5 6", 1)
	inDialogWith(callee, dB, "UPDATE", 1, "upd-b", "", offerB)
	updA := caller.ExpectRequest(sip.UPDATE, wait)
	if string(updA.Body()) != offerB {
		t.Errorf("callee's early UPDATE SDP %q", updA.Body())
	}
	caller.Answer(updA, 200, "OK", "", offerA)
	if got := callee.ExpectResponse(200, sip.UPDATE, wait); string(got.Body()) != offerA {
		t.Errorf("callee's early UPDATE answer %q", got.Body())
	}

	callee.Answer(inv, 200, "OK", "callee1", answerB)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "rel-upd-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 5, "rel-upd-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// The 2xx for a reliable 183 with SDP waits for the caller's PRACK.
func TestTwoHundredWaitsForPrack(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	inviteWith(caller, s.carrier, "rel-wait", "Require: 100rel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 183, "Session Progress", "callee1", testphone.TestSDP)
	r183 := caller.ExpectResponse(183, sip.INVITE, wait)
	n := rseqOf(t, r183)
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	if m := caller.Next(700*time.Millisecond, isResponseTo(200, sip.INVITE)); m != nil {
		t.Fatal("2xx sent before the reliable 183 with SDP was PRACKed")
	}
	prack(caller, testphone.CallerDialog(r183, s.carrier), 2, "wait-pr", fmt.Sprintf("%d 1 INVITE", n), "")
	caller.ExpectResponse(200, "PRACK", wait)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "rel-wait-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 3, "rel-wait-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// An INVITE without SDP, and the callee's offer in a reliable 183: the
// answer is the caller's, in its PRACK, so the SBC PRACKs the callee only
// then, with that answer.
// Media off: the test checks that SDP crosses byte for byte through
// the reliable-provisional paths.
func TestOfferInReliable183AnsweredInPrack(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBCMedia(t, []string{callee.Addr}, nil, false)
	inviteWith(caller, s.carrier, "rel-late", "Supported: 100rel", "")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	respondWith(callee, inv, 183, "Session Progress", "callee1", "Require: 100rel\nRSeq: 40\n", testphone.TestSDP)
	r183 := caller.ExpectResponse(183, sip.INVITE, wait)
	n := rseqOf(t, r183)
	if string(r183.Body()) != testphone.TestSDP {
		t.Fatalf("offer in 183 not relayed: %q", r183.Body())
	}
	if m := callee.Next(300*time.Millisecond, isRequest("PRACK")); m != nil {
		t.Fatal("callee PRACKed before the caller answered its offer")
	}
	answer := strings.Replace(testphone.TestSDP, "o=- 1 1", "o=- 3 3", 1)
	prack(caller, testphone.CallerDialog(r183, s.carrier), 2, "late-pr", fmt.Sprintf("%d 1 INVITE", n), answer)
	pr := callee.ExpectRequest("PRACK", wait)
	if string(pr.Body()) != answer || header(pr, "RAck") != fmt.Sprintf("40 %d INVITE", inv.CSeq().SeqNo) {
		t.Errorf("callee's PRACK: RAck %q, body %q", header(pr, "RAck"), pr.Body())
	}
	callee.Answer(pr, 200, "OK", "", "")
	caller.ExpectResponse(200, "PRACK", wait)
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "rel-late-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 3, "rel-late-bye", "")
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// A caller that requires 100rel and never PRACKs: the 18x is given up and
// the call ended, both legs, with nothing left behind.
func TestNoPrackEndsCall(t *testing.T) {
	t.Cleanup(sbc.SetRelGiveUp(1200 * time.Millisecond)) // runs after the SBC closes
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	inviteWith(caller, s.carrier, "rel-none", "Require: 100rel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	rseqOf(t, caller.ExpectResponse(180, sip.INVITE, wait))
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "callee1", "")
	caller.ExpectResponse(487, sip.INVITE, wait)
	s.waitIdle(t)
	if got := s.calls("no_prack"); got != 1 {
		t.Errorf("calls ended no_prack: %v, want 1", got)
	}
}
