package mediarelay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// NetlinkResolver finds next hops in the kernel's route and neighbour
// tables. The neighbour table (and the links' MACs) is read in one dump at
// most once per Refresh, routes are cached as long; the offloader asks on
// every tick, so a neighbour whose MAC changed is seen within two ticks
// and its flows are reinstalled.
//
// It never resolves on its own: by the time a stream is offloaded the
// relay has sent to both peers, so the kernel has their neighbour entries.
type NetlinkResolver struct {
	// Ifindexes the datapath can send out of; others are refused (the
	// stream stays in user space). Empty: any.
	Ifindexes []int
	Refresh   time.Duration // default 1s

	mu     sync.Mutex
	loaded time.Time
	neigh  map[netip.Addr]neighEntry
	links  map[int]net.HardwareAddr
	routes map[netip.Addr]routeEntry
}

type neighEntry struct {
	ifindex int
	mac     net.HardwareAddr
}

type routeEntry struct {
	ifindex int
	via     netip.Addr
}

// errNoNeighbour: the next hop has no usable neighbour entry (yet).
var errNoNeighbour = errors.New("no neighbour entry")

// usable neighbour states: the MAC is known (STALE still forwards; the
// kernel would revalidate it on use, which the XDP path does not do, so a
// changed MAC is picked up by the periodic re-read instead).
const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// Resolve returns the interface, its MAC, and the next hop's MAC toward dst.
func (r *NetlinkResolver) Resolve(dst netip.Addr) (NextHop, error) {
	dst = dst.Unmap()
	r.mu.Lock()
	defer r.mu.Unlock()
	refresh := r.Refresh
	if refresh <= 0 {
		refresh = time.Second
	}
	if time.Since(r.loaded) > refresh {
		if err := r.reload(); err != nil {
			return NextHop{}, err
		}
	}
	rt, ok := r.routes[dst]
	if !ok {
		routes, err := netlink.RouteGet(dst.AsSlice())
		if err != nil || len(routes) == 0 {
			return NextHop{}, fmt.Errorf("route to %v: %w", dst, err)
		}
		rt.ifindex = routes[0].LinkIndex
		rt.via = dst
		if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil && !gw.IsUnspecified() {
			rt.via = gw.Unmap()
		}
		r.routes[dst] = rt
	}
	if len(r.Ifindexes) > 0 && !contains(r.Ifindexes, rt.ifindex) {
		return NextHop{}, fmt.Errorf("route to %v leaves through ifindex %d, which has no kernel datapath", dst, rt.ifindex)
	}
	n, ok := r.neigh[rt.via]
	if !ok || n.ifindex != rt.ifindex {
		return NextHop{}, fmt.Errorf("next hop %v of %v: %w", rt.via, dst, errNoNeighbour)
	}
	src := r.links[rt.ifindex]
	if len(src) != 6 {
		return NextHop{}, fmt.Errorf("ifindex %d has no Ethernet address", rt.ifindex)
	}
	return NextHop{Ifindex: rt.ifindex, SrcMAC: src, DstMAC: n.mac}, nil
}

func (r *NetlinkResolver) reload() error {
	neigh := map[netip.Addr]neighEntry{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := netlink.NeighList(0, fam)
		if err != nil {
			return fmt.Errorf("neighbour table: %w", err)
		}
		for _, n := range list {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || n.State&usableNUD == 0 || len(n.HardwareAddr) != 6 {
				continue
			}
			neigh[ip.Unmap()] = neighEntry{ifindex: n.LinkIndex, mac: n.HardwareAddr}
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("links: %w", err)
	}
	lm := map[int]net.HardwareAddr{}
	for _, l := range links {
		lm[l.Attrs().Index] = l.Attrs().HardwareAddr
	}
	r.neigh, r.links, r.loaded = neigh, lm, time.Now()
	r.routes = map[netip.Addr]routeEntry{} // routes expire with the neighbours
	return nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
