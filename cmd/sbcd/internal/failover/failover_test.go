package failover

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trail records, in order, every call the failover makes on its fakes.
type trail struct {
	mu  sync.Mutex
	evs []string
}

func (t *trail) add(e string) { t.mu.Lock(); t.evs = append(t.evs, e); t.mu.Unlock() }
func (t *trail) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.evs)
}

// fakeLeader is a Raft node whose leadership the test sets.
type fakeLeader struct {
	tr     *trail
	ch     chan bool
	leader atomic.Bool
}

func (l *fakeLeader) Leadership() <-chan bool { return l.ch }
func (l *fakeLeader) IsLeader() bool          { return l.leader.Load() }
func (l *fakeLeader) StepDown() error         { l.tr.add("stepdown"); l.leader.Store(false); return nil }

// set changes leadership and tells the follow loop, as ha.Node does.
func (l *fakeLeader) set(v bool) { l.leader.Store(v); l.ch <- v }

type fakeVIPs struct {
	tr      *trail
	takeErr error
	relErr  error
}

func (v *fakeVIPs) Take() error    { v.tr.add("take-vips"); return v.takeErr }
func (v *fakeVIPs) Release() error { v.tr.add("release-vips"); return v.relErr }

type fakeCalls struct {
	tr *trail
	// onTakeOver runs inside TakeOver (leadership lost while restoring).
	onTakeOver func()
}

func (c *fakeCalls) TakeOver() (int, int) {
	c.tr.add("restore-calls")
	if c.onTakeOver != nil {
		c.onTakeOver()
	}
	return 2, 0
}
func (c *fakeCalls) Serve()      { c.tr.add("serve") }
func (c *fakeCalls) Deactivate() { c.tr.add("deactivate") }

type rig struct {
	tr     *trail
	leader *fakeLeader
	vips   *fakeVIPs
	calls  *fakeCalls
	f      *Failover
}

// newRig builds a failover over fakes; pair false is a node alone (no
// VIPs).
func newRig(t *testing.T, pair bool) *rig {
	t.Helper()
	tr := &trail{}
	r := &rig{tr: tr, leader: &fakeLeader{tr: tr, ch: make(chan bool, 4)}, vips: &fakeVIPs{tr: tr}, calls: &fakeCalls{tr: tr}}
	cfg := Config{
		Leader:       r.leader,
		Calls:        r.calls,
		AfterRestore: func() { tr.add("reprogram-flows") },
		Fence:        func(why string) { tr.add("fence: " + why) },
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if pair {
		cfg.VIPs = r.vips
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.f = f
	t.Cleanup(f.Close)
	return r
}

// want waits until the trail is exactly evs, and fails with the trail
// when it is not within a second (or grows past it).
func (r *rig) want(t *testing.T, evs ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		got := r.tr.get()
		if slices.Equal(got, evs) {
			// Nothing more may follow: give the loop a moment to add one.
			time.Sleep(20 * time.Millisecond)
			if got = r.tr.get(); slices.Equal(got, evs) {
				return
			}
		}
		if len(got) > len(evs) || time.Now().After(deadline) {
			t.Fatalf("calls\n got  %q\n want %q", got, evs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The pair's order: fence before following, stale VIPs dropped; a gain
// restores the calls, reprograms the flows, takes the VIPs, then serves;
// a loss drops the VIPs, fences, ends the calls, fences again. A second
// gain does it all again.
func TestFollowOrderPair(t *testing.T) {
	r := newRig(t, true)
	r.f.Run(nil)
	start := []string{"fence: standby at start", "release-vips"}
	r.want(t, start...)
	gain := []string{"restore-calls", "reprogram-flows", "take-vips", "serve"}
	loss := []string{"release-vips", "fence: leadership lost", "deactivate", "fence: leadership lost, calls ended"}
	r.leader.set(true)
	r.want(t, slices.Concat(start, gain)...)
	r.leader.set(true) // a repeated gain while active changes nothing
	r.want(t, slices.Concat(start, gain)...)
	r.leader.set(false)
	r.want(t, slices.Concat(start, gain, loss)...)
	r.leader.set(false) // a repeated loss while standby changes nothing
	r.want(t, slices.Concat(start, gain, loss)...)
	r.leader.set(true)
	r.want(t, slices.Concat(start, gain, loss, gain)...)
	// Close while active steps down as a loss does.
	r.f.Close()
	r.want(t, slices.Concat(start, gain, loss, gain, loss)...)
}

// A node alone (no VIPs) never fences: there is nobody whose VIPs its
// flows could forward for. It still restores, reprograms and serves.
func TestFollowOrderAlone(t *testing.T) {
	r := newRig(t, false)
	r.f.Run(nil)
	r.leader.set(true)
	r.want(t, "restore-calls", "reprogram-flows", "serve")
	r.leader.set(false)
	r.want(t, "restore-calls", "reprogram-flows", "serve", "deactivate")
	r.f.Stalled([]string{"sip"}) // nobody to hand over to
	r.want(t, "restore-calls", "reprogram-flows", "serve", "deactivate")
}

// A watchdog that sees a stall refuses the takeover: no calls restored,
// no VIPs, leadership handed over. Once healthy, the next gain serves.
func TestUnhealthyRefusesTakeover(t *testing.T) {
	r := newRig(t, true)
	var ok atomic.Bool
	r.f.Run(ok.Load)
	r.leader.set(true)
	r.want(t, "fence: standby at start", "release-vips", "stepdown")
	ok.Store(true)
	r.leader.set(true)
	r.want(t, "fence: standby at start", "release-vips", "stepdown", "restore-calls", "reprogram-flows", "take-vips", "serve")
}

// VIPs that cannot be taken: released again, leadership handed over,
// never served.
func TestTakeVIPsFailsHandsOver(t *testing.T) {
	r := newRig(t, true)
	r.vips.takeErr = errors.New("no such device")
	r.f.Run(nil)
	r.leader.set(true)
	r.want(t, "fence: standby at start", "release-vips", "restore-calls", "reprogram-flows", "take-vips", "release-vips", "stepdown")
}

// Leadership lost while restoring: no VIPs taken, nothing served.
func TestLostWhileRestoring(t *testing.T) {
	r := newRig(t, true)
	r.calls.onTakeOver = func() { r.leader.leader.Store(false) }
	r.f.Run(nil)
	r.leader.set(true)
	r.want(t, "fence: standby at start", "release-vips", "restore-calls", "reprogram-flows")
}

// A stalled pair node drops the VIPs itself (not through the follow
// loop, which may be stuck) and then hands leadership over; a standby
// only makes sure it holds no VIP; a failed release still steps down.
func TestStalled(t *testing.T) {
	r := newRig(t, true)
	r.f.Stalled([]string{"relay"})
	r.want(t, "release-vips")
	r.leader.leader.Store(true)
	r.f.Stalled([]string{"relay"})
	r.want(t, "release-vips", "release-vips", "stepdown")
	r.vips.relErr = errors.New("netlink busy")
	r.leader.leader.Store(true)
	r.f.Stalled([]string{"sip"})
	r.want(t, "release-vips", "release-vips", "stepdown", "release-vips", "stepdown")
}

// A node whose stale VIPs cannot be dropped at start does not follow:
// it never restores or serves, even when it leads.
func TestReleaseFailsAtStart(t *testing.T) {
	r := newRig(t, true)
	r.vips.relErr = errors.New("netlink busy")
	r.f.Run(nil)
	r.want(t, "fence: standby at start", "release-vips")
	r.leader.leader.Store(true)
	select {
	case r.leader.ch <- true:
	default:
	}
	r.want(t, "fence: standby at start", "release-vips")
}

// No HA is a nil *Failover: every method is a no-op.
func TestNilFailover(t *testing.T) {
	var f *Failover
	f.Run(nil)
	f.Stalled([]string{"sip"})
	f.Close()
}

func TestNewNeedsLeaderAndCalls(t *testing.T) {
	tr := &trail{}
	if _, err := New(Config{Calls: &fakeCalls{tr: tr}}); err == nil {
		t.Error("no Leader: no error")
	}
	if _, err := New(Config{Leader: &fakeLeader{tr: tr}}); err == nil {
		t.Error("no Calls: no error")
	}
}
