package mediarelay

import (
	"net/netip"
	"strings"
)

// SDP lines that can name the far network without being c=, o= or an ICE
// candidate:
//
//   - s= (session name: "pbx01.corp.example", a product and version) goes
//     out as "s=-" (RFC 8866 5.3 allows it when there is no name);
//   - i= (session and media information, free text) and k= (RFC 4566
//     encryption key, obsolete and in the clear) are dropped;
//   - an a= attribute is dropped when it is an ICE-like one the parser
//     does not know (a=ice-*, a=x-candidate*, a=candidate*) or a=path
//     (MSRP URLs: host and port of the far side, RFC 4975), or when its
//     value holds an IP literal: the SBC writes every address it means to
//     send itself (c=, o=, a=rtcp), so any other address is the far
//     side's (a=x-candidate-ipv6, vendor a=x-* lines).

// writeScrubbed writes a line other than a=, c=, o= (and u=, e=, p=,
// which never cross): s= anonymised, i= and k= dropped, the rest as is.
func writeScrubbed(w *sdpWriter, l sdpLine) {
	switch l.typ {
	case 's':
		w.line('s', "-")
	case 'i', 'k':
	default:
		w.line(l.typ, l.val)
	}
}

// leaksAddress reports whether attribute a=name:val must not cross.
func leaksAddress(name, val string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "ice-") || strings.HasPrefix(n, "x-candidate") || strings.HasPrefix(n, "candidate") || n == "path" {
		return true
	}
	return holdsIP(val)
}

// holdsIP finds an IPv4 or IPv6 literal among val's tokens ("10.0.0.1",
// "10.0.0.1:5060", "[2001:db8::1]:5060", "msrp://h/p"). A fingerprint's
// 16 or more hex groups are not an address.
func holdsIP(val string) bool {
	if len(val) > maxLine {
		return true // longer than the parser lets through: not ours to vouch for
	}
	for _, tok := range strings.FieldsFunc(val, func(r rune) bool {
		return strings.ContainsRune(" \t/;=,<>@[]\"'()", r)
	}) {
		if _, err := netip.ParseAddr(tok); err == nil {
			return true
		}
		if strings.Contains(tok, ".") {
			for _, part := range strings.Split(tok, ":") {
				if a, err := netip.ParseAddr(part); err == nil && a.Is4() {
					return true
				}
			}
		}
	}
	return false
}
