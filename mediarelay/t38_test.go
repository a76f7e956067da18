package mediarelay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// udptlPacket is a T.38 UDPTL datagram (T.38 annex D): a 16-bit sequence
// number, then an IFP packet and the redundancy. seq 0x8000..0xbfff gives a
// first byte that reads as RTP version 2.
func udptlPacket(seq uint16, tag byte) []byte {
	b := []byte{0, 0, 0x06, 0x80 | tag, 0x00, 0x40, 0x01, 0x02, 0x00}
	binary.BigEndian.PutUint16(b, seq)
	return b
}

// TestRelayForwardsNonRTP: datagrams that are not RTP (UDPTL, a STUN-like
// keepalive) on a plain RTP port reach the other side intact both ways, and
// count as media activity; a foreign source is still not accepted.
func TestRelayForwardsNonRTP(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := newTestStream(t, r)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	latch(t, s, pa, pb)

	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"udptl", udptlPacket(1, 'a')},
		{"udptl-looks-rtp", udptlPacket(0x8001, 'b')},
		{"one byte", []byte{0x42}},
		{"stun-like", append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)},
	} {
		pa.send(tc.pkt, s.Local(SideA))
		if b, _ := pb.recv(2 * time.Second); !bytes.Equal(b, tc.pkt) {
			t.Fatalf("%s A->B: got %x, want %x", tc.name, b, tc.pkt)
		}
		pb.send(tc.pkt, s.Local(SideB))
		if b, _ := pa.recv(2 * time.Second); !bytes.Equal(b, tc.pkt) {
			t.Fatalf("%s B->A: got %x, want %x", tc.name, b, tc.pkt)
		}
	}
	// Latching still holds: a third party's UDPTL goes nowhere.
	evil := newPhone(t, "127.0.0.1")
	evil.send(udptlPacket(7, 'x'), s.Local(SideA))
	pb.expectNothing(100*time.Millisecond, "hijacker's UDPTL")
	st := s.Stats()
	if st.A.Forwarded != 5 || st.B.Forwarded != 5 {
		t.Errorf("forwarded A->B %d, B->A %d, want 5 each (1 RTP + 4 non-RTP)", st.A.Forwarded, st.B.Forwarded)
	}
	if s.Idle() > time.Second {
		t.Errorf("idle %v after non-RTP traffic", s.Idle())
	}
}

// TestRelayOpaqueKeepsRTPStatsOut: on a T.38 stream a UDPTL packet that
// happens to look like RTP does not feed the RTP loss statistics.
func TestRelayOpaqueKeepsRTPStatsOut(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := NewRelay(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := newTestStream(t, r)
	s.SetOpaque(true)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	s.SetRemote(SideA, pa.ap, netip.AddrPort{}, false)
	s.SetRemote(SideB, pb.ap, netip.AddrPort{}, false)
	// Bytes 2-3 (the IFP's length and type) read as an RTP sequence
	// number that jumps: an RTP tracker would count hundreds lost.
	seqs := []uint16{0x0600, 0x0601, 0x0602, 0x0603, 0x0800}
	for i, seq := range seqs {
		p := append(udptlPacket(0x8000+uint16(i), 'c'), make([]byte, 12)...)
		binary.BigEndian.PutUint16(p[2:], seq)
		pa.send(p, s.Local(SideA))
		if b, _ := pb.recv(2 * time.Second); !bytes.Equal(b, p) {
			t.Fatalf("packet %d: got %x", i, b)
		}
	}
	if st := s.Stats().A; st.Lost != 0 || st.Forwarded != uint64(len(seqs)) {
		t.Errorf("opaque stream: lost %d forwarded %d, want 0 and %d", st.Lost, st.Forwarded, len(seqs))
	}
}

func t38SDP(ip string, port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=fax 1 2 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=image %d udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"+
		"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n", ip, ip, port))
}

var t38Attrs = []string{"a=T38FaxVersion:0", "a=T38MaxBitRate:14400", "a=T38FaxRateManagement:transferredTCF",
	"a=T38FaxMaxDatagram:400", "a=T38FaxUdpEC:t38UDPRedundancy", "m=image "}

// TestAnchorT38ReInvite: an audio call re-INVITEd to T.38 keeps its SBC
// ports (so its latching and kernel flows stay), passes the fax attributes
// unchanged, carries UDPTL both ways, and goes back to RTP on the re-INVITE
// to audio.
func TestAnchorT38ReInvite(t *testing.T) {
	a := newTestAnchor(t, time.Minute)
	pa, pb := newPhone(t, "127.0.0.1"), newPhone(t, "127.0.0.1")
	ref := CallRef{ID: "fax", Realms: [2]string{"carrier", "pbx"}}
	offer, err := a.Offer(ref, SideA, phoneSDP("127.0.0.1", int(pa.ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := a.Answer(ref, SideB, phoneSDP("127.0.0.1", int(pb.ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	// The SBC's port facing each phone: A got the answer, B the offer.
	portA, portB := sbcPort(t, ans), sbcPort(t, offer)

	reOffer, err := a.Offer(ref, SideB, t38SDP("127.0.0.1", int(pb.ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	reAns, err := a.Answer(ref, SideA, t38SDP("127.0.0.1", int(pa.ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{reOffer, reAns} {
		for _, want := range t38Attrs {
			if !strings.Contains(string(b), want+"\r\n") && !strings.Contains(string(b), want) {
				t.Errorf("T.38 SDP lost %q:\n%s", want, b)
			}
		}
	}
	if sbcPort(t, reOffer) != portA || sbcPort(t, reAns) != portB {
		t.Fatalf("T.38 moved the SBC's ports: %v/%v, were %v/%v", sbcPort(t, reOffer), sbcPort(t, reAns), portA, portB)
	}
	st := streamOf(t, a, ref.ID)
	if !st.Opaque() {
		t.Fatal("T.38 stream not marked opaque")
	}
	for i := range uint16(5) {
		p := udptlPacket(0x8000+i, 'f')
		pa.send(p, portA)
		if b, _ := pb.recv(2 * time.Second); !bytes.Equal(b, p) {
			t.Fatalf("UDPTL %d A->B: got %x", i, b)
		}
		pb.send(p, portB)
		if b, _ := pa.recv(2 * time.Second); !bytes.Equal(b, p) {
			t.Fatalf("UDPTL %d B->A: got %x", i, b)
		}
	}
	// Back to audio.
	if _, err := a.Offer(ref, SideA, phoneSDP("127.0.0.1", int(pa.ap.Port()))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Answer(ref, SideB, phoneSDP("127.0.0.1", int(pb.ap.Port()))); err != nil {
		t.Fatal(err)
	}
	if st.Opaque() {
		t.Fatal("stream still opaque after the re-INVITE to audio")
	}
	pa.send(rtpPacket(t, 1, 160, 0xa, 'a'), portA)
	if b, _ := pb.recv(2 * time.Second); b == nil {
		t.Fatal("RTP after the switch back to audio lost")
	}
}

func streamOf(t *testing.T, a *Anchor, id string) *Stream {
	t.Helper()
	a.mu.Lock()
	c := a.calls[id]
	a.mu.Unlock()
	if c == nil {
		t.Fatalf("no call %s", id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[0]
}
