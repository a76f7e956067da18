package topology

import "strings"

// URIHost is host as it goes into a SIP URI or a Via sent-by: an IPv6
// literal in brackets (RFC 3261 19.1.1 and 25.1 IPv6reference, RFC 5118
// 4.1), anything else as it is. Addresses are kept unbracketed everywhere
// else (config, netip, the call record); this is the one place a SIP
// header gets its form. Already bracketed input is returned unchanged.
func URIHost(host string) string {
	// A host name or IPv4 address never has a colon; every IPv6 form
	// (IPv4-mapped ones included, RFC 5118 4.9) does.
	if strings.HasPrefix(host, "[") || !strings.Contains(host, ":") {
		return host
	}
	return "[" + host + "]"
}

// PlainHost is the other way round: a SIP URI or Via host without its
// IPv6 brackets, for net.JoinHostPort and netip.
func PlainHost(host string) string {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}
