package sbc_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// phoneOn is a test phone on another loopback address (127.0.0.x): a
// source other than the SBC's configured peers.
func phoneOn(t *testing.T, ip string) *testphone.Phone {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	return testphone.New(t, c)
}

func (s *testSBC) portsInUse(t *testing.T) float64 {
	return gathered(t, s.Metrics().Registry, "sbc_media_ports_in_use", nil)
}

// A realm with known peers takes new requests from them only: a
// stranger's INVITE gets nothing over UDP (unknown: auto), or 403 where
// the realm says reject, and nothing of it reaches the callee or takes a
// media port; the peer's call goes through.
func TestGuardClassification(t *testing.T) {
	for _, unknown := range []string{"auto", "reject"} {
		t.Run(unknown, func(t *testing.T) {
			peer, callee, stranger := testphone.NewLoopback(t), testphone.NewLoopback(t), phoneOn(t, "127.0.0.2")
			s := startGuarded(t, []string{callee.Addr}, `guard:
  realms: [{realm: carrier, peers: ["127.0.0.1"], unknown: `+unknown+`}]
`)
			stranger.Invite(s.carrier, "1000", "cls-"+unknown, testphone.TestSDP)
			if unknown == "reject" {
				stranger.ExpectResponse(403, sip.INVITE, wait)
			}
			stranger.Quiet(400*time.Millisecond, anything, "an answer to a stranger")
			// Out-of-dialog OPTIONS from a stranger: not answered either
			// (options: peers, the default).
			// (options: peers, the default; with reject, its 403 would be
			// larger than the request, so it is not sent either).
			stranger.Send(s.carrier, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-co1\nFrom: <sip:a@x>;tag=1\nTo: <sip:%s>\nCall-ID: cls-opt-%s\nCSeq: 1 OPTIONS\nMax-Forwards: 70", s.carrier, stranger.Addr, s.carrier, unknown), "")
			stranger.Quiet(400*time.Millisecond, anything, "an OPTIONS answer to a stranger")
			callee.Quiet(10*time.Millisecond, anything, "a stranger's request reaching the callee")
			if n := s.portsInUse(t); n != 0 {
				t.Errorf("%v media port pairs in use for a refused INVITE", n)
			}
			if n := s.rejected(t, "unknown_source"); n != 2 {
				t.Errorf("rejected{unknown_source} = %v, want 2", n)
			}
			peer.Invite(s.carrier, "1000", "cls-peer-"+unknown, testphone.TestSDP)
			inv := callee.ExpectRequest(sip.INVITE, wait)
			callee.Answer(inv, 486, "Busy Here", "cb", "")
			peer.ExpectResponse(486, sip.INVITE, wait)
			s.waitIdle(t)
		})
	}
}

// accept: any (phones from the internet) requires digest auth: a phone
// from an address nobody configured registers (401, then 200), becomes a
// known peer by its binding, and a call to it arrives; its own INVITE is
// challenged (407), not refused.
func TestGuardAcceptAny(t *testing.T) {
	caller, phone := testphone.NewLoopback(t), phoneOn(t, "127.0.0.3")
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  realms:
    - realm: enterprise
      accept: any
      registrar: {min_expires: 10s}
      auth: {users: [{name: "2001", password: pw2001}]}
`)
	register(s, phone, "2001", 1, "300", "")
	ch := phone.ExpectResponse(401, sip.REGISTER, wait)
	register(s, phone, "2001", 2, "300", digestAnswer(t, ch.GetHeader("WWW-Authenticate").Value(), "2001", "pw2001", "REGISTER", "sip:"+s.enterprise))
	phone.ExpectResponse(200, sip.REGISTER, wait)
	phone.Invite(s.enterprise, "+4930123", "any-inv", testphone.TestSDP)
	phone.ExpectResponse(407, sip.INVITE, wait)

	caller.Invite(s.carrier, "2001", "any-call", testphone.TestSDP)
	inv := phone.ExpectRequest(sip.INVITE, wait)
	phone.Answer(inv, 486, "Busy Here", "pb", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// A stranger holds at most sources.max_calls calls at once: the next gets
// 503 with Retry-After, and once one ends it may call again. Here the
// realm takes anyone without auth (a test of the bound, not of auth).
func TestGuardSourceCalls(t *testing.T) {
	callee, stranger := testphone.NewLoopback(t), phoneOn(t, "127.0.0.4")
	s := startGuarded(t, []string{callee.Addr}, `guard:
  sources: {max_calls: 2}
  realms: [{realm: carrier, accept: any, allow_unauthenticated: true}]
`)
	var invs []*sip.Request
	for i := range 2 {
		stranger.Invite(s.carrier, "1000", fmt.Sprintf("sc-%d", i), testphone.TestSDP)
		inv := callee.ExpectRequest(sip.INVITE, wait)
		callee.Answer(inv, 180, "Ringing", fmt.Sprintf("r%d", i), "")
		stranger.ExpectResponse(180, sip.INVITE, wait)
		invs = append(invs, inv)
	}
	stranger.Invite(s.carrier, "1000", "sc-2", testphone.TestSDP)
	res := stranger.ExpectResponse(503, sip.INVITE, wait)
	if res.GetHeader("Retry-After") == nil {
		t.Error("503 without Retry-After")
	}
	callee.Quiet(200*time.Millisecond, isRequest(sip.INVITE), "a third call from the stranger")
	if n := s.rejected(t, "source_calls"); n != 1 {
		t.Errorf("rejected{source_calls} = %v, want 1", n)
	}
	callee.Answer(invs[0], 486, "Busy Here", "r0", "")
	stranger.ExpectResponse(486, sip.INVITE, wait)
	s.waitAdmittedCalls(t, 1)
	stranger.Invite(s.carrier, "1000", "sc-3", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	for i, x := range []*sip.Request{invs[1], inv} {
		callee.Answer(x, 486, "Busy Here", fmt.Sprintf("e%d", i), "")
		stranger.ExpectResponse(486, sip.INVITE, wait)
	}
	s.waitIdle(t)
}

func (s *testSBC) waitAdmittedCalls(t *testing.T, n int) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("%d calls", n), func() bool { return s.ActiveCalls() == n })
}

// Routes reload live, and the peers they name with them: a stranger whose
// INVITE into the enterprise realm was dropped is a peer (here answered
// 404: no route from that realm) once a reloaded route targets it.
func TestGuardClassificationFollowsReload(t *testing.T) {
	callee, other := testphone.NewLoopback(t), phoneOn(t, "127.0.0.8")
	s := startGuarded(t, []string{callee.Addr}, "")
	other.Invite(s.enterprise, "1000", "cfr-1", testphone.TestSDP)
	other.Quiet(400*time.Millisecond, anything, "an answer to a stranger")
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q, media: {ports: %s}}
  - {name: enterprise, listen: %q, media: {ports: %s}}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q, "127.0.0.8:5060"], target_timeout: 400ms}
`, s.carrier, s.cfg.Realms[0].Media.Ports, s.enterprise, s.cfg.Realms[1].Media.Ports, callee.Addr)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	other.Invite(s.enterprise, "1000", "cfr-2", testphone.TestSDP)
	other.ExpectResponse(404, sip.INVITE, wait)
	callee.Quiet(10*time.Millisecond, anything, "a request at the callee")
}
