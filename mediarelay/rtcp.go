package mediarelay

import "encoding/binary"

// Minimal, bounded, allocation-free parsing of RTP headers and RTCP receiver
// reports. pion/rtp's Header.Unmarshal allocates for CSRCs and extensions;
// the relay needs only four fields, so it reads them itself.

const (
	rtpHeaderLen  = 12
	rtcpHeaderLen = 4
	rtcpPTSR      = 200
	rtcpPTRR      = 201
	reportLen     = 24 // one RFC 3550 report block
	srInfoLen     = 20 // NTP ts, RTP ts, packet and octet counts
)

// rtpHeader holds the fields the statistics need.
type rtpHeader struct {
	seq  uint16
	ts   uint32
	ssrc uint32
}

// parseRTPHeader reads the fixed header. ok is false for anything that is not
// RTP version 2 with at least a fixed header.
func parseRTPHeader(b []byte) (h rtpHeader, ok bool) {
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return h, false
	}
	h.seq = binary.BigEndian.Uint16(b[2:4])
	h.ts = binary.BigEndian.Uint32(b[4:8])
	h.ssrc = binary.BigEndian.Uint32(b[8:12])
	return h, true
}

// looksLikeRTCP tells RTCP from RTP on a muxed port (RFC 5761 section 4:
// RTCP packet types 192-223 sit where RTP would have marker+PT 64-95).
func looksLikeRTCP(b []byte) bool {
	return len(b) >= rtcpHeaderLen && b[0]>>6 == 2 && b[1] >= 192 && b[1] <= 223
}

// validRTCP checks the first packet header of a compound: version 2 and a
// length that fits. Anything else is not forwarded.
func validRTCP(b []byte) bool {
	if len(b) < 8 || b[0]>>6 != 2 {
		return false
	}
	return (int(binary.BigEndian.Uint16(b[2:4]))+1)*4 <= len(b)
}

// rtcpReport is the part of a report block that the stats use.
type rtcpReport struct {
	fractionLost uint8  // loss fraction in 1/256
	jitter       uint32 // interarrival jitter in RTP timestamp units
}

// parseRTCPReport walks a compound RTCP packet and returns the first report
// block found in an SR or RR. Parsing stops at the first header whose
// version or length is wrong, so a hostile length never reads past b.
func parseRTCPReport(b []byte) (r rtcpReport, ok bool) {
	for len(b) >= rtcpHeaderLen {
		if b[0]>>6 != 2 {
			return r, false
		}
		count := int(b[0] & 0x1f)
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return r, false
		}
		pkt := b[:n]
		off := -1
		switch b[1] {
		case rtcpPTSR:
			off = 8 + srInfoLen
		case rtcpPTRR:
			off = 8
		}
		if off > 0 && count > 0 && off+reportLen <= len(pkt) {
			blk := pkt[off : off+reportLen]
			r.fractionLost = blk[4]
			r.jitter = binary.BigEndian.Uint32(blk[12:16])
			return r, true
		}
		b = b[n:]
	}
	return r, false
}
