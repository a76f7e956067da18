package sbc

import "github.com/edgesbc/edgesbc/topology"

// sipgo v1.7.2 and IPv6. sipgo prints an IPv6 host in brackets wherever it
// writes a URI or a Via, and keeps the brackets in Uri.Host when it parses
// one ("[2001:db8::10]"). But Request.Destination (where a request is
// sent: its Route or Request-URI) and Uri.HostPort join Host and port with
// a bare ":", so a URI built with an unbracketed IPv6 Host gives
// "2001:db8:2::10:5060", which its transport layer refuses ("parse address
// failed ... too many colons in address") and leg B never leaves: the
// caller gets 408 (issue 19).
//
// So every sip.Uri and Via the SBC builds takes its host through uriHost,
// the form sipgo's own parser produces; addresses stay unbracketed
// everywhere else (config, netip, the call record, the admin API).
func uriHost(host string) string { return topology.URIHost(host) }
