package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// kernelPath is sbcd's kernel datapath: the BPF program on the media
// interfaces, or nothing (user space).
type kernelPath struct {
	dp  *bpf.Datapath
	log *slog.Logger
}

// openDatapath loads the kernel fast path as media.datapath asks and puts
// it into the relay's config. With auto, anything that keeps it from
// loading is logged in one line and media stays in user space; with xdp or
// tc it is an error.
func openDatapath(cfg *config.Config, log *slog.Logger, rc *mediarelay.Config) (*kernelPath, error) {
	mode := cfg.Media.Datapath
	if !mode.Kernel() {
		log.Info("media datapath: user-space relay (media.datapath: userspace)")
		return &kernelPath{log: log}, nil
	}
	fail := func(err error) (*kernelPath, error) {
		if mode.Forced() {
			return nil, fmt.Errorf("media.datapath %s: %w", mode, err)
		}
		log.Warn("media datapath: kernel fast path unavailable, relaying media in user space", "reason", err.Error())
		return &kernelPath{log: log}, nil
	}
	ifaces, idx, err := mediaInterfaces(cfg)
	if err != nil {
		return fail(err)
	}
	pin, err := pinDir()
	if err != nil {
		return fail(err)
	}
	dp, err := bpf.Open(bpf.Options{Interfaces: ifaces, Mode: string(mode), PinDir: pin, Logger: log})
	if err != nil {
		return fail(err)
	}
	log.Info("media datapath: kernel fast path", "path", dp.Path(), "interfaces", strings.Join(ifaces, ","), "pin_dir", pin)
	rc.Datapath = mediarelay.KernelDatapath(dp)
	rc.Resolver = &mediarelay.NetlinkResolver{Ifindexes: idx}
	return &kernelPath{dp: dp, log: log}, nil
}

// reconcile removes pinned flows that no call owns: after a restart, the
// flows of calls this sbcd does not know (none restored, or no persistence
// at all) would otherwise forward forever. With persisted calls it runs
// after they are restored (hacalls.go), so theirs are kept.
func (k *kernelPath) reconcile(a *mediarelay.Anchor) {
	if k.dp == nil {
		return
	}
	kept, removed, err := a.ReconcileFlows(a.OwnedFlows())
	if err != nil {
		k.log.Warn("media datapath: reconciling pinned flows", "err", err)
	}
	k.log.Info("media datapath: pinned flows reconciled", "kept", kept, "removed_orphans", removed)
}

// Close lets go of the datapath; its pinned program and flows stay, so
// media of calls still up keeps flowing while sbcd restarts.
func (k *kernelPath) Close() {
	if k.dp != nil {
		_ = k.dp.Close()
	}
}

// fence removes every flow from the kernel maps, pinned ones an earlier
// run left included: an HA node that does not lead (starting as standby,
// or fenced after losing leadership) must never forward for a VIP it no
// longer holds. The program stays attached; with no flows it passes every
// packet to the stack. Flows come back from the relay's offloader after
// the next takeover's restore, once next hops resolve.
func (k *kernelPath) fence(why string) {
	if k == nil || k.dp == nil {
		return
	}
	flows, err := k.dp.Flows()
	if err != nil {
		k.log.Warn("media datapath: listing flows to fence", "err", err)
		return
	}
	removed := 0
	for key := range flows {
		if err := k.dp.Delete(key); err != nil {
			k.log.Warn("media datapath: removing a flow while fencing", "err", err)
			continue
		}
		removed++
	}
	k.log.Info("media datapath: kernel flows removed", "why", why, "removed", removed)
}

// mediaInterfaces finds the interface holding each realm's media address.
// On an HA node whose realms' media addresses are VIPs (not on any
// interface until this node leads) it is the VIP's interface (ha.vips
// iface), so the program is attached before the takeover and the new
// active node forwards the restored calls' flows in the kernel.
func mediaInterfaces(cfg *config.Config) (names []string, idx []int, err error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("list addresses: %w", err)
	}
	seen := map[int]bool{}
	for _, r := range cfg.Realms {
		want := r.MediaAddr()
		if ifname, ok := vipIface(cfg, want); ok {
			l, err := netlink.LinkByName(ifname)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: realm %s media address %s: VIP interface %s: %v", bpf.ErrUnsupported, r.Name, want, ifname, err)
			}
			if l.Attrs().Flags&net.FlagLoopback != 0 {
				return nil, nil, fmt.Errorf("%w: realm %s VIP %s is on loopback %s", bpf.ErrUnsupported, r.Name, want, ifname)
			}
			if i := l.Attrs().Index; !seen[i] {
				seen[i] = true
				names = append(names, ifname)
				idx = append(idx, i)
			}
			continue
		}
		found := false
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.Unmap() != want.Unmap() {
				continue
			}
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, nil, fmt.Errorf("realm %s media address %s: %w", r.Name, want, err)
			}
			if l.Attrs().Flags&net.FlagLoopback != 0 {
				return nil, nil, fmt.Errorf("%w: realm %s media address %s is on loopback %s", bpf.ErrUnsupported, r.Name, want, l.Attrs().Name)
			}
			found = true
			if !seen[a.LinkIndex] {
				seen[a.LinkIndex] = true
				names = append(names, l.Attrs().Name)
				idx = append(idx, a.LinkIndex)
			}
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

// pinDir is this instance's pin directory: one per network namespace (one
// SBC node per namespace), named by the namespace's inode.
func pinDir() (string, error) {
	d, err := bpf.NetnsPinDir("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("%w: %v", bpf.ErrUnsupported, err)
	}
	return d, nil
}
