// Package topology decides what a SIP message looks like when it crosses
// from one realm into another. A message built here carries nothing of the
// other side's network: its Via, Route, Record-Route, Contact, Call-ID, tags
// and addresses are all the SBC's own, and only headers that a realm's
// policy lets through are copied. It knows nothing of calls or media.
package topology

import (
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// compact maps RFC 3261 compact header names to their long forms, so a
// policy written with long names also matches compact ones.
var compact = map[string]string{
	"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported",
	"t": "to", "v": "via", "o": "event", "u": "allow-events", "r": "refer-to",
	"b": "referred-by", "x": "session-expires", "y": "identity",
}

// HeaderFilter says which of the other side's headers may enter a realm.
type HeaderFilter struct {
	allow   bool
	names   map[string]bool
	rules   []headerRule // rules.go
	trusted bool         // the realm is trusted (identity.go)
}

// NewHeaderFilter builds a filter: mode "allow" passes only names, "deny"
// passes everything but names. Always-rebuilt headers never pass.
func NewHeaderFilter(mode string, names []string) *HeaderFilter {
	f := &HeaderFilter{allow: mode != "deny", names: make(map[string]bool, len(names))}
	for _, n := range names {
		f.names[canonical(n)] = true
	}
	return f
}

func canonical(name string) string {
	n := strings.ToLower(name)
	if long, ok := compact[n]; ok {
		return long
	}
	return n
}

// Pass reports whether a header with this name may be copied across.
func (f *HeaderFilter) Pass(name string) bool {
	n := canonical(name)
	if config.ProtectedHeaders[n] || config.CapabilityHeaders[n] { // the SBC writes its own (or none)
		return false
	}
	if config.IdentityHeaders[n] { // rebuilt, never raw (identity.go)
		return false
	}
	return f.names[n] == f.allow
}

// Copy appends to dst every header of src that passes the filter, in order.
func (f *HeaderFilter) Copy(dst sip.Message, src interface{ Headers() []sip.Header }) {
	for _, h := range src.Headers() {
		if f.Pass(h.Name()) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// SetTrusted says the filter's realm is in the trust domain (RFC 3325):
// identity crosses into it in full (identity.go).
func (f *HeaderFilter) SetTrusted(trusted bool) { f.trusted = trusted }

// Local is the SBC's own face in one realm.
type Local struct {
	Host      string // advertised address
	Port      int    // listening port
	Transport string // "UDP", "TCP" or "TLS"
	UserAgent string // User-Agent / Server value
	// SIPS marks a leg whose request-URI is sips: (TLS on every hop): its
	// Contact is a sips: URI (RFC 3261 8.1.1.8, RFC 5630).
	SIPS bool
	// Allow is the methods the SBC accepts on this leg, written on its
	// INVITE and UPDATE requests and their 1xx/2xx (never the far
	// side's); "" writes none.
	Allow string
	// From is where what is relayed onto this leg comes from, for the
	// identity headers (identity.go); nil: none cross.
	From *Origin
}

// carriesAllow: RFC 3261 20.5 and RFC 3311 ask Allow on these, so the
// peer learns the SBC takes UPDATE (a session refresh without SDP).
func carriesAllow(method sip.RequestMethod, status int) bool {
	return (method == sip.INVITE || method == sip.UPDATE) && (status == 0 || status > 100 && status < 300)
}

// Contact is the SBC's Contact URI in this realm. The user part is fixed and
// meaningless so that nothing of the other side leaks through it. A TLS leg
// gets sips: when it is a SIPS dialog, otherwise sip:...;transport=tls (RFC
// 5630 deprecates the parameter for SIPS semantics, but a plain sip: URI
// would resolve to UDP, RFC 3263, and the peer must reach the SBC over TLS).
func (l Local) Contact() sip.Uri {
	u := sip.Uri{Scheme: "sip", User: "sbc", Host: URIHost(l.Host), Port: l.Port}
	if l.SIPS {
		u.Scheme = "sips"
		return u
	}
	if l.Transport != "" && !strings.EqualFold(l.Transport, "UDP") {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", strings.ToLower(l.Transport))
	}
	return u
}

// Dialog is one leg's view of a dialog, enough to build a request on it.
type Dialog struct {
	CallID     string
	LocalURI   sip.Uri // our From address on this leg
	LocalName  string  // display name for From
	LocalTag   string
	RemoteURI  sip.Uri // the To address
	RemoteName string
	RemoteTag  string    // empty for the initial INVITE
	Target     sip.Uri   // Request-URI: the peer's Contact, or the route target
	RouteSet   []sip.Uri // from the peer's Record-Route, in sending order
}

// NewBranch returns a fresh RFC 3261 branch.
func NewBranch() string { return sip.GenerateBranchN(16) }

// NewTag returns a fresh From/To tag.
func NewTag() string { return sip.GenerateTagN(16) }

// BuildRequest builds the request that goes out on a leg. src, when not nil,
// is the request that arrived on the other leg: its allowed headers and body
// are carried; nothing else of it is.
func BuildRequest(method sip.RequestMethod, d Dialog, cseq uint32, maxFwd int, l Local, f *HeaderFilter, src *sip.Request, body []byte, contentType string) *sip.Request {
	req := sip.NewRequest(method, d.Target)
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.Transport,
		Host: URIHost(l.Host), Port: l.Port, Params: sip.NewParams(),
	}
	via.Params.Add("branch", NewBranch())
	req.AppendHeader(via)
	for _, r := range d.RouteSet {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	mf := sip.MaxForwardsHeader(maxFwd)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{DisplayName: d.LocalName, Address: d.LocalURI, Params: sip.NewParams()}
	from.Params.Add("tag", d.LocalTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: d.RemoteName, Address: d.RemoteURI, Params: sip.NewParams()}
	if d.RemoteTag != "" {
		to.Params.Add("tag", d.RemoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if method != sip.BYE && method != sip.CANCEL && method != sip.ACK {
		req.AppendHeader(&sip.ContactHeader{Address: l.Contact()})
	}
	if l.UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", l.UserAgent))
	}
	if src != nil && f != nil {
		f.Copy(req, src)
		crossIdentity(req, src, l.From, l.Host, f.trusted)
	}
	if l.Allow != "" && carriesAllow(method, 0) {
		req.AppendHeader(sip.NewHeader("Allow", l.Allow))
	}
	if len(body) > 0 {
		if contentType == "" {
			contentType = "application/sdp"
		}
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	req.SetTransport(l.Transport)
	f.ApplyRules(req)
	return req
}

// BuildResponse answers req (a request that arrived in the realm described
// by l) with the status, reason, allowed headers and body of src (a response
// from the other leg, or nil for a locally generated answer). localTag is the
// SBC's To tag on this leg; withContact adds the SBC's Contact, as dialog
// creating and target refreshing responses need.
func BuildResponse(req *sip.Request, status int, reason string, localTag string, withContact bool, l Local, f *HeaderFilter, src *sip.Response, body []byte, contentType string) *sip.Response {
	res := sip.NewResponse(status, reason)
	res.SipVersion = "SIP/2.0"
	for _, h := range req.GetHeaders("Via") {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if v := res.Via(); v != nil && v.Params != nil {
		// RFC 3581: fill rport and received so the answer finds a NATed peer.
		if val, ok := v.Params.Get("rport"); ok && val == "" {
			if host, port, err := net.SplitHostPort(req.Source()); err == nil {
				v.Params.Add("rport", port)
				v.Params.Add("received", host)
			}
		}
	}
	if h := req.From(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.To(); h != nil {
		to := sip.HeaderClone(h).(*sip.ToHeader)
		if localTag != "" && status != 100 {
			if to.Params == nil {
				to.Params = sip.NewParams()
			}
			if !to.Params.Has("tag") {
				to.Params.Add("tag", localTag)
			}
		}
		res.AppendHeader(to)
	}
	if h := req.CallID(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if h := req.CSeq(); h != nil {
		res.AppendHeader(sip.HeaderClone(h))
	}
	if withContact && status > 100 && status < 300 {
		// RFC 3261 12.1.1: a dialog-creating answer echoes the request's
		// Record-Route, so the peer's own proxies stay on its route. They
		// are the peer's side, so echoing them back hides nothing.
		for _, h := range req.GetHeaders("Record-Route") {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	if withContact {
		res.AppendHeader(&sip.ContactHeader{Address: l.Contact()})
	}
	if l.UserAgent != "" {
		res.AppendHeader(sip.NewHeader("Server", l.UserAgent))
	}
	if src != nil && f != nil {
		f.Copy(res, src)
		crossIdentity(res, src, l.From, l.Host, f.trusted)
	}
	if cs := req.CSeq(); cs != nil && l.Allow != "" && carriesAllow(cs.MethodName, status) {
		res.AppendHeader(sip.NewHeader("Allow", l.Allow))
	}
	if len(body) > 0 {
		if contentType == "" {
			contentType = "application/sdp"
		}
		ct := sip.ContentTypeHeader(contentType)
		res.AppendHeader(&ct)
	}
	res.SetBody(body)
	f.ApplyRules(res)
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}
