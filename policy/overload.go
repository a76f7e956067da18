package policy

import (
	"sync"
	"time"
)

// Overload is the SBC's own overload control: how many call setups it lets
// be in progress at once, a limit that adapts to how late the SBC is in
// running its work (the load estimate, a scheduling delay its owner
// measures and feeds in with Observe).
//
// Past its capacity a B2BUA on UDP does not slow down gracefully: requests
// wait, the peers retransmit what waited past T1, the retransmissions add
// load, and goodput collapses (issue 16: 2,023 of 3,000 calls a second
// completed, the rest failing late). Refusing the excess at once and
// cheaply keeps the delay low for the calls let in and for every
// in-dialog request, which this limit never sees.
//
// The limit is AIMD, as TCP's window: while the delay stays under the
// target and the limit is what holds setups back, it grows by a tenth
// each interval; when the delay stayed over the target for a whole
// interval (its lowest sample in the interval is over: a standing queue,
// as CoDel judges one, not a burst or a collector pause) it drops to nine
// tenths of the setups in progress then. The limit so settles where the
// delay sits at the target, which is where the SBC completes as many
// calls as it can. MaxInflight is a hard cap whatever the delay says
// (memory), MinInflight a floor (a delay caused by something else than
// call setups, a neighbour on the machine, must not starve the SBC).
type Overload struct {
	mu       sync.Mutex
	lim      OverloadLimits
	limit    float64
	inflight int
	held     bool          // a setup was refused since the last adaptation
	demand   bool          // a setup was asked for since the last adaptation
	delay    time.Duration // last observed delay
	low      time.Duration // lowest delay observed in this interval
	observed bool          // low holds a sample
	next     time.Time     // when the limit adapts next
	shed     uint64
}

// OverloadLimits configure an Overload. Interval is how often the limit
// adapts; it should span several delay samples.
type OverloadLimits struct {
	MaxInflight int
	MinInflight int
	TargetDelay time.Duration
	Interval    time.Duration
}

// OverloadState is a snapshot for metrics and the admin API.
type OverloadState struct {
	Inflight int
	Limit    int
	Delay    time.Duration
	Shed     uint64
}

// Adaptation steps: grow by a tenth, drop to nine tenths of the load.
const (
	overloadGrow   = 1.1
	overloadShrink = 0.9
)

// NewOverload starts with the limit at MaxInflight: nothing is refused
// until the delay says the SBC is past its capacity.
func NewOverload(lim OverloadLimits) *Overload {
	lim.MinInflight = max(lim.MinInflight, 1)
	lim.MaxInflight = max(lim.MaxInflight, lim.MinInflight)
	if lim.Interval <= 0 {
		lim.Interval = 100 * time.Millisecond
	}
	return &Overload{lim: lim, limit: float64(lim.MaxInflight)}
}

// Admit takes a place for a new call setup, or refuses it (false) when
// the setups in progress are at the limit. An admitted setup must be
// given back with Done exactly once.
func (o *Overload) Admit(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.adaptLocked(now)
	o.demand = true
	if float64(o.inflight) >= o.limit {
		o.shed++
		o.held = true // demand above the limit, for the growth rule
		return false
	}
	o.inflight++
	return true
}

// Refuses says whether Admit would refuse a setup now, and counts the
// refusal as Admit does; it takes no place. The SBC asks it before parsing
// a new INVITE, to refuse it at the least cost, and Admits what it lets
// through.
func (o *Overload) Refuses(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.adaptLocked(now)
	o.demand = true
	if float64(o.inflight) < o.limit {
		return false
	}
	o.shed++
	o.held = true
	return true
}

// Done gives back a place Admit took.
func (o *Overload) Done() {
	o.mu.Lock()
	if o.inflight > 0 {
		o.inflight--
	}
	o.mu.Unlock()
}

// Observe records the latest delay sample and adapts the limit when an
// interval has passed.
func (o *Overload) Observe(now time.Time, delay time.Duration) {
	o.mu.Lock()
	o.delay = delay
	if !o.observed || delay < o.low {
		o.low, o.observed = delay, true
	}
	o.adaptLocked(now)
	o.mu.Unlock()
}

// adaptLocked moves the limit once per interval. o.mu held.
func (o *Overload) adaptLocked(now time.Time) {
	if o.next.IsZero() {
		o.next = now.Add(o.lim.Interval)
		return
	}
	if now.Before(o.next) {
		return
	}
	o.next = now.Add(o.lim.Interval)
	switch {
	case !o.demand:
		// No call asked to be let in: nothing says what the limit should
		// be (a delay now is a collection or a neighbour, not setups).
	case o.observed && o.low > o.lim.TargetDelay:
		// Over the target: back off from what was in progress, not from a
		// limit that may be far above it.
		o.limit = min(o.limit, float64(o.inflight)) * overloadShrink
	case o.held:
		// Under the target and the limit held setups back: more fit.
		o.limit = max(o.limit*overloadGrow, o.limit+1)
	}
	o.limit = min(max(o.limit, float64(o.lim.MinInflight)), float64(o.lim.MaxInflight))
	o.held, o.observed, o.demand = false, false, false
}

// State is the controller's load and limit now.
func (o *Overload) State() OverloadState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OverloadState{Inflight: o.inflight, Limit: int(o.limit), Delay: o.delay, Shed: o.shed}
}
