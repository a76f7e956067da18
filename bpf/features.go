package bpf

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// From the kernel's netdev generic netlink family (include/uapi/linux/netdev.h).
const (
	netdevCmdDevGet        = 1
	netdevAttrDevIfindex   = 1
	netdevAttrXDPFeatures  = 3
	netdevXDPActNDOXmit    = 1 << 2
	netdevXDPActBasic      = 1 << 0
	netdevXDPActRedirect   = 1 << 1
	netdevFamilyName       = "netdev"
	netdevFamilyVersion    = 1
	xdpFeaturesUnavailable = ^uint64(0)
)

// xdpFeatures returns the device's XDP feature bits (NETDEV_XDP_ACT_*) as
// the kernel reports them, in the calling thread's network namespace. A
// veth advertises NDO_XMIT (it can take XDP redirects) only while its peer
// has NAPI (an XDP program or GRO on): exactly the silent-drop condition.
func xdpFeatures(ifindex int) (uint64, error) {
	fam, err := netlink.GenlFamilyGet(netdevFamilyName)
	if err != nil {
		return xdpFeaturesUnavailable, fmt.Errorf("netdev genl family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), 0)
	req.AddData(genlHeader{netdevCmdDevGet, netdevFamilyVersion})
	req.AddData(nl.NewRtAttr(netdevAttrDevIfindex, nl.Uint32Attr(uint32(ifindex))))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return xdpFeaturesUnavailable, fmt.Errorf("netdev dev-get %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return xdpFeaturesUnavailable, fmt.Errorf("netdev dev-get %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevAttrXDPFeatures && len(a.Value) >= 8 {
				return binary.NativeEndian.Uint64(a.Value), nil
			}
		}
	}
	return xdpFeaturesUnavailable, fmt.Errorf("netdev dev-get %d: no xdp-features attribute", ifindex)
}

// genlHeader is struct genlmsghdr (cmd, version, reserved). nl.Genlmsg
// serializes 4 bytes from a 2-byte struct, so the reserved half would be
// whatever follows it in memory.
type genlHeader struct{ cmd, version uint8 }

func (h genlHeader) Len() int          { return 4 }
func (h genlHeader) Serialize() []byte { return []byte{h.cmd, h.version, 0, 0} }
