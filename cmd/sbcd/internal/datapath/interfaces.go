package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/config"
)

// Link is what the interface discovery reads of a network interface.
type Link struct {
	Name     string
	Index    int
	Loopback bool
}

// Addr is an address on an interface.
type Addr struct {
	IP        netip.Addr
	LinkIndex int
}

// Host is the interface table the discovery reads: Netlink on a host, a
// table in tests.
type Host interface {
	Addrs() ([]Addr, error)
	LinkByName(name string) (Link, error)
	LinkByIndex(index int) (Link, error)
}

// Interfaces finds the interface holding each realm's media address, once
// each, in realm order, with their indexes. On an HA node whose realms'
// media addresses are VIPs (not on any interface until this node leads)
// it is the VIP's interface (ha.vips iface), so the program is attached
// before the takeover and the new active node forwards the restored
// calls' flows in the kernel. An address on loopback, or on no interface,
// is bpf.ErrUnsupported: the kernel path cannot serve that realm.
func Interfaces(cfg *config.Config, h Host) (names []string, idx []int, err error) {
	addrs, err := h.Addrs()
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	seen := map[int]bool{}
	add := func(l Link) {
		if !seen[l.Index] {
			seen[l.Index] = true
			names = append(names, l.Name)
			idx = append(idx, l.Index)
		}
	}
	for _, r := range cfg.Realms {
		want := r.MediaAddr()
		if ifname, ok := vipIface(cfg, want); ok {
			l, err := h.LinkByName(ifname)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: realm %s media address %s: VIP interface %s: %v", bpf.ErrUnsupported, r.Name, want, ifname, err)
			}
			if l.Loopback {
				return nil, nil, fmt.Errorf("%w: realm %s VIP %s is on loopback %s", bpf.ErrUnsupported, r.Name, want, ifname)
			}
			add(l)
			continue
		}
		found := false
		for _, a := range addrs {
			if a.IP.Unmap() != want.Unmap() {
				continue
			}
			l, err := h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, nil, fmt.Errorf("realm %s media address %s: %w", r.Name, want, err)
			}
			if l.Loopback {
				return nil, nil, fmt.Errorf("%w: realm %s media address %s is on loopback %s", bpf.ErrUnsupported, r.Name, want, l.Name)
			}
			found = true
			add(l)
		}
		if !found {
			return nil, nil, fmt.Errorf("%w: realm %s media address %s is on no interface", bpf.ErrUnsupported, r.Name, want)
		}
	}
	return names, idx, nil
}

// vipIface is the interface of the ha VIP that is addr, if any.
func vipIface(cfg *config.Config, addr netip.Addr) (string, bool) {
	if cfg.HA == nil {
		return "", false
	}
	for _, v := range cfg.HA.VIPs {
		if v.Prefix().Addr().Unmap() == addr.Unmap() {
			return v.Iface, true
		}
	}
	return "", false
}

// Netlink is the Host of this network namespace, read through netlink.
type Netlink struct{}

func (Netlink) Addrs() ([]Addr, error) {
	list, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	out := make([]Addr, 0, len(list))
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, Addr{IP: ip, LinkIndex: a.LinkIndex})
		}
	}
	return out, nil
}

func (Netlink) LinkByName(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return Link{}, err
	}
	return link(l), nil
}

func (Netlink) LinkByIndex(index int) (Link, error) {
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		return Link{}, err
	}
	return link(l), nil
}

func link(l netlink.Link) Link {
	a := l.Attrs()
	return Link{Name: a.Name, Index: a.Index, Loopback: a.Flags&net.FlagLoopback != 0}
}
