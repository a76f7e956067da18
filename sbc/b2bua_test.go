package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

const wait = 3 * time.Second

type testSBC struct {
	*sbc.SBC
	cfg                 *config.Config
	anchor              *mediarelay.Anchor // nil when media passes through
	carrier, enterprise string             // the SBC's address in each realm
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort returns a loopback UDP port the kernel says is free and that no
// other test of this package was given: two back-to-back asks could
// otherwise get the same port for both realms.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if !portsGiven[p] {
			portsGiven[p] = true
			return p
		}
	}
	t.Fatal("no fresh loopback port in 100 tries")
	return 0
}

// startSBC runs a B2BUA on loopback: calls into the carrier realm go to
// the enterprise targets in order, calls into the enterprise realm go to
// back (when given). Media is anchored, as sbcd's default: every SDP is
// rewritten to the SBC's loopback media ports and relayed.
func startSBC(t *testing.T, targets []string, back []string) *testSBC {
	t.Helper()
	return startSBCMedia(t, targets, back, true)
}

// startSBCMedia is startSBC with media anchoring on or off (off: SDP
// passes untouched, for a test that checks a body's bytes end to end; no
// test needs that today).
func startSBCMedia(t *testing.T, targets []string, back []string, anchored bool) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	q := func(l []string) string { return `["` + strings.Join(l, `","`) + `"]` }
	media := "media: {enabled: false} # signaling only: the test checks SDP passes untouched"
	if anchored {
		media = "media: {timeout: 1m} # anchored on the user-space relay; no test sends RTP for a minute"
	}
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", user_agent: SBC-Carrier-Face, media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", user_agent: SBC-Enterprise-Face, media: {ports: %s}}
%s
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: %s, target_timeout: 400ms}
`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk), media, q(targets))
	if len(back) > 0 {
		y += fmt.Sprintf("  - {name: out, from_realm: enterprise, to_realm: carrier, targets: %s, target_timeout: 400ms}\n", q(back))
	}
	return runSBC(t, y, cp, ep)
}

// runSBC starts an SBC on config y (debug log on stderr when SBC_TEST_LOG
// is set) with its realms on loopback ports cp and ep, and closes it when
// the test ends. When y anchors media (media.enabled not false) the SBC
// gets the media anchor sbcd would build from it, on the user-space relay.
// opts adjust its Options (a fake clock, say).
func runSBC(t *testing.T, y string, cp, ep int, opts ...func(*sbc.Options)) *testSBC {
	t.Helper()
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	var w io.Writer = io.Discard
	if os.Getenv("SBC_TEST_LOG") != "" {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opt := sbc.Options{Logger: log, Registry: prometheus.NewRegistry()}
	for _, o := range opts {
		o(&opt)
	}
	var anchor *mediarelay.Anchor
	if cfg.Media.Anchored() {
		anchor = newAnchor(t, cfg, log, opt.Registry)
		opt.Media = anchor
	}
	s, err := sbc.New(cfg, opt)
	if err != nil {
		if anchor != nil {
			anchor.Close()
		}
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		if anchor != nil {
			anchor.Close()
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
		if anchor != nil {
			anchor.Close() // after the SBC: its calls' End ran
		}
	})
	return &testSBC{SBC: s, cfg: cfg, anchor: anchor, carrier: fmt.Sprintf("127.0.0.1:%d", cp), enterprise: fmt.Sprintf("127.0.0.1:%d", ep)}
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

// waitCalls waits until calls{result} is want. A call leaves the table
// (waitIdle) before it is counted, its media released in between (the
// anchor closing its sockets), so a count read right after waitIdle may
// not have it yet.
func (s *testSBC) waitCalls(t *testing.T, result string, want float64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.calls(result) != want {
		if time.Now().After(deadline) {
			t.Errorf("calls{%s} = %v, want %v", result, s.calls(result), want)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// established sets up a call caller -> SBC -> callee and returns both
// phones' dialogs.
func established(t *testing.T, s *testSBC, caller, callee *testphone.Phone, callID string) (testphone.Dialog, testphone.Dialog, *sip.Request) {
	t.Helper()
	caller.Invite(s.carrier, "1000", callID, testphone.TestSDP)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, callID+"-ack")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	return dA, testphone.CalleeDialog(inv, "callee1"), inv
}

func TestBasicCallAndTopologyHiding(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)

	caller.Invite(s.carrier, "1000", "secret-call-id-1", testphone.TestSDP)
	trying := caller.ExpectResponse(100, sip.INVITE, wait)
	if trying.CallID().Value() != "secret-call-id-1" {
		t.Fatalf("100 Trying for the wrong call: %s", trying.CallID().Value())
	}
	inv := callee.ExpectRequest(sip.INVITE, wait)

	// Leg B must carry nothing of leg A: not its Call-ID, tags, Vias,
	// Contact, Record-Route, User-Agent or the caller's address.
	raw := inv.String()
	for _, leak := range []string{"secret-call-id-1", "ftsecret-call-id-1", caller.Addr, "secret-edge1", "SecretCarrierSwitch", "X-Edgesbc-Rx-Len"} {
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
	s.anchoredFor(t, "enterprise", inv.Body(), "leg B INVITE's offer") // media hidden too
	if inv.Source() != s.enterprise {
		t.Errorf("leg B came from %s, want the enterprise listener %s", inv.Source(), s.enterprise)
	}

	callee.Answer(inv, 180, "Ringing", "callee1", testphone.TestSDP) // early media
	r180 := caller.ExpectResponse(180, sip.INVITE, wait)
	s.anchoredFor(t, "carrier", r180.Body(), "18x SDP (early media)")
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	s.anchoredFor(t, "carrier", ok.Body(), "200's answer")
	for _, leak := range []string{"callee1", callee.Addr, inv.CallID().Value()} {
		if strings.Contains(ok.String(), leak) {
			t.Errorf("200 to leg A leaks %q:\n%s", leak, ok.String())
		}
	}
	if sv := ok.GetHeaders("Server"); len(sv) != 1 || sv[0].Value() != "SBC-Carrier-Face" {
		t.Errorf("Server header %v, want the carrier realm's", sv)
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "a1")
	if ack := callee.ExpectRequest(sip.ACK, wait); ack.CSeq().SeqNo != inv.CSeq().SeqNo {
		t.Errorf("leg B ACK CSeq %d, want the INVITE's %d", ack.CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	s.waitState(t, "confirmed")
	if calls := s.Calls(); len(calls) != 1 || calls[0].B == nil || calls[0].B.CallID != inv.CallID().Value() || calls[0].A.CallID != "secret-call-id-1" {
		t.Fatalf("admin view: %+v", calls)
	}

	caller.Request(dA, "BYE", 2, "a2", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "bye_a", 1)
}

func TestByeFromCallee(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	_, dB, _ := established(t, s, caller, callee, "c-bye-b")
	callee.Request(dB, "BYE", 1, "b-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	if bye.CallID().Value() != "c-bye-b" || toTagOf(bye) != "ftc-bye-b" {
		t.Errorf("BYE to caller not in the caller's dialog: %s", bye.String())
	}
	caller.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "bye_b", 1)
}

func toTagOf(r *sip.Request) string { v, _ := r.To().Params.Get("tag"); return v }

// The callee's BYE overtakes its own 200 on the wire. Each packet has its
// own goroutine in sipgo, so the B2BUA sees them in either order; either
// way the call must end on both legs with nothing left behind.
func TestCalleeByeOvertakesItsAnswer(t *testing.T) {
	for i := 0; i < 5; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := startSBC(t, []string{callee.Addr}, nil)
			cid := fmt.Sprintf("overtake-%d", i)
			caller.Invite(s.carrier, "1000", cid, testphone.TestSDP)
			inv := callee.ExpectRequest(sip.INVITE, wait)
			callee.Answer(inv, 180, "Ringing", "cb", "")
			caller.ExpectResponse(180, sip.INVITE, wait)
			dB := testphone.CalleeDialog(inv, "cb")
			callee.Request(dB, "BYE", 1, "early-bye", "")          // BYE first...
			callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP) // ...then the 200
			callee.ExpectResponse(200, sip.BYE, wait)
			callee.ExpectRequest(sip.ACK, wait) // its 2xx is still ACKed

			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			dA := testphone.CallerDialog(ok, s.carrier)
			caller.Ack(dA, 1, cid+"-ack")
			bye := caller.ExpectRequest(sip.BYE, wait)
			caller.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
			s.waitCalls(t, "bye_b", 1)
			callee.Quiet(300*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Request)
				return ok && r.Method == sip.BYE
			}, "BYE to the callee that already hung up")
		})
	}
}

// The caller's BYE overtakes its ACK: the call ends, the callee gets BYE,
// and the SBC stops retransmitting its 200.
func TestCallerByeOvertakesAck(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "bye-before-ack", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Request(dA, "BYE", 2, "bye-first", "")
	caller.Ack(dA, 1, "ack-second")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	caller.Quiet(1200*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}, "200 retransmission after the call ended")
}

// Without an ACK the SBC retransmits its 2xx (T1 doubling) and, after
// 64*T1, hangs the call up on both legs.
func TestTwoHundredRetransmittedUntilAck(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "retrans", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP)
	first := caller.ExpectResponse(200, sip.INVITE, wait)
	again := caller.ExpectResponse(200, sip.INVITE, 2*time.Second) // T1 = 500 ms
	if toTagOf2(first) != toTagOf2(again) {
		t.Error("retransmitted 2xx has another To tag")
	}
	caller.Ack(testphone.CallerDialog(again, s.carrier), 1, "late-ack")
	s.waitState(t, "confirmed")
	caller.Quiet(1500*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200
	}, "200 retransmission after ACK")
}

func toTagOf2(r *sip.Response) string { v, _ := r.To().Params.Get("tag"); return v }

func TestCancelWhileRinging(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "cancel-ring", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "cb", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	caller.Send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cancel-ring-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftcancel-ring
		To: <sip:1000@%s>
		Call-ID: cancel-ring
		CSeq: 1 CANCEL`, s.carrier, caller.Addr, caller.Addr, s.carrier), "")
	caller.ExpectResponse(200, sip.CANCEL, wait)
	caller.ExpectResponse(487, sip.INVITE, wait)
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	if cancel.Via().Params.GetOr("branch", "") != inv.Via().Params.GetOr("branch", "x") {
		t.Error("leg B CANCEL does not match its INVITE's branch")
	}
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "cb", "")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitIdle(t)
	s.waitCalls(t, "cancelled", 1)
}

// A CANCEL that comes before leg B has answered anything: the caller gets
// 487 at once, and leg B is cancelled the moment its first provisional
// arrives, not after Timer B.
func TestCancelBeforeAnyProvisional(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "cancel-early", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait) // the callee stays silent
	caller.Send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cancel-early-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftcancel-early
		To: <sip:1000@%s>
		Call-ID: cancel-early
		CSeq: 1 CANCEL`, s.carrier, caller.Addr, caller.Addr, s.carrier), "")
	caller.ExpectResponse(487, sip.INVITE, wait)
	s.waitIdle(t) // over for the caller at once
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	callee.Answer(inv, 180, "Ringing", "cb", "")
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("leg B cancelled %v after its provisional", d)
	}
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "cb", "")
	callee.ExpectRequest(sip.ACK, wait)
}

// A target that never answers is abandoned after target_timeout and its
// INVITE stops being retransmitted; the next target gets the call.
func TestFailoverOnSilenceAnd503(t *testing.T) {
	silent, busy, good, caller := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{silent.Addr, busy.Addr, good.Addr}, nil)
	start := time.Now()
	caller.Invite(s.carrier, "1000", "failover", testphone.TestSDP)
	silent.ExpectRequest(sip.INVITE, wait)
	inv503 := busy.ExpectRequest(sip.INVITE, wait)
	if d := time.Since(start); d < 350*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("second target tried after %v, want about the 400ms target_timeout", d)
	}
	busy.Answer(inv503, 503, "Service Unavailable", "b503", "")
	busy.ExpectRequest(sip.ACK, wait)
	inv := good.ExpectRequest(sip.INVITE, wait)
	good.Answer(inv, 200, "OK", "good", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(testphone.CallerDialog(ok, s.carrier), 1, "fo-ack")
	good.ExpectRequest(sip.ACK, wait)
	silent.Quiet(1200*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "INVITE retransmission to an abandoned target")
}

func TestFinalFailureRelayedNotFailedOver(t *testing.T) {
	first, second, caller := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{first.Addr, second.Addr}, nil)
	caller.Invite(s.carrier, "1000", "busy", testphone.TestSDP)
	inv := first.ExpectRequest(sip.INVITE, wait)
	first.Answer(inv, 486, "Busy Here", "b", "")
	res := caller.ExpectResponse(486, sip.INVITE, wait)
	if res.Reason != "Busy Here" {
		t.Errorf("reason %q not relayed exactly", res.Reason)
	}
	second.Quiet(500*time.Millisecond, func(m sip.Message) bool { return m != nil }, "failover on 486")
	s.waitIdle(t)
	s.waitCalls(t, "busy", 1)
}

func TestReinviteBothDirections(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "reinv")
	held := strings.Replace(testphone.TestSDP, "m=audio", "a=sendonly\r\nm=audio", 1)

	caller.Request(dA, "INVITE", 3, "ra", held)
	re := callee.ExpectRequest(sip.INVITE, wait)
	if re.CallID().Value() != dB.CallID || toTagOf(re) != "callee1" || !strings.Contains(string(re.Body()), "a=sendonly") {
		t.Fatalf("re-INVITE not on leg B's dialog with the new SDP:\n%s", re.String())
	}
	callee.Answer(re, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if ok.CSeq().SeqNo != 3 {
		t.Errorf("200 CSeq %d, want the re-INVITE's 3", ok.CSeq().SeqNo)
	}
	callee.ExpectRequest(sip.ACK, wait) // offer in the re-INVITE: ACKed at once
	caller.Ack(dA, 3, "ra-ack")

	callee.Request(dB, "INVITE", 10, "rb", testphone.TestSDP)
	re2 := caller.ExpectRequest(sip.INVITE, wait)
	if re2.CallID().Value() != "reinv" {
		t.Fatalf("callee's re-INVITE not on leg A's dialog:\n%s", re2.String())
	}
	caller.Answer(re2, 200, "OK", "", testphone.TestSDP)
	callee.ExpectResponse(200, sip.INVITE, wait)
	caller.ExpectRequest(sip.ACK, wait)
	callee.Ack(dB, 10, "rb-ack")

	caller.Request(dA, "UPDATE", 4, "up", testphone.TestSDP)
	up := callee.ExpectRequest(sip.UPDATE, wait)
	callee.Answer(up, 200, "OK", "", testphone.TestSDP)
	caller.ExpectResponse(200, sip.UPDATE, wait)

	caller.Request(dA, "INFO", 5, "info", "")
	info := callee.ExpectRequest(sip.INFO, wait)
	callee.Answer(info, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.INFO, wait)

	callee.Request(dB, "OPTIONS", 11, "opt", "")
	opt := caller.ExpectRequest(sip.OPTIONS, wait)
	caller.Answer(opt, 200, "OK", "", "")
	callee.ExpectResponse(200, sip.OPTIONS, wait)
}

// Both sides send a re-INVITE at once: the one that meets a pending
// INVITE transaction gets 491.
func TestReinviteGlare(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, dB, _ := established(t, s, caller, callee, "glare")
	callee.Request(dB, "INVITE", 10, "gb", testphone.TestSDP)
	re := caller.ExpectRequest(sip.INVITE, wait) // now pending at the caller
	caller.Request(dA, "INVITE", 3, "ga", testphone.TestSDP)
	caller.ExpectResponse(491, sip.INVITE, wait)
	caller.Answer(re, 200, "OK", "", testphone.TestSDP)
	callee.ExpectResponse(200, sip.INVITE, wait)
}

func TestInDialogOrderAndUnknownDialogs(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, _, _ := established(t, s, caller, callee, "order")

	caller.Request(dA, "INFO", 1, "old", "") // CSeq 1 is the INVITE's: out of order
	caller.ExpectResponse(500, sip.INFO, wait)

	bogus := dA
	bogus.CallID = "no-such-call"
	caller.Request(bogus, "BYE", 9, "nb", "")
	caller.ExpectResponse(481, sip.BYE, wait)
	wrongTag := dA
	wrongTag.RemoteTag = "not-ours"
	caller.Request(wrongTag, "BYE", 9, "wt", "")
	caller.ExpectResponse(481, sip.BYE, wait)
}

func TestLocalAnswers(t *testing.T) {
	caller := testphone.NewLoopback(t)
	s := startSBC(t, []string{"127.0.0.1:9"}, nil)
	caller.Send(s.carrier, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-opt1
		Max-Forwards: 70
		From: <sip:probe@%s>;tag=o1
		To: <sip:%s>
		Call-ID: keepalive-1
		CSeq: 1 OPTIONS`, s.carrier, caller.Addr, caller.Addr, s.carrier), "")
	ok := caller.ExpectResponse(200, sip.OPTIONS, wait)
	if len(ok.GetHeaders("Allow")) == 0 {
		t.Error("OPTIONS answer has no Allow")
	}

	caller.Send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-mf0
		Max-Forwards: 0
		From: <sip:a@%s>;tag=m1
		To: <sip:1000@%s>
		Call-ID: mf-zero
		CSeq: 1 INVITE
		Contact: <sip:a@%s>`, s.carrier, caller.Addr, caller.Addr, s.carrier, caller.Addr), "")
	caller.ExpectResponse(483, sip.INVITE, wait)

	caller.Send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-reqprecond
		Max-Forwards: 70
		From: <sip:a@%s>;tag=m2
		To: <sip:1000@%s>
		Call-ID: require-precondition
		CSeq: 1 INVITE
		Require: precondition
		Contact: <sip:a@%s>`, s.carrier, caller.Addr, caller.Addr, s.carrier, caller.Addr), "")
	bad := caller.ExpectResponse(420, sip.INVITE, wait)
	if u := bad.GetHeaders("Unsupported"); len(u) != 1 || u[0].Value() != "precondition" {
		t.Errorf("420 Unsupported = %v", u)
	}

	caller.Send(s.carrier, fmt.Sprintf(`FOO sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-foo
		Max-Forwards: 70
		From: <sip:a@%s>;tag=m3
		To: <sip:1000@%s>
		Call-ID: unknown-method
		CSeq: 1 FOO`, s.carrier, caller.Addr, caller.Addr, s.carrier), "")
	caller.ExpectResponse(501, "FOO", wait)
	if s.ActiveCalls() != 0 {
		t.Error("a rejected request left a call behind")
	}
}

// A route that points the SBC at itself: leg B arrives back at the SBC
// carrying its own Call-ID, which is refused as a loop.
func TestLoopDetected(t *testing.T) {
	caller := testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}}
routes:
  - {name: loop, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:%d"]}
`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk), cp)
	s := runSBC(t, y, cp, ep)
	caller.Invite(s.carrier, "1000", "loop-1", testphone.TestSDP)
	caller.ExpectResponse(482, sip.INVITE, wait)
}
