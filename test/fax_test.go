package test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// T.38 fax end to end: an audio call that the PBX's fax gateway
// re-INVITEs to m=image udptl t38 on a port of its own (as gateways do),
// UDPTL both ways for longer than the media timeout, then back to audio.

func t38SDP(ip string, port, version int) string {
	return fmt.Sprintf("v=0\r\no=fax 77 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=image %d udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxFillBitRemoval:0\r\n"+
		"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxBuffer:2000\r\na=T38FaxMaxDatagram:400\r\n"+
		"a=T38FaxUdpEC:t38UDPRedundancy\r\n", version, ip, ip, port)
}

// t38Lines are the fax attributes that must cross unchanged.
var t38Lines = []string{"a=T38FaxVersion:0", "a=T38MaxBitRate:14400", "a=T38FaxFillBitRemoval:0",
	"a=T38FaxRateManagement:transferredTCF", "a=T38FaxMaxBuffer:2000", "a=T38FaxMaxDatagram:400",
	"a=T38FaxUdpEC:t38UDPRedundancy"}

func checkT38(t *testing.T, m sip.Message, sbcIP string) {
	t.Helper()
	body := string(m.Body())
	if !strings.Contains(body, "m=image ") || !strings.Contains(body, " udptl t38") || !strings.Contains(body, "c=IN IP4 "+sbcIP) {
		t.Fatalf("T.38 SDP not anchored on %s:\n%s", sbcIP, body)
	}
	for _, l := range t38Lines {
		if !strings.Contains(body, l+"\r\n") {
			t.Errorf("T.38 SDP lost %q:\n%s", l, body)
		}
	}
}

// TestFaxT38: on the user-space relay and on the kernel path.
func TestFaxT38(t *testing.T) {
	for _, kernel := range []bool{false, true} {
		name := "userspace"
		if kernel {
			name = "kernel"
		}
		t.Run(name, func(t *testing.T) { faxCall(t, kernel) })
	}
}

func faxCall(t *testing.T, kernel bool) {
	needLab(t)
	media := ", datapath: userspace"
	if kernel {
		media = ""
	}
	s := startSBCD(t, mediaConfigWith(t, "2s", media))
	if kernel {
		requireKernel(t, s)
	}
	wait := 3 * time.Second
	c := setupCall(t, "fax-"+fmt.Sprint(kernel), 16000, 18000)
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA1, 0xB1, 1000, 10)

	// The PBX's gateway detects the CNG tone and switches to T.38 on 18200.
	bFax := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18200))
	c.callee.Request(c.dB, "INVITE", 1, "t38", t38SDP(pbxHost, 18200, 2))
	re := c.caller.ExpectRequest(sip.INVITE, wait)
	checkT38(t, re, sbcExt)
	sdpMedia(t, re, sbcExt, "198.51.100.")
	c.caller.Answer(re, 200, "OK", "", t38SDP(carrierHost, 16000, 2))
	ok := c.callee.ExpectResponse(200, sip.INVITE, wait)
	checkT38(t, ok, sbcInt)
	if m := sdpMedia(t, ok, sbcInt, "203.0.113."); netip.AddrPortFrom(m.Addr, uint16(m.Port)) != c.bTo {
		t.Fatalf("T.38 answer moved the SBC's port to %v:%d from %v", m.Addr, m.Port, c.bTo)
	}
	c.callee.Ack(c.dB, 1, "t38-ack")
	c.caller.ExpectRequest(sip.ACK, wait)

	// A few datagrams latch the gateway's new port. Real fax starts at
	// sequence 0: the first byte reads as version 0, not RTP.
	if err := bFax.SendUDPTL(c.bTo, 0, 5, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := aRTP.SendUDPTL(c.aTo, 0, 5, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitUDPTL(t, aRTP, 5)
	waitUDPTL(t, bFax, 5)
	if err := aRTP.CheckUDPTL(0, 5); err != nil {
		t.Fatalf("carrier: %v", err)
	}
	if err := bFax.CheckUDPTL(0, 5); err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if kernel {
		s.waitKernel(t, 2)
	}
	relay0 := s.relaySeen(t)
	aRTP.ResetUDPTL()
	bFax.ResetUDPTL()

	// 3 s of fax each way, 1.5 times the media timeout: no BYE. The
	// sequence numbers cross from 0x3fxx (version 0) to 0x40xx (version 1).
	const n, first = 150, 0x3f80
	var wg sync.WaitGroup
	wg.Go(func() { _ = aRTP.SendUDPTL(c.aTo, first, n, 20*time.Millisecond) })
	wg.Go(func() { _ = bFax.SendUDPTL(c.bTo, first, n, 20*time.Millisecond) })
	notBye := func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.BYE }
	c.caller.Quiet(3*time.Second, notBye, "BYE during the fax")
	wg.Wait()
	waitUDPTL(t, aRTP, n)
	waitUDPTL(t, bFax, n)
	if err := aRTP.CheckUDPTL(first, n); err != nil {
		t.Errorf("carrier: %v", err)
	}
	if err := bFax.CheckUDPTL(first, n); err != nil {
		t.Errorf("gateway: %v", err)
	}
	if d := s.relaySeen(t) - relay0; kernel && d != 0 {
		t.Errorf("kernel path: the user-space relay saw %v fax datagrams", d)
	} else if !kernel && d < 2*n {
		t.Errorf("user-space relay saw %v datagrams, want >= %d", d, 2*n)
	}
	c.callee.Quiet(100*time.Millisecond, notBye, "BYE to the PBX during the fax")

	// Fax done: back to audio on the first port.
	c.callee.Request(c.dB, "INVITE", 2, "audio", offerSDP(pbxHost, 18000, "sendrecv", 3))
	re = c.caller.ExpectRequest(sip.INVITE, wait)
	sdpMedia(t, re, sbcExt, "198.51.100.")
	c.caller.Answer(re, 200, "OK", "", offerSDP(carrierHost, 16000, "sendrecv", 3))
	c.callee.ExpectResponse(200, sip.INVITE, wait)
	c.callee.Ack(c.dB, 2, "audio-ack")
	c.caller.ExpectRequest(sip.ACK, wait)
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA2, 0xB2, 2000, 20)
	if kernel {
		s.waitKernel(t, 2)
	}
	c.bye(t, 2)
	s.waitIdle(t)
}

func waitUDPTL(t *testing.T, e *testphone.RTPEnd, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); len(e.ReceivedUDPTL()) < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}
