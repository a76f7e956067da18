package ha

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// leadership turns Raft's leadership into the effective leadership the
// SBC acts on (serve, hold VIPs):
//
//   - Raft's buffered NotifyCh (never LeaderCh, which drops transitions)
//     gives gains and losses. Raft steps a leader down itself when it has
//     not heard from a quorum for LeaderLease (CheckQuorum): a leader cut
//     off from both others stops within about LeaderLease (150 ms).
//   - On top, a lease check for a leader whose Raft loop is stuck (a disk
//     stall, say) and so never runs CheckQuorum: every leaseCheckEvery the
//     leader calls VerifyLeader (a heartbeat round through the Raft loop
//     to the voters); one that has not succeeded within 2*LeaderLease
//     drops effective leadership at once. A drop therefore comes at most
//     dropBound (2*LeaderLease + leaseCheckEvery, 350 ms) after the leader
//     last reached a quorum; it comes back when a later check passes.
//     Tolerant on purpose: on a loaded machine a single slow round must
//     not make the active node drop its VIPs.
//   - Effective leadership starts only after a Barrier (the local store
//     then holds every record committed before this leadership) and not
//     before dropBound has passed since this node last heard from the
//     previous leader (fencing: by then a cut-off previous leader has
//     dropped, whichever check caught it).
//   - A witness never acts as leader: it hands leadership over at once
//     (LeadershipTransfer), retrying while it holds it.
type leadership struct {
	n         *Node
	notify    <-chan bool
	out       chan bool
	effective atomic.Bool
	raftLead  atomic.Bool
	changes   atomic.Uint64
	since     atomic.Int64 // unix nanos of the last effective change
}

const (
	leaseCheckEvery  = 50 * time.Millisecond
	transferRetry    = 300 * time.Millisecond
	leadershipBuffer = 64
)

func newLeadership(n *Node, notify <-chan bool) *leadership {
	l := &leadership{n: n, notify: notify, out: make(chan bool, leadershipBuffer)}
	l.since.Store(time.Now().UnixNano())
	return l
}

func (l *leadership) run() {
	defer l.n.wg.Done()
	tick := time.NewTicker(leaseCheckEvery)
	defer tick.Stop()
	var (
		raftLeader bool
		leaseOK    = true
		verifying  bool
		verified   = make(chan verdict, 1)
		ready      bool // the barrier after winning has applied everything
		barriering bool
		barrierCh  = make(chan verdict, 1)
		gen        int // leadership generation: verdicts of an older one are stale
		lastXfer   time.Time
	)
	for {
		select {
		case <-l.n.closing:
			l.set(false)
			return
		case v := <-l.notify:
			raftLeader = v
			gen++
			l.raftLead.Store(v)
			leaseOK = true // a fresh win is a fresh lease
			ready = false
			if v {
				l.n.log.Info("raft leadership gained", "term", l.n.raft.Stats()["term"])
				if !l.n.cfg.Witness && !barriering {
					barriering = true
					go l.barrier(gen, l.n.raft.LastContact(), barrierCh)
				}
			} else {
				l.n.log.Warn("raft leadership lost")
			}
		case vd := <-barrierCh:
			barriering = false
			if vd.gen == gen && raftLeader {
				ready = vd.ok
			}
		case vd := <-verified:
			verifying = false
			if vd.gen != gen {
				break
			}
			ok := vd.ok
			if raftLeader && ok != leaseOK {
				if ok {
					l.n.log.Info("lease check passes again")
				} else {
					l.n.log.Warn("lease check failed: no quorum answered in time, acting as standby", "within", 2*l.n.cfg.LeaderLease)
					l.n.metrics.leaseFailures.Inc()
				}
			}
			leaseOK = ok
		case <-tick.C:
			if !raftLeader {
				break
			}
			if l.n.cfg.Witness {
				if time.Since(lastXfer) >= transferRetry {
					lastXfer = time.Now()
					go l.transfer()
				}
				break
			}
			if !verifying {
				verifying = true
				go l.verify(gen, verified)
			}
			if !ready && !barriering {
				barriering = true
				go l.barrier(gen, time.Time{}, barrierCh)
			}
		}
		if raftLeader && l.n.cfg.Witness && lastXfer.IsZero() {
			lastXfer = time.Now()
			go l.transfer()
		}
		if !raftLeader {
			lastXfer = time.Time{}
		}
		l.set(raftLeader && ready && leaseOK && !l.n.cfg.Witness)
	}
}

// barrier waits until every entry committed before this leadership is
// applied to the local store, so that whoever acts on a gain (restoring
// calls from Range) sees every record any earlier leader committed.
//
// It also fences: a previous leader that is alive but cut off keeps
// acting at most dropBound after it last reached this node (lastContact,
// read when the win was reported). The win is reported only after that;
// after a crash the election itself has usually taken about as long.
func (l *leadership) barrier(gen int, lastContact time.Time, res chan<- verdict) {
	err := l.n.raft.Barrier(2 * time.Second).Error()
	if err != nil {
		l.n.log.Warn("barrier after winning failed", "error", err)
	} else if !lastContact.IsZero() {
		if wait := time.Until(lastContact.Add(l.dropBound())); wait > 0 {
			l.n.log.Info("fencing: waiting out the previous leader's lease", "wait", wait)
			select {
			case <-time.After(wait):
			case <-l.n.closing:
			}
		}
	}
	res <- verdict{gen, err == nil}
}

// dropBound is the longest a cut-off or stuck leader keeps acting after
// it last reached a quorum.
func (l *leadership) dropBound() time.Duration {
	return 2*l.n.cfg.LeaderLease + leaseCheckEvery
}

// verify reports whether a quorum acknowledged leadership within
// 2*LeaderLease. A verify still running then counts as failed.
type verdict struct {
	gen int
	ok  bool
}

func (l *leadership) verify(gen int, res chan<- verdict) {
	f := l.n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(2 * l.n.cfg.LeaderLease)
	defer t.Stop()
	select {
	case err := <-done:
		res <- verdict{gen, err == nil}
	case <-t.C:
		res <- verdict{gen, false}
	}
}

func (l *leadership) transfer() {
	l.n.log.Info("witness is leader: handing leadership over")
	if err := l.n.raft.LeadershipTransfer().Error(); err != nil && err != raft.ErrNotLeader {
		l.n.log.Warn("leadership transfer failed; retrying", "error", err)
	}
}

// set records and publishes a change of effective leadership.
func (l *leadership) set(v bool) {
	if l.effective.Load() == v {
		return
	}
	l.effective.Store(v)
	l.changes.Add(1)
	l.since.Store(time.Now().UnixNano())
	l.n.metrics.roleChanges.Inc()
	l.n.log.Info("effective leadership", "leader", v)
	for {
		select {
		case l.out <- v:
			return
		default:
		}
		select { // full: drop the oldest, keep the latest
		case <-l.out:
		default:
		}
	}
}
