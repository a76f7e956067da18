package mediarelay

import (
	"net/netip"
	"time"
)

// DirStats describes the packets received FROM one side.
//
// Packets, Bytes, Forwarded and Dropped count every datagram, RTP and RTCP;
// RTCPPackets says how many of them were RTCP. Lost and JitterMs come from
// the RTP packets that were accepted (from the latched source).
type DirStats struct {
	Packets, Bytes uint64
	Forwarded      uint64
	// Dropped: not from the latched source (hijack attempts), before the
	// remote was known, an RTCP port datagram that is not RTCP, an SRTP
	// packet that did not authenticate, or toward a side with port 0.
	Dropped     uint64
	RTCPPackets uint64
	Lost        int64   // RFC 3550 A.3 cumulative lost, from sequence numbers
	JitterMs    float64 // RFC 3550 A.8 interarrival jitter
	LastSeen    time.Time
	Latched     netip.AddrPort // RTP source latched (invalid until latched)
	// From the RTCP receiver reports that side sent about the stream it
	// receives (first report block of the latest SR/RR).
	RemoteFractionLost float64 // 0..1
	RemoteJitterMs     float64
	// SRTP drops (srtp_stream.go): failed authentication, replays, and
	// packets that were not SRTP at all.
	SRTPAuthFailed, SRTPReplayed, SRTPMalformed uint64
}

// StreamStats holds both directions, by the side the packets came from.
type StreamStats struct{ A, B DirStats }

// RFC 3550 A.1 constants.
const (
	maxDropout    = 3000
	maxMisorder   = 100
	minSequential = 2
	seqMod        = 1 << 16
)

// rtpStats is the per-source receiver state of RFC 3550 A.1, A.3 and A.8.
// It is guarded by the owning side's mutex.
type rtpStats struct {
	started   bool
	ssrc      uint32
	maxSeq    uint16
	cycles    uint32 // shifted count of seq number cycles
	baseSeq   uint32
	badSeq    uint32
	probation int
	received  uint64
	lostPrior int64 // lost by earlier SSRCs, so Lost stays cumulative

	haveTransit bool
	transit     int32
	jitter      float64 // in timestamp units
}

// update accounts one RTP packet that arrived at arrivalTS (the local clock
// in timestamp units).
func (s *rtpStats) update(h rtpHeader, arrivalTS uint32) {
	if !s.started || h.ssrc != s.ssrc {
		if s.started {
			s.lostPrior = s.lost()
		}
		s.started = true
		s.ssrc = h.ssrc
		s.initSeq(h.seq)
		s.maxSeq = h.seq - 1
		s.probation = minSequential
		s.received = 0
		s.haveTransit = false
		s.jitter = 0
	}
	if !s.updateSeq(h.seq) {
		return
	}
	// A.8: J += (|D| - J) / 16, with int32 differences so wraps cancel.
	transit := int32(arrivalTS - h.ts)
	if s.haveTransit {
		d := float64(transit - s.transit)
		if d < 0 {
			d = -d
		}
		s.jitter += (d - s.jitter) / 16
	}
	s.transit = transit
	s.haveTransit = true
}

func (s *rtpStats) initSeq(seq uint16) {
	s.baseSeq = uint32(seq)
	s.maxSeq = seq
	s.badSeq = seqMod + 1 // so seq == badSeq is false
	s.cycles = 0
	s.received = 0
}

// updateSeq is RFC 3550 A.1 update_seq: false while the source is on
// probation or after a large jump that is not yet confirmed.
func (s *rtpStats) updateSeq(seq uint16) bool {
	udelta := seq - s.maxSeq
	switch {
	case s.probation > 0:
		if seq != s.maxSeq+1 {
			s.probation = minSequential - 1
			s.maxSeq = seq
			return false
		}
		s.probation--
		s.maxSeq = seq
		if s.probation > 0 {
			return false
		}
		s.initSeq(seq)
	case udelta < maxDropout:
		if seq < s.maxSeq {
			s.cycles += seqMod
		}
		s.maxSeq = seq
	case uint32(udelta) <= seqMod-maxMisorder:
		if uint32(seq) != s.badSeq {
			s.badSeq = (uint32(seq) + 1) & (seqMod - 1)
			return false
		}
		// Two sequential packets after a jump: the sender restarted.
		s.lostPrior = s.lost()
		s.initSeq(seq)
	default:
		// Duplicate or reordered: counted, does not move maxSeq.
	}
	s.received++
	return true
}

// lost is A.3's cumulative number of packets lost (negative with duplicates).
func (s *rtpStats) lost() int64 {
	if !s.started || s.probation > 0 {
		return s.lostPrior
	}
	expected := int64(s.cycles) + int64(s.maxSeq) - int64(s.baseSeq) + 1
	return s.lostPrior + expected - int64(s.received)
}

// jitterMs converts the jitter estimate to milliseconds.
func (s *rtpStats) jitterMs(clockRate int) float64 {
	return s.jitter * 1000 / float64(clockRate)
}
