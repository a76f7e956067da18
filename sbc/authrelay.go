package sbc

import (
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// Relayed authentication: where leg B's target is no trunk with
// credentials of its own, a 401/407 from it goes to the caller with its
// challenge, and the caller's retry (RFC 3261 22.2: same Call-ID, CSeq +
// 1, Authorization or Proxy-Authorization) leaves on the challenged leg
// B's dialog identifiers (same Call-ID and From tag, CSeq + 1) with the
// credentials as the caller wrote them: a server that ties its nonce to
// the Call-ID accepts it. Credentials and challenges are per hop
// (config.ProtectedHeaders), so they cross here and nowhere else. A trunk
// with credentials answers its challenges itself (trunk_auth.go).
//
// The digest covers the caller's request-URI: a server that checks the
// digest's uri against its own request-URI accepts the retry only when
// the caller addressed it as leg B does (the SBC as outbound proxy).
// qop=auth-int covers the body, which the SBC rewrites when it anchors
// media, so such an answer cannot verify.

// challengeTTL is how long a relayed challenge waits for its retry: a
// caller answers at once, and 64*T1 is how long the challenge's own
// transaction lingers (64*T1).
const challengeTTL = 32 * time.Second

// maxChallenged bounds the challenges waiting for a retry; past it a
// retry gets a leg B of its own (and most likely a fresh challenge).
const maxChallenged = 4096

// maxChallengeValue bounds one relayed challenge or credentials header.
const maxChallengeValue = 2048

// challengeStore holds leg B's dialog identifiers for each call whose
// challenge went to the caller, keyed by the caller's dialog.
type challengeStore struct {
	mu sync.Mutex
	m  map[challengeKey]challengedLeg
}

type challengeKey struct{ realm, callID, fromTag string }

type challengedLeg struct {
	callID, localTag string // leg B's
	cseq             uint32 // leg B's challenged INVITE
	cseqA            uint32 // the caller's challenged INVITE
	peer             string // the target it went to
	expires          time.Time
}

// isChallenge reports a 401 or 407.
func isChallenge(res *sip.Response) bool {
	return res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired
}

// trunkAnswers reports whether the SBC answers challenges on this target
// itself: a trunk with credentials.
func trunkAnswers(tr *policy.Trunk) bool { return tr != nil && tr.Creds != nil }

// challengeHeader is the header carrying res's challenge, and the one
// carrying its answer.
func challengeHeader(code int) (chal, cred string) {
	if code == sip.StatusProxyAuthRequired {
		return "Proxy-Authenticate", "Proxy-Authorization"
	}
	return "WWW-Authenticate", "Authorization"
}

// relayChallenge gives leg A the 401/407 with its challenge headers and
// remembers leg B's dialog for the retry.
func (s *SBC) relayChallenge(c *Call, r *Realm, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) {
	out := topology.BuildResponse(req, res.StatusCode, res.Reason, c.a.d.LocalTag, false, c.a.local, c.a.headerFilter(), res, nil, "")
	name, _ := challengeHeader(res.StatusCode)
	copyHeaders(out, res, name)
	c.mu.Lock()
	b := c.b
	var leg challengedLeg
	if b != nil && b.invite != nil {
		leg = challengedLeg{callID: b.d.CallID, localTag: b.d.LocalTag, cseq: b.invite.CSeq().SeqNo, cseqA: req.CSeq().SeqNo, peer: b.peer}
	}
	c.mu.Unlock()
	if leg.callID != "" {
		key := challengeKey{realm: r.Name, callID: c.a.d.CallID, fromTag: c.a.d.RemoteTag}
		if !s.challenges.put(key, leg, s.guard.now.Now()) {
			r.log.Info("challenge relayed, but too many wait for a retry: the retry gets a new leg", "call", c.ID)
		}
	}
	s.respond(r, tx, out)
	c.end("challenged", "")
}

// resumeChallenged gives leg B of a caller's retry after a relayed
// challenge the first leg B's Call-ID and From tag and the next CSeq, when
// req is that retry (the caller's dialog, a higher CSeq) to the same
// target. It reports whether it did: the credentials then go along
// (carryCredentials).
func (s *SBC) resumeChallenged(c *Call, b *Leg, req *sip.Request) bool {
	if req.GetHeader("Authorization") == nil && req.GetHeader("Proxy-Authorization") == nil {
		return false
	}
	key := challengeKey{realm: c.a.realm.Name, callID: c.a.d.CallID, fromTag: c.a.d.RemoteTag}
	leg, ok := s.challenges.take(key, s.guard.now.Now())
	if !ok || req.CSeq().SeqNo <= leg.cseqA || leg.peer != b.peer {
		return false
	}
	b.d.CallID, b.d.LocalTag, b.cseq = leg.callID, leg.localTag, leg.cseq+1
	return true
}

// carryCredentials copies the caller's Authorization and
// Proxy-Authorization, unchanged, onto leg B's retry.
func carryCredentials(inv, req *sip.Request) {
	copyHeaders(inv, req, "Authorization")
	copyHeaders(inv, req, "Proxy-Authorization")
}

// copyHeaders appends to dst, as they are, src's headers of that name
// (at most maxChallenges, each at most maxChallengeValue bytes).
func copyHeaders(dst sip.Message, src sip.Message, name string) {
	for i, h := range src.GetHeaders(name) {
		if i >= maxChallenges {
			return
		}
		if v := h.Value(); len(v) <= maxChallengeValue && !strings.ContainsAny(v, "\r\n") {
			dst.AppendHeader(sip.NewHeader(name, v))
		}
	}
}

// put remembers a challenged leg; false when the store is full.
func (cs *challengeStore) put(k challengeKey, v challengedLeg, now time.Time) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[challengeKey]challengedLeg{}
	}
	if len(cs.m) >= maxChallenged {
		for key, l := range cs.m {
			if now.After(l.expires) {
				delete(cs.m, key)
			}
		}
		if len(cs.m) >= maxChallenged {
			return false
		}
	}
	v.expires = now.Add(challengeTTL)
	cs.m[k] = v
	return true
}

// take removes and returns the challenged leg for k, unless expired.
func (cs *challengeStore) take(k challengeKey, now time.Time) (challengedLeg, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	v, ok := cs.m[k]
	if !ok {
		return challengedLeg{}, false
	}
	delete(cs.m, k)
	return v, !now.After(v.expires)
}
