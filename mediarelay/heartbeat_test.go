package mediarelay

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// A healthy relay answers the heartbeat at once; a worker held up (the
// test hook, as a worker stuck in a callback would be) makes Heartbeat
// fail within its bound and name that worker; once the worker is free
// again the heartbeat passes. Repeated heartbeats on a stuck worker queue
// one command, not one per call.
func TestHeartbeatStalledWorker(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opts) }) // first registered, so it runs after the relay closed
	r := newTestRelay(t, Config{Workers: 2})
	if err := r.Heartbeat(time.Second); err != nil {
		t.Fatalf("no worker started: %v", err)
	}
	newTestStream(t, r)
	start := time.Now()
	if err := r.Heartbeat(time.Second); err != nil {
		t.Fatalf("healthy relay: %v", err)
	}
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("healthy heartbeat took %v", took)
	}

	const stall, bound = 1500 * time.Millisecond, 300 * time.Millisecond
	if err := r.StallWorker(stall); err != nil {
		t.Fatal(err)
	}
	stalledAt := time.Now()
	for range 3 {
		start := time.Now()
		err := r.Heartbeat(bound)
		took := time.Since(start)
		if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "worker [0] of 2") {
			t.Fatalf("stalled worker 0: Heartbeat = %v", err)
		}
		if took < bound || took > bound+200*time.Millisecond {
			t.Errorf("stalled Heartbeat returned after %v, want about %v", took, bound)
		}
	}
	w := r.workers[0]
	w.mu.Lock()
	queued := len(w.cmds)
	w.mu.Unlock()
	if queued > 1 { // 0 when the worker took the first heartbeat with the stall
		t.Errorf("%d commands queued on the stuck worker after 3 heartbeats, want at most 1", queued)
	}
	// Healthy again once the stall is over.
	for r.Heartbeat(bound) != nil {
		if time.Since(stalledAt) > stall+2*time.Second {
			t.Fatal("heartbeat still failing well after the stall ended")
		}
	}
	if e := time.Since(stalledAt); e < stall-bound {
		t.Errorf("heartbeat passed %v into a %v stall", e, stall)
	}
	// A stream still comes up and goes (the worker serves commands again).
	s := newTestStream(t, r)
	s.Close()
}

// A held call map lock fails the anchor's heartbeat within the bound; a
// free one passes. Probes of a held lock do not pile up goroutines.
func TestAnchorHeartbeatLockProbe(t *testing.T) {
	a := newTestAnchor(t, time.Minute)
	if err := a.Heartbeat(time.Second); err != nil {
		t.Fatalf("idle anchor: %v", err)
	}
	a.mu.Lock()
	for range 3 {
		start := time.Now()
		err := a.Heartbeat(200 * time.Millisecond)
		if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "lock") {
			t.Fatalf("held Anchor.mu: Heartbeat = %v", err)
		}
		if took := time.Since(start); took > 400*time.Millisecond {
			t.Errorf("Heartbeat took %v with a 200ms bound", took)
		}
	}
	a.mu.Unlock()
	if err := a.Heartbeat(time.Second); err != nil {
		t.Fatalf("lock free again: %v", err)
	}
	a.probeMu.Lock()
	pending := a.probe != nil
	a.probeMu.Unlock()
	if pending {
		t.Error("a lock probe left pending")
	}
}
