package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// nsSocket opens a UDP socket in a lab namespace.
func nsSocket(t *testing.T, ns, ip string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mediaConfig(t *testing.T, timeout string) string {
	t.Helper()
	return mediaConfigWith(t, timeout, "")
}

// mediaConfigWith adds keys to the media section (e.g. ", datapath: userspace").
func mediaConfigWith(t *testing.T, timeout, media string) string {
	t.Helper()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-30999}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
media: {timeout: %s%s}
`, sbcExt, sbcInt, pbxHost, carrierHost, timeout, media)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func offerSDP(ip string, port int, dir string, version int) string {
	fam := "IP4"
	if strings.Contains(ip, ":") {
		fam = "IP6"
	}
	return fmt.Sprintf("v=0\r\no=phone 4242 %d IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=%s\r\n",
		version, fam, ip, fam, ip, port, dir)
}

// sdpMedia parses a message's SDP and requires that it names only the
// SBC's address (sbcIP) and nothing of the other network (otherNet).
func sdpMedia(t *testing.T, m sip.Message, sbcIP, otherNet string) mediarelay.Media {
	t.Helper()
	raw := m.String()
	if strings.Contains(raw, otherNet) {
		t.Fatalf("message carries the other network (%s):\n%s", otherNet, raw)
	}
	s, err := mediarelay.ParseSDP(m.Body())
	if err != nil {
		t.Fatalf("SDP: %v\n%s", err, m.Body())
	}
	md := s.Media[0]
	if md.Addr.String() != sbcIP {
		t.Fatalf("SDP media address %v, want the SBC's %s:\n%s", md.Addr, sbcIP, m.Body())
	}
	return md
}

// exchangeRTP sends n packets each way at 20 ms: a sends to aTo (the
// SBC's port on a's side), b to bTo. Every packet must arrive once, in
// order, intact, and from the SBC's port on the receiver's side (symmetric
// RTP: the receiver only ever sees the SBC).
func exchangeRTP(t *testing.T, a, b *testphone.RTPEnd, aTo, bTo netip.AddrPort, ssrcA, ssrcB uint32, first uint16, n int) {
	t.Helper()
	exchangeRTPEvery(t, 20*time.Millisecond, a, b, aTo, bTo, ssrcA, ssrcB, first, n)
}

// rtpMarker sends one packet of a fresh stream ssrc from one end to the
// SBC's port to and waits for it at the other end, at: whatever was sent
// to that port before it has been through the relay by then (one socket
// or one BPF hook, in order), so a check that something was NOT
// forwarded needs no sleep after it.
func rtpMarker(t *testing.T, from, at *testphone.RTPEnd, to netip.AddrPort, ssrc uint32) {
	t.Helper()
	if err := from.Send(to, ssrc, 1, 1, 0); err != nil {
		t.Fatal(err)
	}
	at.WaitFor(ssrc, 1, 2*time.Second)
	if len(at.Received(ssrc)) != 1 {
		t.Fatalf("marker stream %#x not through %s within 2 s", ssrc, to)
	}
}

// exchangeRTPEvery is exchangeRTP with packets interval apart.
func exchangeRTPEvery(t *testing.T, interval time.Duration, a, b *testphone.RTPEnd, aTo, bTo netip.AddrPort, ssrcA, ssrcB uint32, first uint16, n int) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.Send(aTo, ssrcA, first, n, interval) }()
	go func() { defer wg.Done(); _ = b.Send(bTo, ssrcB, first, n, interval) }()
	wg.Wait()
	b.WaitFor(ssrcA, n, 2*time.Second)
	a.WaitFor(ssrcB, n, 2*time.Second)
	for _, c := range []struct {
		end  *testphone.RTPEnd
		ssrc uint32
		from netip.AddrPort
	}{{b, ssrcA, bTo}, {a, ssrcB, aTo}} {
		if err := c.end.CheckStream(c.ssrc, first, n); err != nil {
			t.Fatal(err)
		}
		for src := range c.end.Sources(c.ssrc) {
			if src != c.from.String() {
				t.Fatalf("stream %#x arrived from %s, not the SBC's %s", c.ssrc, src, c.from)
			}
		}
	}
	if a.Bad()+b.Bad() != 0 {
		t.Fatalf("%d corrupted packets", a.Bad()+b.Bad())
	}
}

// A call from a Go phone in car to a Go phone in ent, media anchored on
// the SBC: real 20 ms G.711 RTP both ways; hold and resume; a re-INVITE
// that moves the callee to a new port; a spoofer on the carrier side that
// must not hijack the latched stream. Once on the default datapath (the
// kernel fast path: the stream is offloaded, and the kernel flow forwards
// only the latched source, passing the spoofer's packets to the relay,
// which drops them) and once in user space.
func TestMediaAnchoredCall(t *testing.T) {
	needLab(t)
	t.Run("kernel", func(t *testing.T) { anchoredCall(t, true) })
	t.Run("userspace", func(t *testing.T) { anchoredCall(t, false) })
}

func anchoredCall(t *testing.T, kernel bool) {
	extra := ", datapath: userspace"
	if kernel {
		extra = "" // the default: the kernel path where it loads
	}
	s := startSBCD(t, mediaConfigWith(t, "30s", extra))
	if kernel {
		requireKernel(t, s)
	}
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"

	caller.Invite(sbcA, "1000", "media-1", offerSDP(carrierHost, 16000, "sendrecv", 1))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	mB := sdpMedia(t, inv, sbcInt, "203.0.113.")
	callee.Answer(inv, 180, "Ringing", "cm", "")
	callee.Answer(inv, 200, "OK", "cm", offerSDP(pbxHost, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMedia(t, ok, sbcExt, "198.51.100.")
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "m-ack")
	callee.ExpectRequest(sip.ACK, wait)
	dB := testphone.CalleeDialog(inv, "cm")
	aTo := netip.AddrPortFrom(mA.Addr, uint16(mA.Port)) // where the caller sends
	bTo := netip.AddrPortFrom(mB.Addr, uint16(mB.Port)) // where the callee sends

	t.Run("RTP both ways", func(t *testing.T) {
		exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA1, 0xB1, 1000, 150)
		if kernel {
			s.waitKernel(t, 2) // RTP both ways offloaded
		}
	})

	t.Run("spoofed source cannot hijack", func(t *testing.T) {
		mismatch := func() uint64 { return 0 }
		if kernel {
			// The stream is in the kernel: the spoofer's packets meet the
			// BPF program first, which must not forward them.
			k := s.waitKernel(t, 2)
			if f, ok := k[aTo.String()]; !ok || f.From != carrierHost+":16000" {
				t.Fatalf("kernel flow for %s: %+v (present %v), want it to take only %s:16000", aTo, f, ok, carrierHost)
			}
			mismatch = func() uint64 {
				c, err := bpf.PinnedCounters(sbcPinDir())
				if err != nil {
					t.Fatal(err)
				}
				return c[bpf.CounterSrcMismatch]
			}
		}
		before := mismatch()
		spoof := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16010))                                  // the right address, another port
		spoof2 := testphone.NewRTPEnd(t, nsSocket(t, "car", extraAddr(t, "car", "car0", "203.0.113.11"), 16000)) // another address, the right port
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = spoof.Send(aTo, 0xBAD, 1, 50, 5*time.Millisecond) }()
		go func() { defer wg.Done(); _ = spoof2.Send(aTo, 0xBAD2, 1, 50, 5*time.Millisecond) }()
		exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA2, 0xB2, 2000, 50)
		wg.Wait()
		rtpMarker(t, aRTP, bRTP, aTo, 0xA2F)
		if n := len(bRTP.Received(0xBAD2)); n != 0 {
			t.Fatalf("callee received %d packets spoofed from another address", n)
		}
		if n := len(spoof2.Received(0xB2)); n != 0 {
			t.Fatalf("the second spoofer received %d of the callee's packets", n)
		}
		if kernel {
			if n := mismatch() - before; n < 100 {
				t.Errorf("bpf src_mismatch counter rose by %d, want >= 100 (the spoofed packets)", n)
			}
			s.waitKernel(t, 2) // still offloaded: the latch held
		}
		if n := len(bRTP.Received(0xBAD)); n != 0 {
			t.Fatalf("callee received %d spoofed packets", n)
		}
		if n := len(spoof.Received(0xB2)); n != 0 {
			t.Fatalf("the spoofer received %d of the callee's packets", n)
		}
		var ci struct {
			Media mediarelay.CallMedia `json:"media"`
		}
		id := onlyCallID(t, s)
		b, err := s.get("/api/v1/calls/" + id)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ci); err != nil {
			t.Fatal(err)
		}
		if len(ci.Media.Streams) != 1 || ci.Media.Streams[0].FromA.Dropped < 100 || ci.Media.Streams[0].FromA.Latched != carrierHost+":16000" {
			t.Fatalf("admin view of the stream: %s", b)
		}
		if ci.Media.MOS < 4 {
			t.Errorf("MOS %.2f for a clean stream", ci.Media.MOS)
		}
	})

	t.Run("hold and resume", func(t *testing.T) {
		caller.Request(dA, "INVITE", 2, "hold", offerSDP(carrierHost, 16000, "sendonly", 2))
		re := callee.ExpectRequest(sip.INVITE, wait)
		if md := sdpMedia(t, re, sbcInt, "203.0.113."); md.Direction != "sendonly" {
			t.Fatalf("hold not passed on: %s", md.Direction)
		}
		callee.Answer(re, 200, "OK", "", offerSDP(pbxHost, 18000, "recvonly", 2))
		res := caller.ExpectResponse(200, sip.INVITE, wait)
		if md := sdpMedia(t, res, sbcExt, "198.51.100."); md.Direction != "recvonly" {
			t.Fatalf("hold answer not passed back: %s", md.Direction)
		}
		caller.Ack(dA, 2, "hold-ack")
		callee.ExpectRequest(sip.ACK, wait)

		caller.Request(dA, "INVITE", 3, "resume", offerSDP(carrierHost, 16000, "sendrecv", 3))
		re = callee.ExpectRequest(sip.INVITE, wait)
		callee.Answer(re, 200, "OK", "", offerSDP(pbxHost, 18000, "sendrecv", 3))
		caller.ExpectResponse(200, sip.INVITE, wait)
		caller.Ack(dA, 3, "resume-ack")
		callee.ExpectRequest(sip.ACK, wait)
		exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA3, 0xB3, 3000, 50)
	})

	t.Run("re-INVITE moves the callee to a new port", func(t *testing.T) {
		moved := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18100))
		callee.Request(dB, "INVITE", 1, "move", offerSDP(pbxHost, 18100, "sendrecv", 4))
		re := caller.ExpectRequest(sip.INVITE, wait)
		sdpMedia(t, re, sbcExt, "198.51.100.")
		caller.Answer(re, 200, "OK", "", offerSDP(carrierHost, 16000, "sendrecv", 4))
		callee.ExpectResponse(200, sip.INVITE, wait)
		callee.Ack(dB, 1, "move-ack")
		caller.ExpectRequest(sip.ACK, wait)
		exchangeRTP(t, aRTP, moved, aTo, bTo, 0xA4, 0xB4, 4000, 50)
		if n := len(bRTP.Received(0xA4)); n != 0 {
			t.Fatalf("%d packets still went to the callee's old port", n)
		}
		if !kernel {
			return
		}
		// Back in the kernel with the moved callee as the expected source:
		// the old port is now a foreign source.
		s.waitKernel(t, 2)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = bRTP.Send(bTo, 0xB0D, 1, 30, 5*time.Millisecond) }()
		exchangeRTP(t, aRTP, moved, aTo, bTo, 0xA5, 0xB5, 5000, 30)
		wg.Wait()
		rtpMarker(t, moved, aRTP, bTo, 0xB5F)
		if n := len(aRTP.Received(0xB0D)); n != 0 {
			t.Fatalf("caller received %d packets from the callee's old port after the move", n)
		}
	})

	caller.Request(dA, "BYE", 4, "bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if n := s.metric(t, "sbc_media_ports_in_use"); n != 0 {
		t.Errorf("%v media ports still allocated after the call", n)
	}
}

// extraAddr adds ip to a lab namespace's interface for the test (a second
// host on the same segment) and removes it after.
func extraAddr(t *testing.T, ns, dev, ip string) string {
	t.Helper()
	if out, err := exec.Command("ip", "-n", ns, "addr", "add", ip+"/32", "dev", dev, "nodad").CombinedOutput(); err != nil {
		t.Fatalf("add %s to %s/%s: %v: %s", ip, ns, dev, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", ns, "addr", "del", ip+"/32", "dev", dev).Run() })
	return ip
}

func onlyCallID(t *testing.T, s *sbcd) string {
	t.Helper()
	b, err := s.get("/api/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &calls); err != nil || len(calls) != 1 {
		t.Fatalf("calls: %s (%v)", b, err)
	}
	return calls[0].ID
}

// A call whose media never flows is ended by the SBC after media.timeout,
// with BYE on both legs carrying a Reason.
func TestMediaTimeoutEndsCall(t *testing.T) {
	needLab(t)
	s := startSBCD(t, mediaConfig(t, "2s"))
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	wait := 3 * time.Second
	caller.Invite(sbcExt+":5060", "1000", "timeout-1", offerSDP(carrierHost, 16000, "sendrecv", 1))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "ct", offerSDP(pbxHost, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(testphone.CallerDialog(ok, sbcExt+":5060"), 1, "t-ack")
	start := time.Now()
	for _, p := range []*testphone.Phone{caller, callee} {
		bye := p.ExpectRequest(sip.BYE, 6*time.Second)
		if r := bye.GetHeaders("Reason"); len(r) != 1 || !strings.Contains(r[0].Value(), "media timeout") {
			t.Errorf("BYE without a media timeout Reason: %v", r)
		}
		p.Answer(bye, 200, "OK", "", "")
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("call ended %v after answer, before the 2 s media timeout", d)
	}
	s.waitIdle(t)
	if n := s.metric(t, "sbc_calls_total", `result="media_timeout"`); n != 1 {
		t.Errorf("sbc_calls_total{result=media_timeout} = %v", n)
	}
}
