package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
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
			seen := code
			if code == 302 {
				seen = 502 // a 302 without Contact is followed nowhere (redirect.go)
			}
			res := caller.ExpectResponse(seen, sip.INVITE, wait)
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

// mediaSBC is an SBC that anchors media on loopback, ten free ports per
// realm (mediaRange), calls from the carrier going to callee; extra is
// appended to the route's YAML line.
type mediaSBC struct {
	*testSBC
	anchor *mediarelay.Anchor
	reg    *prometheus.Registry
}

func startMediaSBC(t *testing.T, callee, extra string) *mediaSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	cm, em := mediaRange(t, 10), mediaRange(t, 10)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms%s}
`, cp, cm, ep, em, callee, extra)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	var w io.Writer = io.Discard
	if os.Getenv("SBC_TEST_LOG") != "" {
		w = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	lo := netip.MustParseAddr("127.0.0.1")
	anchor, err := mediarelay.NewAnchor(mediarelay.AnchorConfig{
		Realms: []mediarelay.RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: cm.lo, MaxPort: cm.hi},
			{Name: "enterprise", Addr: lo, MinPort: em.lo, MaxPort: em.hi},
		},
		Timeout: time.Minute, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sbc.New(cfg, sbc.Options{Logger: log, Media: anchor, Registry: reg})
	if err != nil {
		anchor.Close()
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		anchor.Close()
		t.Fatal(err)
	}
	ts := &testSBC{SBC: s, carrier: fmt.Sprintf("127.0.0.1:%d", cp), enterprise: fmt.Sprintf("127.0.0.1:%d", ep)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
		anchor.Close()
	})
	return &mediaSBC{testSBC: ts, anchor: anchor, reg: reg}
}

// portsInUse is the sum of sbc_media_ports_in_use over the realms.
func (m *mediaSBC) portsInUse(t *testing.T) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "sbc_media_ports_in_use" {
			for _, x := range mf.GetMetric() {
				n += x.GetGauge().GetValue()
			}
		}
	}
	return n
}

// Bug 2 (issue 14): the callee's BYE crosses the 200 to a re-INVITE it
// was sent. The call is over when the 200 arrives: its SDP must not give
// the ended call ports and streams again, so the pools are back to full.
func TestReinviteAnswerAfterByeAllocatesNothing(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startMediaSBC(t, callee.Addr, "")
	dA, dB, _ := established(t, s.testSBC, caller, callee, "cross-bye")
	if n := s.portsInUse(t); n != 2 {
		t.Fatalf("%v ports in use during the call, want one per realm", n)
	}
	held := strings.Replace(testphone.TestSDP, "m=audio", "a=sendonly\r\nm=audio", 1)
	caller.Request(dA, "INVITE", 2, "cross-re", held)
	re := callee.ExpectRequest(sip.INVITE, wait)

	callee.Request(dB, "BYE", 1, "cross-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if n := s.portsInUse(t); n != 0 {
		t.Fatalf("%v ports in use after the BYE", n)
	}

	callee.Answer(re, 200, "OK", "callee1", testphone.TestSDP)
	caller.Next(wait, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.CSeq().MethodName == sip.INVITE && r.CSeq().SeqNo == 2 && r.StatusCode >= 200
	})
	time.Sleep(50 * time.Millisecond)
	if n := s.portsInUse(t); n != 0 {
		t.Fatalf("%v ports in use after the ended call's late answer, want the pools full", n)
	}
}

func reasons(m sip.Message) string {
	var v []string
	for _, h := range m.GetHeaders("Reason") {
		v = append(v, h.Value())
	}
	return strings.Join(v, ", ")
}

// sendWithReason sends a request in dialog d carrying a Reason header.
func sendWithReason(p *testphone.Phone, d testphone.Dialog, method string, cseq int, branch, reason string) {
	p.Send(d.SBC, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Reason: %s`, method, d.Target, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, reason), "")
}

// Bug 7 (issue 14): Reason (RFC 3326) crosses on BYE and CANCEL.
func TestReasonRelayedOnByeAndCancel(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)

	dA, _, _ := established(t, s, caller, callee, "reason-bye")
	const q850 = `Q.850;cause=16;text="Normal call clearing"`
	sendWithReason(caller, dA, "BYE", 2, "rb-bye", q850)
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	if got := reasons(bye); got != q850 {
		t.Errorf("leg B BYE Reason %q, want the caller's %q", got, q850)
	}
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)

	caller.Invite(s.carrier, "1000", "reason-cancel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "cr", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	const elsewhere = `SIP;cause=200;text="Call completed elsewhere"`
	caller.Send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-reason-cancel-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftreason-cancel
		To: <sip:1000@%s>
		Call-ID: reason-cancel
		CSeq: 1 CANCEL
		Reason: %s`, s.carrier, caller.Addr, caller.Addr, s.carrier, elsewhere), "")
	caller.ExpectResponse(487, sip.INVITE, wait)
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	if got := reasons(cancel); got != elsewhere {
		t.Errorf("leg B CANCEL Reason %q, want the caller's %q", got, elsewhere)
	}
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "cr", "")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitIdle(t)
}

// Bug 7: a BYE the SBC originates carries its own Q.850 Reason; here the
// callee lost the dialog (481 to a re-INVITE) and both legs are ended.
func TestOwnByeCarriesQ850Reason(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, _, _ := established(t, s, caller, callee, "own-bye")
	caller.Request(dA, "INVITE", 2, "ob-re", testphone.TestSDP)
	re := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(re, 481, "Call/Transaction Does Not Exist", "callee1", "")
	for _, p := range []*testphone.Phone{caller, callee} {
		bye := p.ExpectRequest(sip.BYE, wait)
		if got := reasons(bye); !strings.HasPrefix(got, "Q.850;cause=") {
			t.Errorf("%s: SBC's BYE Reason %q, want a Q.850 cause", p.Addr, got)
		}
		p.Answer(bye, 200, "OK", "", "")
	}
	s.waitIdle(t)
}

// Bug 7: a carrier's 503 with Retry-After reaches the PBX without it: the
// carrier's overload must not take the SBC out of the PBX's route (RFC
// 3261 21.5.4: a 503's Retry-After is about the server that sent it).
func TestRelayed503LosesRetryAfter(t *testing.T) {
	carrier, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{carrier.Addr}, nil)
	pbx.Invite(s.carrier, "1000", "ra-503", testphone.TestSDP)
	inv := carrier.ExpectRequest(sip.INVITE, wait)
	carrier.Send(inv.Source(), fmt.Sprintf(`SIP/2.0 503 Service Unavailable
		Via: %s
		From: %s
		To: %s;tag=c503
		Call-ID: %s
		CSeq: %s
		Retry-After: 300`, inv.Via().Value(), inv.From().Value(), inv.To().Value(), inv.CallID().Value(), inv.CSeq().Value()), "")
	res := pbx.ExpectResponse(503, sip.INVITE, wait)
	if ra := res.GetHeaders("Retry-After"); len(ra) != 0 {
		t.Errorf("503 toward the PBX carries Retry-After %q", ra[0].Value())
	}
	s.waitIdle(t)
}

// startRouteSBC is startSBC (signaling only) with extra keys on the route.
func startRouteSBC(t *testing.T, target, extra string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	return runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms%s}
`, cp, ep, target, extra), cp, ep)
}

func isCancel(m sip.Message) bool {
	r, ok := m.(*sip.Request)
	return ok && r.Method == sip.CANCEL
}

// Bug 5 (issue 14): the ring timeout is the route's, and counts from the
// last 18x: a callee that keeps sending 18x is not cancelled while it does.
func TestRingTimeoutFromLastProvisional(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRouteSBC(t, callee.Addr, ", ring_timeout: 600ms")
	caller.Invite(s.carrier, "1000", "ring-last", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	start := time.Now()
	var last time.Time
	for i, code := range []int{180, 183, 180} {
		callee.Answer(inv, code, "Ringing", "rl", "")
		last = time.Now()
		if i < 2 {
			callee.Quiet(400*time.Millisecond, isCancel, "CANCEL while the callee still sends 18x")
		}
	}
	// 1.4s after the INVITE: past the 600ms twice over, were it counted
	// from the INVITE or the first 18x.
	callee.Quiet(400*time.Millisecond, isCancel, "CANCEL within ring_timeout of the last 18x")
	m := callee.Next(2*time.Second, isCancel)
	if m == nil {
		t.Fatalf("no CANCEL %v after the last 18x (ring_timeout 600ms)", time.Since(last))
	}
	cancel := m.(*sip.Request)
	if d := time.Since(last); d < 550*time.Millisecond || d > 1200*time.Millisecond {
		t.Errorf("CANCEL %v after the last 18x (%v after the INVITE), want about the 600ms ring_timeout", d, time.Since(start))
	}
	if got := reasons(cancel); !strings.HasPrefix(got, "Q.850;cause=19") {
		t.Errorf("ring-timeout CANCEL Reason %q, want Q.850 cause 19", got)
	}
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "rl", "")
	caller.ExpectResponse(408, sip.INVITE, wait)
	s.waitIdle(t)
}

// Bug 7: relay_503_as turns a target's 503 into another status.
func TestRelay503As(t *testing.T) {
	carrier, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRouteSBC(t, carrier.Addr, ", relay_503_as: 480")
	pbx.Invite(s.carrier, "1000", "as-480", testphone.TestSDP)
	inv := carrier.ExpectRequest(sip.INVITE, wait)
	carrier.Answer(inv, 503, "Service Unavailable", "c503", "")
	res := pbx.ExpectResponse(480, sip.INVITE, wait)
	if len(res.GetHeaders("Retry-After")) != 0 {
		t.Error("Retry-After kept")
	}
	s.waitIdle(t)
}

// Bug 5: a 481 or 408 to an in-dialog request ends the call only where
// the dialog is gone (RFC 5057 5.1, RFC 3261 14.1: a re-INVITE's); an
// INFO, an OPTIONS or an UPDATE that fails so is relayed and that is all.
func TestInDialogFailureEndsOnlyReinvite(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	dA, _, _ := established(t, s, caller, callee, "rfc5057")
	cseq := 1
	for _, tc := range []struct {
		method string
		code   int
		sdp    string
	}{
		{"INFO", 481, ""}, {"INFO", 408, ""}, {"OPTIONS", 481, ""}, {"OPTIONS", 408, ""},
		{"UPDATE", 481, testphone.TestSDP}, {"UPDATE", 408, testphone.TestSDP},
	} {
		cseq++
		caller.Request(dA, tc.method, cseq, fmt.Sprintf("f%d", cseq), tc.sdp)
		req := callee.ExpectRequest(sip.RequestMethod(tc.method), wait)
		callee.Answer(req, tc.code, "Failed", "", "")
		caller.ExpectResponse(tc.code, sip.RequestMethod(tc.method), wait)
		time.Sleep(20 * time.Millisecond)
		if st := s.Calls(); len(st) != 1 || st[0].State != "confirmed" {
			t.Fatalf("after %d to %s: calls %+v, want the call still up", tc.code, tc.method, st)
		}
	}
	caller.Quiet(100*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.BYE
	}, "BYE after a failed INFO, OPTIONS or UPDATE")

	// A 408 to a re-INVITE: the invite usage, the call, is gone.
	cseq++
	caller.Request(dA, "INVITE", cseq, "f-re", testphone.TestSDP)
	re := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(re, 408, "Request Timeout", "callee1", "")
	caller.ExpectResponse(408, sip.INVITE, wait)
	for _, p := range []*testphone.Phone{caller, callee} {
		bye := p.ExpectRequest(sip.BYE, wait)
		p.Answer(bye, 200, "OK", "", "")
	}
	s.waitIdle(t)
}

// Bug 6 (issue 14): an offer the far leg refuses (488, 606, 491 glare)
// leaves the call's media exactly as it was before it: the addresses each
// side's media goes to, the SRTP state, and the ports (none kept for a
// media line the refused offer added). Only the SDP version moves on, as
// RFC 3264 8 wants of the next offer.
func TestRefusedOfferRollsMediaBack(t *testing.T) {
	for _, code := range []int{488, 606, 491} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := startMediaSBC(t, callee.Addr, "")
			cid := fmt.Sprintf("rollback-%d", code)
			dA, _, _ := established(t, s.testSBC, caller, callee, cid)
			id := s.Calls()[0].ID
			before, ok := s.anchor.State(id)
			if !ok {
				t.Fatal("no media state for the call")
			}
			inUse := s.portsInUse(t)

			// Moved address, a port change and a video line added.
			moved := "v=0\r\no=- 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n" +
				"m=audio 41000 RTP/AVP 0\r\na=sendonly\r\nm=video 41002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
			caller.Request(dA, "INVITE", 2, cid+"-re", moved)
			re := callee.ExpectRequest(sip.INVITE, wait)
			callee.Answer(re, code, "Refused", "callee1", "")
			callee.ExpectRequest(sip.ACK, wait)
			caller.ExpectResponse(code, sip.INVITE, wait)
			time.Sleep(20 * time.Millisecond)

			after, ok := s.anchor.State(id)
			if !ok {
				t.Fatal("media state gone after a refused offer")
			}
			for i := range after.Legs {
				after.Legs[i].Version = before.Legs[i].Version
			}
			if !reflect.DeepEqual(before, after) {
				t.Errorf("media changed by a refused offer:\nbefore %+v\nafter  %+v", before, after)
			}
			if n := s.portsInUse(t); n != inUse {
				t.Errorf("%v ports in use after the refused offer, %v before", n, inUse)
			}
			caller.Request(dA, "BYE", 3, cid+"-bye", "")
			caller.ExpectResponse(200, sip.BYE, wait)
			bye := callee.ExpectRequest(sip.BYE, wait)
			callee.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
		})
	}
}
