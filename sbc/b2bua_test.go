package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/sbc"
	"github.com/edgesbc/edgesbc/sbc/config"
)

const wait = 3 * time.Second

type testSBC struct {
	*sbc.SBC
	carrier, enterprise string // the SBC's address in each realm
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startSBC runs a B2BUA on loopback: calls into the carrier realm go to
// the enterprise targets in order, calls into the enterprise realm go to
// back (when given).
func startSBC(t *testing.T, targets []string, back []string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	q := func(l []string) string { return `["` + strings.Join(l, `","`) + `"]` }
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", user_agent: SBC-Carrier-Face}
  - {name: enterprise, listen: "127.0.0.1:%d", user_agent: SBC-Enterprise-Face}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: %s, target_timeout: 400ms}
`, cp, ep, q(targets))
	if len(back) > 0 {
		y += fmt.Sprintf("  - {name: out, from_realm: enterprise, to_realm: carrier, targets: %s, target_timeout: 400ms}\n", q(back))
	}
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if os.Getenv("SBC_TEST_LOG") != "" {
		w = os.Stderr
	}
	s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return &testSBC{SBC: s, carrier: fmt.Sprintf("127.0.0.1:%d", cp), enterprise: fmt.Sprintf("127.0.0.1:%d", ep)}
}

func (s *testSBC) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.ActiveCalls() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still active: %+v", s.ActiveCalls(), s.Calls())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState waits until the only call is in that state.
func (s *testSBC) waitState(t *testing.T, state string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		calls := s.Calls()
		if len(calls) == 1 && calls[0].State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call not %s: %+v", state, calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *testSBC) calls(result string) float64 {
	return testutil.ToFloat64(s.Metrics().Calls.WithLabelValues(result))
}

// established sets up a call caller -> SBC -> callee and returns both
// phones' dialogs.
func established(t *testing.T, s *testSBC, caller, callee *phone, callID string) (dialog, dialog, *sip.Request) {
	t.Helper()
	caller.invite(s.carrier, "1000", callID, testSDP)
	caller.expectResponse(100, sip.INVITE, wait)
	inv := callee.expectRequest(sip.INVITE, wait)
	callee.answer(inv, 180, "Ringing", "callee1", "")
	caller.expectResponse(180, sip.INVITE, wait)
	callee.answer(inv, 200, "OK", "callee1", testSDP)
	ok := caller.expectResponse(200, sip.INVITE, wait)
	dA := callerDialog(ok, s.carrier)
	caller.ack(dA, 1, callID+"-ack")
	callee.expectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	return dA, calleeDialog(inv, "callee1"), inv
}

func TestBasicCallAndTopologyHiding(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)

	caller.invite(s.carrier, "1000", "secret-call-id-1", testSDP)
	trying := caller.expectResponse(100, sip.INVITE, wait)
	if trying.CallID().Value() != "secret-call-id-1" {
		t.Fatalf("100 Trying for the wrong call: %s", trying.CallID().Value())
	}
	inv := callee.expectRequest(sip.INVITE, wait)

	// Leg B must carry nothing of leg A: not its Call-ID, tags, Vias,
	// Contact, Record-Route, User-Agent or the caller's address.
	raw := inv.String()
	for _, leak := range []string{"secret-call-id-1", "ftsecret-call-id-1", caller.addr, "secret-edge1", "SecretCarrierSwitch"} {
		if strings.Contains(raw, leak) {
			t.Errorf("leg B INVITE leaks %q:\n%s", leak, raw)
		}
	}
	if n := len(inv.GetHeaders("Via")); n != 1 {
		t.Errorf("leg B has %d Vias, want only the SBC's", n)
	}
	if via := inv.Via(); via.Host+":"+fmt.Sprint(via.Port) != s.enterprise {
		t.Errorf("leg B Via %s:%d, want the SBC's enterprise face %s", via.Host, via.Port, s.enterprise)
	}
	if ua := inv.GetHeaders("User-Agent"); len(ua) != 1 || ua[0].Value() != "SBC-Enterprise-Face" {
		t.Errorf("leg B User-Agent %v, want the realm's", ua)
	}
	if inv.GetHeaders("Subject")[0].Value() != "test call" {
		t.Error("allowed header Subject not carried")
	}
	if mf := inv.MaxForwards().Val(); mf != 69 {
		t.Errorf("Max-Forwards %d, want 69", mf)
	}
	if string(inv.Body()) != testSDP {
		t.Errorf("SDP changed by a pass-through hook:\n%s", inv.Body())
	}
	if inv.Source() != s.enterprise {
		t.Errorf("leg B came from %s, want the enterprise listener %s", inv.Source(), s.enterprise)
	}

	callee.answer(inv, 180, "Ringing", "callee1", testSDP) // early media
	r180 := caller.expectResponse(180, sip.INVITE, wait)
	if string(r180.Body()) != testSDP {
		t.Error("18x SDP (early media) not relayed")
	}
	callee.answer(inv, 200, "OK", "callee1", testSDP)
	ok := caller.expectResponse(200, sip.INVITE, wait)
	for _, leak := range []string{"callee1", callee.addr, inv.CallID().Value()} {
		if strings.Contains(ok.String(), leak) {
			t.Errorf("200 to leg A leaks %q:\n%s", leak, ok.String())
		}
	}
	if sv := ok.GetHeaders("Server"); len(sv) != 1 || sv[0].Value() != "SBC-Carrier-Face" {
		t.Errorf("Server header %v, want the carrier realm's", sv)
	}
	dA := callerDialog(ok, s.carrier)
	caller.ack(dA, 1, "a1")
	if ack := callee.expectRequest(sip.ACK, wait); ack.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Errorf("leg B ACK CSeq %d, want the INVITE's %d", ack.CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	s.waitState(t, "confirmed")
	if calls := s.Calls(); len(calls) != 1 || calls[0].B == nil || calls[0].B.CallID != inv.CallID().Value() || calls[0].A.CallID != "secret-call-id-1" {
		t.Fatalf("admin view: %+v", calls)
	}

	caller.request(dA, "BYE", 2, "a2", "")
	caller.expectResponse(200, sip.BYE, wait)
	bye := callee.expectRequest(sip.BYE, wait)
	callee.answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if got := s.calls("bye_a"); got != 1 {
		t.Errorf("calls{bye_a} = %v, want 1", got)
	}
}

func TestByeFromCallee(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	_, dB, _ := established(t, s, caller, callee, "c-bye-b")
	callee.request(dB, "BYE", 1, "b-bye", "")
	callee.expectResponse(200, sip.BYE, wait)
	bye := caller.expectRequest(sip.BYE, wait)
	if bye.CallID().Value() != "c-bye-b" || toTagOf(bye) != "ftc-bye-b" {
		t.Errorf("BYE to caller not in the caller's dialog: %s", bye.String())
	}
	caller.answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if s.calls("bye_b") != 1 {
		t.Error("call not counted as ended by leg B")
	}
}

func toTagOf(r *sip.Request) string { v, _ := r.To().Params.Get("tag"); return v }

// The callee's BYE overtakes its own 200 on the wire. Each packet has its
// own goroutine in sipgo, so the B2BUA sees them in either order; either
// way the call must end on both legs with nothing left behind.
func TestCalleeByeOvertakesItsAnswer(t *testing.T) {
	for i := 0; i < 5; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			caller, callee := newPhone(t), newPhone(t)
			s := startSBC(t, []string{callee.addr}, nil)
			cid := fmt.Sprintf("overtake-%d", i)
			caller.invite(s.carrier, "1000", cid, testSDP)
			inv := callee.expectRequest(sip.INVITE, wait)
			callee.answer(inv, 180, "Ringing", "cb", "")
			caller.expectResponse(180, sip.INVITE, wait)
			dB := calleeDialog(inv, "cb")
			callee.request(dB, "BYE", 1, "early-bye", "") // BYE first...
			callee.answer(inv, 200, "OK", "cb", testSDP)  // ...then the 200
			callee.expectResponse(200, sip.BYE, wait)
			callee.expectRequest(sip.ACK, wait) // its 2xx is still ACKed

			ok := caller.expectResponse(200, sip.INVITE, wait)
			dA := callerDialog(ok, s.carrier)
			caller.ack(dA, 1, cid+"-ack")
			bye := caller.expectRequest(sip.BYE, wait)
			caller.answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
			if s.calls("bye_b") != 1 {
				t.Errorf("result not bye_b")
			}
			callee.quiet(300*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Request)
				return ok && r.Method == sip.BYE
			}, "BYE to the callee that already hung up")
		})
	}
}

// The caller's BYE overtakes its ACK: the call ends, the callee gets BYE,
// and the SBC stops retransmitting its 200.
func TestCallerByeOvertakesAck(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	caller.invite(s.carrier, "1000", "bye-before-ack", testSDP)
	inv := callee.expectRequest(sip.INVITE, wait)
	callee.answer(inv, 200, "OK", "cb", testSDP)
	ok := caller.expectResponse(200, sip.INVITE, wait)
	dA := callerDialog(ok, s.carrier)
	caller.request(dA, "BYE", 2, "bye-first", "")
	caller.ack(dA, 1, "ack-second")
	caller.expectResponse(200, sip.BYE, wait)
	bye := callee.expectRequest(sip.BYE, wait)
	callee.answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	caller.quiet(1200*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}, "200 retransmission after the call ended")
}

// Without an ACK the SBC retransmits its 2xx (T1 doubling) and, after
// 64*T1, hangs the call up on both legs.
func TestTwoHundredRetransmittedUntilAck(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	caller.invite(s.carrier, "1000", "retrans", testSDP)
	inv := callee.expectRequest(sip.INVITE, wait)
	callee.answer(inv, 200, "OK", "cb", testSDP)
	first := caller.expectResponse(200, sip.INVITE, wait)
	again := caller.expectResponse(200, sip.INVITE, 2*time.Second) // T1 = 500 ms
	if toTagOf2(first) != toTagOf2(again) {
		t.Error("retransmitted 2xx has another To tag")
	}
	caller.ack(callerDialog(again, s.carrier), 1, "late-ack")
	s.waitState(t, "confirmed")
	caller.quiet(1500*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200
	}, "200 retransmission after ACK")
}

func toTagOf2(r *sip.Response) string { v, _ := r.To().Params.Get("tag"); return v }

func TestCancelWhileRinging(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	caller.invite(s.carrier, "1000", "cancel-ring", testSDP)
	inv := callee.expectRequest(sip.INVITE, wait)
	callee.answer(inv, 180, "Ringing", "cb", "")
	caller.expectResponse(180, sip.INVITE, wait)
	caller.send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cancel-ring-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftcancel-ring
		To: <sip:1000@%s>
		Call-ID: cancel-ring
		CSeq: 1 CANCEL`, s.carrier, caller.addr, caller.addr, s.carrier), "")
	caller.expectResponse(200, sip.CANCEL, wait)
	caller.expectResponse(487, sip.INVITE, wait)
	cancel := callee.expectRequest(sip.CANCEL, wait)
	if cancel.Via().Params.GetOr("branch", "") != inv.Via().Params.GetOr("branch", "x") {
		t.Error("leg B CANCEL does not match its INVITE's branch")
	}
	callee.answer(cancel, 200, "OK", "", "")
	callee.answer(inv, 487, "Request Terminated", "cb", "")
	callee.expectRequest(sip.ACK, wait)
	s.waitIdle(t)
	if s.calls("cancelled") != 1 {
		t.Error("call not counted as cancelled")
	}
}

// A CANCEL that comes before leg B has answered anything: the caller gets
// 487 at once, and leg B is cancelled the moment its first provisional
// arrives, not after Timer B.
func TestCancelBeforeAnyProvisional(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	caller.invite(s.carrier, "1000", "cancel-early", testSDP)
	inv := callee.expectRequest(sip.INVITE, wait) // the callee stays silent
	caller.send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cancel-early-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftcancel-early
		To: <sip:1000@%s>
		Call-ID: cancel-early
		CSeq: 1 CANCEL`, s.carrier, caller.addr, caller.addr, s.carrier), "")
	caller.expectResponse(487, sip.INVITE, wait)
	s.waitIdle(t) // over for the caller at once
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	callee.answer(inv, 180, "Ringing", "cb", "")
	cancel := callee.expectRequest(sip.CANCEL, wait)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("leg B cancelled %v after its provisional", d)
	}
	callee.answer(cancel, 200, "OK", "", "")
	callee.answer(inv, 487, "Request Terminated", "cb", "")
	callee.expectRequest(sip.ACK, wait)
}

// A target that never answers is abandoned after target_timeout and its
// INVITE stops being retransmitted; the next target gets the call.
func TestFailoverOnSilenceAnd503(t *testing.T) {
	silent, busy, good, caller := newPhone(t), newPhone(t), newPhone(t), newPhone(t)
	s := startSBC(t, []string{silent.addr, busy.addr, good.addr}, nil)
	start := time.Now()
	caller.invite(s.carrier, "1000", "failover", testSDP)
	silent.expectRequest(sip.INVITE, wait)
	inv503 := busy.expectRequest(sip.INVITE, wait)
	if d := time.Since(start); d < 350*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("second target tried after %v, want about the 400ms target_timeout", d)
	}
	busy.answer(inv503, 503, "Service Unavailable", "b503", "")
	busy.expectRequest(sip.ACK, wait)
	inv := good.expectRequest(sip.INVITE, wait)
	good.answer(inv, 200, "OK", "good", testSDP)
	ok := caller.expectResponse(200, sip.INVITE, wait)
	caller.ack(callerDialog(ok, s.carrier), 1, "fo-ack")
	good.expectRequest(sip.ACK, wait)
	silent.quiet(1200*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "INVITE retransmission to an abandoned target")
}

func TestFinalFailureRelayedNotFailedOver(t *testing.T) {
	first, second, caller := newPhone(t), newPhone(t), newPhone(t)
	s := startSBC(t, []string{first.addr, second.addr}, nil)
	caller.invite(s.carrier, "1000", "busy", testSDP)
	inv := first.expectRequest(sip.INVITE, wait)
	first.answer(inv, 486, "Busy Here", "b", "")
	res := caller.expectResponse(486, sip.INVITE, wait)
	if res.Reason != "Busy Here" {
		t.Errorf("reason %q not relayed exactly", res.Reason)
	}
	second.quiet(500*time.Millisecond, func(m sip.Message) bool { return m != nil }, "failover on 486")
	s.waitIdle(t)
	if s.calls("busy") != 1 {
		t.Error("not counted busy")
	}
}

func TestReinviteBothDirections(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "reinv")
	held := strings.Replace(testSDP, "m=audio", "a=sendonly\r\nm=audio", 1)

	caller.request(dA, "INVITE", 3, "ra", held)
	re := callee.expectRequest(sip.INVITE, wait)
	if re.CallID().Value() != dB.callID || toTagOf(re) != "callee1" || string(re.Body()) != held {
		t.Fatalf("re-INVITE not on leg B's dialog with the new SDP:\n%s", re.String())
	}
	callee.answer(re, 200, "OK", "callee1", testSDP)
	ok := caller.expectResponse(200, sip.INVITE, wait)
	if ok.CSeq().SeqNo != 3 {
		t.Errorf("200 CSeq %d, want the re-INVITE's 3", ok.CSeq().SeqNo)
	}
	callee.expectRequest(sip.ACK, wait) // offer in the re-INVITE: ACKed at once
	caller.ack(dA, 3, "ra-ack")

	callee.request(dB, "INVITE", 10, "rb", testSDP)
	re2 := caller.expectRequest(sip.INVITE, wait)
	if re2.CallID().Value() != "reinv" {
		t.Fatalf("callee's re-INVITE not on leg A's dialog:\n%s", re2.String())
	}
	caller.answer(re2, 200, "OK", "", testSDP)
	callee.expectResponse(200, sip.INVITE, wait)
	caller.expectRequest(sip.ACK, wait)
	callee.ack(dB, 10, "rb-ack")

	caller.request(dA, "UPDATE", 4, "up", testSDP)
	up := callee.expectRequest(sip.UPDATE, wait)
	callee.answer(up, 200, "OK", "", testSDP)
	caller.expectResponse(200, sip.UPDATE, wait)

	caller.request(dA, "INFO", 5, "info", "")
	info := callee.expectRequest(sip.INFO, wait)
	callee.answer(info, 200, "OK", "", "")
	caller.expectResponse(200, sip.INFO, wait)

	callee.request(dB, "OPTIONS", 11, "opt", "")
	opt := caller.expectRequest(sip.OPTIONS, wait)
	caller.answer(opt, 200, "OK", "", "")
	callee.expectResponse(200, sip.OPTIONS, wait)
}

// Both sides send a re-INVITE at once: the one that meets a pending
// INVITE transaction gets 491.
func TestReinviteGlare(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "glare")
	callee.request(dB, "INVITE", 10, "gb", testSDP)
	re := caller.expectRequest(sip.INVITE, wait) // now pending at the caller
	caller.request(dA, "INVITE", 3, "ga", testSDP)
	caller.expectResponse(491, sip.INVITE, wait)
	caller.answer(re, 200, "OK", "", testSDP)
	callee.expectResponse(200, sip.INVITE, wait)
}

func TestInDialogOrderAndUnknownDialogs(t *testing.T) {
	caller, callee := newPhone(t), newPhone(t)
	s := startSBC(t, []string{callee.addr}, nil)
	dA, _, _ := established(t, s, caller, callee, "order")

	caller.request(dA, "INFO", 1, "old", "") // CSeq 1 is the INVITE's: out of order
	caller.expectResponse(500, sip.INFO, wait)

	bogus := dA
	bogus.callID = "no-such-call"
	caller.request(bogus, "BYE", 9, "nb", "")
	caller.expectResponse(481, sip.BYE, wait)
	wrongTag := dA
	wrongTag.remoteTag = "not-ours"
	caller.request(wrongTag, "BYE", 9, "wt", "")
	caller.expectResponse(481, sip.BYE, wait)
}

func TestLocalAnswers(t *testing.T) {
	caller := newPhone(t)
	s := startSBC(t, []string{"127.0.0.1:9"}, nil)
	caller.send(s.carrier, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-opt1
		Max-Forwards: 70
		From: <sip:probe@%s>;tag=o1
		To: <sip:%s>
		Call-ID: keepalive-1
		CSeq: 1 OPTIONS`, s.carrier, caller.addr, caller.addr, s.carrier), "")
	ok := caller.expectResponse(200, sip.OPTIONS, wait)
	if len(ok.GetHeaders("Allow")) == 0 {
		t.Error("OPTIONS answer has no Allow")
	}

	caller.send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-mf0
		Max-Forwards: 0
		From: <sip:a@%s>;tag=m1
		To: <sip:1000@%s>
		Call-ID: mf-zero
		CSeq: 1 INVITE
		Contact: <sip:a@%s>`, s.carrier, caller.addr, caller.addr, s.carrier, caller.addr), "")
	caller.expectResponse(483, sip.INVITE, wait)

	caller.send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-req100rel
		Max-Forwards: 70
		From: <sip:a@%s>;tag=m2
		To: <sip:1000@%s>
		Call-ID: require-100rel
		CSeq: 1 INVITE
		Require: 100rel
		Contact: <sip:a@%s>`, s.carrier, caller.addr, caller.addr, s.carrier, caller.addr), "")
	bad := caller.expectResponse(420, sip.INVITE, wait)
	if u := bad.GetHeaders("Unsupported"); len(u) != 1 || u[0].Value() != "100rel" {
		t.Errorf("420 Unsupported = %v", u)
	}

	caller.send(s.carrier, fmt.Sprintf(`FOO sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-foo
		Max-Forwards: 70
		From: <sip:a@%s>;tag=m3
		To: <sip:1000@%s>
		Call-ID: unknown-method
		CSeq: 1 FOO`, s.carrier, caller.addr, caller.addr, s.carrier), "")
	caller.expectResponse(501, "FOO", wait)
	if s.ActiveCalls() != 0 {
		t.Error("a rejected request left a call behind")
	}
}

// A route that points the SBC at itself: leg B arrives back at the SBC
// carrying its own Call-ID, which is refused as a loop.
func TestLoopDetected(t *testing.T) {
	caller := newPhone(t)
	cp := freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
routes:
  - {name: loop, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:%d"]}
`, cp, freePort(t), cp)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	caller.invite(fmt.Sprintf("127.0.0.1:%d", cp), "1000", "loop-1", testSDP)
	caller.expectResponse(482, sip.INVITE, wait)
}
