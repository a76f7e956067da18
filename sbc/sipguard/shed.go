package sipguard

import (
	"bytes"
	"strconv"
)

// Shedding before the parser (sbc/overload.go). Past its capacity the SBC
// answers new INVITEs 503 straight from the datagram: parsing them (sipgo
// parses in each listener's one read loop) and their ACKs is most of what
// a refused call costs, and it is what made the 503s late under a flood.

// shedTagPrefix starts the To tag of ShedResponse's answers, so that the
// ACKs they bring back can be dropped unparsed too (IsShedAck). The SBC's
// own tags are hex: none starts with it.
const shedTagPrefix = "shed"

// NewInvite says whether msg, a datagram Check accepted, is an INVITE
// outside a dialog (its To has no tag), and returns its Call-ID.
func NewInvite(msg []byte) (callID []byte, ok bool) {
	if !bytes.HasPrefix(msg, []byte("INVITE ")) {
		return nil, false
	}
	to, cid := fields(msg, hTo, hCallID)
	if to == nil || !validCallID(cid) {
		return nil, false
	}
	if end, _, hasTag, why, _ := addr(to, 0, "tag"); why != "" || end != len(to) || hasTag {
		return nil, false
	}
	return cid, true
}

// ShedResponse is the stateless 503 for a new INVITE msg with Retry-After
// retryAfter seconds, its To tag made for IsShedAck; nil when msg cannot
// be answered (see StatelessResponse).
func ShedResponse(msg []byte, retryAfter int) []byte {
	extra := append([]byte("Retry-After: "), strconv.Itoa(max(retryAfter, 1))...)
	extra = append(extra, "\r\n"...)
	return statelessResponse(msg, 503, "Service Unavailable", shedTagPrefix, extra)
}

// IsShedAck says whether msg is the ACK of a ShedResponse answer (RFC
// 3261 17.1.1.3: it carries the 503's To tag).
func IsShedAck(msg []byte) bool {
	if !bytes.HasPrefix(msg, []byte("ACK ")) {
		return false
	}
	to, _ := fields(msg, hTo, hTo)
	return bytes.Contains(to, []byte(";tag="+shedTagPrefix))
}

// fields returns the first values of the header kinds a and b in msg's
// header (nil for one missing), in one bounded pass.
func fields(msg []byte, a, b int) (va, vb []byte) {
	nl := indexLF(msg, 0)
	if nl < 0 {
		return nil, nil
	}
	s := scanner{msg: msg, pos: nl + 1, maxLine: len(msg)}
	for va == nil || vb == nil {
		name, value, st := s.next()
		if st == stEnd || st == stTruncated {
			break
		}
		if st != stHeader {
			continue
		}
		switch headerKind(name) {
		case a:
			if va == nil {
				va = trimLWS(value)
			}
			if a == b {
				vb = va
			}
		case b:
			if vb == nil {
				vb = trimLWS(value)
			}
		}
	}
	return va, vb
}
