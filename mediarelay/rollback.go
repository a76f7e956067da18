package mediarelay

import (
	"net/netip"
	"time"
)

// Offer rollback. An offer changes the call's media before its answer is
// known: the offering side's addresses, directions, the SRTP negotiation,
// and ports and streams for media lines it adds. When the far leg refuses
// it (488, 606, 491 glare, no answer) the session stays as it was (RFC
// 3264 8, RFC 3261 14.1), so the media must too: Rollback puts back what
// the offer changed, from the snapshot Offer took. Only the SDP version
// stays moved on: the next offer must carry a higher one (RFC 3264 8).

// offerUndo is a call's media as it was before the offer in progress.
type offerUndo struct {
	legs    [2]legUndo
	codecs  []string // the call's codec per line (call records)
	sec     [][2]legSec
	streams []streamUndo // one per stream the call had (nil ones too)
}

type legUndo struct {
	ports []int
	dir   []string
}

type streamUndo struct {
	st      *Stream // nil: the line had no stream
	sides   [2]sideUndo
	clock   int
	pending bool
}

// sideUndo is what SetRemote changes of a side.
type sideUndo struct {
	known, mux, nat     bool
	rtp, rtcp           netip.AddrPort
	latchRTP, latchRTCP netip.AddrPort
	setAt               time.Duration
}

// snapshotLocked records the call's media before an offer. c.mu held.
func (c *anchored) snapshotLocked() {
	u := &offerUndo{sec: append([][2]legSec(nil), c.sec...), codecs: append([]string(nil), c.codecs...)}
	for s, l := range c.legs {
		u.legs[s] = legUndo{ports: append([]int(nil), l.ports...), dir: append([]string(nil), l.dir...)}
	}
	u.streams = make([]streamUndo, len(c.streams))
	for i, st := range c.streams {
		if st == nil {
			continue
		}
		su := streamUndo{st: st, clock: st.clock(), pending: st.srtpPending.Load()}
		for side := range st.sides {
			sd := &st.sides[side]
			sd.mu.Lock()
			su.sides[side] = sideUndo{
				known: sd.known, mux: sd.mux, nat: sd.nat, rtp: sd.sdpRTP, rtcp: sd.sdpRTCP,
				latchRTP: sd.latchRTP, latchRTCP: sd.latchRTCP, setAt: sd.setAt,
			}
			sd.mu.Unlock()
		}
		u.streams[i] = su
	}
	c.undo = u
}

// restoreSideUndo puts a side back as it was.
func (s *Stream) restoreSideUndo(side Side, u sideUndo) {
	sd := &s.sides[side]
	sd.mu.Lock()
	sd.known, sd.mux, sd.nat = u.known, u.mux, u.nat
	sd.sdpRTP, sd.sdpRTCP = u.rtp, u.rtcp
	sd.latchRTP, sd.latchRTCP = u.latchRTP, u.latchRTCP
	sd.setAt = u.setAt
	sd.publish(s.socks[side])
	sd.mu.Unlock()
	s.syncOffload() // as SetRemote: kernel flows follow the latch
}

// Rollback undoes the offer in progress on a call: the far leg refused it
// (or the SBC could not rewrite it), so the media goes back to what it was
// before it. Nothing happens when no offer is open (its answer came, or
// the call has ended).
func (a *Anchor) Rollback(callID string) {
	a.mu.Lock()
	c, ok := a.calls[callID]
	a.mu.Unlock()
	if !ok {
		return
	}
	c.op.Lock() // streams are closed below: op only, as the lock order says
	defer c.op.Unlock()
	c.mu.Lock()
	u := c.undo
	c.undo = nil
	if u == nil || c.ended {
		c.mu.Unlock()
		return
	}
	// What the offer added: streams on lines that had none, and the ports
	// they took on each leg.
	var drop []*Stream
	for i, st := range c.streams {
		if st != nil && (i >= len(u.streams) || u.streams[i].st != st) {
			drop = append(drop, st)
		}
	}
	type freed struct {
		pool *Pool
		port int
	}
	var free []freed
	for s := range c.legs {
		l := &c.legs[s]
		for i, p := range l.ports {
			if p != 0 && (i >= len(u.legs[s].ports) || u.legs[s].ports[i] != p) {
				free = append(free, freed{l.face.pool, p})
			}
		}
		l.ports, l.dir = u.legs[s].ports, u.legs[s].dir
	}
	c.sec = u.sec
	c.codecs = u.codecs
	c.streams = make([]*Stream, len(u.streams))
	for i, su := range u.streams {
		c.streams[i] = su.st
		if su.st == nil {
			continue
		}
		for side, sd := range su.sides {
			su.st.restoreSideUndo(Side(side), sd)
		}
		su.st.SetClockRate(su.clock)
		if su.st.srtpPending.Load() != su.pending {
			su.st.SetSRTPPending(su.pending)
		}
		su.st.SetHold(onHold(c, i))
	}
	c.mu.Unlock()
	for _, st := range drop {
		st.Close() // waits for the workers: op held only
	}
	for _, f := range free {
		f.pool.Free(f.port)
	}
}
