package mediarelay

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// The HA side of the anchor: a call's media as plain data (State), and the
// same data turned back into bound sockets and relay streams on another
// node, or on this node after a restart (Restore). The B2BUA encodes the
// data into its replicated call record; mediarelay knows nothing of that.

// SideState is what a stream knows of one side's peer: the addresses its
// SDP gave and the sources it latched (invalid when not latched).
type SideState struct {
	RTP, RTCP           netip.AddrPort // from SDP; RTP invalid: no SDP seen yet
	NAT                 bool
	LatchRTP, LatchRTCP netip.AddrPort
}

// StreamState is one media line. Present is false for a line that never
// got a stream (rejected with port 0 from the start).
type StreamState struct {
	Present   bool
	ClockRate int
	Sides     [2]SideState
}

// LegMediaState is the SBC's media face on one leg: its RTP port per media
// line (0: none), SDP origin session id and version, and the direction the
// leg's last SDP gave per line.
type LegMediaState struct {
	Ports   []int
	SessID  string
	Version uint64
	Dir     []string
}

// CallState is a call's media, enough to rebuild it elsewhere.
type CallState struct {
	Ref     CallRef
	Legs    [2]LegMediaState
	Streams []StreamState
	// SRTP is the encoded SRTP state of the call's streams
	// (srtp_state.go): keys and rollover counters, opaque to the record;
	// kept only in the replicated record, never logged (it formats as
	// "not shown").
	SRTP SRTPState
}

// ErrRestore wraps every Restore failure.
var ErrRestore = errors.New("media restore")

// OnChange sets what to tell when a call's media state changes outside an
// offer or answer: a stream latched a source, or an SRTP index moved. f
// runs on the anchor's own goroutine, after the fact and at most once per
// call for a burst of changes; it may take locks and write records.
func (a *Anchor) OnChange(f func(callID string)) {
	a.onChange.Store(&f)
}

// latchHook is the per-stream callback: it runs on a relay worker with a
// side's lock held, so it only marks the call (latchNotes) and returns.
func (a *Anchor) latchHook(callID string) func() {
	return func() { a.notes.mark(callID) }
}

// latchNotes hands changes from relay workers to the anchor's goroutine
// without anything a worker could wait on: mu is a leaf held only to add
// to or swap the set, and wake never blocks. No change is lost: a marked
// call stays in the set until tell has taken it.
type latchNotes struct {
	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{} // capacity 1
}

func (n *latchNotes) mark(callID string) {
	n.mu.Lock()
	if n.pending == nil {
		n.pending = make(map[string]struct{})
	}
	n.pending[callID] = struct{}{}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is already queued; it will see this call
	}
}

func (n *latchNotes) take() map[string]struct{} {
	n.mu.Lock()
	p := n.pending
	n.pending = nil
	n.mu.Unlock()
	return p
}

// tell runs OnChange's f for every marked call until the anchor closes.
func (a *Anchor) tell() {
	for {
		select {
		case <-a.stop:
			return
		case <-a.notes.wake:
		}
		ids := a.notes.take()
		f := a.onChange.Load()
		if f == nil {
			continue
		}
		for id := range ids {
			(*f)(id)
		}
	}
}

// State returns a call's media as data; false when the anchor has no media
// for it.
func (a *Anchor) State(callID string) (CallState, bool) {
	a.mu.Lock()
	c, ok := a.calls[callID]
	a.mu.Unlock()
	if !ok {
		return CallState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return CallState{}, false
	}
	st := CallState{Ref: c.ref, SRTP: c.srtpState()}
	for s, l := range c.legs {
		st.Legs[s] = LegMediaState{
			Ports: append([]int(nil), l.ports...), SessID: l.sessID, Version: l.version,
			Dir: append([]string(nil), l.dir...),
		}
	}
	st.Streams = make([]StreamState, len(c.streams))
	for i, s := range c.streams {
		if s != nil {
			st.Streams[i] = s.state()
		}
	}
	return st, true
}

func (s *Stream) state() StreamState {
	out := StreamState{Present: true, ClockRate: s.clock()}
	for side := range s.sides {
		sd := &s.sides[side]
		sd.mu.Lock()
		if sd.known {
			out.Sides[side] = SideState{RTP: sd.sdpRTP, RTCP: sd.sdpRTCP, NAT: sd.nat, LatchRTP: sd.latchRTP, LatchRTCP: sd.latchRTCP}
		}
		sd.mu.Unlock()
	}
	return out
}

// Restore rebuilds a call's media from its state: the same ports taken
// from the pools, the same sockets bound (on addresses that may not be up
// yet: the sockets use IP_FREEBIND), each side's SDP address and latched
// source set again, so media flows the moment packets arrive, with no
// new latching. A call the anchor already has is replaced.
func (a *Anchor) Restore(st CallState) error {
	sec, err := decodeSRTPState(st.SRTP)
	if err != nil {
		return fmt.Errorf("%w: call %s: %w", ErrRestore, st.Ref.ID, err)
	}
	a.End(st.Ref.ID)
	c := &anchored{ref: st.Ref}
	for s := range c.legs {
		f, ok := a.realms[st.Ref.Realms[s]]
		if !ok {
			return fmt.Errorf("%w: call %s: no media config for realm %q", ErrRestore, st.Ref.ID, st.Ref.Realms[s])
		}
		l := st.Legs[s]
		c.legs[s] = legMedia{face: f, pol: f.pol.Load(), sessID: l.SessID, version: l.Version, dir: append([]string(nil), l.Dir...)}
	}
	fail := func(err error) error {
		c.release()
		return fmt.Errorf("%w: call %s: %w", ErrRestore, st.Ref.ID, err)
	}
	for s := range c.legs {
		for _, p := range st.Legs[s].Ports {
			if p != 0 {
				if err := c.legs[s].face.pool.Take(p); err != nil {
					return fail(err)
				}
			}
			c.legs[s].ports = append(c.legs[s].ports, p)
		}
	}
	hook := a.latchHook(st.Ref.ID)
	for i, ss := range st.Streams {
		c.streams = append(c.streams, nil)
		if !ss.Present {
			continue
		}
		var local [2]netip.AddrPort
		for s := range c.legs {
			l := &c.legs[s]
			if i >= len(l.ports) || l.ports[i] == 0 {
				return fail(fmt.Errorf("stream %d has no port on leg %d", i, s))
			}
			local[s] = netip.AddrPortFrom(l.face.cfg.Addr, uint16(l.ports[i]))
		}
		strm, err := a.relay.NewStream(local[SideA], local[SideB])
		if err != nil {
			return fail(err)
		}
		c.streams[i] = strm
		if i < len(sec) {
			// Keys before the sides are known: nothing passes in the clear.
			if err := strm.restoreSRTP(sec[i]); err != nil {
				return fail(err)
			}
		}
		strm.SetClockRate(ss.ClockRate)
		for s, sd := range ss.Sides {
			strm.restoreSide(Side(s), sd)
		}
		strm.setOnLatch(hook)
		strm.SetHold(onHold(c, i))
	}
	c.growSec(len(sec))
	for i, ls := range sec {
		for side, k := range ls.keys {
			c.sec[i][side].keys = k
		}
	}
	a.mu.Lock()
	a.calls[st.Ref.ID] = c
	a.mu.Unlock()
	return nil
}

// release frees what a half-restored call took.
func (c *anchored) release() {
	for _, st := range c.streams {
		if st != nil {
			st.Close()
		}
	}
	for _, l := range c.legs {
		for _, p := range l.ports {
			if p != 0 && l.face != nil {
				l.face.pool.Free(p)
			}
		}
	}
}

// restoreSide sets a side as SetRemote would, then its latched sources.
func (s *Stream) restoreSide(side Side, st SideState) {
	if !st.RTP.IsValid() {
		return
	}
	s.SetRemote(side, st.RTP, st.RTCP, st.NAT)
	sd := &s.sides[side]
	sd.mu.Lock()
	sd.latchRTP, sd.latchRTCP = st.LatchRTP, st.LatchRTCP
	sd.publish(s.socks[side])
	sd.mu.Unlock()
}

// setOnLatch installs the latch callback on both sides.
func (s *Stream) setOnLatch(f func()) {
	for side := range s.sides {
		sd := &s.sides[side]
		sd.mu.Lock()
		sd.onLatch = f
		sd.mu.Unlock()
	}
}

// Take books a given pair (a restored call's port). It fails when the pair
// is outside the pool or already booked.
func (p *Pool) Take(rtp int) error {
	i := (rtp - p.first) / 2
	if rtp < p.first || rtp&1 != 0 || i >= len(p.used) {
		return fmt.Errorf("port %d outside the pool %d-%d", rtp, p.first, p.first+2*len(p.used)-1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used[i] {
		return fmt.Errorf("port %d already in use", rtp)
	}
	p.used[i] = true
	p.n++
	return nil
}
