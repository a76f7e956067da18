package mediarelay

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const defaultClockRate = 8000

// Stream relays one media line (RTP and RTCP) between side A and side B.
type Stream struct {
	relay *Relay
	local [2]netip.AddrPort // the SBC's RTP address per side
	socks [2][2]*relaySock  // [side][0=RTP, 1=RTCP]
	sides [2]sideState
	// The worker serving each side's two sockets; nil until NewStream
	// queued them.
	workers [2]*worker

	epoch      time.Time    // monotonic base for every time.Duration below
	clockRate  atomic.Int32 // Hz, for jitter
	held       atomic.Bool  // on hold: Idle reports 0
	opaque     atomic.Bool  // not RTP (T.38 UDPTL): forwarded unread (t38.go)
	lastPacket atomic.Int64 // since epoch, any accepted packet
	lastRemote atomic.Int64 // since epoch, last SetRemote

	// SRTP (srtp_stream.go): each leg's keys, nil for plain RTP.
	keys        [2]atomic.Pointer[LegKeys]
	srtpOn      [2]atomic.Bool
	srtpPending atomic.Bool // first negotiation open: forward nothing

	closeOnce sync.Once

	off streamOffload // kernel flows (offload.go)
}

// sideState is what the stream knows about one side's peer.
type sideState struct {
	mu sync.Mutex // guards the fields up to rtp; held per batch by the worker
	// From SDP (SetRemote).
	known   bool
	sdpRTP  netip.AddrPort
	sdpRTCP netip.AddrPort
	mux     bool // rtcp-mux: RTCP shares the RTP address
	nat     bool
	setAt   time.Duration
	// Latched sources (symmetric RTP), invalid until latched.
	latchRTP, latchRTCP netip.AddrPort
	// Receiver statistics.
	rtp            rtpStats
	remoteFraction float64
	remoteJitterMs float64
	// SRTP transform of the packets from this side; nil: plain both ways.
	x *xform

	// Counters written once per batch by this side's worker.
	packets, bytes, forwarded, dropped, rtcpPackets atomic.Uint64
	lastSeen                                        atomic.Int64 // since epoch, 0 = never
	srtp                                            srtpCounters // SRTP drops of packets from this side

	// Where packets TOWARD this side go; nil = drop. Written under mu,
	// read without it by the other side's worker.
	rtpDst, rtcpDst atomic.Pointer[fwdDest]

	// onLatch, when set (under mu), is told each time a source latches, so
	// the call's replicated record can follow (restore.go). Cheap, never
	// blocks: it runs on a worker with mu held.
	onLatch func()
}

func newStream(r *Relay, a, b netip.AddrPort) (*Stream, error) {
	s := &Stream{relay: r, local: [2]netip.AddrPort{a, b}, epoch: time.Now()}
	s.clockRate.Store(defaultClockRate)
	var errs []error
	for side, ap := range s.local {
		for k := range 2 {
			sk, err := newRelaySock(netip.AddrPortFrom(ap.Addr(), ap.Port()+uint16(k)))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			sk.s, sk.from, sk.rtcp = s, Side(side), k == 1
			s.socks[side][k] = sk
		}
	}
	if len(errs) > 0 {
		s.closeSocks()
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Local is the SBC's RTP address facing side (RTCP is on the next port).
func (s *Stream) Local(side Side) netip.AddrPort { return s.local[side] }

// SetRemote sets where a side's media is expected to come from and go to,
// from its SDP. rtcp is usually rtp+1, or rtp with rtcp-mux; an invalid rtcp
// means rtp+1. With nat any source may latch during the relay's LatchWindow;
// without it only a source whose IP is rtp's. A changed address (re-INVITE)
// unlatches the side; the same address keeps the latch. Port 0 means the
// side takes no media: packets to and from it are dropped.
func (s *Stream) SetRemote(side Side, rtp, rtcp netip.AddrPort, nat bool) {
	if side != SideA && side != SideB {
		return
	}
	rtp = netip.AddrPortFrom(rtp.Addr().Unmap(), rtp.Port())
	if !rtcp.IsValid() && rtp.Port() != 0 && rtp.Port() < 65535 {
		rtcp = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	rtcp = netip.AddrPortFrom(rtcp.Addr().Unmap(), rtcp.Port())
	now := time.Since(s.epoch)
	sd := &s.sides[side]
	sd.mu.Lock()
	sd.nat = nat
	changed := !sd.known || rtp != sd.sdpRTP || rtcp != sd.sdpRTCP
	if changed {
		sd.known = true
		sd.sdpRTP, sd.sdpRTCP = rtp, rtcp
		sd.mux = rtp == rtcp
		sd.latchRTP, sd.latchRTCP = netip.AddrPort{}, netip.AddrPort{}
		sd.setAt = now
		sd.publish(s.socks[side])
	}
	sd.mu.Unlock()
	s.lastRemote.Store(int64(now))
	if changed {
		s.syncOffload() // unlatched: its kernel flows go at once
	}
}

// accept applies the latching rules to a packet from src arriving on the
// RTP (or RTCP) socket; the first accepted source latches. Called with mu.
func (sd *sideState) accept(src netip.AddrPort, rtcpSock bool, now, window time.Duration, socks [2]*relaySock) bool {
	if !sd.known || sd.sdpRTP.Port() == 0 || !src.IsValid() {
		return false
	}
	latch, sdp := &sd.latchRTP, sd.sdpRTP
	if rtcpSock {
		latch, sdp = &sd.latchRTCP, sd.sdpRTCP
	}
	if latch.IsValid() {
		return src == *latch
	}
	if !(sd.nat && now-sd.setAt <= window) && src.Addr() != sdp.Addr() {
		return false
	}
	*latch = src
	sd.publish(socks)
	if sd.onLatch != nil {
		sd.onLatch()
	}
	return true
}

// admissible is accept without the latching: whether a packet from src
// could be accepted. The SRTP path asks it before spending a decryption,
// and latches only once the packet authenticated. Called with mu.
func (sd *sideState) admissible(src netip.AddrPort, rtcpSock bool, now, window time.Duration) bool {
	if !sd.known || sd.sdpRTP.Port() == 0 || !src.IsValid() {
		return false
	}
	latch, sdp := sd.latchRTP, sd.sdpRTP
	if rtcpSock {
		latch, sdp = sd.latchRTCP, sd.sdpRTCP
	}
	if latch.IsValid() {
		return src == latch
	}
	return (sd.nat && now-sd.setAt <= window) || src.Addr() == sdp.Addr()
}

// publish recomputes where packets toward this side go: the latched source
// if any, else the SDP address. Allocates only when a destination changes,
// i.e. on SetRemote and on latching, never per packet. Called with mu.
func (sd *sideState) publish(socks [2]*relaySock) {
	var rtp, rtcp *fwdDest
	if sd.known && sd.sdpRTP.Port() != 0 {
		ap := sd.sdpRTP
		if sd.latchRTP.IsValid() {
			ap = sd.latchRTP
		}
		rtp = reuseDest(sd.rtpDst.Load(), ap, socks[0])
		switch {
		case sd.mux:
			rtcp = rtp // RTCP shares the RTP flow and leaves from the RTP socket
		case sd.latchRTCP.IsValid():
			rtcp = reuseDest(sd.rtcpDst.Load(), sd.latchRTCP, socks[1])
		case sd.sdpRTCP.Port() != 0:
			rtcp = reuseDest(sd.rtcpDst.Load(), sd.sdpRTCP, socks[1])
		}
	}
	sd.rtpDst.Store(rtp)
	sd.rtcpDst.Store(rtcp)
}

func reuseDest(cur *fwdDest, ap netip.AddrPort, out *relaySock) *fwdDest {
	if cur != nil && cur.addr == ap && cur.out == out {
		return cur
	}
	return newFwdDest(ap, out)
}

// clock is the RTP clock rate used for jitter.
func (s *Stream) clock() int { return int(s.clockRate.Load()) }

// SetClockRate sets the RTP clock rate for jitter figures (default 8000).
func (s *Stream) SetClockRate(hz int) {
	if hz > 0 && hz <= 1<<24 {
		s.clockRate.Store(int32(hz))
	}
}

// SetHold marks the stream held: a held stream never counts as idle.
func (s *Stream) SetHold(on bool) { s.held.Store(on) }

// Idle is the time since the last accepted packet in either direction, or
// since the last SetRemote (or creation) if that is later; 0 while held.
// Dropped packets (hijack attempts) do not keep a stream alive.
func (s *Stream) Idle() time.Duration {
	if s.held.Load() {
		return 0
	}
	last := max(s.lastPacket.Load(), s.lastRemote.Load())
	return max(time.Since(s.epoch)-time.Duration(last), 0)
}

// Stats returns a snapshot of both directions.
func (s *Stream) Stats() StreamStats {
	return StreamStats{A: s.dirStats(SideA), B: s.dirStats(SideB)}
}

func (s *Stream) dirStats(side Side) DirStats {
	sd := &s.sides[side]
	st := DirStats{
		Packets:     sd.packets.Load(),
		Bytes:       sd.bytes.Load(),
		Forwarded:   sd.forwarded.Load(),
		Dropped:     sd.dropped.Load(),
		RTCPPackets: sd.rtcpPackets.Load(),

		SRTPAuthFailed: sd.srtp.authFailed.Load(),
		SRTPReplayed:   sd.srtp.replayed.Load(),
		SRTPMalformed:  sd.srtp.malformed.Load(),
	}
	if ls := sd.lastSeen.Load(); ls != 0 {
		st.LastSeen = s.epoch.Add(time.Duration(ls))
	}
	if k := s.kernelDir(side); k.packets > 0 {
		// Forwarded in the kernel: counted there, never seen here.
		st.Packets += k.packets
		st.Bytes += k.bytes
		st.Forwarded += k.packets
		st.RTCPPackets += k.rtcp
		if k.lastSeen.After(st.LastSeen) {
			st.LastSeen = k.lastSeen
		}
	}
	sd.mu.Lock()
	st.Lost = sd.rtp.lost()
	st.JitterMs = sd.rtp.jitterMs(s.clock())
	st.Latched = sd.latchRTP
	st.RemoteFractionLost = sd.remoteFraction
	st.RemoteJitterMs = sd.remoteJitterMs
	sd.mu.Unlock()
	return st
}

// Close stops forwarding and closes the sockets. It is idempotent and
// returns once no worker will touch the stream's sockets again: each
// side's worker takes its two sockets out of its epoll set between two
// batches and acknowledges; only after both acknowledgements are the
// descriptors closed, since a worker sends out of the other side's sockets.
func (s *Stream) Close() {
	s.closeOnce.Do(func() {
		s.closeOffload()
		if s.workers[SideA] != nil {
			var wg sync.WaitGroup
			for side, w := range s.workers {
				wg.Add(1)
				w.submit(workerCmd{socks: s.socks[side], wg: &wg})
			}
			wg.Wait()
			for _, w := range s.workers {
				w.load.Add(-1)
			}
		}
		s.closeSocks()
		s.relay.remove(s)
	})
}

func (s *Stream) closeSocks() {
	for _, pair := range s.socks {
		for _, sk := range pair {
			if sk != nil {
				sk.close()
			}
		}
	}
}
