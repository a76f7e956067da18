package sbc_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// register sends a REGISTER for aor from p to the SBC's enterprise face,
// with the headers a real phone sends (baresip's User-Agent, Allow and
// Supported): the size a challenge must fit in to an unproven source.
func register(s *testSBC, p *testphone.Phone, aor string, cseq int, expires, auth string) {
	h := fmt.Sprintf(`REGISTER sip:%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-ureg%d
		Max-Forwards: 70
		From: <sip:%s@%s>;tag=ur1
		To: <sip:%s@%s>
		Call-ID: ureg-%s
		CSeq: %d REGISTER
		Contact: <sip:%s@%s>
		User-Agent: baresip v3.10.1 (x86_64/linux)
		Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER
		Supported: replaces,norefersub,gruu
		Expires: %s`, s.enterprise, p.Addr, cseq, aor, s.enterprise, aor, s.enterprise, aor, cseq, aor, p.Addr, expires)
	if auth != "" {
		h += "\nAuthorization: " + auth
	}
	p.Send(s.enterprise, h, "")
}

// TestRegistrarUntrusted: the registrar with no guard.trusted, so the
// phone's address is not vouched for and every answer to it must pass
// the no-amplification rule. It still registers: the 401 carries a
// challenge it can answer, the digest answer proves its address, the 200
// lists its binding, and a call to its number reaches its contact.
func TestRegistrarUntrusted(t *testing.T) {
	caller, phone := testphone.NewLoopback(t), testphone.NewLoopback(t)
	// The route's own target is dead: the call can only reach the phone
	// through its registration.
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  realms:
    - realm: enterprise
      registrar: {min_expires: 10s}
      auth: {methods: [REGISTER], users: [{name: "2001", password: pw2001}]}
`)
	if len(s.cfg.Guard.Trusted) != 0 {
		t.Fatalf("guard.trusted = %v, want none", s.cfg.Guard.Trusted)
	}
	register(s, phone, "2001", 1, "300", "")
	ch := phone.ExpectResponse(401, sip.REGISTER, wait)
	chals := ch.GetHeaders("WWW-Authenticate")
	if len(chals) == 0 {
		t.Fatal("401 without a challenge")
	}
	uri := "sip:" + s.enterprise
	register(s, phone, "2001", 2, "300", digestAnswer(t, chals[0].Value(), "2001", "pw2001", "REGISTER", uri))
	ok := phone.ExpectResponse(200, sip.REGISTER, wait)
	if c := ok.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), phone.Addr) {
		t.Fatalf("200 Contact %v, want the phone's %s", c, phone.Addr)
	}

	caller.Invite(s.carrier, "2001", "ureg-call", testphone.TestSDP)
	inv := phone.ExpectRequest(sip.INVITE, wait)
	if inv.Recipient.User != "2001" {
		t.Errorf("leg B request-URI user %q, want 2001", inv.Recipient.User)
	}
	s.anchoredFor(t, "enterprise", inv.Body(), "INVITE to the registered phone")
	phone.Answer(inv, 200, "OK", "ph", testphone.TestSDP)
	res := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(res, s.carrier)
	caller.Ack(dA, 1, "ureg-ack")
	phone.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 2, "ureg-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	phone.Answer(phone.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")
	s.waitIdle(t)
}

// A terse REGISTER (no User-Agent, Allow or Supported: about 330 bytes,
// as small phones and scripts send) from a source not vouched for still
// gets its 401: a challenge may be up to three times its request
// (QUIC's anti-amplification bound, RFC 9000 8.1), and the phone can then
// register. Before, the challenge was dropped for being larger than the
// request, and such a phone could never register.
func TestRegistrarTerseRegister(t *testing.T) {
	phone := testphone.NewLoopback(t)
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  realms:
    - realm: enterprise
      registrar: {min_expires: 10s}
      auth: {methods: [REGISTER], users: [{name: "2001", password: pw2001}]}
`)
	terse := func(cseq int, auth string) string {
		m := fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-treg%d\r\nMax-Forwards: 70\r\nFrom: <sip:2001@%s>;tag=t1\r\nTo: <sip:2001@%s>\r\nCall-ID: treg-1\r\nCSeq: %d REGISTER\r\nContact: <sip:2001@%s>\r\nExpires: 300\r\n",
			s.enterprise, phone.Addr, cseq, s.enterprise, s.enterprise, cseq, phone.Addr)
		if auth != "" {
			m += "Authorization: " + auth + "\r\n"
		}
		return m + "Content-Length: 0\r\n\r\n"
	}
	req := terse(1, "")
	if len(req) > 340 {
		t.Fatalf("the terse REGISTER is %d bytes, want about 330", len(req))
	}
	phone.SendRaw(s.enterprise, []byte(req))
	ch := phone.ExpectResponse(401, sip.REGISTER, wait)
	chals := ch.GetHeaders("WWW-Authenticate")
	if len(chals) == 0 {
		t.Fatal("401 without a challenge")
	}
	if n := len(ch.String()); n > 3*len(req) {
		t.Errorf("401 of %d bytes to a %d-byte request: over the 3x bound", n, len(req))
	}
	t.Logf("terse REGISTER %d bytes, its 401 %d bytes with %d challenge(s)", len(req), len(ch.String()), len(chals))
	phone.SendRaw(s.enterprise, []byte(terse(2, digestAnswer(t, chals[0].Value(), "2001", "pw2001", "REGISTER", "sip:"+s.enterprise))))
	phone.ExpectResponse(200, sip.REGISTER, wait)
}
