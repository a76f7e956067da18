package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// rawSender writes whole Ethernet frames out of an interface of a lab
// namespace (AF_PACKET), so that packets the kernel's own stack would never
// build reach the SBC's interface.
type rawSender struct {
	fd      int
	ifindex int
	src     net.HardwareAddr
}

func newRawSender(t *testing.T, ns, dev string) *rawSender {
	t.Helper()
	r := &rawSender{}
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		r.ifindex, r.src = ifi.Index, ifi.HardwareAddr
		r.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // send only
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(r.fd) })
	return r
}

func (r *rawSender) send(t *testing.T, frame []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Ifindex: r.ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(r.fd, frame, 0, sa); err != nil {
		t.Fatalf("raw send: %v", err)
	}
}

func macOf(t *testing.T, ns, dev string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// ip4 builds an IPv4 header (checksum filled in) for a payload; totLen 0
// means the true length.
type ip4 struct {
	src, dst netip.Addr
	proto    byte
	options  []byte // multiple of 4
	totLen   int
	frag     uint16 // flags (MF = 0x2000) and offset in 8-byte units
	version  byte   // 0: 4
}

func (h ip4) build(payload []byte) []byte {
	ihl := 20 + len(h.options)
	b := make([]byte, ihl, ihl+len(payload))
	v := h.version
	if v == 0 {
		v = 4
	}
	b[0] = v<<4 | byte(ihl/4)
	tot := h.totLen
	if tot == 0 {
		tot = ihl + len(payload)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(tot))
	binary.BigEndian.PutUint16(b[4:], 0x4242)
	binary.BigEndian.PutUint16(b[6:], h.frag)
	b[8] = 64
	b[9] = h.proto
	s, d := h.src.As4(), h.dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], h.options)
	var sum uint32
	for i := 0; i < ihl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	return append(b, payload...)
}

// udp builds a UDP header (checksum 0: none, allowed in IPv4) and payload;
// length 0 means the true length.
func udp(sport, dport uint16, length int, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	if length == 0 {
		length = 8 + len(payload)
	}
	binary.BigEndian.PutUint16(b[4:], uint16(length))
	return append(b, payload...)
}

func ether(dst, src net.HardwareAddr, vlan int, payload []byte) []byte {
	b := append([]byte{}, dst...)
	b = append(b, src...)
	if vlan > 0 {
		b = append(b, 0x81, 0x00, byte(vlan>>8), byte(vlan))
	}
	b = append(b, 0x08, 0x00)
	return append(b, payload...)
}

// rtpBytes is packet 1 of stream ssrc with the test phones' payload
// pattern, so that one reaching a phone intact is recorded under its SSRC
// and a damaged one counts as bad.
func rtpBytes(t *testing.T, ssrc uint32) []byte {
	t.Helper()
	p := make([]byte, 160)
	for i := range p {
		p[i] = byte(uint32(i) + 7 + ssrc)
	}
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, Timestamp: 160, SSRC: ssrc}, Payload: p}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOffloadHostilePackets: while a call's RTP is in the kernel, odd and
// malformed packets are sent from the carrier host's interface at the
// offloaded media port, at an unallocated media port, at SIP's port and at
// a closed port: fragments (first and later), IP options, truncated UDP,
// UDP and IP lengths that lie, a bad IP version, VLAN-tagged frames, TCP,
// ICMP and another protocol. None of them reaches the callee (they come from
// a source that never latched, so neither path may forward them: the
// kernel flow takes only the latched source), the
// call's flow keeps going in the kernel, and the SBC still answers ping
// and SIP.
func TestOffloadHostilePackets(t *testing.T) {
	needLab(t)
	s := startSBCD(t, mediaConfig(t, "30s"))
	requireKernel(t, s)
	c := setupCall(t, "offload-hostile", 16000, 18000)
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA1, 0xB1, 1000, 10)
	s.waitKernel(t, 2)

	raw := newRawSender(t, "car", "car0")
	dstMAC := macOf(t, "sbc", "ext0")
	src, dst := netip.MustParseAddr(carrierHost), netip.MustParseAddr(sbcExt)
	const foreign = 16002 // a port of the carrier host that never latched
	type pkt struct {
		name string
		f    func(port uint16, ssrc uint32) []byte
	}
	u := func(port uint16, ssrc uint32) []byte { return udp(foreign, port, 0, rtpBytes(t, ssrc)) }
	kinds := []pkt{
		{"first fragment (MF)", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, frag: 0x2000}.build(u(p, x)))
		}},
		{"later fragment", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, frag: 8}.build(u(p, x)))
		}},
		{"IP options", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, options: []byte{1, 1, 1, 0}}.build(u(p, x)))
		}},
		{"UDP length beyond the packet", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP}.build(udp(foreign, p, 400, rtpBytes(t, x))))
		}},
		{"UDP length below its header", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP}.build(udp(foreign, p, 4, rtpBytes(t, x))))
		}},
		{"IP total length beyond the frame", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, totLen: 1400}.build(u(p, x)))
		}},
		{"IP total length inside its header", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, totLen: 12}.build(u(p, x)))
		}},
		{"truncated UDP header", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP}.build(u(p, x)[:5]))
		}},
		{"IP version 6 in an IPv4 frame", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP, version: 6}.build(u(p, x)))
		}},
		{"truncated IP header", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP}.build(u(p, x))[:14])
		}},
		{"VLAN-tagged", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 7, ip4{src: src, dst: dst, proto: unix.IPPROTO_UDP}.build(u(p, x)))
		}},
		{"TCP", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_TCP}.build(u(p, x)))
		}},
		{"SCTP", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: 132}.build(u(p, x)))
		}},
		{"ICMP", func(p uint16, x uint32) []byte {
			return ether(dstMAC, raw.src, 0, ip4{src: src, dst: dst, proto: unix.IPPROTO_ICMP}.build([]byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0}))
		}},
		{"runt frame", func(p uint16, x uint32) []byte { return ether(dstMAC, raw.src, 0, nil) }},
	}
	ports := []uint16{c.aTo.Port(), c.aTo.Port() + 1, 30990, 5060, 9}
	relay0 := s.relaySeen(t)
	var sent int
	for k, kind := range kinds {
		bad0 := bRTP.Bad()
		for j, port := range ports {
			ssrc := uint32(0xEE000000 | k<<8 | j)
			for range 5 {
				raw.send(t, kind.f(port, ssrc))
				sent++
			}
		}
		time.Sleep(50 * time.Millisecond)
		if d := bRTP.Bad() - bad0; d != 0 {
			t.Errorf("%s: %d frames reached the callee damaged", kind.name, d)
		}
	}
	// Real media meanwhile and after: the flow is unbroken and still in
	// the kernel.
	burst(t, aRTP, bRTP, c.aTo, c.bTo, 0xA2, 0xB2, 2000, 200)
	time.Sleep(300 * time.Millisecond)
	for k, kind := range kinds {
		for j, port := range ports {
			ssrc := uint32(0xEE000000 | k<<8 | j)
			n := len(bRTP.Received(ssrc))
			if n == 0 {
				continue
			}
			// (A VLAN-tagged one too: the tag is parsed, but the flow
			// takes only its latched source, and these come from another
			// port.)
			t.Errorf("%s to port %d: the callee received %d of 5", kind.name, port, n)
		}
	}
	if bRTP.Bad() != 0 {
		t.Errorf("the callee received %d corrupted packets", bRTP.Bad())
	}
	if len(kernelFlows(s.flows(t))) != 2 {
		t.Errorf("the call's flows left the kernel: %+v", s.flows(t).Flows)
	}
	t.Logf("sent %d hostile frames; the user-space relay saw %v datagrams meanwhile (the kernel passes what it does not forward)", sent, s.relaySeen(t)-relay0)
	if out, err := exec.Command("ip", "netns", "exec", "car", "ping", "-c", "2", "-W", "1", sbcExt).CombinedOutput(); err != nil {
		t.Errorf("the SBC no longer answers ping: %v\n%s", err, out)
	}
	c.caller.Send(sbcExt+":5060", fmt.Sprintf(`OPTIONS sip:%s:5060 SIP/2.0
		Via: SIP/2.0/UDP %s:5062;branch=z9hG4bK-hostile-opt
		Max-Forwards: 70
		From: <sip:probe@%s>;tag=probe
		To: <sip:%s>
		Call-ID: hostile-options
		CSeq: 1 OPTIONS`, sbcExt, carrierHost, carrierHost, sbcExt), "")
	c.caller.ExpectResponse(200, sip.OPTIONS, 3*time.Second)
	c.bye(t, 2)
	s.waitIdle(t)
}
