// Package datapath is sbcd's kernel datapath: which interfaces carry the
// realms' media addresses (or, on an HA pair, the VIPs that will), loading
// the BPF program there as media.datapath asks, reconciling pinned flows
// after a restart and fencing them on a standby. It joins the config's
// realms and VIPs with bpf and mediarelay, and needs neither the B2BUA
// nor Raft.
package datapath

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// Kernel is sbcd's kernel datapath: the BPF program on the media
// interfaces, or nothing (user space; every method is then a no-op).
type Kernel struct {
	dp  *bpf.Datapath
	log *slog.Logger
}

// Open loads the kernel fast path as media.datapath asks and puts it into
// the relay's config. With auto, anything that keeps it from loading is
// logged in one line and media stays in user space; with xdp or tc it is
// an error.
func Open(cfg *config.Config, log *slog.Logger, rc *mediarelay.Config) (*Kernel, error) {
	mode := cfg.Media.Datapath
	if !mode.Kernel() {
		log.Info("media datapath: user-space relay (media.datapath: userspace)")
		return &Kernel{log: log}, nil
	}
	fail := func(err error) (*Kernel, error) {
		if mode.Forced() {
			return nil, fmt.Errorf("media.datapath %s: %w", mode, err)
		}
		log.Warn("media datapath: kernel fast path unavailable, relaying media in user space", "reason", err.Error())
		return &Kernel{log: log}, nil
	}
	ifaces, idx, err := Interfaces(cfg, Netlink{})
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
	return &Kernel{dp: dp, log: log}, nil
}

// Reconcile removes pinned flows that no call of a owns: after a restart,
// the flows of calls this sbcd does not know (none restored, or no
// persistence at all) would otherwise forward forever. With persisted
// calls it runs after they are restored (cmd/sbcd/internal/failover), so
// theirs are kept.
func (k *Kernel) Reconcile(a *mediarelay.Anchor) {
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
func (k *Kernel) Close() {
	if k.dp != nil {
		_ = k.dp.Close()
	}
}

// Fence removes every flow from the kernel maps, pinned ones an earlier
// run left included: an HA node that does not lead (starting as standby,
// or fenced after losing leadership) must never forward for a VIP it no
// longer holds. The program stays attached; with no flows it passes every
// packet to the stack. Flows come back from the relay's offloader after
// the next takeover's restore, once next hops resolve.
func (k *Kernel) Fence(why string) {
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

// pinDir is this instance's pin directory: one per network namespace (one
// SBC node per namespace), named by the namespace's inode.
func pinDir() (string, error) {
	d, err := bpf.NetnsPinDir("/proc/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("%w: %v", bpf.ErrUnsupported, err)
	}
	return d, nil
}
