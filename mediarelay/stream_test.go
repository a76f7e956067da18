package mediarelay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// TestLatchNoHijack: after B latched, a third socket on B's IP is dropped,
// counted, and does not steer media: the real phone gets everything, the
// spoofer nothing. Before latching, a source on another IP is refused.
func TestLatchNoHijack(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := newTestStream(t, r)
	pa, pb, spoof := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	other := newPhone(t, "127.0.0.2") // another IP: never matches B's SDP IP
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)

	other.send(rtpPacket(t, 1, 0, 0xbad, 'x'), s.Local(SideB))
	eventually(t, "drop from a foreign IP", func() bool { return s.Stats().B.Dropped == 1 })
	if l := s.Stats().B.Latched; l.IsValid() {
		t.Fatalf("foreign IP latched B: %v", l)
	}

	latch(t, s, pa, pb)
	const spoofed = 50
	for i := range spoofed {
		spoof.send(rtpPacket(t, uint16(i), 0, 0xbad, 'x'), s.Local(SideB))
	}
	eventually(t, "spoofed packets dropped", func() bool { return s.Stats().B.Dropped == 1+spoofed })
	pa.expectNothing(50*time.Millisecond, "A after spoofing")

	const n = 100
	for i := range n {
		pa.send(rtpPacket(t, uint16(i), uint32(i*160), 0xa, 'a'), s.Local(SideA))
	}
	for i := range n {
		b, _ := pb.recv(2 * time.Second)
		if b == nil {
			t.Fatalf("real phone got %d of %d packets", i, n)
		}
		checkPacket(t, b, uint16(i), 'a')
	}
	spoof.expectNothing(100*time.Millisecond, "spoofer")
	eventually(t, "A's packets counted", func() bool { return s.Stats().A.Forwarded == n+1 })
	st := s.Stats()
	if st.B.Latched != pb.ap || st.A.Forwarded != n+1 || st.B.Forwarded != 1 {
		t.Fatalf("stats after hijack attempt: %+v", st)
	}
}

// TestLatchNAT: with nat the side's SDP IP (192.0.2.1) is not the phone's;
// the phone still latches inside the window. After a re-INVITE to another
// NAT address and the window passing, a new source is refused.
func TestLatchNAT(t *testing.T) {
	const window = 300 * time.Millisecond
	r := newTestRelay(t, Config{LatchWindow: window})
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, netip.MustParseAddrPort("192.0.2.1:4000"), netip.AddrPort{}, true)

	pb.send(rtpPacket(t, 1, 0, 0xb, 'b'), s.Local(SideB))
	if b, _ := pa.recv(2 * time.Second); b == nil {
		t.Fatal("NAT phone did not latch")
	}
	if l := s.Stats().B.Latched; l != pb.ap {
		t.Fatalf("B latched %v, want %v", l, pb.ap)
	}
	pa.send(rtpPacket(t, 1, 0, 0xa, 'a'), s.Local(SideA))
	b, from := pb.recv(2 * time.Second)
	if b == nil || from != s.Local(SideB) {
		t.Fatalf("A->B after NAT latch: got %d bytes from %v, want them from %v", len(b), from, s.Local(SideB))
	}

	s.SetRemote(SideB, netip.MustParseAddrPort("192.0.2.1:4002"), netip.AddrPort{}, true)
	if l := s.Stats().B.Latched; l.IsValid() {
		t.Fatalf("re-INVITE kept latch %v", l)
	}
	time.Sleep(window + 50*time.Millisecond)
	dropped := s.Stats().B.Dropped
	pb.send(rtpPacket(t, 2, 160, 0xb, 'b'), s.Local(SideB))
	eventually(t, "late source dropped", func() bool { return s.Stats().B.Dropped == dropped+1 })
	if l := s.Stats().B.Latched; l.IsValid() {
		t.Fatalf("latched %v after the window", l)
	}
	pa.expectNothing(50*time.Millisecond, "A after a refused source")
}

// TestReinviteRelatches: SetRemote to a new port unlatches the side; media
// goes to the new port and the new source latches.
func TestReinviteRelatches(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa, pb1, pb2 := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb1.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb1)

	s.SetRemote(SideB, pb1.ap, netip.AddrPort{}, false) // same address: latch kept
	if s.Stats().B.Latched != pb1.ap {
		t.Fatal("SetRemote with the same address unlatched")
	}
	s.SetRemote(SideB, pb2.ap, netip.AddrPort{}, false)
	pa.send(rtpPacket(t, 7, 0, 0xa, 'a'), s.Local(SideA))
	b, _ := pb2.recv(2 * time.Second)
	if b == nil {
		t.Fatal("media did not move to the new port")
	}
	checkPacket(t, b, 7, 'a')
	pb1.expectNothing(50*time.Millisecond, "old port")

	pb2.send(rtpPacket(t, 1, 0, 0xb2, 'c'), s.Local(SideB))
	if b, _ := pa.recv(2 * time.Second); b == nil {
		t.Fatal("new source not forwarded")
	}
	eventually(t, "relatch", func() bool { return s.Stats().B.Latched == pb2.ap })
	dropped := s.Stats().B.Dropped
	pb1.send(rtpPacket(t, 1, 0, 0xb, 'b'), s.Local(SideB))
	eventually(t, "old source dropped", func() bool { return s.Stats().B.Dropped == dropped+1 })
}

// TestPortZero: a side with port 0 takes no media; packets to and from it
// are dropped and counted.
func TestPortZero(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	// Nothing is known yet: dropped.
	pa.send(rtpPacket(t, 1, 0, 0xa, 'a'), s.Local(SideA))
	eventually(t, "drop before SetRemote", func() bool { return s.Stats().A.Dropped == 1 })

	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, netip.AddrPortFrom(loopback, 0), netip.AddrPort{}, false)
	pa.send(rtpPacket(t, 2, 0, 0xa, 'a'), s.Local(SideA))
	pb.send(rtpPacket(t, 1, 0, 0xb, 'b'), s.Local(SideB))
	eventually(t, "drops to and from port 0", func() bool {
		st := s.Stats()
		return st.A.Dropped == 2 && st.B.Dropped == 1
	})
	pa.expectNothing(30*time.Millisecond, "A")
	pb.expectNothing(30*time.Millisecond, "B")
}

// rr builds an RTCP receiver report with one report block.
func rr(fraction uint8, jitter uint32) []byte {
	b := make([]byte, 32)
	b[0] = 2<<6 | 1 // V=2, RC=1
	b[1] = rtcpPTRR
	binary.BigEndian.PutUint16(b[2:], 7) // 8 words
	binary.BigEndian.PutUint32(b[4:], 0xb)
	binary.BigEndian.PutUint32(b[8:], 0xa) // SSRC of the stream reported on
	b[12] = fraction
	binary.BigEndian.PutUint32(b[20:], jitter)
	return b
}

// sr builds a sender report with one report block, followed by an SDES.
func sr(fraction uint8, jitter uint32) []byte {
	b := make([]byte, 52, 64)
	b[0] = 2<<6 | 1
	b[1] = rtcpPTSR
	binary.BigEndian.PutUint16(b[2:], 12) // 13 words
	binary.BigEndian.PutUint32(b[4:], 0xa)
	b[28+4] = fraction
	binary.BigEndian.PutUint32(b[28+12:], jitter)
	sdes := []byte{2<<6 | 1, 202, 0, 2, 0, 0, 0, 0xa, 1, 1, 'x', 0}
	return append(b, sdes...)
}

// TestRTCPReports: RTCP is relayed on the +1 ports (and on the RTP port with
// rtcp-mux), and report blocks show up in the sending side's stats.
func TestRTCPReports(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa := newPhone(t, "127.0.0.1") // rtcp-mux
	pb, pbR := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, pa.ap, false)
	s.SetRemote(SideB, pb.ap, pbR.ap, false)

	report := rr(64, 160) // 25 %, 20 ms at 8 kHz
	pbR.send(report, rtcpOf(s.Local(SideB)))
	b, from := pa.recv(2 * time.Second)
	if !bytes.Equal(b, report) || from != s.Local(SideA) {
		t.Fatalf("RR to the muxed side: got %x from %v", b, from)
	}
	// Counters are updated after the batch is sent: wait for them.
	eventually(t, "B's RTCP counted", func() bool { return s.Stats().B.Forwarded == 1 })
	st := s.Stats().B
	if st.RemoteFractionLost != 0.25 || st.RemoteJitterMs != 20 || st.RTCPPackets != 1 {
		t.Fatalf("B stats after RR: fraction %v jitter %v rtcp %d", st.RemoteFractionLost, st.RemoteJitterMs, st.RTCPPackets)
	}

	// Muxed SR+SDES from A on its RTP port goes out of B's RTCP port.
	report = sr(128, 800)
	pa.send(report, s.Local(SideA))
	b, from = pbR.recv(2 * time.Second)
	if !bytes.Equal(b, report) || from != rtcpOf(s.Local(SideB)) {
		t.Fatalf("muxed SR to B: got %x from %v", b, from)
	}
	eventually(t, "A's RTCP counted", func() bool { return s.Stats().A.Forwarded == 1 })
	st = s.Stats().A
	if st.RemoteFractionLost != 0.5 || st.RemoteJitterMs != 100 || st.RTCPPackets != 1 || st.Packets != 1 {
		t.Fatalf("A stats after SR: %+v", st)
	}

	// Hostile RTCP: dropped, stats untouched.
	bad := rr(255, 9999)
	bad[0] = 1<<6 | 1 // version 1
	long := rr(255, 9999)
	binary.BigEndian.PutUint16(long[2:], 200) // length past the end
	for _, p := range [][]byte{bad, long, {0x81}, {}} {
		pbR.send(p, rtcpOf(s.Local(SideB)))
	}
	eventually(t, "hostile RTCP dropped", func() bool { return s.Stats().B.Dropped == 4 })
	if st := s.Stats().B; st.RemoteFractionLost != 0.25 || st.RemoteJitterMs != 20 {
		t.Fatalf("hostile RTCP changed stats: %+v", st)
	}
	pa.expectNothing(30*time.Millisecond, "A after hostile RTCP")
}

// TestHostileRTP: on the RTP port, datagrams that are not RTP from the
// latched source are forwarded as they came (t38.go: UDPTL, keepalives);
// empty and truncated ones, and anything from another source, are dropped,
// and the relay keeps working.
func TestHostileRTP(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb)

	v1 := rtpPacket(t, 1, 0, 0xa, 'a')
	v1[0] = 1 << 6
	for _, p := range [][]byte{{0x80}, make([]byte, 11), v1} {
		pa.send(p, s.Local(SideA))
		if b, _ := pb.recv(2 * time.Second); !bytes.Equal(b, p) {
			t.Fatalf("non-RTP %x from the latched source: got %x", p, b)
		}
	}
	stranger := newPhone(t, "127.0.0.1")
	dropped := [][]byte{{}, bytes.Repeat([]byte{0x80}, 4000)} // the last is truncated by the 1500-byte buffer
	for _, p := range dropped {
		pa.send(p, s.Local(SideA))
	}
	stranger.send(v1, s.Local(SideA))
	eventually(t, "junk dropped", func() bool { return s.Stats().A.Dropped == uint64(len(dropped)+1) })
	pb.expectNothing(30*time.Millisecond, "B after junk")
	pa.send(rtpPacket(t, 5, 0, 0xa, 'a'), s.Local(SideA))
	if b, _ := pb.recv(2 * time.Second); b == nil {
		t.Fatal("relay stopped after junk")
	}
}

func TestIdle(t *testing.T) {
	r := newTestRelay(t, Config{})
	s := newTestStream(t, r)
	pa := newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	time.Sleep(60 * time.Millisecond)
	if idle := s.Idle(); idle < 60*time.Millisecond || idle > 2*time.Second {
		t.Fatalf("Idle after 60 ms without packets = %v", idle)
	}
	pa.send(rtpPacket(t, 1, 0, 0xa, 'a'), s.Local(SideA))
	eventually(t, "Idle reset by a packet", func() bool { return s.Idle() < 40*time.Millisecond })
	if ls := s.Stats().A.LastSeen; time.Since(ls) > time.Second {
		t.Fatalf("LastSeen %v", ls)
	}
	s.SetHold(true)
	time.Sleep(20 * time.Millisecond)
	if idle := s.Idle(); idle != 0 {
		t.Fatalf("Idle while held = %v", idle)
	}
	s.SetHold(false)
	if idle := s.Idle(); idle < 20*time.Millisecond {
		t.Fatalf("Idle after hold = %v", idle)
	}
}

// TestRelayIPv6: the same path over ::1 (sockaddr_in6 encode and decode).
func TestRelayIPv6(t *testing.T) {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		ci.Skipf(t, "no IPv6 loopback: %v", err)
	}
	_ = c.Close()
	r := newTestRelay(t, Config{})
	var s *Stream
	for range 50 {
		p := uint16(20000 + 2*rand.IntN(6000))
		if s, err = r.NewStream(netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", p)), netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", p+2))); err == nil {
			break
		}
	}
	if s == nil {
		t.Fatal(err)
	}
	pa, pb := newPhone6(t), newPhone6(t)
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	pa.send(rtpPacket(t, 9, 0, 0xa, 'a'), s.Local(SideA))
	b, from := pb.recv(2 * time.Second)
	if b == nil || from != s.Local(SideB) {
		t.Fatalf("IPv6 A->B: %d bytes from %v", len(b), from)
	}
	checkPacket(t, b, 9, 'a')
	if l := s.Stats().A.Latched; l != pa.ap {
		t.Fatalf("latched %v, want %v", l, pa.ap)
	}
	// An IPv4 peer cannot be reached from an IPv6 socket: dropped, no panic.
	s.SetRemote(SideA, netip.MustParseAddrPort("127.0.0.1:5000"), netip.AddrPort{}, false)
	pb.send(rtpPacket(t, 1, 0, 0xb, 'b'), s.Local(SideB))
	eventually(t, "drop toward an unreachable family", func() bool { return s.Stats().B.Dropped == 1 })
}

func newPhone6(t *testing.T) *phone {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &phone{t: t, c: c, ap: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}
