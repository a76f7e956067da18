package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/config"
)

// table is a Host from a list of links and addresses.
type table struct {
	links   []Link
	addrs   []Addr
	addrErr error
}

func (t table) Addrs() ([]Addr, error) { return t.addrs, t.addrErr }
func (t table) LinkByName(name string) (Link, error) {
	for _, l := range t.links {
		if l.Name == name {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("link %s not found", name)
}
func (t table) LinkByIndex(i int) (Link, error) {
	for _, l := range t.links {
		if l.Index == i {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("link %d not found", i)
}

var (
	lo   = Link{Name: "lo", Index: 1, Loopback: true}
	eth0 = Link{Name: "eth0", Index: 2}
	eth1 = Link{Name: "eth1", Index: 3}
	lab  = table{links: []Link{lo, eth0, eth1}, addrs: []Addr{
		{netip.MustParseAddr("127.0.0.1"), 1},
		{netip.MustParseAddr("198.51.100.1"), 2},
		{netip.MustParseAddr("2001:db8::1"), 2},
		{netip.MustParseAddr("203.0.113.1"), 3},
		{netip.MustParseAddr("::ffff:192.0.2.7"), 3}, // a v4-mapped form
	}}
)

// cfg is a config with one realm per media address ("listen IP" or
// "media IP" when prefixed "media="), and the given VIPs (iface=prefix).
func cfg(realms []string, vips ...string) *config.Config {
	c := &config.Config{}
	for i, a := range realms {
		r := config.Realm{Name: fmt.Sprintf("r%d", i), Listen: netip.AddrPortFrom(netip.MustParseAddr(strings.TrimPrefix(a, "media=")), 5060).String()}
		if m, ok := strings.CutPrefix(a, "media="); ok {
			r.Listen = "192.0.2.200:5060"
			r.Media.Address = m
		}
		c.Realms = append(c.Realms, r)
	}
	if len(vips) > 0 {
		c.HA = &config.HA{}
		for _, v := range vips {
			iface, p, _ := strings.Cut(v, "=")
			c.HA.VIPs = append(c.HA.VIPs, config.HAVIP{Iface: iface, Address: p})
		}
	}
	return c
}

func TestInterfaces(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   *config.Config
		host  table
		names []string
		idx   []int
		err   string // "" for none; bpf.ErrUnsupported must wrap it unless noWrap
		plain bool   // the error is not bpf.ErrUnsupported
	}{
		{name: "one realm per interface", cfg: cfg([]string{"198.51.100.1", "203.0.113.1"}), host: lab,
			names: []string{"eth0", "eth1"}, idx: []int{2, 3}},
		{name: "two realms on one interface, listed once", cfg: cfg([]string{"198.51.100.1", "2001:db8::1"}), host: lab,
			names: []string{"eth0"}, idx: []int{2}},
		{name: "realm order", cfg: cfg([]string{"203.0.113.1", "198.51.100.1"}), host: lab,
			names: []string{"eth1", "eth0"}, idx: []int{3, 2}},
		{name: "media address over listen address", cfg: cfg([]string{"media=203.0.113.1"}), host: lab,
			names: []string{"eth1"}, idx: []int{3}},
		{name: "v4-mapped address on the interface", cfg: cfg([]string{"192.0.2.7"}), host: lab,
			names: []string{"eth1"}, idx: []int{3}},
		{name: "VIPs not up yet: their interfaces", cfg: cfg([]string{"198.51.100.50", "203.0.113.50"}, "eth1=198.51.100.50/24", "eth0=203.0.113.50/24"), host: lab,
			names: []string{"eth1", "eth0"}, idx: []int{3, 2}},
		{name: "a VIP up already still goes by its iface", cfg: cfg([]string{"198.51.100.1"}, "eth1=198.51.100.1/24"), host: lab,
			names: []string{"eth1"}, idx: []int{3}},
		{name: "VIP and plain realm", cfg: cfg([]string{"198.51.100.50", "203.0.113.1"}, "eth0=198.51.100.50/24"), host: lab,
			names: []string{"eth0", "eth1"}, idx: []int{2, 3}},
		{name: "VIP on a missing interface", cfg: cfg([]string{"198.51.100.50"}, "eth9=198.51.100.50/24"), host: lab,
			err: "VIP interface eth9"},
		{name: "VIP on loopback", cfg: cfg([]string{"198.51.100.50"}, "lo=198.51.100.50/24"), host: lab,
			err: "VIP 198.51.100.50 is on loopback lo"},
		{name: "address on loopback", cfg: cfg([]string{"198.51.100.1", "127.0.0.1"}), host: lab,
			err: "realm r1 media address 127.0.0.1 is on loopback lo"},
		{name: "address on no interface", cfg: cfg([]string{"198.51.100.1", "198.51.100.9"}), host: lab,
			err: "realm r1 media address 198.51.100.9 is on no interface"},
		{name: "address on a link that vanished", cfg: cfg([]string{"198.51.100.1"}), host: table{addrs: lab.addrs},
			err: "realm r0 media address 198.51.100.1: link 2 not found", plain: true},
		{name: "addresses cannot be listed", cfg: cfg([]string{"198.51.100.1"}), host: table{addrErr: errors.New("netlink: permission denied")},
			err: "list addresses: netlink: permission denied", plain: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			names, idx, err := Interfaces(c.cfg, c.host)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				if got := errors.Is(err, bpf.ErrUnsupported); got == c.plain {
					t.Fatalf("errors.Is(%v, bpf.ErrUnsupported) = %v", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, c.names) || !slices.Equal(idx, c.idx) {
				t.Fatalf("got %v %v, want %v %v", names, idx, c.names, c.idx)
			}
		})
	}
}

// TestPrivilegedInterfacesNetlink: in a network namespace of its own,
// Netlink finds a realm's address on its veth, a VIP's interface with no
// address on it yet, and refuses an address on loopback.
func TestPrivilegedInterfacesNetlink(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the privileged tests as root")
		}
		t.Skip("needs root (a network namespace of its own)")
	}
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

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dpa0"}, PeerName: "dpb0"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	a, err := netlink.LinkByName("dpa0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := netlink.LinkByName("dpb0")
	if err != nil {
		t.Fatal(err)
	}
	lol, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{a, b, lol} {
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	addr, _ := netlink.ParseAddr("198.51.100.1/24")
	if err := netlink.AddrAdd(a, addr); err != nil {
		t.Fatal(err)
	}
	// realm 0 on dpa0's address, realm 1 on a VIP of dpb0 not up yet.
	names, idx, err := Interfaces(cfg([]string{"198.51.100.1", "203.0.113.50"}, "dpb0=203.0.113.50/24"), Netlink{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dpa0", "dpb0"}; !slices.Equal(names, want) || !slices.Equal(idx, []int{a.Attrs().Index, b.Attrs().Index}) {
		t.Fatalf("got %v %v, want %v [%d %d]", names, idx, want, a.Attrs().Index, b.Attrs().Index)
	}
	if _, _, err := Interfaces(cfg([]string{"127.0.0.1"}), Netlink{}); !errors.Is(err, bpf.ErrUnsupported) || !strings.Contains(err.Error(), "loopback lo") {
		t.Fatalf("loopback: %v", err)
	}
	if _, _, err := Interfaces(cfg([]string{"198.51.100.1"}, "nosuch0=198.51.100.1/24"), Netlink{}); !errors.Is(err, bpf.ErrUnsupported) {
		t.Fatalf("VIP on a missing interface: %v", err)
	}
}
