package policy

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

func TestOverloadCapsAtMaxAndFrees(t *testing.T) {
	o := NewOverload(OverloadLimits{MaxInflight: 3, MinInflight: 1, TargetDelay: 10 * time.Millisecond})
	for i := range 3 {
		if !o.Admit(t0) {
			t.Fatalf("setup %d refused under the cap", i+1)
		}
	}
	if o.Admit(t0) {
		t.Fatal("fourth setup admitted over max_inflight 3")
	}
	if !o.Refuses(t0) {
		t.Fatal("Refuses says no at the cap")
	}
	o.Done()
	if o.Refuses(t0) {
		t.Fatal("Refuses says yes with a place free")
	}
	if !o.Admit(t0) {
		t.Fatal("a place given back was not reusable")
	}
	if s := o.State(); s.Inflight != 3 || s.Shed != 2 || s.Limit != 3 {
		t.Errorf("state %+v, want 3 in flight, 2 shed, limit 3", s)
	}
}

func TestOverloadShrinksOverTargetAndGrowsBack(t *testing.T) {
	o := NewOverload(OverloadLimits{MaxInflight: 1000, MinInflight: 5, TargetDelay: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
	now := t0
	o.Observe(now, 50*time.Millisecond) // starts the interval clock
	for range 200 {
		o.Admit(now)
	}
	now = now.Add(100 * time.Millisecond)
	o.Observe(now, 50*time.Millisecond)
	if got := o.State().Limit; got != 180 {
		t.Fatalf("limit after one interval over the target with 200 in flight = %d, want 180 (0.9 x 200)", got)
	}
	// Delay stays high and setups end: the limit follows them down, to
	// the floor and no further.
	for range 195 {
		o.Done()
	}
	// With no new call asking, a high delay moves nothing.
	for range 5 {
		now = now.Add(100 * time.Millisecond)
		o.Observe(now, 50*time.Millisecond)
	}
	if got := o.State().Limit; got != 180 {
		t.Fatalf("limit moved to %d with no call asking to be let in", got)
	}
	asked := func() { // one new call, let in and over within the interval
		if o.Admit(now) {
			o.Done()
		}
	}
	for range 50 {
		asked()
		now = now.Add(100 * time.Millisecond)
		o.Observe(now, 50*time.Millisecond)
	}
	if got := o.State().Limit; got != 5 {
		t.Fatalf("limit with the delay high and 5 in flight = %d, want the floor 5", got)
	}
	// Delay back under the target, room for one more, nothing held
	// back: no growth.
	o.Done() // 4 in flight
	for range 2 {
		asked()
		now = now.Add(100 * time.Millisecond)
		o.Observe(now, time.Millisecond)
	}
	if got := o.State().Limit; got != 5 {
		t.Fatalf("limit grew to %d while it held nothing back", got)
	}
	// Demand above the limit with a low delay: it grows a tenth (at least
	// one) per interval, up to the cap.
	o.Admit(now) // the fifth
	if o.Admit(now) {
		t.Fatal("a sixth setup let in at limit 5")
	}
	now = now.Add(100 * time.Millisecond)
	o.Observe(now, time.Millisecond)
	if got := o.State().Limit; got != 6 {
		t.Fatalf("limit after one binding interval = %d, want 6", got)
	}
	for range 200 {
		for o.Admit(now) {
		}
		now = now.Add(100 * time.Millisecond)
		o.Observe(now, time.Millisecond)
	}
	if got := o.State().Limit; got != 1000 {
		t.Fatalf("limit under sustained demand and no delay = %d, want the cap 1000", got)
	}
}

// TestOverloadModelKeepsGoodput runs the controller against a model of a
// server with a fixed capacity: each setup needs 20 ms and one unit of
// work, the server does capacity units a second, a refusal costs a fiftieth
// of a setup (the real cost is the SBC's, measured by make bench-overload), and the delay is the work queued beyond what runs without
// waiting. Offered 2x and 3x the capacity, the setups completed stay at
// 90% of it or more, and the delay the admitted calls see stays near the
// target instead of growing without bound as it does with no control.
func TestOverloadModelKeepsGoodput(t *testing.T) {
	const capacity = 1000.0 // setups a second
	for _, x := range []float64{2, 3} {
		goodput, delay := runModel(t, capacity, x, true)
		if goodput < 0.9*capacity {
			t.Errorf("%.0fx offered: goodput %.0f/s, want >= 90%% of %.0f", x, goodput, capacity)
		}
		if delay > 100*time.Millisecond {
			t.Errorf("%.0fx offered: delay %v at the end, want near the 10 ms target", x, delay)
		}
		_, open := runModel(t, capacity, x, false)
		if open < time.Second {
			t.Errorf("%.0fx offered with no control: delay only %v; the model does not overload", x, open)
		}
		t.Logf("%.0fx: goodput %.0f/s of %.0f, delay %v (no control: %v)", x, goodput, capacity, delay, open)
	}
}

// runModel offers x times capacity for 20 s of model time (1 ms ticks)
// and returns the completions a second over the last 10 s and the delay
// at the end.
func runModel(t *testing.T, capacity, x float64, control bool) (float64, time.Duration) {
	t.Helper()
	const (
		tick     = time.Millisecond
		base     = 20 * time.Millisecond // a setup's own duration
		shedCost = 0.02
	)
	o := NewOverload(OverloadLimits{MaxInflight: 100000, MinInflight: 10, TargetDelay: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
	var queue []time.Time // admitted setups, oldest first
	now := t0
	var arrive, work float64
	var done int
	var delay time.Duration
	for i := 0; i < 20000; i++ {
		now = now.Add(tick)
		arrive += x * capacity * tick.Seconds()
		work += capacity * tick.Seconds()
		for ; arrive >= 1; arrive-- {
			if !control || o.Admit(now) {
				queue = append(queue, now)
			} else {
				work -= shedCost
			}
		}
		// FIFO service: a setup completes once it has run its base time
		// and there is work left this tick.
		for len(queue) > 0 && work >= 1 && now.Sub(queue[0]) >= base {
			queue = queue[1:]
			work--
			if control {
				o.Done()
			}
			if i >= 10000 {
				done++
			}
		}
		work = min(work, 1) // no banking of idle capacity
		waiting := float64(len(queue)) - capacity*base.Seconds()
		delay = time.Duration(max(waiting, 0) / capacity * float64(time.Second))
		if i%10 == 0 {
			o.Observe(now, delay)
		}
	}
	return float64(done) / 10, delay
}

// TestOverloadIgnoresABurst: one sample over the target in an interval
// whose other samples are under it (a burst, a collection) leaves the
// limit alone; a whole interval over it does not.
func TestOverloadIgnoresABurst(t *testing.T) {
	o := NewOverload(OverloadLimits{MaxInflight: 100, MinInflight: 1, TargetDelay: 10 * time.Millisecond, Interval: 100 * time.Millisecond})
	now := t0
	o.Observe(now, 0)
	for range 50 {
		o.Admit(now)
	}
	for _, d := range []time.Duration{2, 80, 3} { // ms, 25 ms apart
		now = now.Add(25 * time.Millisecond)
		o.Observe(now, d*time.Millisecond)
	}
	now = now.Add(25 * time.Millisecond)
	o.Observe(now, 90*time.Millisecond) // the interval ends: its lowest was 2 ms
	if got := o.State().Limit; got != 100 {
		t.Fatalf("limit after a one-sample burst = %d, want 100", got)
	}
	for range 4 {
		if o.Admit(now) { // a new call asks, and is over at once
			o.Done()
		}
		now = now.Add(25 * time.Millisecond)
		o.Observe(now, 90*time.Millisecond)
	}
	if got := o.State().Limit; got != 45 {
		t.Fatalf("limit after a whole interval over the target with 50 in flight = %d, want 45", got)
	}
}
