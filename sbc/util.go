package sbc

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

func newTag() string { return topology.NewTag() }

// newSIPCallID is a leg B Call-ID: random, and carrying no host, so it says
// nothing about the SBC or the other side.
func newSIPCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func toTag(m sip.Message) string {
	if t := m.To(); t != nil {
		v, _ := t.Params.Get("tag")
		return v
	}
	return ""
}

func fromTag(m sip.Message) string {
	if f := m.From(); f != nil {
		v, _ := f.Params.Get("tag")
		return v
	}
	return ""
}

// maxForwards is the request's Max-Forwards, 70 when absent (RFC 3261 8.1.1.6).
func maxForwards(req *sip.Request) int {
	if mf := req.MaxForwards(); mf != nil {
		return int(mf.Val())
	}
	return 70
}

// contactURI is the remote target a message names, if any.
func contactURI(m sip.Message) (sip.Uri, bool) {
	hs := m.GetHeaders("Contact")
	if len(hs) == 0 {
		return sip.Uri{}, false
	}
	if c, ok := hs[0].(*sip.ContactHeader); ok && c.Address.Host != "" {
		return *c.Address.Clone(), true
	}
	return sip.Uri{}, false
}

// recordRoute returns a message's Record-Route URIs; reversed for a UAC
// (RFC 3261 12.1.2), in order for a UAS (12.1.1).
func recordRoute(m sip.Message, reverse bool) []sip.Uri {
	var out []sip.Uri
	for _, h := range m.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
		}
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

func contentType(m sip.Message) string {
	if ct := m.GetHeaders("Content-Type"); len(ct) > 0 {
		return ct[0].Value()
	}
	return ""
}

func isSDP(m sip.Message) bool {
	return len(m.Body()) > 0 && strings.HasPrefix(strings.ToLower(contentType(m)), "application/sdp")
}

// unsupportedRequire lists the Require option tags the B2BUA cannot honour
// (RFC 3261 8.2.2.3: answer 420 with them in Unsupported). Session timers
// the SBC runs itself, per leg (sessiontimer.go); 100rel is the SBC's own
// on each leg (prack.go).
func unsupportedRequire(req *sip.Request) string {
	var bad []string
	for _, h := range req.GetHeaders("Require") {
		for _, opt := range strings.Split(h.Value(), ",") {
			opt = strings.TrimSpace(opt)
			if opt != "" && !strings.EqualFold(opt, "timer") && !strings.EqualFold(opt, "100rel") {
				bad = append(bad, opt)
			}
		}
	}
	return strings.Join(bad, ", ")
}

// buildLocalResponse is a response the SBC itself gives (not relayed).
func buildLocalResponse(r *Realm, req *sip.Request, status int, reason, localTag string) *sip.Response {
	return topology.BuildResponse(req, status, reason, localTag, false, r.local(req.Transport()), nil, nil, nil, "")
}

// retryAfter is a Retry-After header of d rounded up to whole seconds (at
// least 1): the one rounding for every 503 the SBC sends with a wait.
func retryAfter(d time.Duration) sip.Header {
	secs := int((d + time.Second - 1) / time.Second)
	return sip.NewHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}
