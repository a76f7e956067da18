package bpf

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Address families as the C code names them (consts.h).
const (
	familyV4 = 4
	familyV6 = 6
)

// FlowKey is a packet arriving at the SBC's local address:port (IPv4 or
// IPv6; an IPv4-mapped IPv6 address is treated as IPv4).
type FlowKey struct{ Dst netip.AddrPort }

// FlowAction is how to rewrite a matching packet and where to send it.
// From is the source a packet must come from to be forwarded (the peer the
// relay latched, address and port); a packet to the flow from anything
// else goes to the stack untouched and counts as CounterSrcMismatch. The
// zero From forwards packets from any source.
type FlowAction struct {
	From           netip.AddrPort // expected source; zero: any
	Src, Dst       netip.AddrPort // new source (the SBC's egress addr:port), new destination (peer)
	SrcMAC, DstMAC net.HardwareAddr
	Ifindex        int // egress interface
}

// FlowStats are a flow's counters summed over CPUs. Bytes counts UDP
// payload bytes (what a socket reader would count). LastSeen is the last
// packet's time (bpf_ktime, CLOCK_MONOTONIC, converted to wall time); zero
// when no packet has been seen.
type FlowStats struct {
	Packets, Bytes uint64
	LastSeen       time.Time
}

func (k FlowKey) String() string { return k.Dst.String() }

func (a FlowAction) String() string {
	from := "any"
	if a.From.IsValid() {
		from = a.From.String()
	}
	return fmt.Sprintf("from %s: %s->%s if%d %s->%s", from, a.Src, a.Dst, a.Ifindex, a.SrcMAC, a.DstMAC)
}

func family(a netip.Addr) uint8 {
	if a.Unmap().Is4() {
		return familyV4
	}
	return familyV6
}

func putAddr(dst *[16]uint8, a netip.Addr) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		copy(dst[:], b[:])
		return
	}
	b := a.As16()
	copy(dst[:], b[:])
}

func putPort(dst *[2]uint8, p uint16) { dst[0], dst[1] = byte(p>>8), byte(p) }

func getAddr(fam uint8, src [16]uint8) netip.Addr {
	if fam == familyV4 {
		return netip.AddrFrom4([4]byte(src[:4]))
	}
	return netip.AddrFrom16(src)
}

func getPort(src [2]uint8) uint16 { return uint16(src[0])<<8 | uint16(src[1]) }

func (k FlowKey) marshal() (datapathFlowKey, error) {
	var out datapathFlowKey
	if !k.Dst.IsValid() || k.Dst.Port() == 0 {
		return out, fmt.Errorf("%w: key %q needs an address and a port", ErrBadFlow, k.Dst)
	}
	out.Family = family(k.Dst.Addr())
	putAddr(&out.Addr, k.Dst.Addr())
	putPort(&out.Port, k.Dst.Port())
	return out, nil
}

func (k datapathFlowKey) unmarshal() FlowKey {
	return FlowKey{Dst: netip.AddrPortFrom(getAddr(k.Family, k.Addr), getPort(k.Port))}
}

func (a FlowAction) marshal(fam uint8) (datapathFlowAction, error) {
	var out datapathFlowAction
	switch {
	case !a.Src.IsValid() || !a.Dst.IsValid() || a.Src.Port() == 0 || a.Dst.Port() == 0:
		return out, fmt.Errorf("%w: action needs src and dst address:port, got %s -> %s", ErrBadFlow, a.Src, a.Dst)
	case family(a.Src.Addr()) != fam || family(a.Dst.Addr()) != fam:
		return out, fmt.Errorf("%w: key and action address families differ (%s -> %s)", ErrBadFlow, a.Src, a.Dst)
	case len(a.SrcMAC) != 6 || len(a.DstMAC) != 6:
		return out, fmt.Errorf("%w: action needs 6-byte MACs, got %q and %q", ErrBadFlow, a.SrcMAC, a.DstMAC)
	case a.From.IsValid() && (a.From.Port() == 0 || family(a.From.Addr()) != fam):
		return out, fmt.Errorf("%w: expected source %s needs a port and the key's address family", ErrBadFlow, a.From)
	case a.Ifindex <= 0:
		return out, fmt.Errorf("%w: action needs an egress ifindex, got %d", ErrBadFlow, a.Ifindex)
	}
	out.Family = fam
	putAddr(&out.Saddr, a.Src.Addr())
	putAddr(&out.Daddr, a.Dst.Addr())
	putPort(&out.Sport, a.Src.Port())
	putPort(&out.Dport, a.Dst.Port())
	copy(out.Smac[:], a.SrcMAC)
	copy(out.Dmac[:], a.DstMAC)
	out.Ifindex = uint32(a.Ifindex)
	if a.From.IsValid() {
		out.FromSet = 1
		putAddr(&out.FromAddr, a.From.Addr())
		putPort(&out.FromPort, a.From.Port())
	}
	return out, nil
}

func (a datapathFlowAction) unmarshal() FlowAction {
	var from netip.AddrPort
	if a.FromSet != 0 {
		from = netip.AddrPortFrom(getAddr(a.Family, a.FromAddr), getPort(a.FromPort))
	}
	return FlowAction{
		From:    from,
		Src:     netip.AddrPortFrom(getAddr(a.Family, a.Saddr), getPort(a.Sport)),
		Dst:     netip.AddrPortFrom(getAddr(a.Family, a.Daddr), getPort(a.Dport)),
		SrcMAC:  net.HardwareAddr(append([]byte(nil), a.Smac[:]...)),
		DstMAC:  net.HardwareAddr(append([]byte(nil), a.Dmac[:]...)),
		Ifindex: int(a.Ifindex),
	}
}

// Counter names one of the programs' global per-CPU counters: why a packet
// went to the stack, or that it was forwarded. Same order as enum counter
// in c/consts.h.
type Counter int

const (
	CounterRedirect    Counter = iota // forwarded by the fast path
	CounterMiss                       // UDP to an address:port with no flow
	CounterNotIP                      // not IPv4/IPv6, or two VLAN tags
	CounterNotUDP                     // IP but not UDP, or IPv6 extension headers
	CounterFragment                   // IPv4 MF/offset, IPv6 fragment header
	CounterIPOptions                  // IPv4 ihl != 5
	CounterMalformed                  // short, wrong lengths, bad version, IPv6 UDP checksum 0
	CounterTTL                        // TTL / hop limit would expire
	CounterNoEgress                   // flow's egress interface not in the DEVMAP
	CounterError                      // a helper failed mid-rewrite (dropped)
	CounterBanned                     // dropped: source (IPv4 or IPv6) on the ban list
	CounterSrcMismatch                // a flow's packet from another source than its From (to the stack)
	counterMax
)

var counterNames = [counterMax]string{
	"redirect", "miss", "not_ip", "not_udp", "fragment", "ip_options",
	"malformed", "ttl", "no_egress", "error", "banned", "src_mismatch",
}

func (c Counter) String() string {
	if c < 0 || c >= counterMax {
		return fmt.Sprintf("counter(%d)", int(c))
	}
	return counterNames[c]
}

// Counters holds the global counters summed over CPUs, indexed by Counter.
type Counters [counterMax]uint64

// Map returns the counters by name.
func (c Counters) Map() map[string]uint64 {
	m := make(map[string]uint64, len(c))
	for i, v := range c {
		m[Counter(i).String()] = v
	}
	return m
}
