// Package failover is sbcd's HA follow order: which of the B2BUA, the
// kernel datapath and the VIPs moves first when this node gains or loses
// leadership, and what a stalled node does. It drives the calls and the
// flows through the small interfaces and hooks it defines (sbcd passes
// *sbc.SBC and its kernel datapath), so the order can be tested with
// fakes; main keeps only the wiring.
package failover

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/edgesbc/edgesbc/ha"
)

// Calls is the B2BUA as a failover drives it (*sbc.SBC is one).
type Calls interface {
	// TakeOver restores every call from the store; it serves nothing yet.
	TakeOver() (restored, bad int)
	// Serve starts answering SIP (once the VIPs are up).
	Serve()
	// Deactivate stops serving at once and lets go of the calls.
	Deactivate()
}

// Config is what a Failover ties together. Leader and Calls are needed;
// the rest may be nil.
type Config struct {
	Leader ha.Leader
	// VIPs are the pair's service addresses; nil on a node alone (an ha
	// section without peers, or state_dir), which leads by itself and has
	// nobody to fence against.
	VIPs  ha.VIPHolder
	Calls Calls
	// AfterRestore runs once the calls are restored, before the VIPs are
	// taken: the kernel datapath drops the pinned flows no restored call
	// owns.
	AfterRestore func()
	// Fence removes every kernel flow. With VIPs it runs before this node
	// follows leadership (it starts as standby, and flows pinned by a
	// killed earlier run must not forward for VIPs the other node now
	// holds) and on losing leadership, around ending the calls.
	Fence func(why string)
	Log   *slog.Logger
	// FollowLog takes the follow loop's own lines (active, standby,
	// restore failed); nil: Log. sbcd tags them as the ha node's.
	FollowLog *slog.Logger
}

// Failover follows leadership for one node. A nil *Failover is "no HA":
// every method is a no-op.
type Failover struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg; Run starts following.
func New(cfg Config) (*Failover, error) {
	if cfg.Leader == nil || cfg.Calls == nil {
		return nil, errors.New("failover: a Leader and Calls are needed")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.FollowLog == nil {
		cfg.FollowLog = cfg.Log
	}
	return &Failover{cfg: cfg, done: make(chan struct{})}, nil
}

// pair says whether this node has VIPs, that is a peer to fence against
// and to hand calls to.
func (f *Failover) pair() bool { return f.cfg.VIPs != nil }

func (f *Failover) fence(why string) {
	if f.cfg.Fence != nil && f.pair() {
		f.cfg.Fence(why)
	}
}

// Run fences the kernel flows, then follows leadership until Close
// (ha.FollowLeader, which first drops VIPs a crash of an earlier run left
// on the interfaces): gained, restore every call into the B2BUA and the
// media relay, reprogram the flows, take the VIPs, serve SIP; lost, drop
// the VIPs, fence the flows, stop serving at once and let go of the
// calls, fence again. healthy is the watchdog's verdict (nil: always
// healthy): a stalled node refuses to take over. Run at most once.
func (f *Failover) Run(healthy func() bool) {
	if f == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.fence("standby at start")
	vips := f.cfg.VIPs
	if vips == nil {
		vips = ha.VIPs(nil)
	}
	calls, log := f.cfg.Calls, f.cfg.Log
	go func() {
		defer close(f.done)
		var start time.Time
		var restored, bad int
		err := ha.FollowLeader(ctx, f.cfg.Leader, vips, f.cfg.FollowLog, ha.Hooks{
			Restore: func(context.Context) error {
				if healthy != nil && !healthy() {
					return errors.New("watchdog sees a stall: not taking over")
				}
				start = time.Now()
				restored, bad = calls.TakeOver() // a bad record is counted and skipped, not fatal
				if f.cfg.AfterRestore != nil {
					f.cfg.AfterRestore()
				}
				return nil
			},
			Serve: func() {
				calls.Serve()
				// Tests (and the offload restart test) wait for this line.
				log.Info("takeover done", "restored", restored, "bad_records", bad, "took", time.Since(start).Round(time.Millisecond))
			},
			Stop: func() {
				f.fence("leadership lost") // first, so the kernel stops forwarding at once
				calls.Deactivate()
				f.fence("leadership lost, calls ended") // flows the offloader put back meanwhile
			},
		})
		if err != nil && ctx.Err() == nil {
			log.Error("following HA leadership stopped", "error", err)
		}
	}()
}

// Stalled runs after every watchdog round that found a stall: a node of
// an HA pair that is alive but stuck must not keep the VIPs, so that the
// standby takes the calls. The VIPs go first, on their own, without
// waiting for the follow loop (its Stop may be stuck in the stalled SIP
// or media code); then leadership is handed over. Restore refuses while
// the stall lasts, and a node that leads again anyway hands over again on
// the next round.
func (f *Failover) Stalled(components []string) {
	if f == nil || !f.pair() {
		return // a single node: nobody to hand the calls to
	}
	log := f.cfg.Log
	if err := f.cfg.VIPs.Release(); err != nil {
		log.Error("stalled: release VIPs", "error", err)
	}
	if f.cfg.Leader.IsLeader() {
		log.Error("stalled: VIPs released, handing leadership over", "components", components)
		if err := f.cfg.Leader.StepDown(); err != nil {
			log.Error("stalled: step down", "error", err)
		}
	}
}

// Close stops following leadership (dropping the VIPs if held, then
// Stop). Call it after the SBC closed (its last records written) and
// before the Raft node closes.
func (f *Failover) Close() {
	if f == nil || f.cancel == nil {
		return
	}
	f.cancel()
	<-f.done
}
