package main

import (
	"fmt"
	"log/slog"
	"os"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/ha"
	"github.com/edgesbc/edgesbc/sbc"
	"github.com/edgesbc/edgesbc/sbc/config"
)

// haCalls ties the B2BUA's calls to the ha node: records go to the node's
// store, and the SBC serves only while this node leads. In an HA pair
// (ha section with peers) leading also means holding the VIPs; with an
// ha section without peers, or state_dir, the node leads alone and the
// store keeps its calls across a restart. A nil *haCalls is "no HA".
type haCalls struct {
	node *ha.Node
	vips []ha.VIP
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	active bool
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
	h := &haCalls{node: n, vips: haVIPs(&c), log: log, stop: make(chan struct{}), done: make(chan struct{})}
	// A node starts as standby: VIPs left on its interfaces by a crash of
	// the previous run (kill -9 leaves the addresses in the kernel) go
	// first, or it would answer ARP for them beside the active node.
	if len(h.vips) > 0 {
		if err := ha.ReleaseVIPs(h.vips); err != nil {
			log.Warn("releasing VIPs left from an earlier run failed", "error", err)
		}
	}
	opt.Store = n
	opt.Standby = true
	opt.FreeBind = len(h.vips) > 0
	return h, nil
}

// run follows leadership until close: gained, restore the calls and serve
// them, then take the VIPs; lost, stop serving at once, drop the VIPs and
// let go of the calls. Leadership's channel may skip values, so each
// wake-up acts on the node's current truth.
func (h *haCalls) run(s *sbc.SBC) {
	if h == nil {
		return
	}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-h.node.Leadership():
			case <-tick.C:
			}
			h.follow(s, h.node.IsLeader())
		}
	}()
}

func (h *haCalls) follow(s *sbc.SBC, lead bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if lead == h.active {
		return
	}
	h.active = lead
	if lead {
		start := time.Now()
		// Every entry an earlier leader committed is applied here before
		// the store is read.
		if err := h.node.Barrier(2 * time.Second); err != nil {
			h.log.Warn("raft barrier before restore failed; restoring what is applied", "error", err)
		}
		restored, bad := s.TakeOver()
		if len(h.vips) > 0 {
			if err := ha.TakeVIPs(h.vips); err != nil {
				h.log.Error("taking the VIPs failed", "error", err)
			}
		}
		s.Serve()
		h.log.Info("takeover done", "restored", restored, "bad_records", bad, "took", time.Since(start).Round(time.Millisecond))
		return
	}
	s.Fence()
	if len(h.vips) > 0 {
		if err := ha.ReleaseVIPs(h.vips); err != nil {
			h.log.Error("releasing the VIPs failed", "error", err)
		}
	}
	s.Deactivate()
}

// admin adds /api/v1/ha to the SBC's admin API.
func (h *haCalls) admin(next http.Handler) http.Handler {
	if h == nil {
		return next
	}
	return haAdmin(h.node, next)
}

// close stops following leadership, drops the VIPs if held, and closes
// the node. Called after the SBC closed (its last records written).
func (h *haCalls) close() {
	if h == nil {
		return
	}
	close(h.stop)
	<-h.done
	h.mu.Lock()
	if h.active && len(h.vips) > 0 {
		_ = ha.ReleaseVIPs(h.vips)
	}
	h.mu.Unlock()
	_ = h.node.Close()
}
