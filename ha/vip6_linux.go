package ha

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// IPv6 VIPs are announced with unsolicited neighbour advertisements (RFC
// 4861 7.2.6), the IPv6 counterpart of gratuitous ARP: to all nodes
// (ff02::1), from the VIP itself, Override set, the interface's MAC in the
// target link-layer address option. A neighbour that has the VIP in its
// cache moves it to this MAC at once (Linux leaves it STALE, so its next
// packet goes here and confirms); one that has none creates no entry and
// will solicit, which the new holder answers.

// allNodes is ff02::1 and its Ethernet multicast address 33:33:00:00:00:01.
var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = [6]byte{0x33, 0x33, 0, 0, 0, 1}
)

// sendUNA sends count unsolicited neighbour advertisements for the VIP on
// an AF_PACKET socket (the address is new and may not be usable by a
// normal socket yet; a raw frame needs nothing of the stack).
func sendUNA(v VIP, count int) error {
	ifi, err := net.InterfaceByName(v.Iface)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("interface %s has no Ethernet address", v.Iface)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6)))
	if err != nil {
		return fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	var dst [8]byte
	copy(dst[:], allNodesMAC[:])
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index, Halen: 6, Addr: dst}
	f := unaFrame(ifi.HardwareAddr, v.Prefix.Addr())
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(garpGap)
		}
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			return fmt.Errorf("send on %s: %w", v.Iface, err)
		}
	}
	return nil
}

// unaFrame is the Ethernet frame of an unsolicited neighbour advertisement
// announcing ip at mac.
func unaFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	src, dst := ip.As16(), allNodes.As16()
	icmp := make([]byte, 0, 32)
	icmp = append(icmp, 136, 0, 0, 0) // type NA, code 0, checksum (below)
	// Flags: Override (the cached address must be replaced), not Router,
	// not Solicited (RFC 4861 7.2.6).
	icmp = binary.BigEndian.AppendUint32(icmp, 0x20000000)
	icmp = append(icmp, src[:]...) // target address: the VIP
	icmp = append(icmp, 2, 1)      // option: target link-layer address, 8 bytes
	icmp = append(icmp, mac...)
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, dst, icmp))

	f := make([]byte, 0, 14+40+len(icmp))
	f = append(f, allNodesMAC[:]...)
	f = append(f, mac...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IPV6)
	f = append(f, 0x60, 0, 0, 0) // version 6, no traffic class or flow label
	f = binary.BigEndian.AppendUint16(f, uint16(len(icmp)))
	f = append(f, unix.IPPROTO_ICMPV6, 255) // hop limit 255: receivers drop ND with any other
	f = append(f, src[:]...)
	f = append(f, dst[:]...)
	return append(f, icmp...)
}

// icmpv6Checksum is the ICMPv6 checksum over the IPv6 pseudo header and
// the message (RFC 4443 2.3), the message's checksum field zero.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(msg)))
	l[7] = unix.IPPROTO_ICMPV6
	add(l[:])
	add(msg)
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
