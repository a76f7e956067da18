package topology

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestURIHost(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"203.0.113.1", "203.0.113.1"},
		{"sbc.example.com", "sbc.example.com"},
		{"2001:db8:2::1", "[2001:db8:2::1]"},
		{"[2001:db8:2::1]", "[2001:db8:2::1]"},
		{"::ffff:192.0.2.2", "[::ffff:192.0.2.2]"}, // RFC 5118 4.9
		{"", ""},
	} {
		if got := URIHost(c.in); got != c.want {
			t.Errorf("URIHost(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := PlainHost(URIHost(c.in)); got != strings.Trim(c.in, "[]") {
			t.Errorf("PlainHost(URIHost(%q)) = %q", c.in, got)
		}
	}
}

// A request built for an IPv6 realm toward an IPv6 target: its Via and
// Contact carry the SBC's address in brackets (RFC 3261 19.1.1, RFC 5118),
// and sipgo can take its destination apart (it joins host and port
// without adding brackets: "too many colons in address" otherwise).
func TestBuildRequestIPv6Brackets(t *testing.T) {
	l := Local{Host: "2001:db8:2::1", Port: 5060, Transport: "UDP"}
	target := sip.Uri{Scheme: "sip", User: "bob", Host: URIHost("2001:db8:2::10"), Port: 5060}
	d := Dialog{CallID: "c1", LocalURI: sip.Uri{Scheme: "sip", Host: URIHost(l.Host)}, LocalTag: "t1",
		RemoteURI: sip.Uri{Scheme: "sip", Host: URIHost("2001:db8:2::10")}, Target: target}
	req := BuildRequest(sip.INVITE, d, 1, 70, l, NewHeaderFilter("allow", nil), nil, nil, "")
	msg := req.String()
	for _, want := range []string{
		"INVITE sip:bob@[2001:db8:2::10]:5060 SIP/2.0",
		"Via: SIP/2.0/UDP [2001:db8:2::1]:5060;branch=",
		"Contact: <sip:sbc@[2001:db8:2::1]:5060>",
		"From: <sip:[2001:db8:2::1]>;tag=t1",
		"To: <sip:[2001:db8:2::10]>",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("request lacks %q:\n%s", want, msg)
		}
	}
	host, port, err := sip.ParseAddr(req.Destination())
	if err != nil || host != "2001:db8:2::10" || port != 5060 {
		t.Errorf("sip.ParseAddr(%q) = %q, %d, %v", req.Destination(), host, port, err)
	}
	// What the peer sees must parse back to the same addresses.
	back, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatalf("the request does not parse back: %v\n%s", err, msg)
	}
	if v := back.(*sip.Request).Via(); v == nil || PlainHost(v.Host) != "2001:db8:2::1" || v.Port != 5060 {
		t.Errorf("Via parsed back as %v", v)
	}
}
