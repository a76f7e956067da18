package sbc_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// largeSDP is an SRTP offer as a softphone with video sends it: audio and
// video, each with four SDES suites (RFC 4568, 6188, 7714), a
// codec list and RTCP feedback. About 1,250 bytes: with the SIP headers,
// an INVITE of about 1,600, well over RFC 3261 18.1.1's 1,300.
func largeSDP(host string) string {
	suites := []string{"AES_CM_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"}
	const key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" // 30 bytes of key and salt
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 4242 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n", host, host)
	b.WriteString("m=audio 40000 RTP/SAVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp-mux\r\na=sendrecv\r\n")
	for i, s := range suites {
		fmt.Fprintf(&b, "a=crypto:%d %s inline:%s\r\n", i+1, s, key)
	}
	b.WriteString("m=video 40002 RTP/SAVP 96 97\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=rtpmap:97 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=fmtp:97 max-fr=30;max-fs=3600\r\na=rtcp-fb:97 nack pli\r\na=rtcp-mux\r\na=sendrecv\r\n")
	for i, s := range suites {
		fmt.Fprintf(&b, "a=crypto:%d %s inline:%s\r\n", i+1, s, key)
	}
	return b.String()
}

// largeSBC is an SBC whose enterprise realm has the settings given
// (transports, mtu), media passing untouched so that the SDP's size
// reaches the callee as sent.
func largeSBC(t *testing.T, callee string, realm string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d", %s}
media: {enabled: false} # signaling only: the SDP's bytes reach the callee as sent
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms}
`, cp, ep, realm, callee)
	return runSBC(t, y, cp, ep)
}

// The INVITE's last crypto line and the 200's: a message cut at the MTU
// would lose them.
const lastCrypto = "a=crypto:4 AEAD_AES_256_GCM"

// A 1,600-byte INVITE toward a callee over UDP: sipgo refused to send it
// ("size of packet larger than MTU") and the call failed over. Now it goes
// as one UDP datagram, whole: to a realm without TCP, and to a realm with
// TCP whose callee refuses the connection (RFC 3261 18.1.1: retry over
// UDP). The callee's 200 with as large an SDP goes back to the caller over
// UDP too (18.2.2: a response goes the way its request came).
func TestLargeInviteOverUDP(t *testing.T) {
	for _, tc := range []struct{ name, transports, callID string }{
		{"realm udp only", "transports: [udp]", "large-udp-1"},
		{"realm with tcp, callee refuses tcp", "transports: [udp, tcp]", "large-udp-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := largeSBC(t, callee.Addr, tc.transports)
			var sizes struct{ inv, ok int }
			callee.Wire = func(out bool, b []byte) {
				if !out && strings.HasPrefix(string(b), "INVITE ") {
					sizes.inv = len(b)
				}
			}
			caller.Wire = func(out bool, b []byte) {
				if !out && strings.HasPrefix(string(b), "SIP/2.0 200 OK") && strings.Contains(string(b), "INVITE") {
					sizes.ok = len(b)
				}
			}
			caller.Invite(s.carrier, "1000", tc.callID, largeSDP("127.0.0.1"))
			inv := callee.ExpectRequest(sip.INVITE, wait)
			if sizes.inv <= 1300 {
				t.Fatalf("INVITE at the callee is %d bytes, want over 1300", sizes.inv)
			}
			if !strings.Contains(string(inv.Body()), lastCrypto) {
				t.Errorf("INVITE's SDP lost its end:\n%s", inv.Body())
			}
			if via := inv.Via(); via.Transport != "UDP" {
				t.Errorf("INVITE's Via says %s, want UDP", via.Transport)
			}
			callee.Answer(inv, 200, "OK", "callee1", largeSDP("127.0.0.1"))
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			if sizes.ok <= 1300 || !strings.Contains(string(ok.Body()), lastCrypto) {
				t.Errorf("200 at the caller: %d bytes, its SDP whole: %v; want over 1300 and whole", sizes.ok, strings.Contains(string(ok.Body()), lastCrypto))
			}
			t.Logf("INVITE %d bytes, 200 OK %d bytes at the phones, over UDP", sizes.inv, sizes.ok)
			dA := testphone.CallerDialog(ok, s.carrier)
			caller.Ack(dA, 1, "large-ack")
			callee.ExpectRequest(sip.ACK, wait)
			caller.Request(dA, "BYE", 2, "large-bye", "")
			caller.ExpectResponse(200, sip.BYE, wait)
			bye := callee.ExpectRequest(sip.BYE, wait)
			callee.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
			s.waitCalls(t, "bye_a", 1)
		})
	}
}

// A 1,600-byte INVITE toward a UDP target whose host also takes TCP on
// that port, from a realm that lists tcp: it arrives over TCP, its top Via
// saying so (RFC 3261 18.1.1), and the call completes over it.
func TestLargeInviteSwitchesToTCP(t *testing.T) {
	caller, udpCallee, callee := newCallerAndDualCallee(t)
	s := largeSBC(t, udpCallee.Addr, "transports: [udp, tcp]")

	caller.Invite(s.carrier, "1000", "large-tcp", largeSDP("127.0.0.1"))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if n := len(inv.String()); n <= 1300 {
		t.Fatalf("INVITE at the callee is %d bytes, want over 1300", n)
	}
	if via := inv.Via(); via.Transport != "TCP" || len(inv.GetHeaders("Via")) != 1 {
		t.Errorf("INVITE over TCP with Via %s, want the SBC's one Via saying TCP", inv.GetHeaders("Via"))
	}
	if !strings.Contains(string(inv.Body()), lastCrypto) {
		t.Errorf("INVITE's SDP lost its end")
	}
	t.Logf("INVITE %d bytes at the callee, over TCP", len(inv.String()))
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "large-tcp-ack")
	callee.ExpectRequest(sip.ACK, wait)
	caller.Request(dA, "BYE", 2, "large-tcp-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "bye_a", 1)
	udpCallee.Quiet(100*time.Millisecond, func(sip.Message) bool { return true }, "message over UDP")
}

// newCallerAndDualCallee is a caller over UDP and a callee on one port
// over both UDP and TCP.
func newCallerAndDualCallee(t *testing.T) (caller, udpCallee *testphone.Phone, tcpCallee *testphone.StreamPhone) {
	t.Helper()
	caller, udpCallee = testphone.NewLoopback(t), testphone.NewLoopback(t)
	l, err := net.Listen("tcp", udpCallee.Addr) // the same port, over TCP
	if err != nil {
		t.Fatal(err)
	}
	tcpCallee = testphone.NewStream(t, "TCP", udpCallee.Addr)
	tcpCallee.Serve(l)
	return caller, udpCallee, tcpCallee
}

// A realm's mtu moves the limit: with mtu 2000 the same INVITE toward the
// same TCP-capable callee stays on UDP.
func TestRealmMTUKeepsLargeInviteOnUDP(t *testing.T) {
	caller, udpCallee, tcpCallee := newCallerAndDualCallee(t)
	s := largeSBC(t, udpCallee.Addr, "transports: [udp, tcp], mtu: 2000")
	caller.Invite(s.carrier, "1000", "large-mtu", largeSDP("127.0.0.1"))
	inv := udpCallee.ExpectRequest(sip.INVITE, wait)
	if via := inv.Via(); via.Transport != "UDP" || !strings.Contains(string(inv.Body()), lastCrypto) {
		t.Errorf("INVITE over UDP with Via %s, whole: %v", via.Transport, strings.Contains(string(inv.Body()), lastCrypto))
	}
	if m := tcpCallee.Next(100*time.Millisecond, func(sip.Message) bool { return true }); m != nil {
		t.Errorf("a message over TCP: %s", m.String())
	}
	udpCallee.Answer(inv, 486, "Busy Here", "callee1", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// With media anchored, the SBC writes the large offer itself: the
// enterprise realm offers SRTP with every SDES suite on audio and video
// (an a=crypto line each), and the INVITE it builds is over 1,300 bytes.
// It reaches a UDP callee whole.
func TestAnchoredSRTPOfferOverMTU(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	s := runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s, srtp: optional}}
  - {name: enterprise, listen: "127.0.0.1:%d", transports: [udp, tcp], media: {ports: %s, srtp: {mode: required, suites: [AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM]}}}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms}
`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk), callee.Addr), cp, ep)
	size := 0
	callee.Wire = func(out bool, b []byte) {
		if !out && strings.HasPrefix(string(b), "INVITE ") {
			size = len(b)
		}
	}
	caller.Invite(s.carrier, "1000", "large-anchored", largeSDP("127.0.0.1"))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	body := string(inv.Body())
	if size <= 1300 || strings.Count(body, "a=crypto:") < 12 || !strings.Contains(body, "m=video") {
		t.Fatalf("INVITE at the callee: %d bytes, %d crypto lines, video %v; want over 1300 bytes, 12 crypto lines and video:\n%s",
			size, strings.Count(body, "a=crypto:"), strings.Contains(body, "m=video"), body)
	}
	t.Logf("anchored SRTP offer: INVITE %d bytes at the callee, %d crypto lines, over UDP (TCP refused)", size, strings.Count(body, "a=crypto:"))
	callee.Answer(inv, 486, "Busy Here", "callee1", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}
