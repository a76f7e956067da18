package topology

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// Identity across realms (RFC 3325 asserted identity, RFC 3323 privacy,
// RFC 5806 Diversion, RFC 7044 History-Info). These headers never cross
// raw (HeaderFilter.Pass refuses config.IdentityHeaders): each value is
// parsed, bounded and rebuilt with its user part and the SBC's own host on
// the far side, so no inside host crosses, whatever the other side wrote.
//
//   - P-Asserted-Identity crosses from a trusted realm, P-Preferred-Identity
//     between trusted realms; from an untrusted one, a PPI becomes the PAI
//     only when the call's INVITE proved a digest answer (Origin).
//   - Toward an untrusted realm no PPI goes, and Privacy: id removes the
//     PAI (the From is anonymized by the caller of AnonymousFrom).
//   - Remote-Party-ID becomes the PAI (from a trusted realm whose rpid is
//     convert, when no PAI came) or is dropped.
//   - Diversion and History-Info cross with their hosts rewritten
//     (RedirectHistory), minus what asked for privacy toward untrusted.

// Origin is where the messages built on a leg come from: the other leg's
// realm, as the SBC judges it.
type Origin struct {
	Trusted bool // the realm is in the trust domain (config.Config.Trusted)
	// Authenticated: the call's INVITE carried a digest answer the SBC
	// verified, so the caller's preferred identity may be asserted.
	Authenticated bool
	RPID          string // the realm's config.RPIDDrop or config.RPIDConvert
	// Normalize converts a user part like the From's (trunk number rules);
	// nil keeps it.
	Normalize func(user string) string
}

// Bounds on what is parsed: RFC 3325 allows at most two identities (one
// sip/sips, one tel); a redirect chain longer than maxHistory entries is
// cut at its newest entries' expense (the oldest are the ones kept).
const (
	maxIdentityValue = 512 // bytes in one header value; longer: dropped
	maxIdentityParts = 8   // values read from all headers of one name
	maxHistory       = 16  // Diversion or History-Info entries rebuilt
	maxUser          = 64
	maxDisplay       = 64
)

// nameAddr is one parsed identity value.
type nameAddr struct {
	display string // unquoted, safe to quote
	scheme  string // sip, sips or tel
	user    string // the user part (or the tel number)
	headers string // the URI's ?headers (History-Info), unparsed
	params  map[string]string
	order   []string // header param names in arrival order
}

// splitValues splits a header value at commas outside quotes and angle
// brackets, at most max parts.
func splitValues(v string, max int) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v) && len(out) < max; i++ {
		switch c := v[i]; {
		case c == '"' && (i == 0 || v[i-1] != '\\'):
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	if len(out) < max && start < len(v) {
		out = append(out, v[start:])
	}
	return out
}

// values reads every value of the headers named, bounded.
func values(m sip.Message, names ...string) []string {
	var out []string
	for _, n := range names {
		for _, h := range m.GetHeaders(n) {
			if len(h.Value()) > maxIdentityValue {
				continue // a huge value is dropped whole, never cut and sent
			}
			out = append(out, splitValues(h.Value(), maxIdentityParts-len(out))...)
			if len(out) >= maxIdentityParts {
				return out
			}
		}
	}
	return out
}

// parseNameAddr reads `"Name" <scheme:user@host;p?h>;k=v` or the addr-spec
// form `scheme:user@host;k=v`. Only sip, sips and tel URIs with a plain
// user part are taken; anything else is refused (ok false).
func parseNameAddr(v string) (nameAddr, bool) {
	var n nameAddr
	v = strings.TrimSpace(v)
	uri, rest := v, ""
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return n, false
		}
		n.display = cleanDisplay(v[:i])
		uri, rest = v[i+1:i+j], v[i+j+1:]
	} else if i := strings.IndexByte(v, ';'); i >= 0 {
		uri, rest = v[:i], v[i:] // addr-spec: what follows ; is the header's
	}
	scheme, after, ok := strings.Cut(uri, ":")
	if !ok {
		return n, false
	}
	n.scheme = strings.ToLower(strings.TrimSpace(scheme))
	after, n.headers, _ = strings.Cut(after, "?")
	switch n.scheme {
	case "sip", "sips":
		user, _, ok := strings.Cut(after, "@")
		if !ok {
			return n, false
		}
		n.user = user
	case "tel":
		n.user, _, _ = strings.Cut(after, ";")
	default:
		return n, false
	}
	if !safeUser(n.user) {
		return n, false
	}
	n.params = map[string]string{}
	for _, p := range strings.Split(rest, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || len(n.order) >= 8 {
			continue
		}
		if _, dup := n.params[k]; !dup {
			n.order = append(n.order, k)
		}
		n.params[k] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return n, true
}

// safeUser: 1 to maxUser characters of RFC 3261 user unreserved and
// unreserved marks, digits and letters; no escapes beyond %XX, no ;, no @.
func safeUser(u string) bool {
	if u == "" || len(u) > maxUser {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()&=+$,/%", c) >= 0) {
			return false
		}
	}
	return true
}

// cleanDisplay keeps a display name only if it is short and printable; it
// is quoted again on the way out.
func cleanDisplay(d string) string {
	d = strings.TrimSpace(d)
	d = strings.TrimSuffix(strings.TrimPrefix(d, `"`), `"`)
	if len(d) > maxDisplay {
		return ""
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return ""
		}
	}
	return d
}

// token reports whether v is a short SIP token (a param value kept).
func token(v string) bool {
	if v == "" || len(v) > 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return true
}

// uri is the value's URI rebuilt with the SBC's host (tel: has none).
func (n nameAddr) uri(host string, normalize func(string) string) string {
	user := n.user
	if normalize != nil {
		if u := normalize(user); safeUser(u) {
			user = u
		}
	}
	if n.scheme == "tel" {
		return "tel:" + user
	}
	u := sip.Uri{Scheme: n.scheme, User: user, Host: host}
	return u.String()
}

// String writes the value with only the named params kept (token values).
func (n nameAddr) format(uri string, keep map[string]bool) string {
	var b strings.Builder
	if n.display != "" {
		b.WriteString(`"` + n.display + `" `)
	}
	b.WriteString("<" + uri + ">")
	for _, k := range n.order {
		if !keep[k] {
			continue
		}
		if v := n.params[k]; v == "" {
			b.WriteString(";" + k)
		} else if token(v) {
			b.WriteString(";" + k + "=" + v)
		}
	}
	return b.String()
}

// Privacy reports whether m's Privacy header asks for the priv-value
// (RFC 3323 4.2: id, header, user, session, history, critical, none).
func Privacy(m sip.Message, value string) bool {
	for _, v := range values(m, "Privacy") {
		for _, p := range strings.Split(v, ";") {
			if strings.EqualFold(strings.TrimSpace(p), value) {
				return true
			}
		}
	}
	return false
}

// AnonymousFrom is the From a request carries toward an untrusted realm
// when its caller asked for privacy (RFC 3323 4.1.1.3).
func AnonymousFrom() (display string, uri sip.Uri) {
	return "Anonymous", sip.Uri{Scheme: "sip", User: "anonymous", Host: "anonymous.invalid"}
}

// identities parses up to one sip/sips and one tel value (RFC 3325 9.1).
func identities(vals []string) []nameAddr {
	var out []nameAddr
	sipSeen, telSeen := false, false
	for _, v := range vals {
		n, ok := parseNameAddr(v)
		if !ok {
			continue
		}
		if n.scheme == "tel" {
			if telSeen {
				continue
			}
			telSeen = true
		} else {
			if sipSeen {
				continue
			}
			sipSeen = true
		}
		out = append(out, n)
	}
	return out
}

// fromRPID reads the first Remote-Party-ID for the party this message
// speaks for (calling on requests, called on responses; none given is
// either), and whether it asked for privacy.
func fromRPID(m sip.Message) ([]nameAddr, bool) {
	party := "calling"
	if _, ok := m.(*sip.Response); ok {
		party = "called"
	}
	for _, v := range values(m, "Remote-Party-ID") {
		n, ok := parseNameAddr(v)
		if !ok {
			continue
		}
		if p := strings.ToLower(n.params["party"]); p != "" && p != party {
			continue
		}
		priv := strings.ToLower(n.params["privacy"])
		return []nameAddr{n}, priv == "full" || priv == "uri"
	}
	return nil, false
}

// crossIdentity writes the identity headers of src, rebuilt, onto dst,
// which goes into a realm (trusted or not) where the SBC's address is
// host. o is where src came from; nil: no identity crosses.
func crossIdentity(dst Editable, src sip.Message, o *Origin, host string, toTrusted bool) {
	if o == nil {
		return
	}
	var pai, ppi []nameAddr
	if o.Trusted {
		pai = identities(values(src, "P-Asserted-Identity"))
		ppi = identities(values(src, "P-Preferred-Identity"))
		if len(pai) == 0 && o.RPID == config.RPIDConvert {
			var private bool
			if pai, private = fromRPID(src); private && !Privacy(src, "id") {
				dst.AppendHeader(sip.NewHeader("Privacy", "id"))
			}
		}
	} else if o.Authenticated {
		pai = identities(values(src, "P-Preferred-Identity")) // RFC 3325 6: asserted once proved
	}
	if !toTrusted {
		ppi = nil
		if Privacy(src, "id") || privacyAdded(dst) {
			pai = nil
		}
	}
	for _, n := range pai {
		dst.AppendHeader(sip.NewHeader("P-Asserted-Identity", n.format(n.uri(host, o.Normalize), nil)))
	}
	if len(pai) > 0 && Privacy(src, "id") && !Privacy(dst, "id") {
		// The identity goes on only with the request for its privacy, even
		// where the realm's header list leaves Privacy out.
		dst.AppendHeader(sip.NewHeader("Privacy", "id"))
	}
	for _, n := range ppi {
		dst.AppendHeader(sip.NewHeader("P-Preferred-Identity", n.format(n.uri(host, o.Normalize), nil)))
	}
	RedirectHistory(dst, src, host, toTrusted)
}

// privacyAdded: dst already asks for id privacy (an RPID's privacy=full,
// converted above).
func privacyAdded(dst Editable) bool {
	for _, h := range dst.GetHeaders("Privacy") {
		if strings.EqualFold(strings.TrimSpace(h.Value()), "id") {
			return true
		}
	}
	return false
}

// Params each redirect header keeps (RFC 5806 4, RFC 7044 9), token
// values only.
var (
	diversionParams = map[string]bool{"reason": true, "counter": true, "limit": true, "privacy": true, "screen": true}
	historyParams   = map[string]bool{"index": true, "rc": true, "mp": true, "np": true}
)

// RedirectHistory writes src's Diversion and History-Info onto dst with
// every host rewritten to the SBC's (host), in order, at most maxHistory
// entries each. Toward an untrusted realm, a Diversion entry with privacy
// other than off, and History-Info under Privacy: history (the request's
// or the entry's own), are left out. The SBC's redirect handling calls it
// with the 3xx as src, and adds its own entry with DiversionValue.
func RedirectHistory(dst Editable, src sip.Message, host string, toTrusted bool) {
	for _, v := range boundedValues(src, "Diversion") {
		n, ok := parseNameAddr(v)
		if !ok {
			continue
		}
		if p := strings.ToLower(n.params["privacy"]); !toTrusted && p != "" && p != "off" {
			continue
		}
		dst.AppendHeader(sip.NewHeader("Diversion", n.format(n.uri(host, nil), diversionParams)))
	}
	if !toTrusted && Privacy(src, "history") {
		return
	}
	for _, v := range boundedValues(src, "History-Info") {
		n, ok := parseNameAddr(v)
		if !ok {
			continue
		}
		emb := historyHeaders(n.headers)
		if !toTrusted && strings.Contains(strings.ToLower(emb), "privacy=history") {
			continue
		}
		uri := n.uri(host, nil)
		if emb != "" {
			uri += "?" + emb
		}
		dst.AppendHeader(sip.NewHeader("History-Info", n.format(uri, historyParams)))
	}
}

// boundedValues is values with the redirect bound.
func boundedValues(m sip.Message, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		if len(h.Value()) > maxIdentityValue*2 {
			continue
		}
		out = append(out, splitValues(h.Value(), maxHistory-len(out))...)
		if len(out) >= maxHistory {
			break
		}
	}
	return out
}

// historyHeaders keeps a History-Info URI's embedded Reason and Privacy
// (RFC 7044 9.4), escaped characters only; nothing else rides along.
func historyHeaders(h string) string {
	var keep []string
	for _, p := range strings.Split(h, "&") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(k, "Reason") && !strings.EqualFold(k, "Privacy") || len(v) > 128 {
			continue
		}
		ok := v != ""
		for i := 0; i < len(v) && ok; i++ {
			c := v[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("%-._~+", c) >= 0
		}
		if ok {
			keep = append(keep, k+"="+v)
		}
	}
	return strings.Join(keep, "&")
}

// DiversionValue is one Diversion entry the SBC writes itself (RFC 5806):
// the diverting user at the SBC's host, with a token reason and counter 1.
func DiversionValue(user, host, reason string) string {
	if !safeUser(user) {
		return ""
	}
	u := sip.Uri{Scheme: "sip", User: user, Host: host}
	v := "<" + u.String() + ">"
	if token(reason) {
		v += ";reason=" + reason
	}
	return v + ";counter=1"
}
