package sbc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// ErrNoUsableChallenge means a 401/407 offered no challenge the SBC can
// answer with its credentials (no digest, an unknown algorithm or qop, or
// another realm).
var ErrNoUsableChallenge = errors.New("no usable digest challenge")

// newCnonce is the client nonce; "" lets the digest library draw a random
// one. Tests fix it to check RFC vectors.
var newCnonce = func() string { return "" }

// maxChallenges bounds how many challenge headers of one response are read.
const maxChallenges = 8

// authorize adds to req the Authorization (for a 401) or
// Proxy-Authorization (for a 407) that answers res's challenge with the
// credentials. RFC 8760: a server lists its challenges in order of
// preference (SHA-256 before MD5), and the client answers the topmost one
// it supports. It returns the algorithm used.
func authorize(req *sip.Request, res *sip.Response, cr *config.Credentials) (string, error) {
	if cr == nil {
		return "", fmt.Errorf("%w: no credentials", ErrNoUsableChallenge)
	}
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == sip.StatusProxyAuthRequired {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	var chal *digest.Challenge
	for i, h := range res.GetHeaders(chName) {
		if i >= maxChallenges {
			break
		}
		c, err := digest.ParseChallenge(h.Value())
		if err != nil {
			continue
		}
		c.Algorithm = strings.ToUpper(c.Algorithm)
		if !digest.CanDigest(c) || (cr.Realm != "" && c.Realm != cr.Realm) {
			continue
		}
		chal = c
		break
	}
	if chal == nil {
		return "", fmt.Errorf("%w in %d %s", ErrNoUsableChallenge, res.StatusCode, chName)
	}
	body := req.Body()
	cred, err := digest.Digest(chal, digest.Options{
		Method:   string(req.Method),
		URI:      req.Recipient.String(),
		Username: cr.Username,
		Password: cr.Secret(),
		Cnonce:   newCnonce(),
		GetBody:  func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	})
	if err != nil {
		return "", fmt.Errorf("digest for %s: %w", req.Method, err)
	}
	for req.RemoveHeader(authName) {
	}
	req.AppendHeader(sip.NewHeader(authName, cred.String()))
	alg := chal.Algorithm
	if alg == "" {
		alg = "MD5"
	}
	return alg, nil
}

// reauthInvite answers a carrier's 401/407 to leg B's INVITE: the same
// INVITE (same Call-ID, tags, body) with credentials, a new branch and the
// next CSeq (RFC 3261 22.2), sent as a new transaction. Each leg B is
// re-sent once; a second challenge is relayed as the final answer.
func (s *SBC) reauthInvite(c *Call, out *Realm, b *Leg, inv *sip.Request, res *sip.Response, tr *policy.Trunk) (*sip.Request, sip.ClientTransaction, bool) {
	if tr == nil || tr.Creds == nil {
		return nil, nil, false
	}
	next := inv.Clone()
	next.RemoveHeader("Via")
	next.PrependHeader(newVia(b.local))
	next.CSeq().SeqNo++
	alg, err := authorize(next, res, tr.Creds)
	if err != nil {
		out.log.Info("INVITE challenge not answered", "call", c.ID, "trunk", tr.Name, "status", res.StatusCode, "error", err)
		return nil, nil, false
	}
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return nil, nil, false
	}
	b.invite = next
	b.cseq = next.CSeq().SeqNo
	c.mu.Unlock()
	tx, err := out.request(s.ctx, next)
	if err != nil {
		out.log.Info("authenticated INVITE not sent", "call", c.ID, "trunk", tr.Name, "error", err)
		return nil, nil, false
	}
	s.metrics.reqOut(out.Name, "INVITE")
	s.trunks.authTotal(tr.Name, "INVITE", alg)
	out.log.Debug("INVITE challenge answered", "call", c.ID, "trunk", tr.Name, "status", res.StatusCode, "algorithm", alg)
	return next, tx, true
}

// newVia is the SBC's Via on a leg, with a fresh branch.
func newVia(l topology.Local) *sip.ViaHeader {
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.Transport,
		Host: uriHost(l.Host), Port: l.Port, Params: sip.NewParams(),
	}
	via.Params.Add("branch", topology.NewBranch())
	return via
}
