package sbc_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// startRefusalSBC is a loopback B2BUA with media anchored: the carrier
// realm's pool is carrierPorts ("MIN-MAX"), the enterprise realm offers
// only the codecs in entCodecs (all when empty).
func startRefusalSBC(t *testing.T, target, carrierPorts, entCodecs string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	codecs := ""
	if entCodecs != "" {
		codecs = ", codecs: [" + entCodecs + "]"
	}
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s%s}}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q], target_timeout: 400ms}
`, cp, carrierPorts, ep, mediaPorts(t, mediaChunk), codecs, target)
	return runSBC(t, y, cp, ep)
}

// onePair returns a one-pair media range ("P-P+1", P even) on loopback
// that was free when asked.
func onePair(t *testing.T) string {
	t.Helper()
	lo, _, ok := strings.Cut(mediaPorts(t, mediaChunk), "-")
	if !ok {
		t.Fatal("bad range")
	}
	p, _ := strconv.Atoi(lo)
	p += p & 1
	return fmt.Sprintf("%d-%d", p, p+1)
}

func isInviteFinal(m sip.Message) bool {
	r, ok := m.(*sip.Response)
	return ok && r.CSeq().MethodName == sip.INVITE && r.StatusCode >= 200
}

// TestMediaPoolExhausted503: with a one-pair media pool on the carrier
// realm, a second call while the first holds the pair is refused 503
// before anything reaches the callee; once the first call ends the pair
// is free and the next call goes through.
func TestMediaPoolExhausted503(t *testing.T) {
	caller, caller2, callee := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRefusalSBC(t, callee.Addr, onePair(t), "")
	dA, _, _ := established(t, s, caller, callee, "pool-1")

	caller2.Invite(s.carrier, "1000", "pool-2", testphone.TestSDP)
	m := caller2.Next(wait, isInviteFinal)
	if m == nil {
		t.Fatal("second call: no final answer")
	}
	if res := m.(*sip.Response); res.StatusCode != 503 {
		t.Fatalf("second call answered %d %s, want 503 (media pool empty)", res.StatusCode, res.Reason)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "INVITE of a call refused for media")
	if got := gathered(t, s.Metrics().Registry, "sbc_media_ports_exhausted_total", map[string]string{"realm": "carrier"}); got != 1 {
		t.Errorf("sbc_media_ports_exhausted_total{realm=carrier} = %v, want 1", got)
	}
	s.waitCalls(t, "media_503", 1)

	caller.Request(dA, "BYE", 2, "pool-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	s.waitIdle(t)

	caller3 := testphone.NewLoopback(t)
	caller3.Invite(s.carrier, "1000", "pool-3", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait) // the pair is back in the pool
	callee.Answer(inv, 486, "Busy Here", "b3", "")
	caller3.ExpectResponse(486, sip.INVITE, wait)
}

// TestUnreadableSDP400: an INVITE whose application/sdp body is not SDP
// is answered 400 and never reaches the callee.
func TestUnreadableSDP400(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRefusalSBC(t, callee.Addr, mediaPorts(t, mediaChunk), "")
	for i, body := range []string{
		"this is not a session description\r\n",
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio notaport RTP/AVP 0\r\n",
	} {
		cid := fmt.Sprintf("bad-sdp-%d", i)
		caller.Invite(s.carrier, "1000", cid, body)
		m := caller.Next(wait, isInviteFinal)
		if m == nil {
			t.Fatalf("%s: no final answer", cid)
		}
		if res := m.(*sip.Response); res.StatusCode != 400 || res.CallID().Value() != cid {
			t.Errorf("%s: answered %d %s, want 400", cid, res.StatusCode, res.Reason)
		}
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool { return m != nil }, "message for a call with unreadable SDP")
	s.waitCalls(t, "media_400", 2)
	s.waitIdle(t)
}

// TestNoCommonCodec488: the enterprise realm allows only PCMA; an offer of
// PCMU alone has no codec left for it and is answered 488, and the callee
// sees nothing. An offer that also has PCMA gets through with PCMA only.
func TestNoCommonCodec488(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startRefusalSBC(t, callee.Addr, mediaPorts(t, mediaChunk), "PCMA")
	caller.Invite(s.carrier, "1000", "no-codec", testphone.TestSDP) // PCMU only
	m := caller.Next(wait, isInviteFinal)
	if m == nil {
		t.Fatal("no final answer")
	}
	if res := m.(*sip.Response); res.StatusCode != 488 {
		t.Fatalf("answered %d %s, want 488", res.StatusCode, res.Reason)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool { return m != nil }, "message for a call with no common codec")
	s.waitCalls(t, "media_488", 1)

	both := strings.Replace(testphone.TestSDP, "RTP/AVP 0", "RTP/AVP 0 8", 1)
	caller.Invite(s.carrier, "1000", "one-codec", both)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	s.anchoredFor(t, "enterprise", inv.Body(), "offer into the PCMA-only realm")
	if !strings.Contains(string(inv.Body()), " RTP/AVP 8\r\n") {
		t.Errorf("offer into the PCMA-only realm still lists another codec:\n%s", inv.Body())
	}
	callee.Answer(inv, 486, "Busy Here", "b", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
}

// TestMediaSocketRefused503: the carrier pool's one pair is free in the
// pool but its port is taken by another socket (as when the process is out
// of file descriptors, or another program holds the port), so the SBC
// cannot open the call's media sockets. That is the SBC out of media
// resources, as an empty pool is: 503, not the 488 that tells the caller
// to change its offer. Nothing reaches the callee.
func TestMediaSocketRefused503(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	pair := onePair(t)
	lo, _, _ := strings.Cut(pair, "-")
	port, _ := strconv.Atoi(lo)
	squat, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	s := startRefusalSBC(t, callee.Addr, pair, "")

	caller.Invite(s.carrier, "1000", "sock-1", testphone.TestSDP)
	m := caller.Next(wait, isInviteFinal)
	if m == nil {
		t.Fatal("no final answer")
	}
	if res := m.(*sip.Response); res.StatusCode != 503 {
		t.Fatalf("answered %d %s, want 503 (no media socket)", res.StatusCode, res.Reason)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool { return m != nil }, "message for a call refused for media")
	s.waitCalls(t, "media_503", 1)
	s.waitIdle(t)
}
