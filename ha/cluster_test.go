package ha

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testCluster is three voters on raft's in-memory transport and stores.
type testCluster struct {
	t     *testing.T
	trans map[string]*raft.InmemTransport
	nodes map[string]*Node
	cfgs  map[string]Config
}

func testLogger() *slog.Logger {
	if os.Getenv("HA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestCluster starts ids (all voters); witness names the witness ("" none);
// only the ids in start are started.
func newTestCluster(t *testing.T, ids []string, witness string, start []string, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, trans: map[string]*raft.InmemTransport{}, nodes: map[string]*Node{}, cfgs: map[string]Config{}}
	var peers []Peer
	for _, id := range ids {
		_, tr := raft.NewInmemTransport(raft.ServerAddress("mem-" + id))
		c.trans[id] = tr
		peers = append(peers, Peer{ID: id, Addr: "mem-" + id})
	}
	for _, a := range ids {
		for _, b := range ids {
			if a != b {
				c.trans[a].Connect(c.trans[b].LocalAddr(), c.trans[b])
			}
		}
	}
	for _, id := range ids {
		cfg := Config{NodeID: id, DataDir: t.TempDir(), Peers: peers, Witness: id == witness,
			Logger: testLogger().With("node", id), Registerer: prometheus.NewRegistry(), transport: c.trans[id], inmem: true}
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs[id] = cfg
	}
	for _, id := range start {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			_ = n.Close()
		}
	})
	return c
}

func (c *testCluster) start(id string) *Node {
	c.t.Helper()
	n, err := Open(c.cfgs[id])
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	c.nodes[id] = n
	return n
}

// leader waits for exactly one effective leader and returns it.
func (c *testCluster) leader(timeout time.Duration) *Node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ls []*Node
		for _, n := range c.nodes {
			if n.IsLeader() {
				ls = append(ls, n)
			}
		}
		if len(ls) == 1 {
			return ls[0]
		}
		if len(ls) > 1 {
			c.t.Fatalf("%d effective leaders at once", len(ls))
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", timeout)
	return nil
}

// isolate cuts id off from every other node (both directions).
func (c *testCluster) isolate(id string) {
	for o, tr := range c.trans {
		if o != id {
			tr.Disconnect(c.trans[id].LocalAddr())
			c.trans[id].Disconnect(tr.LocalAddr())
		}
	}
}

func (c *testCluster) reconnect(id string) {
	for o, tr := range c.trans {
		if o != id {
			tr.Connect(c.trans[id].LocalAddr(), c.trans[id])
			c.trans[id].Connect(tr.LocalAddr(), tr)
		}
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterReplicates(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	l := c.leader(5 * time.Second)
	if l.cfg.NodeID == "w" {
		t.Fatal("the witness is the effective leader")
	}
	if err := l.Put("call/1", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := l.Put("call/2", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete("call/1"); err != nil {
		t.Fatal(err)
	}
	for id, n := range c.nodes {
		waitFor(t, id+" to apply", 2*time.Second, func() bool {
			v, ok := n.Get("call/2")
			_, gone := n.Get("call/1")
			return ok && string(v) == "two" && !gone
		})
		if n == l {
			continue
		}
		if err := n.Put("x", []byte("y")); !errors.Is(err, ErrNotLeader) {
			t.Errorf("put on standby %s: %v, want ErrNotLeader", id, err)
		}
	}
	if err := l.Put("", nil); !errors.Is(err, ErrBadRecord) {
		t.Errorf("empty key: %v", err)
	}
	if err := l.Put("big", make([]byte, MaxValueLen+1)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized value: %v", err)
	}
	// Range sees the local store and may write while iterating.
	seen := 0
	l.Range(func(k string, v []byte) bool {
		seen++
		return l.Put(k+"-copy", v) == nil
	})
	if seen != 1 {
		t.Fatalf("Range saw %d records, want 1", seen)
	}
	st := l.Status()
	if st.Role != "leader" || st.Leader != l.cfg.NodeID || len(st.Peers) != 3 || st.AppliedIndex == 0 {
		t.Fatalf("leader status %+v", st)
	}
	for _, n := range c.nodes {
		if n != l {
			waitFor(t, "standby to catch up", 2*time.Second, func() bool { return n.Status().AppliedIndex >= st.AppliedIndex })
			s := n.Status()
			want := "follower"
			if n.cfg.Witness {
				want = "witness"
			}
			if s.Role != want || s.Leader != l.cfg.NodeID {
				t.Fatalf("standby status %+v", s)
			}
		}
	}
	if v := testutil.ToFloat64(l.metrics.roleChanges); v < 1 {
		t.Fatalf("role changes metric %v", v)
	}
}

// TestBatchingCoalesces: many concurrent puts become far fewer log
// entries, and every one is applied on every node.
func TestBatchingCoalesces(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	l := c.leader(5 * time.Second)
	before := l.raft.LastIndex()
	const n = 2000
	chans := make([]<-chan error, n)
	for i := range chans {
		chans[i] = l.PutAsync(fmt.Sprintf("call/%d", i), []byte(fmt.Sprintf("record %d", i)))
	}
	for i, ch := range chans {
		if err := <-ch; err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	entries := l.raft.LastIndex() - before
	t.Logf("%d puts in %d log entries", n, entries)
	if entries == 0 || entries > n/4 {
		t.Fatalf("%d puts took %d log entries: not coalesced", n, entries)
	}
	for id, node := range c.nodes {
		waitFor(t, id+" to apply all", 3*time.Second, func() bool { return node.Len() == n })
		if v, _ := node.Get("call/1999"); string(v) != "record 1999" {
			t.Fatalf("%s: call/1999 = %q", id, v)
		}
	}
}

// TestWitnessHandsOverLeadership: with one SBC node down, the witness and
// the other node elect; whoever wins, the SBC node ends up the leader.
func TestWitnessHandsOverLeadership(t *testing.T) {
	for i := 0; i < 3; i++ {
		c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"b", "w"}, nil)
		l := c.leader(5 * time.Second)
		if l.cfg.NodeID != "b" {
			t.Fatalf("effective leader %s, want b", l.cfg.NodeID)
		}
		waitFor(t, "raft leadership on b", 3*time.Second, func() bool { return c.nodes["b"].raft.State() == raft.Leader })
		if c.nodes["w"].IsLeader() {
			t.Fatal("witness effective leader")
		}
		for _, n := range c.nodes {
			_ = n.Close()
		}
	}
}

// TestLeaseDropsCutOffLeader: a leader cut off from both others stops
// being the effective leader fast, publishes false, and the rest elect.
func TestLeaseDropsCutOffLeader(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	l := c.leader(5 * time.Second)
	drain(l.Leadership())
	id := l.cfg.NodeID
	cut := time.Now()
	c.isolate(id)
	select {
	case v := <-l.Leadership():
		if v {
			t.Fatal("got true, want false")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cut-off leader did not drop leadership within 2s")
	}
	dropped := time.Since(cut)
	if l.IsLeader() {
		t.Fatal("IsLeader still true")
	}
	t.Logf("cut-off leader dropped effective leadership after %s", dropped)
	if dropped > time.Second {
		t.Fatalf("dropped after %s, want within 1s", dropped)
	}
	var nl *Node
	waitFor(t, "a new leader on the other side", 5*time.Second, func() bool {
		for oid, n := range c.nodes {
			if oid != id && n.IsLeader() {
				nl = n
				return true
			}
		}
		return false
	})
	if nl.cfg.Witness {
		t.Fatal("witness is the new leader")
	}
	t.Logf("new leader %s after %s", nl.cfg.NodeID, time.Since(cut))
	if err := nl.Put("after-cut", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := l.Put("stale", []byte("1")); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("put on cut-off node: %v", err)
	}
	c.reconnect(id)
	waitFor(t, "old leader to rejoin and catch up", 5*time.Second, func() bool {
		v, ok := l.Get("after-cut")
		return ok && string(v) == "1"
	})
	if l.IsLeader() {
		t.Fatal("rejoined node took leadership back")
	}
}

func drain(ch <-chan bool) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestRejoinFromSnapshot: a node away while the log is compacted catches
// up by snapshot install.
func TestRejoinFromSnapshot(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, func(cfg *Config) {
		cfg.TrailingLogs = 10
		cfg.SnapshotThreshold = 50
	})
	l := c.leader(5 * time.Second)
	var away *Node
	for _, n := range c.nodes {
		if n != l {
			away = n
			break
		}
	}
	c.isolate(away.cfg.NodeID)
	for i := 0; i < 300; i++ {
		if err := l.Put(fmt.Sprintf("k%03d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := 0; i < 100; i++ {
		if err := l.Delete(fmt.Sprintf("k%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, _ := l.logs.FirstIndex()
	if last := away.raft.LastIndex(); first <= last+1 {
		t.Fatalf("leader's log starts at %d, the away node has up to %d: it could catch up from the log", first, last)
	}
	c.reconnect(away.cfg.NodeID)
	// The FSM is restored before raft records the snapshot: wait for both.
	waitFor(t, "rejoined node to catch up", 10*time.Second, func() bool {
		return away.Len() == 200 && away.raft.Stats()["last_snapshot_index"] != "0"
	})
	if _, ok := away.Get("k050"); ok {
		t.Fatal("deleted key present after catch-up")
	}
	if v, _ := away.Get("k299"); string(v) != "299" {
		t.Fatalf("k299 = %q", v)
	}
}

// TestSingleNodePersists: no peers, a real WAL and snapshots on disk;
// records survive a restart, through the log and through a snapshot.
func TestSingleNodePersists(t *testing.T) {
	dir := t.TempDir()
	open := func() *Node {
		n, err := Open(Config{NodeID: "solo", DataDir: dir, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "single node to lead", 5*time.Second, n.IsLeader)
		return n
	}
	n := open()
	if _, err := Open(Config{NodeID: "solo", DataDir: dir, Logger: testLogger()}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second node on the same data dir: %v, want an in-use error", err)
	}
	for i := 0; i < 100; i++ {
		if err := n.Put(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := n.Put("after-snap", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete("k0"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Put("closed", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	n = open()
	defer n.Close()
	if err := n.Barrier(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n.Len() != 100 {
		t.Fatalf("%d records after restart, want 100", n.Len())
	}
	if _, ok := n.Get("k0"); ok {
		t.Fatal("deleted key back after restart")
	}
	if _, ok := n.Get("after-snap"); !ok {
		t.Fatal("write after the snapshot lost")
	}
}

// TestCloseFailsPending: writes racing Close get an answer, never hang.
func TestCloseFailsPending(t *testing.T) {
	n, err := Open(Config{NodeID: "solo", DataDir: t.TempDir(), Logger: testLogger(), inmem: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leader", 5*time.Second, n.IsLeader)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if err := n.Put(fmt.Sprintf("%d/%d", i, j), []byte("v")); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { _ = n.Close(); wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writers hang after Close")
	}
}
