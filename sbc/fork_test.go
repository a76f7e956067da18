package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// forkRespond answers leg B's INVITE as one branch of a forking proxy
// would: the response comes back from the proxy (the address the INVITE
// went to), with the branch's own To tag and Contact (its own phone).
func forkRespond(proxy *testphone.Phone, inv *sip.Request, code int, reason, tag string, branch *testphone.Phone, extra, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, reason)
	for _, v := range inv.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\n", v.Value())
	}
	fmt.Fprintf(&b, "From: %s\nTo: %s;tag=%s\nCall-ID: %s\nCSeq: %s\n", inv.From().Value(), inv.To().Value(), tag, inv.CallID().Value(), inv.CSeq().Value())
	fmt.Fprintf(&b, "Contact: <sip:callee@%s>\n", branch.Addr)
	b.WriteString(extra)
	proxy.Send(inv.Source(), b.String(), body)
}

func isInDialog(method sip.RequestMethod, tag string) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		if !ok || r.Method != method {
			return false
		}
		got, _ := r.To().Params.Get("tag")
		return got == tag
	}
}

// Bug 3 (issue 14): a forking proxy behind leg B sends 180 from branch A,
// 183 with SDP from branch B, then a 200 from each. The caller sees one
// early dialog (one To tag) and one answer; the first 200 wins; the
// losing branch's 200 is ACKed and then hung up with BYE on its own dialog
// (RFC 3261 13.2.2.4), and its retransmission is ACKed again without a
// second BYE. A BYE on the losing dialog never ends the live call.
func TestForked2xxLoserAckedAndHungUp(t *testing.T) {
	caller, proxy := testphone.NewLoopback(t), testphone.NewLoopback(t)
	forkA, forkB := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{proxy.Addr}, nil)
	caller.Invite(s.carrier, "1000", "forked", testphone.TestSDP)
	inv := proxy.ExpectRequest(sip.INVITE, wait)

	forkRespond(proxy, inv, 180, "Ringing", "tagA", forkA, "", "")
	r180 := caller.ExpectResponse(180, sip.INVITE, wait)
	forkRespond(proxy, inv, 183, "Session Progress", "tagB", forkB, "", testphone.TestSDP)
	r183 := caller.ExpectResponse(183, sip.INVITE, wait)
	if toTagOf2(r180) == "" || toTagOf2(r183) != toTagOf2(r180) {
		t.Errorf("caller sees two early dialogs: 180 tag %q, 183 tag %q", toTagOf2(r180), toTagOf2(r183))
	}
	s.anchoredFor(t, "carrier", r183.Body(), "the second branch's early answer")

	forkRespond(proxy, inv, 200, "OK", "tagA", forkA, "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if toTagOf2(ok) != toTagOf2(r180) {
		t.Errorf("200 to the caller has tag %q, want its early dialog's %q", toTagOf2(ok), toTagOf2(r180))
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "forked-ack")
	if ack := forkA.Next(wait, isInDialog(sip.ACK, "tagA")); ack == nil {
		t.Fatal("winning branch: no ACK on its dialog")
	}
	s.waitState(t, "confirmed")

	forkRespond(proxy, inv, 200, "OK", "tagB", forkB, "", testphone.TestSDP)
	ack := forkB.Next(wait, isInDialog(sip.ACK, "tagB"))
	if ack == nil {
		t.Fatal("losing branch: its 200 was not ACKed on its own dialog")
	}
	if got := ack.(*sip.Request); got.CSeq().SeqNo != inv.CSeq().SeqNo || got.CallID().Value() != inv.CallID().Value() {
		t.Errorf("loser's ACK: CSeq %d Call-ID %s, want the INVITE's %d %s", got.CSeq().SeqNo, got.CallID().Value(), inv.CSeq().SeqNo, inv.CallID().Value())
	}
	bye := forkB.Next(wait, isInDialog(sip.BYE, "tagB"))
	if bye == nil {
		t.Fatal("losing branch: no BYE after its ACK")
	}
	forkB.Answer(bye.(*sip.Request), 200, "OK", "", "")
	// The loser did not get our ACK (say) and retransmits: ACK again, no
	// second BYE.
	forkRespond(proxy, inv, 200, "OK", "tagB", forkB, "", testphone.TestSDP)
	if forkB.Next(wait, isInDialog(sip.ACK, "tagB")) == nil {
		t.Error("losing branch's retransmitted 200 not ACKed")
	}
	forkB.Quiet(300*time.Millisecond, isRequest(sip.BYE), "second BYE to the losing branch")
	forkA.Quiet(100*time.Millisecond, isRequest(sip.BYE), "BYE to the winning branch")
	caller.Quiet(100*time.Millisecond, func(m sip.Message) bool {
		if r, ok := m.(*sip.Request); ok {
			return r.Method == sip.BYE
		}
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}, "a second answer or a BYE for the loser")

	// The losing branch hangs up its own dialog: not this call.
	dLoser := testphone.CalleeDialog(inv, "tagB")
	forkB.Request(dLoser, "BYE", 1, "loser-bye", "")
	forkB.ExpectResponse(481, sip.BYE, wait)
	if st := s.Calls(); len(st) != 1 || st[0].State != "confirmed" {
		t.Fatalf("a BYE on the losing dialog touched the call: %+v", st)
	}
	if got := testutil.ToFloat64(s.Metrics().Forks.WithLabelValues("enterprise", "loser_2xx")); got != 1 {
		t.Errorf("sbc_forked_dialogs_total{event=loser_2xx} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.Metrics().Forks.WithLabelValues("enterprise", "early")); got != 2 {
		t.Errorf("sbc_forked_dialogs_total{event=early} = %v, want 2 early dialogs", got)
	}

	caller.Request(dA, "BYE", 2, "forked-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	byeA := forkA.Next(wait, isInDialog(sip.BYE, "tagA"))
	if byeA == nil {
		t.Fatal("winning branch: no BYE when the caller hung up")
	}
	forkA.Answer(byeA.(*sip.Request), 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "bye_a", 1)
}

// Bug 3, early media: leg A's one early dialog follows the latest early
// answer. Branch A's 183 points the media at its phone, branch B's later
// 183 at another: the caller keeps the same To tag and the same SBC port
// (a new o= version), and its RTP now reaches branch B and no longer
// branch A. The answer in branch A's 200 points it back.
func TestEarlyForkMediaFollowsLatestAnswer(t *testing.T) {
	caller, proxy := testphone.NewLoopback(t), testphone.NewLoopback(t)
	branchA, branchB := testphone.NewLoopback(t), testphone.NewLoopback(t)
	callerRTP, rtpA, rtpB := loopRTP(t), loopRTP(t), loopRTP(t)
	s := startSBC(t, []string{proxy.Addr}, nil)
	caller.Invite(s.carrier, "1000", "fork-media", sdpFor(callerRTP, 1))
	inv := proxy.ExpectRequest(sip.INVITE, wait)

	forkRespond(proxy, inv, 183, "Session Progress", "tagA", branchA, "", sdpFor(rtpA, 1))
	first := caller.ExpectResponse(183, sip.INVITE, wait)
	toSBC := sdpPort(t, first)
	send := func(ssrc uint32, to *testphone.RTPEnd, not *testphone.RTPEnd, what string) {
		t.Helper()
		if err := callerRTP.Send(toSBC, ssrc, 1, 10, 2*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		to.WaitFor(ssrc, 10, 2*time.Second)
		if err := to.CheckStream(ssrc, 1, 10); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if n := len(not.Received(ssrc)); n != 0 {
			t.Errorf("%s: %d packets still reach the other branch", what, n)
		}
	}
	send(0xa1, rtpA, rtpB, "early media of branch A")

	forkRespond(proxy, inv, 183, "Session Progress", "tagB", branchB, "", sdpFor(rtpB, 1))
	second := caller.ExpectResponse(183, sip.INVITE, wait)
	if toTagOf2(second) != toTagOf2(first) {
		t.Errorf("second early answer on another dialog: tag %q, want %q", toTagOf2(second), toTagOf2(first))
	}
	if got := sdpPort(t, second); got != toSBC {
		t.Errorf("second early answer moved the SBC's port: %v, want %v", got, toSBC)
	}
	if v1, v2 := originVersion(t, first), originVersion(t, second); v2 <= v1 {
		t.Errorf("second early answer has o= version %d, want above the first's %d (RFC 3264 8)", v2, v1)
	}
	send(0xb2, rtpB, rtpA, "early media of branch B")

	forkRespond(proxy, inv, 200, "OK", "tagA", branchA, "", sdpFor(rtpA, 2))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(testphone.CallerDialog(ok, s.carrier), 1, "fork-media-ack")
	branchA.Next(wait, isInDialog(sip.ACK, "tagA"))
	s.waitState(t, "confirmed")
	send(0xa3, rtpA, rtpB, "media after branch A's answer")
}

// originVersion is an SDP's o= session version.
func originVersion(t *testing.T, m sip.Message) int {
	t.Helper()
	for _, l := range strings.Split(string(m.Body()), "\r\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "o=") && len(f) >= 3 {
			var v int
			if _, err := fmt.Sscan(f[2], &v); err == nil {
				return v
			}
		}
	}
	t.Fatalf("no o= version in\n%s", m.Body())
	return 0
}

// Bug 3, early dialogs: each branch's reliable 18x are numbered on their
// own (RFC 3262 4: RSeq per early dialog). Branch A's and branch B's
// RSeq 1 are each PRACKed on their own dialog, at their own Contact; a
// retransmission of A's after B's is not PRACKed or relayed again, and
// A's RSeq 2 is in order.
func TestForkedReliableProvisionalsPerDialog(t *testing.T) {
	caller, proxy := testphone.NewLoopback(t), testphone.NewLoopback(t)
	forkA, forkB := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{proxy.Addr}, nil)
	caller.Invite(s.carrier, "1000", "fork-rel", testphone.TestSDP)
	inv := proxy.ExpectRequest(sip.INVITE, wait)
	prackOn := func(branch *testphone.Phone, tag string, rseq int) {
		t.Helper()
		m := branch.Next(wait, isInDialog("PRACK", tag))
		if m == nil {
			t.Fatalf("no PRACK on branch %s's dialog for RSeq %d", tag, rseq)
		}
		pr := m.(*sip.Request)
		if want := fmt.Sprintf("%d %d INVITE", rseq, inv.CSeq().SeqNo); header(pr, "RAck") != want {
			t.Errorf("branch %s PRACK RAck %q, want %q", tag, header(pr, "RAck"), want)
		}
		branch.Answer(pr, 200, "OK", "", "")
	}
	rel := func(n int) string { return fmt.Sprintf("Require: 100rel\nRSeq: %d\n", n) }

	forkRespond(proxy, inv, 183, "Session Progress", "tagA", forkA, rel(1), testphone.TestSDP)
	prackOn(forkA, "tagA", 1)
	caller.ExpectResponse(183, sip.INVITE, wait)
	forkRespond(proxy, inv, 180, "Ringing", "tagB", forkB, rel(1), "")
	prackOn(forkB, "tagB", 1)
	caller.ExpectResponse(180, sip.INVITE, wait)

	forkRespond(proxy, inv, 183, "Session Progress", "tagA", forkA, rel(1), testphone.TestSDP) // retransmitted
	forkA.Quiet(400*time.Millisecond, isRequest("PRACK"), "second PRACK for branch A's RSeq 1")
	caller.Quiet(100*time.Millisecond, isResponseTo(183, sip.INVITE), "branch A's retransmitted 183 relayed again")
	if got := relEvents(s, "enterprise", "retransmission_in"); got != 1 {
		t.Errorf("retransmission_in counted %v, want 1", got)
	}
	forkRespond(proxy, inv, 180, "Ringing", "tagA", forkA, rel(2), "")
	prackOn(forkA, "tagA", 2)
	caller.ExpectResponse(180, sip.INVITE, wait)

	forkRespond(proxy, inv, 200, "OK", "tagA", forkA, "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "fork-rel-ack")
	forkA.Next(wait, isInDialog(sip.ACK, "tagA"))
	caller.Request(dA, "BYE", 2, "fork-rel-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	if bye := forkA.Next(wait, isInDialog(sip.BYE, "tagA")); bye != nil {
		forkA.Answer(bye.(*sip.Request), 200, "OK", "", "")
	} else {
		t.Fatal("no BYE for the winning branch")
	}
	s.waitIdle(t)
}

// A callee that opens early dialogs without end (a new To tag on every
// 18x) is held to 16 per call: past them its 18x are dropped and counted,
// and the call still completes on a dialog it already has.
func TestEarlyDialogsBounded(t *testing.T) {
	caller, proxy := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{proxy.Addr}, nil)
	caller.Invite(s.carrier, "1000", "fork-many", testphone.TestSDP)
	inv := proxy.ExpectRequest(sip.INVITE, wait)
	for i := range 20 {
		forkRespond(proxy, inv, 180, "Ringing", fmt.Sprintf("tag%d", i), proxy, "", "")
	}
	for range 16 {
		caller.ExpectResponse(180, sip.INVITE, wait)
	}
	caller.Quiet(300*time.Millisecond, isResponseTo(180, sip.INVITE), "an 18x past the early-dialog bound")
	if got := testutil.ToFloat64(s.Metrics().Forks.WithLabelValues("enterprise", "early_refused")); got != 4 {
		t.Errorf("early_refused = %v, want 4", got)
	}
	forkRespond(proxy, inv, 200, "OK", "tag3", proxy, "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "fork-many-ack")
	proxy.Next(wait, isInDialog(sip.ACK, "tag3"))
	caller.Request(dA, "BYE", 2, "fork-many-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	if bye := proxy.Next(wait, isInDialog(sip.BYE, "tag3")); bye != nil {
		proxy.Answer(bye.(*sip.Request), 200, "OK", "", "")
	} else {
		t.Fatal("no BYE on the answered dialog")
	}
	s.waitIdle(t)
}

// Bug 3 with a late offer: the INVITE had no SDP, so each branch's 200
// carries an offer. The winner's goes to the caller as usual; the loser's
// ACK carries an answer refusing every stream (RFC 3261 13.2.2.4: a valid
// answer, then the BYE), the SBC's own, never the caller's.
func TestForkedLateOfferLoserDeclined(t *testing.T) {
	caller, proxy := testphone.NewLoopback(t), testphone.NewLoopback(t)
	forkA, forkB := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{proxy.Addr}, nil)
	caller.Invite(s.carrier, "1000", "fork-late", "")
	inv := proxy.ExpectRequest(sip.INVITE, wait)
	forkRespond(proxy, inv, 200, "OK", "tagA", forkA, "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	s.anchoredFor(t, "carrier", ok.Body(), "the winner's offer, for the caller")
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Send(dA.SBC, fmt.Sprintf(`ACK %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-fork-late-ack
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: 1 ACK`, dA.Target, caller.Addr, dA.LocalURI, dA.LocalTag, dA.RemoteURI, dA.RemoteTag, dA.CallID), testphone.TestSDP)
	if ack := forkA.Next(wait, isInDialog(sip.ACK, "tagA")); ack == nil || len(ack.Body()) == 0 {
		t.Fatalf("winner's ACK without the caller's answer: %v", ack)
	}
	s.waitState(t, "confirmed")

	forkRespond(proxy, inv, 200, "OK", "tagB", forkB, "", testphone.TestSDP)
	m := forkB.Next(wait, isInDialog(sip.ACK, "tagB"))
	if m == nil {
		t.Fatal("loser's 200 not ACKed")
	}
	body := string(m.Body())
	if !strings.Contains(body, "m=audio 0 ") || strings.Contains(body, "40000") || !strings.Contains(body, "o=EdgeSBC ") {
		t.Errorf("loser's ACK does not refuse its offer's stream as the SBC:\n%s", body)
	}
	bye := forkB.Next(wait, isInDialog(sip.BYE, "tagB"))
	if bye == nil {
		t.Fatal("loser not hung up")
	}
	forkB.Answer(bye.(*sip.Request), 200, "OK", "", "")
	caller.Request(dA, "BYE", 2, "fork-late-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	if b := forkA.Next(wait, isInDialog(sip.BYE, "tagA")); b != nil {
		forkA.Answer(b.(*sip.Request), 200, "OK", "", "")
	}
	s.waitIdle(t)
}
