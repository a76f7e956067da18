package mediarelay

// The SRTP transform on the relay path. Each direction of a stream (the
// packets from one side) has one xform: the decrypt context of the source
// leg's key, the encrypt context of the destination leg's SBC key. Only the
// worker serving the source side touches it, under that side's mu, which it
// holds per batch anyway; pion's Contexts are not goroutine-safe and one
// Context is one direction, so that is exactly one owner per Context.
//
// Packets are transformed in place in the worker's receive buffers (the
// buffers have room for the auth tag and SRTCP index beyond the MTU).
// A packet that fails authentication, is a replay, or is not SRTP at all is
// dropped and counted; it never latches the source and is never forwarded.

import (
	"errors"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

const (
	replayWindow = 64
	// srtpSlack is room past maxDatagram in every receive buffer for what
	// encryption adds: an auth tag (up to 16 bytes for GCM), the SRTCP
	// index (4) and an MKI.
	srtpSlack = 64
)

// LegKeys is the SRTP keying of one leg: Local is the SBC's key (it
// encrypts what the SBC sends to the leg's peer), Remote the peer's (it
// decrypts what the peer sends). A nil *LegKeys means plain RTP.
type LegKeys struct {
	Local, Remote CryptoAttr
}

// xform is one direction's transform.
type xform struct {
	dec    *srtp.Context // the source leg's key; nil: the source is plain
	decOld *srtp.Context // the key before a re-key, until dec authenticates a packet
	enc    *srtp.Context // the destination leg's SBC key; nil: plain
	rtpHdr rtp.Header
	rtcpH  rtcp.Header
	marks  map[uint32]*ssrcMark // srtp_state.go: counters last recorded, per SSRC
}

// srtpCounters counts SRTP drops per direction.
type srtpCounters struct {
	authFailed, replayed, malformed atomic.Uint64
}

func decryptContext(c CryptoAttr) (*srtp.Context, error) {
	opts := []srtp.ContextOption{srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow)}
	if len(c.MKI) > 0 {
		opts = append(opts, srtp.MasterKeyIndicator(c.MKI))
	}
	return srtp.CreateContext(c.Key, c.Salt, c.Profile, opts...)
}

func encryptContext(c CryptoAttr) (*srtp.Context, error) {
	return srtp.CreateContext(c.Key, c.Salt, c.Profile)
}

// NeedsTransform reports whether any direction of the stream decrypts or
// encrypts: such a stream must stay in the user-space relay (the XDP fast
// path only rewrites addresses).
func (s *Stream) NeedsTransform() bool {
	return s.srtpPending.Load() || s.srtpOn[SideA].Load() || s.srtpOn[SideB].Load()
}

// SetSRTPPending holds the stream while its first SRTP negotiation is
// open (offer sent, answer not yet seen): nothing is forwarded either way,
// since a packet could only go out untransformed, e.g. a plain-RTP peer's
// early packets into an SRTP leg in the clear. SetSRTP for either side
// ends it.
func (s *Stream) SetSRTPPending(on bool) {
	s.srtpPending.Store(on)
	s.syncOffload() // a stream that needs a transform leaves the kernel at once
}

// SetSRTP sets a leg's SRTP keys (nil: plain RTP on that leg). Keys equal
// to the current ones change nothing, so a repeated answer keeps the replay
// windows and rollover counters. A new remote key keeps the old one as a
// fallback until a packet authenticates with the new one: packets already
// in flight under the old key still go through (re-key without a gap).
func (s *Stream) SetSRTP(side Side, k *LegKeys) error {
	if side != SideA && side != SideB {
		return nil
	}
	in := &s.sides[side]          // packets FROM side: decrypt with Remote
	out := &s.sides[side.other()] // packets TO side: encrypt with Local
	var dec, enc *srtp.Context
	var err error
	cur := s.keys[side].Load()
	if k != nil && (cur == nil || !cur.Remote.sameKey(k.Remote)) {
		if dec, err = decryptContext(k.Remote); err != nil {
			return errors.Join(ErrSRTPRefused, err)
		}
	}
	if k != nil && (cur == nil || !cur.Local.sameKey(k.Local)) {
		if enc, err = encryptContext(k.Local); err != nil {
			return errors.Join(ErrSRTPRefused, err)
		}
	}
	in.mu.Lock()
	switch {
	case k == nil:
		if in.x != nil {
			in.x.dec, in.x.decOld = nil, nil
		}
	case dec != nil:
		x := in.xf()
		x.decOld, x.dec = x.dec, dec
	}
	in.mu.Unlock()
	out.mu.Lock()
	switch {
	case k == nil:
		if out.x != nil {
			out.x.enc = nil
		}
	case enc != nil:
		out.xf().enc = enc
	}
	out.mu.Unlock()
	if k != nil {
		kc := *k
		s.keys[side].Store(&kc)
	} else {
		s.keys[side].Store(nil)
	}
	s.srtpOn[side].Store(k != nil)
	s.srtpPending.Store(false)
	s.syncOffload() // to or from the kernel, as the transform now asks
	return nil
}

// xf returns the side's transform, creating it. Called with mu.
func (sd *sideState) xf() *xform {
	if sd.x == nil {
		sd.x = &xform{}
	}
	return sd.x
}

// active says whether the direction transforms at all. Called with mu.
func (x *xform) active() bool { return x != nil && (x.dec != nil || x.decOld != nil || x.enc != nil) }

// decrypt turns an SRTP/SRTCP packet from the source leg into plain RTP or
// RTCP in place. ok is false when the packet must be dropped; it is
// counted in c.
func (x *xform) decrypt(b []byte, isRTCP bool, c *srtpCounters, m *metrics) ([]byte, bool) {
	if x.dec == nil && x.decOld == nil {
		return b, true
	}
	out, err := x.open(x.dec, b, isRTCP)
	if err != nil && x.decOld != nil {
		if o, e2 := x.open(x.decOld, b, isRTCP); e2 == nil {
			return o, true
		}
	}
	if err == nil {
		if x.decOld != nil && x.dec != nil {
			x.decOld = nil // the new key works: the old one may go
		}
		return out, true
	}
	switch {
	case errors.Is(err, srtp.ErrFailedToVerifyAuthTag), errors.Is(err, srtp.ErrMKINotFound):
		c.authFailed.Add(1)
		if m != nil {
			m.srtpDrop(m.srtpAuth)
		}
	case isReplay(err):
		c.replayed.Add(1)
		if m != nil {
			m.srtpDrop(m.srtpReplay)
		}
	default:
		c.malformed.Add(1)
		if m != nil {
			m.srtpDrop(m.srtpMalformed)
		}
	}
	return nil, false
}

func (x *xform) open(ctx *srtp.Context, b []byte, isRTCP bool) ([]byte, error) {
	if ctx == nil {
		return nil, srtp.ErrFailedToVerifyAuthTag
	}
	if isRTCP {
		return ctx.DecryptRTCP(b, b, &x.rtcpH)
	}
	return ctx.DecryptRTP(b, b, &x.rtpHdr)
}

// isReplay recognises pion's (unexported) duplicated-packet error.
func isReplay(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "duplicated packet" {
			return true
		}
	}
	return false
}

// encrypt protects a plain packet for the destination leg in place; b must
// have srtpSlack bytes of capacity beyond its length.
func (x *xform) encrypt(b []byte, isRTCP bool, c *srtpCounters, m *metrics) ([]byte, bool) {
	if x.enc == nil {
		return b, true
	}
	var out []byte
	var err error
	if isRTCP {
		out, err = x.enc.EncryptRTCP(b, b, &x.rtcpH)
	} else {
		out, err = x.enc.EncryptRTP(b, b, &x.rtpHdr)
	}
	if err != nil || &out[0] != &b[0] {
		c.malformed.Add(1)
		if m != nil {
			m.srtpDrop(m.srtpMalformed)
		}
		return nil, false
	}
	return out, true
}
