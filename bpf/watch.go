package bpf

import (
	"fmt"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// watch re-checks XDP redirect delivery every interval while the native
// XDP path is in use. In auto mode a problem switches the datapath to tc
// (hitless for flows: the maps stay, tcx attaches before XDP detaches);
// with xdp forced it only logs.
func (d *Datapath) watch(interval time.Duration) {
	defer d.wg.Done()
	// This goroutine's thread joins the datapath's netns for good and is
	// discarded when the goroutine ends (never unlocked).
	runtime.LockOSThread()
	if err := netns.Set(d.nsHandle); err != nil {
		d.log.Warn("bpf: delivery watchdog off", "err", err)
		return
	}
	last := d.xmitCounts()
	warned := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		now := d.xmitCounts()
		problem := d.deliveryProblem(last, now)
		last = now
		if problem == "" {
			continue
		}
		if d.opts.Mode != "auto" {
			if !warned {
				d.log.Warn("bpf: xdp redirects are being dropped (xdp forced, not falling back)", "why", problem)
				warned = true
			}
			continue
		}
		if d.fallback(problem) {
			return
		}
	}
}

type xmitCount struct{ sent, drops uint64 }

func (d *Datapath) xmitCounts() map[string]xmitCount {
	out := map[string]xmitCount{}
	if d.mon == nil {
		return out
	}
	for name, idx := range d.ifindex {
		s, dr, err := d.mon.counts(idx, d.netns, d.txMapID)
		if err == nil {
			out[name] = xmitCount{s, dr}
		}
	}
	return out
}

// deliveryProblem names an egress interface XDP redirects no longer reach:
// it lost xdp ndo-xmit, or it dropped redirected frames and took none.
func (d *Datapath) deliveryProblem(last, now map[string]xmitCount) string {
	for _, name := range d.opts.Interfaces {
		if feat, err := xdpFeatures(d.ifindex[name]); err == nil && feat&netdevXDPActNDOXmit == 0 {
			return fmt.Sprintf("%s lost xdp ndo-xmit (xdp-features %#x)", name, feat)
		}
		sent, drops := now[name].sent-last[name].sent, now[name].drops-last[name].drops
		if drops > 0 && sent == 0 {
			return fmt.Sprintf("%s dropped %d redirected frames and took none (xdp_devmap_xmit)", name, drops)
		}
	}
	return ""
}

// fallback moves every interface to tc. It reports whether it did.
func (d *Datapath) fallback(problem string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return true
	}
	unlock, err := lockDir(d.pinDir)
	if err != nil {
		d.log.Error("bpf: cannot fall back to tc", "why", problem, "err", err)
		return false
	}
	defer unlock()
	if err := d.attachAll(PathTC); err != nil {
		d.log.Error("bpf: cannot fall back to tc", "why", problem, "err", err)
		return false
	}
	d.path, d.reason = PathTC, "fell back from xdp: "+problem
	d.log.Warn("bpf: media fast path switched to tc", "why", problem)
	return true
}
