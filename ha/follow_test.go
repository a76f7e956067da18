package ha

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type hookLog struct {
	mu  sync.Mutex
	evs []string
}

func (h *hookLog) add(e string) { h.mu.Lock(); h.evs = append(h.evs, e); h.mu.Unlock() }
func (h *hookLog) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.evs...)
}

// TestFollowOrder: restore before serving on a gain; stop on a loss; a
// failed restore hands leadership to the other SBC node. (No VIPs here:
// the process test covers addresses and ARP.)
func TestFollowOrder(t *testing.T) {
	c := newTestCluster(t, []string{"a", "b", "w"}, "w", []string{"a", "b", "w"}, nil)
	l := c.leader(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var logs = map[string]*hookLog{}
	var wg sync.WaitGroup
	failRestore := map[string]bool{}
	var failMu sync.Mutex
	for _, id := range []string{"a", "b"} {
		h := &hookLog{}
		logs[id] = h
		n := c.nodes[id]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = Follow(ctx, n, nil, Hooks{
				Restore: func(context.Context) error {
					failMu.Lock()
					fail := failRestore[n.cfg.NodeID]
					failMu.Unlock()
					if fail {
						h.add("restore-failed")
						return errors.New("cannot restore")
					}
					h.add("restore")
					return nil
				},
				Serve: func() { h.add("serve") },
				Stop:  func() { h.add("stop") },
			})
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	L := l.cfg.NodeID
	O := map[string]string{"a": "b", "b": "a"}[L]
	last := func(id string, want ...string) func() bool {
		return func() bool {
			ev := logs[id].get()
			if len(ev) < len(want) {
				return false
			}
			for i, w := range want {
				if ev[len(ev)-len(want)+i] != w {
					return false
				}
			}
			return true
		}
	}
	// The leader's gain is still buffered in Leadership: Follow acts on it.
	waitFor(t, L+" to restore then serve", 3*time.Second, last(L, "restore", "serve"))
	// Cut the leader off: it stops; the other restores, then serves.
	c.isolate(L)
	waitFor(t, L+" to stop", 3*time.Second, last(L, "restore", "serve", "stop"))
	waitFor(t, O+" to restore then serve", 5*time.Second, last(O, "restore", "serve"))
	// L comes back with a restore that fails; O is cut off: L wins,
	// fails to restore, hands leadership over (to the witness, which
	// hands it back) and never serves.
	failMu.Lock()
	failRestore[L] = true
	failMu.Unlock()
	c.reconnect(L)
	// L catches up: it has applied everything O (the leader) committed.
	target := c.nodes[O].Status().CommitIndex
	waitFor(t, L+" to apply O's log", 5*time.Second, func() bool { return c.nodes[L].Status().AppliedIndex >= target })
	c.isolate(O)
	waitFor(t, O+" to stop", 3*time.Second, last(O, "stop"))
	waitFor(t, L+" restore to fail", 5*time.Second, last(L, "restore-failed"))
	// O back: leadership ends with O, which restores and serves.
	c.reconnect(O)
	waitFor(t, O+" to serve again", 10*time.Second, func() bool { return last(O, "restore", "serve")() && c.nodes[O].IsLeader() })
	for _, e := range logs[L].get()[3:] {
		if e == "serve" {
			t.Fatalf("%s served after a failed restore: %v", L, logs[L].get())
		}
	}
	t.Logf("%s: %v; %s: %v", L, logs[L].get(), O, logs[O].get())
}
