package ha

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLeaseCheckDropsStuckLeader: a leader whose Raft loop is stuck (its
// FSM stalls, as on a stalled disk: the loop blocks handing commits to
// it) never runs Raft's own CheckQuorum, and its replication goroutines
// keep the followers quiet. The lease check (VerifyLeader through the
// loop, every 50 ms, failed after 2*LeaderLease) must drop effective
// leadership anyway, within 1 s of the stall, and publish it; Raft still
// calls it leader, which is what makes this the lease check's catch.
// Once the stall ends there is an effective leader again.
func TestLeaseCheckDropsStuckLeader(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	l := c.leader(5 * time.Second)
	drain(l.Leadership())

	l.fsm.mu.Lock() // the FSM stalls: every Apply waits
	var unlock sync.Once
	release := func() { unlock.Do(l.fsm.mu.Unlock) }
	t.Cleanup(release)
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { // one entry per commit round until the loop blocks
		defer close(fed)
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			l.raft.Apply(encodeBatch([]*op{{key: "stall", val: []byte{byte(i)}}}), 20*time.Millisecond)
			time.Sleep(time.Millisecond)
		}
	}()
	stopFeed := sync.OnceFunc(func() { close(stop); <-fed })
	defer stopFeed()
	// The loop is stuck once the FSM's queue (128) is full and it waits
	// to hand over one more batch.
	waitFor(t, "the leader's FSM queue to fill", 10*time.Second, func() bool {
		return l.raft.Stats()["fsm_pending"] == "128"
	})
	stalled := time.Now()
	select {
	case v := <-l.Leadership():
		if v {
			t.Fatal("published true, want false")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("stuck leader did not publish the loss of leadership within 3 s")
	}
	took := time.Since(stalled)
	t.Logf("stuck leader dropped effective leadership %s after its loop stalled", took)
	if took > time.Second {
		t.Errorf("dropped %s after the stall, want within 1 s", took)
	}
	if l.IsLeader() {
		t.Error("IsLeader still true")
	}
	if s := l.raft.State(); s != raft.Leader {
		t.Errorf("raft state %s: the drop came from raft, not the lease check", s)
	}
	if n := testutil.ToFloat64(l.metrics.leaseFailures); n < 1 {
		t.Errorf("lease failures counted %v, want at least 1", n)
	}

	stopFeed()
	release()
	c.leader(10 * time.Second) // exactly one effective leader again
}

// TestFencingDelaysNewLeader: a new leader is not effective before
// dropBound (2*LeaderLease + leaseCheckEvery = 350 ms with the defaults)
// has passed since it last heard from the previous leader, by which time
// a cut-off previous leader has dropped. Five elections, each after
// cutting the leader off.
func TestFencingDelaysNewLeader(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	const want = 350 * time.Millisecond
	if d := c.nodes["a"].lead.dropBound(); d != want {
		t.Fatalf("dropBound %s with the default timing, want %s", d, want)
	}
	for round := 0; round < 5; round++ {
		old := c.leader(10 * time.Second)
		c.isolate(old.cfg.NodeID)
		var nl *Node
		waitFor(t, "a new effective leader", 10*time.Second, func() bool {
			for id, n := range c.nodes {
				if id != old.cfg.NodeID && n.IsLeader() {
					nl = n
					return true
				}
			}
			return false
		})
		became := time.Unix(0, nl.lead.since.Load())
		gap := became.Sub(nl.raft.LastContact())
		t.Logf("round %d: %s effective %s after its last contact with %s", round, nl.cfg.NodeID, gap.Round(time.Millisecond), old.cfg.NodeID)
		if gap < want {
			t.Errorf("round %d: %s effective %s after its last contact with the previous leader, want at least %s", round, nl.cfg.NodeID, gap, want)
		}
		if old.IsLeader() {
			t.Errorf("round %d: the cut-off leader %s is still effective", round, old.cfg.NodeID)
		}
		c.reconnect(old.cfg.NodeID)
		waitFor(t, old.cfg.NodeID+" to follow again", 10*time.Second, func() bool {
			return old.raft.State() == raft.Follower && old.raft.Leader() != ""
		})
	}
}

// TestWitnessNeverEffectiveLeader: over many elections the witness is
// never the effective leader, not even for an instant (its effective
// leadership never changed), and each election ends with an SBC node
// effective. Fresh clusters with one SBC node down (the witness, with its
// short heartbeat timeout, often wins Raft's election there and must hand
// over), then the leader of a full cluster cut off, round after round.
func TestWitnessNeverEffectiveLeader(t *testing.T) {
	elections := 0
	for i := 0; i < 5; i++ {
		c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"b", "w"}, nil)
		if l := c.leader(10 * time.Second); l.cfg.NodeID != "b" {
			t.Fatalf("fresh cluster %d: effective leader %s, want b", i, l.cfg.NodeID)
		}
		waitFor(t, "raft leadership on b", 5*time.Second, func() bool { return c.nodes["b"].raft.State() == raft.Leader })
		elections++
		if n := c.nodes["w"].lead.changes.Load(); n != 0 {
			t.Fatalf("fresh cluster %d: the witness's effective leadership changed %d times, want never", i, n)
		}
		for _, n := range c.nodes {
			_ = n.Close()
		}
	}
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	w := c.nodes["w"]
	for round := 0; round < 5; round++ {
		old := c.leader(10 * time.Second)
		if old.cfg.Witness {
			t.Fatalf("round %d: the witness is the effective leader", round)
		}
		c.isolate(old.cfg.NodeID)
		waitFor(t, "a new effective leader", 10*time.Second, func() bool {
			for id, n := range c.nodes {
				if id != old.cfg.NodeID && n.IsLeader() {
					return true
				}
			}
			return false
		})
		elections++
		c.reconnect(old.cfg.NodeID)
		waitFor(t, old.cfg.NodeID+" to follow again", 10*time.Second, func() bool {
			return old.raft.State() == raft.Follower && old.raft.Leader() != ""
		})
	}
	if n := w.lead.changes.Load(); n != 0 {
		t.Fatalf("the witness's effective leadership changed %d times over %d elections, want never", n, elections)
	}
}
