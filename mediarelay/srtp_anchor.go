package mediarelay

// SDES offer/answer per leg. Each leg of a call negotiates its own media
// security with the SBC under its realm's policy; the two negotiations meet
// only in the relay, which decrypts with one leg's key and encrypts with
// the other's. The SBC writes its own fresh keys (crypto/rand) into every
// SDP it sends; a peer's a=crypto never reaches the other leg.
//
// Decisions:
//   - An offer is secure when its profile is RTP/SAVP(F) or it carries a
//     usable a=crypto on RTP/AVP(F) (best-effort SRTP). The SBC answers
//     with the profile that was offered and, for a secure choice, one
//     a=crypto with the offer's tag and the chosen suite (the realm's
//     preference order decides among offered suites).
//   - Offers into a realm: srtp off: RTP/AVP, no a=crypto; optional:
//     RTP/AVP with one a=crypto per suite (best-effort); required:
//     RTP/SAVP with one a=crypto per suite.
//   - Two m= lines of one kind, one RTP/SAVP and one RTP/AVP, are the
//     other best-effort form: the line the realm's policy prefers is kept,
//     the other goes out with port 0 (and so comes back rejected).
//   - The SBC keeps its own key for a leg across re-INVITEs while the suite
//     stays; a peer's new key is installed when the SBC answers, with the
//     old one kept for packets still in flight.
//   - Refusals wrap ErrSRTPRefused (488): an RTP/SAVP-only offer into a
//     realm with srtp off, no usable a=crypto where SRTP is needed, an
//     answer whose a=crypto was not offered or that drops SRTP from an
//     RTP/SAVP offer.

import "strings"

// legSec is one leg's media security on one m= line.
type legSec struct {
	keys *LegKeys // what the relay uses now; nil: plain RTP
	// An offer received from this leg, waiting for the SBC's answer.
	answerWith *CryptoAttr // the peer's chosen a=crypto; nil: answer in the clear
	offerProto string      // the profile the peer offered
	// An offer the SBC sent to this leg, waiting for the leg's answer.
	offered     []CryptoAttr
	offeredSAVP bool
}

// secPlan is what the security negotiation adds to one rewrite.
type secPlan struct {
	proto  []string
	crypto [][]string
	reject []bool        // offer: lines sent out with port 0
	hold   []bool        // offer: lines whose first SRTP negotiation opens
	keys   [][2]*LegKeys // answer: keys per line and side, to install
	answer bool
}

// sdesProto: RTP profiles SDES applies to (not DTLS-SRTP, not T.38).
func sdesProto(p string) bool {
	u := strings.ToUpper(p)
	return strings.HasPrefix(u, "RTP/") && !strings.Contains(u, "TLS")
}

func isSecureProto(p string) bool { return strings.HasPrefix(strings.ToUpper(p), "RTP/SAVP") }

// plainProto and secureProto swap RTP/SAVP(F) and RTP/AVP(F).
func plainProto(p string) string {
	if isSecureProto(p) {
		return "RTP/AVP" + p[len("RTP/SAVP"):]
	}
	return p
}

func secureProto(p string) string {
	if u := strings.ToUpper(p); strings.HasPrefix(u, "RTP/AVP") {
		return "RTP/SAVP" + p[len("RTP/AVP"):]
	}
	return p
}

func (c *anchored) growSec(n int) {
	for len(c.sec) < n {
		c.sec = append(c.sec, [2]legSec{})
	}
}

// secureOffer negotiates an offer that arrived on leg from: what the SBC
// will answer on that leg, and the profile and keys of the offer it sends
// on the other.
func (a *Anchor) secureOffer(c *anchored, sess *Session, from Side) (secPlan, error) {
	to := from.other()
	polF, polT := c.legs[from].pol.srtp, c.legs[to].pol.srtp
	n := len(sess.Media)
	p := secPlan{proto: make([]string, n), crypto: make([][]string, n), reject: make([]bool, n), hold: make([]bool, n)}
	c.growSec(n)
	choice := make([]*CryptoAttr, n)
	refused := make([]error, n)
	for i, m := range sess.Media {
		if m.Port == 0 || !sdesProto(m.Proto) {
			continue
		}
		savp := isSecureProto(m.Proto)
		if polF.Mode == SRTPOff {
			if savp {
				refused[i] = refusef("realm %s has srtp off and m=%s offers %s", c.legs[from].face.cfg.Name, clip(m.Kind), clip(m.Proto))
			}
			continue
		}
		cr, err := pickCrypto(m.Crypto, polF)
		switch {
		case err == nil:
			choice[i] = &cr
		case savp || polF.Mode == SRTPRequired:
			refused[i] = refusef("realm %s, m=%s: %v", c.legs[from].face.cfg.Name, clip(m.Kind), err)
		}
	}
	bestEffortPairs(sess, choice, refused, p.reject)
	for i, err := range refused {
		if err != nil && !p.reject[i] {
			return p, err
		}
	}
	for i, m := range sess.Media {
		lf, lt := &c.sec[i][from], &c.sec[i][to]
		lf.answerWith, lf.offerProto = choice[i], m.Proto
		lt.offered, lt.offeredSAVP = nil, false
		if m.Port == 0 || p.reject[i] || !sdesProto(m.Proto) {
			continue
		}
		switch polT.Mode {
		case SRTPOff:
			p.proto[i] = plainProto(m.Proto)
			continue
		case SRTPOptional:
			p.proto[i] = plainProto(m.Proto)
		case SRTPRequired:
			p.proto[i] = secureProto(m.Proto)
			lt.offeredSAVP = true
		}
		for k, suite := range polT.suites() {
			cr, err := ownKey(lt.keys, k+1, suite)
			if err != nil {
				return p, err
			}
			lt.offered = append(lt.offered, cr)
			p.crypto[i] = append(p.crypto[i], cr.value())
		}
	}
	for i := range sess.Media {
		// SRTP in play on a line that has no keys yet: hold its media
		// until the answer (a re-offer keeps the current keys flowing).
		inPlay := choice[i] != nil || len(c.sec[i][to].offered) > 0
		p.hold[i] = inPlay && !p.reject[i] && c.sec[i][from].keys == nil && c.sec[i][to].keys == nil
	}
	return p, nil
}

// bestEffortPairs handles the two-m-line form of best-effort SRTP: of an
// RTP/SAVP line and an RTP/AVP line of the same kind, the SAVP one is
// kept when SRTP was agreed on it, else the AVP one.
func bestEffortPairs(sess *Session, choice []*CryptoAttr, refused []error, reject []bool) {
	for s, ms := range sess.Media {
		if ms.Port == 0 || !isSecureProto(ms.Proto) || !sdesProto(ms.Proto) {
			continue
		}
		for q, mp := range sess.Media {
			if mp.Port == 0 || mp.Kind != ms.Kind || !sdesProto(mp.Proto) || isSecureProto(mp.Proto) || reject[q] {
				continue
			}
			if choice[s] != nil {
				reject[q] = true
			} else if refused[q] == nil {
				reject[s] = true
			}
			break
		}
	}
}

// ownKey is the SBC's key for a leg in a suite: the current one when the
// suite is unchanged (no re-key on every re-INVITE), else a fresh one.
func ownKey(cur *LegKeys, tag int, suite string) (CryptoAttr, error) {
	if cur != nil && cur.Local.Suite == suite {
		k := cur.Local
		k.Tag = tag
		return k, nil
	}
	return newCrypto(tag, suite)
}

// secureAnswer negotiates an answer that arrived on leg from (to the
// SBC's offer) and writes the SBC's answer to the leg that offered.
func (a *Anchor) secureAnswer(c *anchored, sess *Session, from Side) (secPlan, error) {
	to := from.other()
	n := len(sess.Media)
	p := secPlan{proto: make([]string, n), crypto: make([][]string, n), keys: make([][2]*LegKeys, n), answer: true}
	c.growSec(n)
	for i, m := range sess.Media {
		lf, lt := &c.sec[i][from], &c.sec[i][to]
		p.proto[i] = lt.offerProto
		if m.Port == 0 || !sdesProto(m.Proto) {
			continue
		}
		var kF, kT *LegKeys
		if len(lf.offered) > 0 {
			switch {
			case len(m.Crypto) > 0:
				cr, err := ParseCrypto(m.Crypto[0])
				if err != nil {
					return p, err
				}
				var mine *CryptoAttr
				for j := range lf.offered {
					if lf.offered[j].Tag == cr.Tag && lf.offered[j].Suite == cr.Suite {
						mine = &lf.offered[j]
					}
				}
				if mine == nil {
					return p, refusef("answer's a=crypto %s was not offered", cr)
				}
				kF = &LegKeys{Local: *mine, Remote: cr}
			case lf.offeredSAVP:
				return p, refusef("m=%s answer has no a=crypto for an RTP/SAVP offer", clip(m.Kind))
			}
		}
		if w := lt.answerWith; w != nil {
			local, err := ownKey(lt.keys, w.Tag, w.Suite)
			if err != nil {
				return p, err
			}
			kT = &LegKeys{Local: local, Remote: *w}
			p.crypto[i] = []string{local.value()}
		}
		p.keys[i][from], p.keys[i][to] = kF, kT
	}
	return p, nil
}

// commitSec makes an answer's keys current and gives them to the relay.
func (c *anchored) commitSec(p secPlan) error {
	if !p.answer {
		return nil
	}
	for i, ks := range p.keys {
		for side, k := range ks {
			c.sec[i][side].keys = k
			if i < len(c.streams) && c.streams[i] != nil {
				if err := c.streams[i].SetSRTP(Side(side), k); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// srtpInfo names a stream's SRTP suite per leg for the admin API; never
// a key.
func (c *anchored) srtpInfo(i int) (a, b string) {
	if i >= len(c.sec) {
		return "", ""
	}
	name := func(k *LegKeys) string {
		if k == nil {
			return ""
		}
		return k.Remote.Suite
	}
	return name(c.sec[i][SideA].keys), name(c.sec[i][SideB].keys)
}
