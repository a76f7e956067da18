package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/ha"
	"github.com/edgesbc/edgesbc/sbc"
)

// haCalls ties the B2BUA's calls to the ha node: records go to the node's
// store, and the SBC serves only while this node leads (ha.Follow). In an
// HA pair (ha section with peers) leading also means holding the VIPs;
// with an ha section without peers, or state_dir, the node leads alone
// and the store keeps its calls across a restart. A nil *haCalls is "no
// HA".
type haCalls struct {
	node   *ha.Node
	vips   []ha.VIP
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	// afterRestore runs once the calls are restored, before serving: the
	// kernel datapath drops the pinned flows no restored call owns.
	afterRestore func()
	// fence removes every kernel flow (datapath.go): run before this HA
	// pair node follows leadership (it starts as standby, and flows pinned
	// by a killed earlier run must not forward for VIPs the other node now
	// holds) and on losing leadership, around ending the calls.
	fence func(why string)
	// healthy is the watchdog's verdict: a stalled node takes no
	// leadership (Restore refuses) and gives it up (stalled).
	healthy func() bool
}

// newHACalls opens the ha node when the config asks for one and sets the
// SBC options for it: the call store, starting fenced, and IP_FREEBIND
// for listeners on VIPs that are not up yet.
func newHACalls(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, opt *sbc.Options) (*haCalls, error) {
	p := cfg.Persistence()
	if p == nil {
		return nil, nil
	}
	c := *cfg
	c.HA = p
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("ha data dir: %w", err)
	}
	n, err := openHA(&c, log, reg, false)
	if err != nil {
		return nil, err
	}
	h := &haCalls{node: n, vips: haVIPs(&c), log: log, done: make(chan struct{})}
	opt.Store = n
	opt.Standby = true
	opt.FreeBind = len(h.vips) > 0
	return h, nil
}

// run follows leadership until close (ha.Follow, which first drops VIPs a
// crash of an earlier run left on the interfaces): gained, restore every
// call into the B2BUA and the media relay, take the VIPs, serve SIP; lost,
// drop the VIPs, stop serving at once and let go of the calls.
func (h *haCalls) run(s *sbc.SBC) {
	if h == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	fence := func(why string) {
		if h.fence != nil && len(h.vips) > 0 {
			h.fence(why)
		}
	}
	fence("standby at start")
	go func() {
		defer close(h.done)
		var start time.Time
		var restored, bad int
		err := ha.Follow(ctx, h.node, h.vips, ha.Hooks{
			Restore: func(context.Context) error {
				if h.healthy != nil && !h.healthy() {
					return errors.New("watchdog sees a stall: not taking over")
				}
				start = time.Now()
				restored, bad = s.TakeOver() // a bad record is counted and skipped, not fatal
				if h.afterRestore != nil {
					h.afterRestore()
				}
				return nil
			},
			Serve: func() {
				s.Serve()
				// Tests (and the offload restart test) wait for this line.
				h.log.Info("takeover done", "restored", restored, "bad_records", bad, "took", time.Since(start).Round(time.Millisecond))
			},
			Stop: func() {
				fence("leadership lost") // first, so the kernel stops forwarding at once
				s.Deactivate()
				fence("leadership lost, calls ended") // flows the offloader put back meanwhile
			},
		})
		if err != nil && ctx.Err() == nil {
			h.log.Error("following HA leadership stopped", "error", err)
		}
	}()
}

// setHealth gives the watchdog's verdict to Restore.
func (h *haCalls) setHealth(f func() bool) {
	if h != nil {
		h.healthy = f
	}
}

// stalled runs after every watchdog round that found a stall: a node of
// an HA pair that is alive but stuck must not keep the VIPs, so that the
// standby takes the calls. The VIPs go first, through netlink alone,
// without waiting for Follow (its Stop may be stuck in the stalled SIP or
// media code); then leadership is handed over. Restore refuses while the
// stall lasts, and a node that leads again anyway hands over again on
// the next round.
func (h *haCalls) stalled(components []string) {
	if h == nil || len(h.vips) == 0 {
		return // a single node: nobody to hand the calls to
	}
	if err := ha.ReleaseVIPs(h.vips); err != nil {
		h.log.Error("stalled: release VIPs", "error", err)
	}
	if h.node.IsLeader() {
		h.log.Error("stalled: VIPs released, handing leadership over", "components", components)
		if err := h.node.StepDown(); err != nil {
			h.log.Error("stalled: step down", "error", err)
		}
	}
}

// admin adds /api/v1/ha to the SBC's admin API.
func (h *haCalls) admin(next http.Handler) http.Handler {
	if h == nil {
		return next
	}
	return haAdmin(h.node, next)
}

// close stops following leadership (dropping the VIPs if held) and closes
// the node. Called after the SBC closed (its last records written).
func (h *haCalls) close() {
	if h == nil {
		return
	}
	if h.cancel != nil {
		h.cancel()
		<-h.done
	}
	_ = h.node.Close()
}
