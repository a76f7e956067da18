package ha

import (
	"context"
	"errors"
	"log/slog"
)

// Hooks are what an active node does around the VIPs. Each may be nil.
type Hooks struct {
	// Restore runs on gaining leadership, before the VIPs are taken: the
	// local store is complete (Range it to rebuild calls and media). An
	// error hands leadership away (StepDown) and takes no VIPs.
	Restore func(ctx context.Context) error
	// Serve runs once the VIPs are up and announced: start answering on
	// them.
	Serve func()
	// Stop runs on losing leadership (or when Follow ends), after the
	// VIPs are gone: stop serving at once.
	Stop func()
}

// Follow makes this node act on effective leadership until ctx ends: on
// a gain Restore, TakeVIPs (address + gratuitous ARP), Serve; on a loss
// ReleaseVIPs first, then Stop (fencing: the VIPs go before anything
// else). It releases the VIPs once at the start, in case a killed
// process left them on the interface. It consumes Leadership(): nothing
// else may read it.
func Follow(ctx context.Context, n *Node, vips []VIP, h Hooks) error {
	return FollowLeader(ctx, n, VIPs(vips), n.log.With("vips", len(vips)), h)
}

// Leader is what the follow loop needs of the Raft node (*Node is one):
// a caller's order around it can then be tested with a fake.
type Leader interface {
	// Leadership reports effective leadership changes; the loop is its
	// only reader.
	Leadership() <-chan bool
	IsLeader() bool
	// StepDown hands leadership to another voter.
	StepDown() error
}

// VIPHolder takes and releases the service addresses: VIPs on a host, a
// recorder in tests.
type VIPHolder interface {
	Take() error
	Release() error
}

// VIPs is a VIPHolder through netlink (TakeVIPs, ReleaseVIPs).
type VIPs []VIP

func (vs VIPs) Take() error    { return TakeVIPs(vs) }
func (vs VIPs) Release() error { return ReleaseVIPs(vs) }

// FollowLeader is Follow over any Leader and VIPHolder, logging to log.
func FollowLeader(ctx context.Context, n Leader, vips VIPHolder, log *slog.Logger, h Hooks) error {
	if err := vips.Release(); err != nil {
		return err
	}
	active := false
	lose := func(why string) {
		if !active {
			return
		}
		active = false
		if err := vips.Release(); err != nil {
			log.Error("release VIPs", "error", err)
		}
		if h.Stop != nil {
			h.Stop()
		}
		log.Warn("standby: VIPs released, serving stopped", "why", why)
	}
	defer lose("follow ended")
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case v := <-n.Leadership():
			if !v || !n.IsLeader() {
				lose("leadership lost")
				continue
			}
			if active {
				continue
			}
			if h.Restore != nil {
				if err := h.Restore(ctx); err != nil {
					log.Error("restore failed: handing leadership over", "error", err)
					_ = n.StepDown()
					continue
				}
			}
			if !n.IsLeader() { // lost while restoring
				continue
			}
			if err := vips.Take(); err != nil {
				log.Error("take VIPs failed: handing leadership over", "error", err)
				_ = vips.Release()
				_ = n.StepDown()
				continue
			}
			active = true
			if h.Serve != nil {
				h.Serve()
			}
			log.Info("active: VIPs taken and announced")
		}
	}
}

// StepDown hands leadership to another voter (raft's leadership
// transfer) and waits for the outcome.
func (n *Node) StepDown() error {
	err := n.raft.LeadershipTransfer().Error()
	if err != nil && !errors.Is(err, ErrNotLeader) {
		return mapErr(err)
	}
	return nil
}
