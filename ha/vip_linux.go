package ha

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VIP is a service address the active node holds: Prefix is the address
// with its prefix length (203.0.113.1/24) on interface Iface.
type VIP struct {
	Iface  string
	Prefix netip.Prefix
}

func (v VIP) String() string { return v.Prefix.String() + " dev " + v.Iface }

// GARP timing: a burst at takeover, and again shortly after (as
// keepalived does) for peers that missed the first or were busy.
const (
	garpCount    = 3
	garpGap      = 20 * time.Millisecond
	garpRepeatIn = 500 * time.Millisecond
)

// TakeVIPs adds every VIP (netlink AddrReplace: idempotent, so taking
// twice is harmless), then announces each, gratuitous ARP for IPv4 and
// unsolicited neighbour advertisements for IPv6 (vip6_linux.go), in a
// burst now and again garpRepeatIn later if the address is still there.
// It returns after the first burst.
func TakeVIPs(vs []VIP) error {
	if len(vs) == 0 {
		return nil
	}
	var errs []error
	for _, v := range vs {
		if err := takeVIP(v); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	go func() {
		time.Sleep(garpRepeatIn)
		for _, v := range vs {
			if held, _ := HoldsVIP(v); held {
				_ = announce(v, garpCount)
			}
		}
	}()
	return nil
}

// announce tells the segment the VIP is here: gratuitous ARP for IPv4,
// unsolicited neighbour advertisements for IPv6.
func announce(v VIP, count int) error {
	if v.Prefix.Addr().Is4() {
		return sendGARP(v, count)
	}
	return sendUNA(v, count)
}

func takeVIP(v VIP) error {
	if a := v.Prefix.Addr(); !a.Is4() && (a.Is4In6() || a.Zone() != "") {
		return fmt.Errorf("ha: VIP %s: an IPv4 or a plain IPv6 address, please", v)
	}
	link, err := netlink.LinkByName(v.Iface)
	if err != nil {
		return fmt.Errorf("ha: VIP %s: interface: %w", v, err)
	}
	if err := netlink.AddrReplace(link, vipAddr(v)); err != nil {
		return fmt.Errorf("ha: VIP %s: add address: %w", v, err)
	}
	if err := announce(v, garpCount); err != nil {
		return fmt.Errorf("ha: VIP %s: announce: %w", v, err)
	}
	return nil
}

// ReleaseVIPs removes every VIP; a VIP that is not there is not an error.
func ReleaseVIPs(vs []VIP) error {
	var errs []error
	for _, v := range vs {
		link, err := netlink.LinkByName(v.Iface)
		if err != nil {
			errs = append(errs, fmt.Errorf("ha: VIP %s: interface: %w", v, err))
			continue
		}
		if err := netlink.AddrDel(link, vipAddr(v)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("ha: VIP %s: delete address: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// HoldsVIP reports whether the VIP's address is on its interface.
func HoldsVIP(v VIP) (bool, error) {
	link, err := netlink.LinkByName(v.Iface)
	if err != nil {
		return false, err
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.Prefix.Addr() {
			return true, nil
		}
	}
	return false, nil
}

func vipAddr(v VIP) *netlink.Addr {
	ip := v.Prefix.Addr().AsSlice()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(v.Prefix.Bits(), 8*len(ip))}}
	if len(ip) == 16 {
		// No duplicate address detection: the VIP moves between nodes
		// by design, and a tentative address could not be bound for the
		// second or more DAD takes (calls would wait on it).
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// sendGARP broadcasts count gratuitous ARP requests and replies for the
// VIP (sender and target IP both the VIP, sender MAC the interface's) on
// an AF_PACKET socket: neighbours that cache the VIP move it to this MAC
// at once. Both forms, since stacks differ in which they honour.
func sendGARP(v VIP, count int) error {
	ifi, err := net.InterfaceByName(v.Iface)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("interface %s has no Ethernet address", v.Iface)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	bcast := [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6, Addr: bcast}
	ip := v.Prefix.Addr().As4()
	req := garpFrame(ifi.HardwareAddr, ip, 1)
	rep := garpFrame(ifi.HardwareAddr, ip, 2)
	for i := 0; i < count; i++ {
		if i > 0 {
			time.Sleep(garpGap)
		}
		if err := unix.Sendto(fd, req, 0, sa); err != nil {
			return fmt.Errorf("send on %s: %w", v.Iface, err)
		}
		if err := unix.Sendto(fd, rep, 0, sa); err != nil {
			return fmt.Errorf("send on %s: %w", v.Iface, err)
		}
	}
	return nil
}

// garpFrame is an Ethernet broadcast ARP frame (oper 1 request, 2 reply)
// announcing ip at mac.
func garpFrame(mac net.HardwareAddr, ip [4]byte, oper uint16) []byte {
	f := make([]byte, 0, 42)
	f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // dst
	f = append(f, mac...)                             // src
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = binary.BigEndian.AppendUint16(f, 1)      // htype Ethernet
	f = binary.BigEndian.AppendUint16(f, 0x0800) // ptype IPv4
	f = append(f, 6, 4)
	f = binary.BigEndian.AppendUint16(f, oper)
	f = append(f, mac...)   // sender MAC
	f = append(f, ip[:]...) // sender IP
	if oper == 2 {
		f = append(f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // target MAC
	} else {
		f = append(f, 0, 0, 0, 0, 0, 0)
	}
	f = append(f, ip[:]...) // target IP
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
