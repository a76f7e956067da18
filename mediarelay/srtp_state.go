package mediarelay

// SRTP state for HA: what a call's media security needs to carry on on
// another node (or after a restart) with no re-key: per media line and
// leg, the SBC's own key and the peer's key (suite, key, salt, MKI, tag,
// lifetime); per direction and SSRC, the SRTP rollover counters (ROC) of
// the decrypt and encrypt contexts and the SRTCP index the SBC last
// used. Anchor.State encodes it into CallState.SRTP, Anchor.Restore
// decodes it and re-creates the pion contexts with SetROC/SetIndex.
//
// The bytes hold keys: SRTPState never formats them (String, GoString,
// LogValue, JSON all say "not shown"); the B2BUA puts them only into the
// replicated call record.
//
// Rollover counters: the record is rewritten (through the stream's change
// hook, as for a latch) when a direction's ROC changes, i.e. at most once
// per 65536 packets of an SSRC, and when the SBC's SRTCP index for an SSRC
// reaches 1 or a multiple of srtcpMarkEvery. A restored encrypt context
// starts its SRTCP index two marks past the recorded one, so the peer's
// replay check never sees an index it already had. A restored decrypt
// context has a fresh replay window (a packet replayed across the
// failover passes once).
//
// Layout (version 1): version byte, uvarint line count, then per line a
// flags byte (bit s: leg s has keys), per keyed leg the Local then Remote
// crypto (uvarint tag, suite byte, key, salt, MKI length byte + MKI,
// uvarint lifetime), then per direction (from A, from B) a uvarint SSRC
// count and per SSRC 4 bytes SSRC, uvarint decrypt ROC, encrypt ROC and
// SRTCP index.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
)

const (
	srtpStateVersion = 1
	maxStateLines    = 32
	maxMarks         = 8 // SSRCs tracked per direction
	rocCheckBelow    = 1024
	srtcpMarkEvery   = 512
	maxSRTCPIndex    = 1<<31 - 1
)

// stateSuites numbers the suites in the state. Never renumber.
var stateSuites = []string{
	"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32",
	"AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_32",
	"AEAD_AES_128_GCM", "AEAD_AES_256_GCM",
}

// SRTPState is a call's encoded SRTP state. It holds keys: it never
// prints them.
type SRTPState []byte

func (s SRTPState) String() string {
	if len(s) == 0 {
		return "none"
	}
	return "SRTP state (" + strconv.Itoa(len(s)) + " bytes, not shown)"
}

// GoString keeps %#v from printing the bytes.
func (s SRTPState) GoString() string { return s.String() }

// LogValue keeps slog from printing the bytes.
func (s SRTPState) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps JSON from carrying the bytes.
func (s SRTPState) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

var errSRTPState = errors.New("bad SRTP state")

// ssrcMark is what was last reported of one SSRC of a direction.
type ssrcMark struct {
	dec, enc uint32 // ROCs
	idx      uint32 // SRTCP index of the encrypt context
}

// ssrcState is one SSRC of a direction, in the state.
type ssrcState struct {
	ssrc, dec, enc, idx uint32
}

// lineState is one media line: keys per leg, SSRCs per direction.
type lineState struct {
	keys  [2]*LegKeys
	ssrcs [2][]ssrcState
}

// track notes, after a packet went through the transform, whether its
// direction's state changed in a way the record must follow: a ROC moved
// (checked only near a sequence wrap, so the common packet costs one
// comparison) or the SRTCP index reached a mark. Called with the side's mu.
func (x *xform) track(isRTCP bool, b []byte) bool {
	if isRTCP {
		if x.enc == nil || len(b) < 8 {
			return false
		}
		ssrc := binary.BigEndian.Uint32(b[4:8])
		idx, ok := x.enc.Index(ssrc)
		if !ok || (idx != 1 && idx%srtcpMarkEvery != 0) {
			return false
		}
		m := x.mark(ssrc)
		if m == nil || m.idx == idx {
			return false
		}
		m.idx = idx
		return true
	}
	if x.rtpHdr.SequenceNumber >= rocCheckBelow {
		return false
	}
	ssrc := x.rtpHdr.SSRC
	d, e := x.rocs(ssrc)
	m := x.marks[ssrc]
	if m == nil {
		if d == 0 && e == 0 {
			return false
		}
		if m = x.mark(ssrc); m == nil {
			return false
		}
	}
	if m.dec == d && m.enc == e {
		return false
	}
	m.dec, m.enc = d, e
	return true
}

// mark returns the SSRC's mark, creating it while there is room.
func (x *xform) mark(ssrc uint32) *ssrcMark {
	if m := x.marks[ssrc]; m != nil {
		return m
	}
	if len(x.marks) >= maxMarks {
		return nil
	}
	if x.marks == nil {
		x.marks = map[uint32]*ssrcMark{}
	}
	m := &ssrcMark{}
	x.marks[ssrc] = m
	return m
}

func (x *xform) rocs(ssrc uint32) (dec, enc uint32) {
	if x.dec != nil {
		dec, _ = x.dec.ROC(ssrc)
	}
	if x.enc != nil {
		enc, _ = x.enc.ROC(ssrc)
	}
	return dec, enc
}

// ssrcStates reads the direction's live counters for its tracked SSRCs.
func (sd *sideState) ssrcStates() []ssrcState {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	x := sd.x
	if x == nil {
		return nil
	}
	var out []ssrcState
	for ssrc := range x.marks {
		st := ssrcState{ssrc: ssrc}
		st.dec, st.enc = x.rocs(ssrc)
		if x.enc != nil {
			st.idx, _ = x.enc.Index(ssrc)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ssrcState) int { return cmp.Compare(a.ssrc, b.ssrc) })
	return out
}

// restoreSRTP installs a line's keys and counters on a fresh stream,
// before any side is known (so no packet passes untransformed).
func (s *Stream) restoreSRTP(ls lineState) error {
	for side, k := range ls.keys {
		if k != nil {
			if err := s.SetSRTP(Side(side), k); err != nil {
				return err
			}
		}
	}
	for side := range s.sides {
		sd := &s.sides[side]
		sd.mu.Lock()
		x := sd.x
		for _, st := range ls.ssrcs[side] {
			if x == nil {
				break
			}
			m := x.mark(st.ssrc)
			if m == nil {
				break
			}
			*m = ssrcMark{dec: st.dec, enc: st.enc, idx: st.idx}
			if x.dec != nil {
				x.dec.SetROC(st.ssrc, st.dec)
			}
			if x.enc != nil {
				x.enc.SetROC(st.ssrc, st.enc)
				if st.idx > 0 {
					x.enc.SetIndex(st.ssrc, srtcpResume(st.idx))
				}
			}
		}
		sd.mu.Unlock()
	}
	return nil
}

// srtcpResume is where a restored encrypt context's SRTCP index goes on:
// past anything sent since the record was written (it is rewritten at
// every mark), capped below the 31-bit limit.
func srtcpResume(idx uint32) uint32 {
	n := (uint64(idx)/srtcpMarkEvery + 2) * srtcpMarkEvery
	return uint32(min(n, maxSRTCPIndex-1))
}

// srtpState encodes a call's SRTP state; nil when no line has keys.
// Called with c.mu.
func (c *anchored) srtpState() SRTPState {
	keyed := false
	for _, l := range c.sec {
		if l[SideA].keys != nil || l[SideB].keys != nil {
			keyed = true
		}
	}
	if !keyed || len(c.sec) > maxStateLines {
		return nil
	}
	b := []byte{srtpStateVersion}
	b = binary.AppendUvarint(b, uint64(len(c.sec)))
	for i, l := range c.sec {
		var flags byte
		for s := range l {
			if l[s].keys != nil {
				flags |= 1 << s
			}
		}
		b = append(b, flags)
		for s := range l {
			if k := l[s].keys; k != nil {
				b = appendCrypto(b, k.Local)
				b = appendCrypto(b, k.Remote)
			}
		}
		for side := range 2 {
			var ss []ssrcState
			if i < len(c.streams) && c.streams[i] != nil {
				ss = c.streams[i].sides[side].ssrcStates()
			}
			b = binary.AppendUvarint(b, uint64(len(ss)))
			for _, st := range ss {
				b = binary.BigEndian.AppendUint32(b, st.ssrc)
				b = binary.AppendUvarint(b, uint64(st.dec))
				b = binary.AppendUvarint(b, uint64(st.enc))
				b = binary.AppendUvarint(b, uint64(st.idx))
			}
		}
	}
	return b
}

func appendCrypto(b []byte, c CryptoAttr) []byte {
	id := 0
	for i, s := range stateSuites {
		if s == c.Suite {
			id = i
		}
	}
	b = binary.AppendUvarint(b, uint64(c.Tag))
	b = append(b, byte(id))
	b = append(b, c.Key...)
	b = append(b, c.Salt...)
	b = append(b, byte(len(c.MKI)))
	b = append(b, c.MKI...)
	return binary.AppendUvarint(b, c.Lifetime)
}

// stateReader reads the state with every length and value bounded.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errSRTPState, what)
	}
}

func (r *stateReader) uvarint(max uint64, what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > max {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *stateReader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *stateReader) crypto() CryptoAttr {
	var c CryptoAttr
	c.Tag = int(r.uvarint(maxCryptoTag, "crypto tag"))
	id := r.take(1, "suite")
	if r.err != nil {
		return c
	}
	if int(id[0]) >= len(stateSuites) {
		r.fail("suite")
		return c
	}
	c.Suite = stateSuites[id[0]]
	c.Profile = suiteProfiles[c.Suite]
	kl, _ := c.Profile.KeyLen()
	sl, _ := c.Profile.SaltLen()
	c.Key = append([]byte(nil), r.take(kl, "key")...)
	c.Salt = append([]byte(nil), r.take(sl, "salt")...)
	if ml := r.take(1, "MKI length"); r.err == nil {
		if int(ml[0]) > maxMKILen {
			r.fail("MKI length")
			return c
		}
		if ml[0] > 0 {
			c.MKI = append([]byte(nil), r.take(int(ml[0]), "MKI")...)
		}
	}
	c.Lifetime = r.uvarint(1<<maxLifetimeLog, "lifetime")
	return c
}

// decodeSRTPState reads a state; nil bytes are no state. Every count and
// value is bounded; trailing bytes are an error.
func decodeSRTPState(b SRTPState) ([]lineState, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != srtpStateVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", errSRTPState, b[0], srtpStateVersion)
	}
	r := &stateReader{b: b[1:]}
	n := int(r.uvarint(maxStateLines, "line count"))
	lines := make([]lineState, 0, n)
	for range n {
		var ls lineState
		fl := r.take(1, "flags")
		if r.err != nil {
			break
		}
		if fl[0]&^3 != 0 {
			r.fail("flags")
			break
		}
		for s := range 2 {
			if fl[0]&(1<<s) != 0 {
				k := &LegKeys{}
				k.Local = r.crypto()
				k.Remote = r.crypto()
				ls.keys[s] = k
			}
		}
		for side := range 2 {
			m := int(r.uvarint(maxMarks, "SSRC count"))
			for range m {
				ssrc := r.take(4, "SSRC")
				if r.err != nil {
					break
				}
				st := ssrcState{ssrc: binary.BigEndian.Uint32(ssrc)}
				st.dec = uint32(r.uvarint(1<<32-1, "ROC"))
				st.enc = uint32(r.uvarint(1<<32-1, "ROC"))
				st.idx = uint32(r.uvarint(maxSRTCPIndex, "SRTCP index"))
				ls.ssrcs[side] = append(ls.ssrcs[side], st)
			}
		}
		lines = append(lines, ls)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return lines, nil
}
