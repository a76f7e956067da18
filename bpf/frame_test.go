package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// frameSpec describes a test frame; zero values give a well-formed IPv4/UDP
// packet with checksums.
type frameSpec struct {
	srcMAC, dstMAC net.HardwareAddr
	vlan           uint16 // tag the frame with this VLAN id when non-zero
	src, dst       netip.AddrPort
	ttl            uint8 // default 64
	proto          uint8 // default UDP
	optWords       int   // IPv4 option words (ihl = 5 + optWords)
	fragOff        uint16
	payload        []byte
	zeroUDPCsum    bool
	udpLenDelta    int // added to the UDP length field
	ipLenDelta     int // added to the IPv4 total / IPv6 payload length field
	pad            int // trailing Ethernet padding
	truncate       int // when > 0, cut the frame to this many bytes
}

func (s frameSpec) build() []byte {
	if s.srcMAC == nil {
		s.srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	}
	if s.dstMAC == nil {
		s.dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	}
	if s.ttl == 0 {
		s.ttl = 64
	}
	if s.proto == 0 {
		s.proto = 17
	}
	v6 := s.dst.Addr().Is6()
	udp := make([]byte, 8+len(s.payload))
	binary.BigEndian.PutUint16(udp[0:], s.src.Port())
	binary.BigEndian.PutUint16(udp[2:], s.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)+s.udpLenDelta))
	copy(udp[8:], s.payload)
	if !s.zeroUDPCsum {
		binary.BigEndian.PutUint16(udp[6:], l4Checksum(s.src.Addr(), s.dst.Addr(), 17, udp))
	}

	var ip []byte
	if v6 {
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)+s.ipLenDelta))
		ip[6] = s.proto
		ip[7] = s.ttl
		a, b := s.src.Addr().As16(), s.dst.Addr().As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
	} else {
		hl := 20 + 4*s.optWords
		ip = make([]byte, hl)
		ip[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(hl+len(udp)+s.ipLenDelta))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		binary.BigEndian.PutUint16(ip[6:], s.fragOff)
		ip[8] = s.ttl
		ip[9] = s.proto
		a, b := s.src.Addr().As4(), s.dst.Addr().As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		for i := 20; i < hl; i++ {
			ip[i] = 1 // NOP options
		}
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	}

	var f bytes.Buffer
	f.Write(s.dstMAC)
	f.Write(s.srcMAC)
	if s.vlan != 0 {
		f.Write([]byte{0x81, 0x00, byte(s.vlan >> 8), byte(s.vlan)})
	}
	if v6 {
		f.Write([]byte{0x86, 0xdd})
	} else {
		f.Write([]byte{0x08, 0x00})
	}
	f.Write(ip)
	f.Write(udp)
	f.Write(make([]byte, s.pad))
	out := f.Bytes()
	if s.truncate > 0 && s.truncate < len(out) {
		out = out[:s.truncate]
	}
	return out
}

func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// ipChecksum computes an IPv4 header checksum from scratch (field zeroed).
func ipChecksum(hdr []byte) uint16 {
	h := append([]byte(nil), hdr...)
	h[10], h[11] = 0, 0
	return ^fold(sum16(h))
}

// l4Checksum computes a UDP checksum from scratch over the pseudo header and
// the segment (its checksum field zeroed); 0 comes out as 0xffff.
func l4Checksum(src, dst netip.Addr, proto uint8, seg []byte) uint16 {
	s := append([]byte(nil), seg...)
	s[6], s[7] = 0, 0
	var ph []byte
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		ph = append(append(ph, a[:]...), b[:]...)
		ph = append(ph, 0, proto, byte(len(s)>>8), byte(len(s)))
	} else {
		a, b := src.As16(), dst.As16()
		ph = append(append(ph, a[:]...), b[:]...)
		ph = append(ph, 0, 0, byte(len(s)>>8), byte(len(s)), 0, 0, 0, proto)
	}
	c := ^fold(sum16(ph) + sum16(s))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// parsedFrame is what checkFrame found in a frame.
type parsedFrame struct {
	srcMAC, dstMAC net.HardwareAddr
	vlan           bool
	src, dst       netip.AddrPort
	ttl            uint8
	udpCsum        uint16
	payload        []byte
}

// parseFrame decodes an untagged or tagged IPv4/IPv6 UDP frame and verifies
// every length and checksum from scratch.
func parseFrame(f []byte) (parsedFrame, error) {
	var p parsedFrame
	if len(f) < 14 {
		return p, fmt.Errorf("frame of %d bytes", len(f))
	}
	p.dstMAC, p.srcMAC = net.HardwareAddr(f[0:6]), net.HardwareAddr(f[6:12])
	et := binary.BigEndian.Uint16(f[12:])
	off := 14
	if et == 0x8100 {
		p.vlan = true
		et = binary.BigEndian.Uint16(f[16:])
		off = 18
	}
	var udp []byte
	switch et {
	case 0x0800:
		ip := f[off:]
		hl := int(ip[0]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot > len(ip) {
			return p, fmt.Errorf("ip total length %d > %d", tot, len(ip))
		}
		if got, want := binary.BigEndian.Uint16(ip[10:]), ipChecksum(ip[:hl]); got != want {
			return p, fmt.Errorf("ip checksum %#04x, from scratch %#04x", got, want)
		}
		p.ttl = ip[8]
		p.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), 0)
		p.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), 0)
		udp = ip[hl:tot]
	case 0x86dd:
		ip := f[off:]
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		p.ttl = ip[7]
		p.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), 0)
		p.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), 0)
		udp = ip[40 : 40+pl]
	default:
		return p, fmt.Errorf("ethertype %#04x", et)
	}
	if int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return p, fmt.Errorf("udp length %d, segment %d", binary.BigEndian.Uint16(udp[4:]), len(udp))
	}
	p.src = netip.AddrPortFrom(p.src.Addr(), binary.BigEndian.Uint16(udp[0:]))
	p.dst = netip.AddrPortFrom(p.dst.Addr(), binary.BigEndian.Uint16(udp[2:]))
	p.udpCsum = binary.BigEndian.Uint16(udp[6:])
	if p.udpCsum != 0 {
		if want := l4Checksum(p.src.Addr(), p.dst.Addr(), 17, udp); p.udpCsum != want {
			return p, fmt.Errorf("udp checksum %#04x, from scratch %#04x", p.udpCsum, want)
		}
	}
	p.payload = udp[8:]
	return p, nil
}
