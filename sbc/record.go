package sbc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/topology"
)

// The call record: what the HA store keeps of each established call, so
// that another node (or this one after a restart) can take the call over.
// It is the B2BUA's schema; ha/ stores the bytes and knows nothing of them.
//
// Layout: one version byte, then fields, each a uvarint tag, a uvarint
// length and that many bytes. Legs, media, streams and stream sides are
// fields holding fields. Numbers are uvarints inside their field. A
// reader skips tags it does not know (a newer writer's additions) and
// refuses a version it does not know. The record is input like any
// packet: every length, count and value is bounded on decode.

const recordVersion = 1

// Bounds on decode.
const (
	maxRecord    = 64 << 10
	maxString    = 2048 // a URI, tag, Call-ID, realm name
	maxRouteSet  = 16
	maxStreams   = 32
	maxSRTP      = 4096
	recordPrefix = "call/" // store key prefix
)

var errRecord = errors.New("bad call record")

// Field tags. Never renumber; add new ones at the end.
const (
	// call
	tCallID = 1 + iota
	tRoute
	tStart
	tAnswered
	tState
	tLegA
	tLegB
	tMedia
)

const (
	// leg
	tlRealm = 1 + iota
	tlTransport
	tlCallID
	tlLocalURI
	tlLocalName
	tlLocalTag
	tlRemoteURI
	tlRemoteName
	tlRemoteTag
	tlTarget
	tlRoute // repeated, in sending order
	tlCSeq
	tlRemoteCSeq
	tlPeer
)

const (
	// media
	tmRealmA = 1 + iota
	tmRealmB
	tmLegA
	tmLegB
	tmStream // repeated, in media-line order
	tmSRTP   // extension point: opaque SRTP keys (never logged)
)

const (
	// media leg
	tmlPort = 1 + iota // repeated
	tmlSessID
	tmlVersion
	tmlDir // repeated
)

const (
	// stream
	tsPresent = 1 + iota
	tsClock
	tsSideA
	tsSideB
)

const (
	// stream side
	tssRTP = 1 + iota
	tssRTCP
	tssNAT
	tssLatchRTP
	tssLatchRTCP
)

// callRecord is a call as the record holds it.
type callRecord struct {
	ID       string
	Route    string
	Start    time.Time
	Answered time.Time
	State    CallState
	Legs     [2]legRecord
	Media    *mediarelay.CallState
}

type legRecord struct {
	Realm      string
	Transport  string // "UDP", "TCP"
	Dialog     topology.Dialog
	CSeq       uint32 // last CSeq the SBC sent on the leg
	RemoteCSeq uint32 // last CSeq the peer sent
	Peer       string
}

// recordKey is the store key of a call.
func recordKey(id string) string { return recordPrefix + id }

// --- encoding ---

type enc []byte

func (e *enc) uint(tag int, v uint64) {
	var b [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(b[:], v)
	e.bytes(tag, b[:n])
}

func (e *enc) bytes(tag int, v []byte) {
	*e = binary.AppendUvarint(*e, uint64(tag))
	*e = binary.AppendUvarint(*e, uint64(len(v)))
	*e = append(*e, v...)
}

func (e *enc) str(tag int, v string) {
	if v != "" {
		e.bytes(tag, []byte(v))
	}
}

func (e *enc) addr(tag int, ap netip.AddrPort) {
	if ap.IsValid() {
		b, _ := ap.MarshalBinary()
		e.bytes(tag, b)
	}
}

func (e *enc) nested(tag int, f func(*enc)) {
	var in enc
	f(&in)
	e.bytes(tag, in)
}

func uriString(u sip.Uri) string {
	if u.Host == "" {
		return ""
	}
	return u.String()
}

func encodeRecord(r *callRecord) []byte {
	e := enc{recordVersion}
	e.str(tCallID, r.ID)
	e.str(tRoute, r.Route)
	if !r.Start.IsZero() {
		e.uint(tStart, uint64(r.Start.UnixNano()))
	}
	if !r.Answered.IsZero() {
		e.uint(tAnswered, uint64(r.Answered.UnixNano()))
	}
	e.uint(tState, uint64(r.State))
	for i, tag := range []int{tLegA, tLegB} {
		l := &r.Legs[i]
		e.nested(tag, func(e *enc) {
			e.str(tlRealm, l.Realm)
			e.str(tlTransport, l.Transport)
			d := &l.Dialog
			e.str(tlCallID, d.CallID)
			e.str(tlLocalURI, uriString(d.LocalURI))
			e.str(tlLocalName, d.LocalName)
			e.str(tlLocalTag, d.LocalTag)
			e.str(tlRemoteURI, uriString(d.RemoteURI))
			e.str(tlRemoteName, d.RemoteName)
			e.str(tlRemoteTag, d.RemoteTag)
			e.str(tlTarget, uriString(d.Target))
			for _, u := range d.RouteSet {
				e.str(tlRoute, uriString(u))
			}
			e.uint(tlCSeq, uint64(l.CSeq))
			e.uint(tlRemoteCSeq, uint64(l.RemoteCSeq))
			e.str(tlPeer, l.Peer)
		})
	}
	if m := r.Media; m != nil {
		e.nested(tMedia, func(e *enc) {
			e.str(tmRealmA, m.Ref.Realms[0])
			e.str(tmRealmB, m.Ref.Realms[1])
			for i, tag := range []int{tmLegA, tmLegB} {
				l := &m.Legs[i]
				e.nested(tag, func(e *enc) {
					for _, p := range l.Ports {
						e.uint(tmlPort, uint64(p))
					}
					e.str(tmlSessID, l.SessID)
					e.uint(tmlVersion, l.Version)
					for _, d := range l.Dir {
						e.bytes(tmlDir, []byte(d))
					}
				})
			}
			for _, st := range m.Streams {
				e.nested(tmStream, func(e *enc) {
					if !st.Present {
						return
					}
					e.uint(tsPresent, 1)
					e.uint(tsClock, uint64(st.ClockRate))
					for i, tag := range []int{tsSideA, tsSideB} {
						sd := &st.Sides[i]
						e.nested(tag, func(e *enc) {
							e.addr(tssRTP, sd.RTP)
							e.addr(tssRTCP, sd.RTCP)
							if sd.NAT {
								e.uint(tssNAT, 1)
							}
							e.addr(tssLatchRTP, sd.LatchRTP)
							e.addr(tssLatchRTCP, sd.LatchRTCP)
						})
					}
				})
			}
			if len(m.SRTP) > 0 {
				e.bytes(tmSRTP, m.SRTP)
			}
		})
	}
	return e
}

// --- decoding ---

// fields walks a field list, calling f for each; it stops at the first
// error. Lengths are checked against what is left, so a field can never
// reach past its parent.
func fields(b []byte, f func(tag uint64, v []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("%w: bad field tag", errRecord)
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return fmt.Errorf("%w: field %d: bad length", errRecord, tag)
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		if err := f(tag, v); err != nil {
			return err
		}
	}
	return nil
}

func dUint(tag uint64, v []byte, max uint64) (uint64, error) {
	x, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) || x > max {
		return 0, fmt.Errorf("%w: field %d: bad number", errRecord, tag)
	}
	return x, nil
}

func dStr(tag uint64, v []byte) (string, error) {
	if len(v) > maxString {
		return "", fmt.Errorf("%w: field %d: %d bytes, limit %d", errRecord, tag, len(v), maxString)
	}
	return string(v), nil
}

func dURI(tag uint64, v []byte) (sip.Uri, error) {
	s, err := dStr(tag, v)
	if err != nil {
		return sip.Uri{}, err
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil || u.Host == "" {
		return sip.Uri{}, fmt.Errorf("%w: field %d: bad URI", errRecord, tag)
	}
	return u, nil
}

func dAddr(tag uint64, v []byte) (netip.AddrPort, error) {
	var ap netip.AddrPort
	if err := ap.UnmarshalBinary(v); err != nil {
		return ap, fmt.Errorf("%w: field %d: bad address", errRecord, tag)
	}
	return ap, nil
}

func decodeRecord(b []byte) (*callRecord, error) {
	if len(b) == 0 || len(b) > maxRecord {
		return nil, fmt.Errorf("%w: %d bytes", errRecord, len(b))
	}
	if b[0] != recordVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", errRecord, b[0], recordVersion)
	}
	r := &callRecord{}
	var legs [2]bool
	err := fields(b[1:], func(tag uint64, v []byte) error {
		var err error
		var x uint64
		switch tag {
		case tCallID:
			r.ID, err = dStr(tag, v)
		case tRoute:
			r.Route, err = dStr(tag, v)
		case tStart:
			x, err = dUint(tag, v, 1<<63-1)
			r.Start = time.Unix(0, int64(x))
		case tAnswered:
			x, err = dUint(tag, v, 1<<63-1)
			r.Answered = time.Unix(0, int64(x))
		case tState:
			x, err = dUint(tag, v, uint64(StateEnded))
			r.State = CallState(x)
		case tLegA, tLegB:
			i := int(tag - tLegA)
			legs[i] = true
			err = decodeLeg(v, &r.Legs[i])
		case tMedia:
			r.Media = &mediarelay.CallState{Ref: mediarelay.CallRef{ID: r.ID}}
			err = decodeMedia(v, r.Media)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch {
	case r.ID == "":
		return nil, fmt.Errorf("%w: no call id", errRecord)
	case !legs[0] || !legs[1]:
		return nil, fmt.Errorf("%w: call %s: a leg is missing", errRecord, r.ID)
	}
	for i := range r.Legs {
		d := &r.Legs[i].Dialog
		if d.CallID == "" || d.LocalTag == "" || d.RemoteTag == "" || d.Target.Host == "" || r.Legs[i].Realm == "" {
			return nil, fmt.Errorf("%w: call %s: leg %s incomplete", errRecord, r.ID, sideName(Side(i)))
		}
	}
	if r.Media != nil {
		r.Media.Ref.ID = r.ID
	}
	return r, nil
}

func decodeLeg(b []byte, l *legRecord) error {
	d := &l.Dialog
	return fields(b, func(tag uint64, v []byte) error {
		var err error
		var x uint64
		switch tag {
		case tlRealm:
			l.Realm, err = dStr(tag, v)
		case tlTransport:
			l.Transport, err = dStr(tag, v)
			if err == nil && l.Transport != "UDP" && l.Transport != "TCP" {
				err = fmt.Errorf("%w: transport %q", errRecord, l.Transport)
			}
		case tlCallID:
			d.CallID, err = dStr(tag, v)
		case tlLocalURI:
			d.LocalURI, err = dURI(tag, v)
		case tlLocalName:
			d.LocalName, err = dStr(tag, v)
		case tlLocalTag:
			d.LocalTag, err = dStr(tag, v)
		case tlRemoteURI:
			d.RemoteURI, err = dURI(tag, v)
		case tlRemoteName:
			d.RemoteName, err = dStr(tag, v)
		case tlRemoteTag:
			d.RemoteTag, err = dStr(tag, v)
		case tlTarget:
			d.Target, err = dURI(tag, v)
		case tlRoute:
			if len(d.RouteSet) >= maxRouteSet {
				return fmt.Errorf("%w: more than %d routes", errRecord, maxRouteSet)
			}
			var u sip.Uri
			u, err = dURI(tag, v)
			d.RouteSet = append(d.RouteSet, u)
		case tlCSeq:
			x, err = dUint(tag, v, 1<<31-1)
			l.CSeq = uint32(x)
		case tlRemoteCSeq:
			x, err = dUint(tag, v, 1<<31-1)
			l.RemoteCSeq = uint32(x)
		case tlPeer:
			l.Peer, err = dStr(tag, v)
		}
		return err
	})
}

func decodeMedia(b []byte, m *mediarelay.CallState) error {
	return fields(b, func(tag uint64, v []byte) error {
		var err error
		switch tag {
		case tmRealmA:
			m.Ref.Realms[0], err = dStr(tag, v)
		case tmRealmB:
			m.Ref.Realms[1], err = dStr(tag, v)
		case tmLegA, tmLegB:
			err = decodeMediaLeg(v, &m.Legs[tag-tmLegA])
		case tmStream:
			if len(m.Streams) >= maxStreams {
				return fmt.Errorf("%w: more than %d media streams", errRecord, maxStreams)
			}
			var st mediarelay.StreamState
			err = decodeStream(v, &st)
			m.Streams = append(m.Streams, st)
		case tmSRTP:
			if len(v) > maxSRTP {
				return fmt.Errorf("%w: SRTP state of %d bytes", errRecord, len(v))
			}
			m.SRTP = append([]byte(nil), v...)
		}
		return err
	})
}

func decodeMediaLeg(b []byte, l *mediarelay.LegMediaState) error {
	return fields(b, func(tag uint64, v []byte) error {
		var err error
		var x uint64
		switch tag {
		case tmlPort:
			if len(l.Ports) >= maxStreams {
				return fmt.Errorf("%w: more than %d media ports", errRecord, maxStreams)
			}
			x, err = dUint(tag, v, 65534)
			l.Ports = append(l.Ports, int(x))
		case tmlSessID:
			l.SessID, err = dStr(tag, v)
		case tmlVersion:
			l.Version, err = dUint(tag, v, 1<<63-1)
		case tmlDir:
			if len(l.Dir) >= maxStreams {
				return fmt.Errorf("%w: more than %d directions", errRecord, maxStreams)
			}
			var d string
			d, err = dStr(tag, v)
			switch d {
			case "sendrecv", "sendonly", "recvonly", "inactive":
			default:
				err = fmt.Errorf("%w: direction %q", errRecord, d)
			}
			l.Dir = append(l.Dir, d)
		}
		return err
	})
}

func decodeStream(b []byte, st *mediarelay.StreamState) error {
	return fields(b, func(tag uint64, v []byte) error {
		var err error
		var x uint64
		switch tag {
		case tsPresent:
			x, err = dUint(tag, v, 1)
			st.Present = x == 1
		case tsClock:
			x, err = dUint(tag, v, 1<<24)
			st.ClockRate = int(x)
		case tsSideA, tsSideB:
			sd := &st.Sides[tag-tsSideA]
			err = fields(v, func(tag uint64, v []byte) error {
				var err error
				switch tag {
				case tssRTP:
					sd.RTP, err = dAddr(tag, v)
				case tssRTCP:
					sd.RTCP, err = dAddr(tag, v)
				case tssNAT:
					var x uint64
					x, err = dUint(tag, v, 1)
					sd.NAT = x == 1
				case tssLatchRTP:
					sd.LatchRTP, err = dAddr(tag, v)
				case tssLatchRTCP:
					sd.LatchRTCP, err = dAddr(tag, v)
				}
				return err
			})
		}
		return err
	})
}
