package mediarelay

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// TestPrivilegedResolver: in a network namespace of its own, a veth with
// a neighbour entry resolves to its MACs; a changed neighbour MAC shows
// after the refresh; an address with no neighbour, or out of an interface
// the datapath does not serve, does not resolve.
func TestPrivilegedResolver(t *testing.T) {
	ci.Root(t, "a network namespace of its own")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // unnamed: gone when its last reference closes
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = netns.Set(orig); ns.Close() }()

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "off0"}, PeerName: "off1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	l, _ := netlink.LinkByName("off0")
	p, _ := netlink.LinkByName("off1")
	for _, x := range []netlink.Link{l, p} {
		if err := netlink.LinkSetUp(x); err != nil {
			t.Fatal(err)
		}
	}
	addr, _ := netlink.ParseAddr("192.0.2.1/24")
	if err := netlink.AddrAdd(l, addr); err != nil {
		t.Fatal(err)
	}
	mac1 := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	neigh := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, IP: net.ParseIP("192.0.2.10"), HardwareAddr: mac1}
	if err := netlink.NeighSet(neigh); err != nil {
		t.Fatal(err)
	}
	r := &NetlinkResolver{Refresh: 50 * time.Millisecond, Ifindexes: []int{l.Attrs().Index}}
	nh, err := r.Resolve(netip.MustParseAddr("192.0.2.10"))
	if err != nil {
		t.Fatal(err)
	}
	if nh.Ifindex != l.Attrs().Index || nh.SrcMAC.String() != l.Attrs().HardwareAddr.String() || nh.DstMAC.String() != mac1.String() {
		t.Fatalf("next hop %+v; want ifindex %d, %v -> %v", nh, l.Attrs().Index, l.Attrs().HardwareAddr, mac1)
	}
	if _, err := r.Resolve(netip.MustParseAddr("192.0.2.11")); !errors.Is(err, errNoNeighbour) {
		t.Fatalf("no neighbour: %v", err)
	}
	mac2 := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	neigh.HardwareAddr = mac2
	if err := netlink.NeighSet(neigh); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if nh, err = r.Resolve(netip.MustParseAddr("192.0.2.10")); err != nil || nh.DstMAC.String() != mac2.String() {
		t.Fatalf("after the MAC change: %+v, %v", nh, err)
	}
	other := &NetlinkResolver{Ifindexes: []int{p.Attrs().Index}}
	if _, err := other.Resolve(netip.MustParseAddr("192.0.2.10")); err == nil {
		t.Fatal("resolved out of an interface the datapath does not serve")
	}
}
