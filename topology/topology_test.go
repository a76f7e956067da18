package topology_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
	"github.com/emiago/sipgo/sip"
)

// alwaysRebuilt are the headers that must never cross, whatever the policy.
var alwaysRebuilt = []string{
	"Via", "v", "Route", "Record-Route", "Contact", "m", "Call-ID", "i",
	"From", "f", "To", "t", "CSeq", "Max-Forwards", "User-Agent", "Server",
	"Content-Length", "l", "Content-Type", "c", "Warning", "Authorization",
	"Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
	"Authentication-Info", "Path", "Service-Route", "RAck",
}

func TestHeaderFilterPass(t *testing.T) {
	allowDefault := topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders)
	allowCustom := topology.NewHeaderFilter("allow", []string{"subject", "SUPPORTED", "X-Custom", "Session-Expires"})
	denyCustom := topology.NewHeaderFilter("deny", []string{"X-Secret", "p-asserted-identity", "Subject", "k"})
	denyNone := topology.NewHeaderFilter("deny", nil)
	allowNone := topology.NewHeaderFilter("allow", nil)

	cases := []struct {
		filter string
		f      *topology.HeaderFilter
		header string
		want   bool
	}{
		{"allowDefault", allowDefault, "Subject", true},
		{"allowDefault", allowDefault, "subject", true},
		{"allowDefault", allowDefault, "SUBJECT", true},
		{"allowDefault", allowDefault, "s", true}, // compact Subject
		// Capabilities are the SBC's own on each leg: never copied.
		{"allowDefault", allowDefault, "Supported", false},
		{"allowDefault", allowDefault, "k", false}, // compact Supported
		{"allowDefault", allowDefault, "K", false},
		{"allowDefault", allowDefault, "Allow", false},
		{"allowDefault", allowDefault, "Require", false},
		{"allowDefault", allowDefault, "Event", true},
		{"allowDefault", allowDefault, "o", true}, // compact Event
		{"allowDefault", allowDefault, "Allow-Events", true},
		{"allowDefault", allowDefault, "u", true},
		{"allowDefault", allowDefault, "Session-Expires", true},
		{"allowDefault", allowDefault, "x", true},
		{"allowDefault", allowDefault, "Content-Encoding", true},
		{"allowDefault", allowDefault, "e", true},
		{"allowDefault", allowDefault, "X-Secret", false},
		{"allowDefault", allowDefault, "P-Asserted-Identity", false},
		{"allowDefault", allowDefault, "Refer-To", false},
		{"allowDefault", allowDefault, "r", false},
		{"allowDefault", allowDefault, "Referred-By", false},
		{"allowDefault", allowDefault, "b", false},
		{"allowDefault", allowDefault, "Organization", false},
		{"allowCustom", allowCustom, "Subject", true},
		{"allowCustom", allowCustom, "s", true},
		{"allowCustom", allowCustom, "k", false}, // listed, still rebuilt
		{"allowCustom", allowCustom, "x-custom", true},
		{"allowCustom", allowCustom, "x", true},
		{"allowCustom", allowCustom, "Allow", false},
		{"allowCustom", allowCustom, "Require", false},
		{"allowNone", allowNone, "Subject", false},
		{"allowNone", allowNone, "X-Anything", false},
		{"denyCustom", denyCustom, "X-Secret", false},
		{"denyCustom", denyCustom, "x-secret", false},
		{"denyCustom", denyCustom, "P-Asserted-Identity", false},
		{"denyCustom", denyCustom, "Subject", false},
		{"denyCustom", denyCustom, "s", false},         // compact of a denied long name
		{"denyCustom", denyCustom, "Supported", false}, // long of a denied compact name
		{"denyCustom", denyCustom, "k", false},
		{"denyCustom", denyCustom, "Allow", false},
		{"denyCustom", denyCustom, "X-Other", true},
		{"denyCustom", denyCustom, "Privacy", true},
		{"denyNone", denyNone, "X-Secret", true},
		// Identity is rebuilt (identity.go), never copied raw.
		{"denyNone", denyNone, "P-Asserted-Identity", false},
		{"denyNone", denyNone, "Diversion", false},
		{"denyNone", denyNone, "History-Info", false},
		{"denyNone", denyNone, "Remote-Party-ID", false},
		{"denyNone", denyNone, "P-Preferred-Identity", false},
		{"denyNone", denyNone, "RSeq", false},
		{"denyNone", denyNone, "Subject", true},
	}
	for _, c := range cases {
		if got := c.f.Pass(c.header); got != c.want {
			t.Errorf("%s.Pass(%q) = %v, want %v", c.filter, c.header, got, c.want)
		}
	}

	// Always-rebuilt headers never pass, even when a policy names them.
	listed := append([]string{}, alwaysRebuilt...)
	for _, f := range []struct {
		name string
		f    *topology.HeaderFilter
	}{
		{"allow listing them", topology.NewHeaderFilter("allow", listed)},
		{"allow default", allowDefault},
		{"deny empty", denyNone},
		{"deny listing them", topology.NewHeaderFilter("deny", listed)},
		{"unknown mode", topology.NewHeaderFilter("", listed)},
	} {
		for _, h := range alwaysRebuilt {
			for _, name := range []string{h, strings.ToLower(h), strings.ToUpper(h)} {
				if f.f.Pass(name) {
					t.Errorf("%s: Pass(%q) = true, an always-rebuilt header must never pass", f.name, name)
				}
			}
		}
	}
}

func headerLines(hs []sip.Header) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name()+": "+h.Value())
	}
	return out
}

func TestHeaderFilterCopy(t *testing.T) {
	src := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "192.0.2.1"})
	for _, h := range [][2]string{
		{"Subject", "first"},
		{"X-Secret", "hidden"},
		{"Supported", "100rel, timer"},
		{"Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx"},
		{"Allow", "INVITE, BYE"},
		{"Require", "100rel"},
		{"k", "100REL,replaces"},
		{"Supported", "100rel"},
		{"Require", "timer, 100rel"},
		{"Contact", "<sip:a@10.0.0.1>"},
		{"s", "second"},
		{"Supported", ""},
		{"Supported", "timer, 100rel, replaces,norefersub"},
	} {
		src.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	dst := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "192.0.2.2"})
	topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders).Copy(dst, src)
	got := headerLines(dst.Headers())
	// The far side's Supported, Allow and Require never cross: the SBC
	// says on each leg what it supports there (no fingerprint of the far
	// side, and no option tag it does not honour).
	want := []string{
		"Subject: first",
		"s: second",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Copy (allow default) gave\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	dst = sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "192.0.2.2"})
	topology.NewHeaderFilter("deny", []string{"Subject"}).Copy(dst, src)
	got = headerLines(dst.Headers())
	want = []string{
		"X-Secret: hidden",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Copy (deny Subject) gave\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLocalContact(t *testing.T) {
	cases := []struct {
		l    topology.Local
		want string
	}{
		{topology.Local{Host: "203.0.113.1", Port: 5060, Transport: "UDP"}, "sip:sbc@203.0.113.1:5060"},
		{topology.Local{Host: "203.0.113.1", Port: 5060}, "sip:sbc@203.0.113.1:5060"},
		{topology.Local{Host: "203.0.113.1", Port: 5080, Transport: "udp"}, "sip:sbc@203.0.113.1:5080"},
		{topology.Local{Host: "198.51.100.1", Port: 5060, Transport: "TCP"}, "sip:sbc@198.51.100.1:5060;transport=tcp"},
	}
	for _, c := range cases {
		u := c.l.Contact()
		if got := u.String(); got != c.want {
			t.Errorf("%+v.Contact() = %q, want %q", c.l, got, c.want)
		}
	}
}

// legA is an INVITE as it arrives on the carrier side: everything in it
// that names a host, a hop or a dialog must stay on that side.
const legABody = "v=0\r\no=alice 1 1 IN IP4 10.9.8.7\r\ns=-\r\nc=IN IP4 10.9.8.7\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

var legA = "INVITE sip:+15551234567@203.0.113.1:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKlegAproxyhop;rport\r\n" +
	"Via: SIP/2.0/UDP 10.9.8.7:5070;branch=z9hG4bKlegAphonehop;received=10.9.8.77\r\n" +
	"Record-Route: <sip:rr1.carrier.example;lr>, <sip:rr2.carrier.example;lr>\r\n" +
	"Route: <sip:route.carrier.example;lr>\r\n" +
	"Max-Forwards: 69\r\n" +
	"From: \"Alice Leak\" <sip:alice@carrier.example>;tag=legAfromtag\r\n" +
	"To: <sip:+15551234567@203.0.113.1>\r\n" +
	"Call-ID: legAcallid@10.9.8.7\r\n" +
	"CSeq: 314 INVITE\r\n" +
	"Contact: <sip:alice@10.9.8.7:5070;transport=udp>\r\n" +
	"User-Agent: CarrierSwitch/9.1\r\n" +
	"Subject: lunch at noon\r\n" +
	"X-Secret: internal-billing-id\r\n" +
	"P-Asserted-Identity: <sip:+15550001111@core.carrier.example>\r\n" +
	"Supported: 100rel, timer\r\n" +
	"Allow: INVITE, ACK, BYE, CANCEL\r\n" +
	"Authorization: Digest username=\"carrieruser\", realm=\"carrier.example\"\r\n" +
	"Content-Type: application/sdp\r\n" +
	fmt.Sprintf("Content-Length: %d\r\n", len(legABody)) +
	"\r\n" + legABody

// legALeaks are strings of leg A that must not appear on leg B.
var legALeaks = []string{
	"203.0.113.50", "10.9.8.7", "203.0.113.1", "z9hG4bKlegAproxyhop", "z9hG4bKlegAphonehop",
	"rr1.carrier.example", "rr2.carrier.example", "route.carrier.example",
	"carrier.example", "legAcallid", "legAfromtag", "Alice Leak", "alice@",
	"CarrierSwitch", "X-Secret", "internal-billing-id", "P-Asserted-Identity",
	"100rel", "carrieruser", "Max-Forwards: 69", "CSeq: 314",
}

func parseReq(t *testing.T, s string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(s))
	if err != nil {
		t.Fatalf("parse request: %v\n%s", err, s)
	}
	r, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("parsed %T, want *sip.Request", m)
	}
	return r
}

func parseRes(t *testing.T, s string) *sip.Response {
	t.Helper()
	m, err := sip.NewParser().ParseSIP([]byte(s))
	if err != nil {
		t.Fatalf("parse response: %v\n%s", err, s)
	}
	r, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("parsed %T, want *sip.Response", m)
	}
	return r
}

func values(m sip.Message, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

var legBLocal = topology.Local{Host: "198.51.100.1", Port: 5060, Transport: "UDP", UserAgent: "EdgeSBC/test", Allow: "INVITE, ACK, BYE, CANCEL, UPDATE"}

func legBDialog() topology.Dialog {
	return topology.Dialog{
		CallID:    "legBcallid-0001",
		LocalURI:  sip.Uri{Scheme: "sip", User: "+15550001111", Host: "198.51.100.1"},
		LocalTag:  "legBlocaltag",
		RemoteURI: sip.Uri{Scheme: "sip", User: "+15551234567", Host: "198.51.100.10"},
		Target:    sip.Uri{Scheme: "sip", User: "+15551234567", Host: "198.51.100.10", Port: 5060},
		RouteSet: []sip.Uri{
			{Scheme: "sip", Host: "198.51.100.20", UriParams: sip.HeaderParams{{K: "lr"}}},
			{Scheme: "sip", Host: "198.51.100.21", Port: 5070, UriParams: sip.HeaderParams{{K: "lr"}}},
		},
	}
}

func TestBuildRequestHidesLegA(t *testing.T) {
	src := parseReq(t, legA)
	src.SetSource("203.0.113.50:5060")
	body := []byte("v=0\r\no=- 2 2 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n")
	d := legBDialog()
	f := topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders)

	out := topology.BuildRequest(sip.INVITE, d, 7, 42, legBLocal, f, src, body, "")
	s := out.String()
	for _, leak := range legALeaks {
		if strings.Contains(s, leak) {
			t.Errorf("leg B INVITE contains leg A's %q:\n%s", leak, s)
		}
	}

	b := parseReq(t, s)
	if b.Method != sip.INVITE || b.Recipient.String() != "sip:+15551234567@198.51.100.10:5060" {
		t.Errorf("request line = %s %s", b.Method, b.Recipient.String())
	}
	vias := b.GetHeaders("Via")
	if len(vias) != 1 {
		t.Fatalf("leg B has %d Via headers, want 1:\n%s", len(vias), s)
	}
	via := vias[0].(*sip.ViaHeader)
	if via.Host != "198.51.100.1" || via.Port != 5060 || via.Transport != "UDP" {
		t.Errorf("Via = %s, want SIP/2.0/UDP 198.51.100.1:5060", via.Value())
	}
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) || len(branch) <= len(sip.RFC3261BranchMagicCookie) {
		t.Errorf("Via branch = %q, want z9hG4bK...", branch)
	}
	if got := values(b, "Route"); strings.Join(got, "|") != "<sip:198.51.100.20;lr>|<sip:198.51.100.21:5070;lr>" {
		t.Errorf("Route = %q, want the dialog's route set in order", got)
	}
	if got := values(b, "Record-Route"); len(got) != 0 {
		t.Errorf("Record-Route = %q, want none", got)
	}
	if b.CallID() == nil || b.CallID().Value() != "legBcallid-0001" {
		t.Errorf("Call-ID = %v", b.CallID())
	}
	if tag, _ := b.From().Params.Get("tag"); tag != "legBlocaltag" || b.From().Address.String() != "sip:+15550001111@198.51.100.1" {
		t.Errorf("From = %s", b.From().Value())
	}
	if b.To().Params.Has("tag") || b.To().Address.String() != "sip:+15551234567@198.51.100.10" {
		t.Errorf("To = %s, want no tag on an initial INVITE", b.To().Value())
	}
	if b.CSeq().SeqNo != 7 || b.CSeq().MethodName != sip.INVITE {
		t.Errorf("CSeq = %s, want 7 INVITE", b.CSeq().Value())
	}
	if got := values(b, "Max-Forwards"); len(got) != 1 || got[0] != "42" {
		t.Errorf("Max-Forwards = %q, want [42]", got)
	}
	if got := values(b, "Contact"); len(got) != 1 || got[0] != "<sip:sbc@198.51.100.1:5060>" {
		t.Errorf("Contact = %q, want [<sip:sbc@198.51.100.1:5060>]", got)
	}
	if got := values(b, "User-Agent"); len(got) != 1 || got[0] != "EdgeSBC/test" {
		t.Errorf("User-Agent = %q, want [EdgeSBC/test]", got)
	}
	if got := values(b, "Subject"); len(got) != 1 || got[0] != "lunch at noon" {
		t.Errorf("Subject = %q, want it copied", got)
	}
	if got := values(b, "Supported"); len(got) != 0 {
		t.Errorf("Supported = %q, want leg A's not copied", got)
	}
	if got := values(b, "Allow"); len(got) != 1 || got[0] != legBLocal.Allow {
		t.Errorf("Allow = %q, want the SBC's own [%s]", got, legBLocal.Allow)
	}
	for _, h := range []string{"X-Secret", "P-Asserted-Identity", "Authorization"} {
		if got := values(b, h); len(got) != 0 {
			t.Errorf("%s = %q, want not copied", h, got)
		}
	}
	if got := values(b, "Content-Type"); len(got) != 1 || got[0] != "application/sdp" {
		t.Errorf("Content-Type = %q, want [application/sdp]", got)
	}
	if got := values(b, "Content-Length"); len(got) != 1 || got[0] != fmt.Sprint(len(body)) {
		t.Errorf("Content-Length = %q, want [%d]", got, len(body))
	}
	if string(b.Body()) != string(body) {
		t.Errorf("body = %q, want %q", b.Body(), body)
	}
	if out.Transport() != "UDP" {
		t.Errorf("Transport() = %q", out.Transport())
	}

	// Each request gets its own branch.
	again := topology.BuildRequest(sip.INVITE, d, 7, 42, legBLocal, f, src, body, "")
	if b2, _ := again.Via().Params.Get("branch"); b2 == branch {
		t.Errorf("two requests share branch %q", branch)
	}
	// Building leg B leaves leg A untouched.
	if src.String() != parseReq(t, legA).String() {
		t.Errorf("BuildRequest modified its source request")
	}
}

func TestBuildRequestDenyMode(t *testing.T) {
	src := parseReq(t, legA)
	f := topology.NewHeaderFilter("deny", []string{"X-Secret"})
	out := topology.BuildRequest(sip.INVITE, legBDialog(), 1, 70, legBLocal, f, src, nil, "")
	b := parseReq(t, out.String())
	if got := values(b, "X-Secret"); len(got) != 0 {
		t.Errorf("denied X-Secret copied: %q", got)
	}
	if got := values(b, "P-Asserted-Identity"); len(got) != 0 {
		t.Errorf("P-Asserted-Identity = %q, want never copied raw, even in deny mode", got)
	}
	// Rebuilt headers stay single and ours in deny mode too.
	for h, want := range map[string]string{
		"Call-ID": "legBcallid-0001", "User-Agent": "EdgeSBC/test", "Max-Forwards": "70",
		"Contact": "<sip:sbc@198.51.100.1:5060>", "CSeq": "1 INVITE",
	} {
		if got := values(b, h); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%s]", h, got, want)
		}
	}
	for _, h := range []string{"Record-Route", "Authorization", "Content-Type"} {
		if got := values(b, h); len(got) != 0 {
			t.Errorf("%s = %q, want none", h, got)
		}
	}
	if got := len(b.GetHeaders("Via")); got != 1 {
		t.Errorf("%d Via headers in deny mode, want 1", got)
	}
	if len(b.Body()) != 0 {
		t.Errorf("leg A body carried without being given: %q", b.Body())
	}
	if got := values(b, "Content-Length"); len(got) != 1 || got[0] != "0" {
		t.Errorf("Content-Length = %q, want [0]", got)
	}
	s := out.String()
	for _, leak := range []string{"10.9.8.7", "203.0.113.50", "legAcallid", "legAfromtag", "CarrierSwitch", "rr1.carrier", "100rel"} {
		if strings.Contains(s, leak) {
			t.Errorf("deny mode leg B contains %q:\n%s", leak, s)
		}
	}
}

func TestBuildRequestMethods(t *testing.T) {
	d := legBDialog()
	d.RemoteTag = "pbxtag"
	d.RouteSet = nil
	cases := []struct {
		method      sip.RequestMethod
		wantContact bool
	}{
		{sip.INVITE, true}, {sip.UPDATE, true}, {sip.OPTIONS, true}, {sip.INFO, true},
		{sip.BYE, false}, {sip.ACK, false}, {sip.CANCEL, false},
	}
	for _, c := range cases {
		out := topology.BuildRequest(c.method, d, 9, 70, legBLocal, nil, nil, nil, "")
		b := parseReq(t, out.String())
		if got := len(b.GetHeaders("Contact")); (got == 1) != c.wantContact || got > 1 {
			t.Errorf("%s: %d Contact headers, want contact=%v", c.method, got, c.wantContact)
		}
		if b.CSeq().SeqNo != 9 || b.CSeq().MethodName != c.method {
			t.Errorf("%s: CSeq = %s", c.method, b.CSeq().Value())
		}
		if tag, _ := b.To().Params.Get("tag"); tag != "pbxtag" {
			t.Errorf("%s: To tag = %q, want pbxtag", c.method, tag)
		}
		if got := len(b.GetHeaders("Route")); got != 0 {
			t.Errorf("%s: %d Route headers with an empty route set", c.method, got)
		}
		if got := len(b.GetHeaders("Content-Type")); got != 0 {
			t.Errorf("%s: Content-Type without a body", c.method)
		}
	}
}

func TestBuildRequestTCPAndContentType(t *testing.T) {
	l := topology.Local{Host: "198.51.100.1", Port: 5061, Transport: "TCP"}
	out := topology.BuildRequest(sip.INVITE, legBDialog(), 1, 70, l, nil, nil, []byte(`{"a":1}`), "application/json")
	b := parseReq(t, out.String())
	if got := values(b, "Contact"); len(got) != 1 || got[0] != "<sip:sbc@198.51.100.1:5061;transport=tcp>" {
		t.Errorf("TCP Contact = %q", got)
	}
	if v := b.Via(); v.Transport != "TCP" || v.Port != 5061 {
		t.Errorf("TCP Via = %s", v.Value())
	}
	if out.Transport() != "TCP" {
		t.Errorf("Transport() = %q, want TCP", out.Transport())
	}
	if got := values(b, "Content-Type"); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("Content-Type = %q, want [application/json]", got)
	}
	if got := values(b, "User-Agent"); len(got) != 0 {
		t.Errorf("User-Agent = %q with an empty Local.UserAgent, want none", got)
	}
}

// legBResponse is what leg B's peer answers: none of its topology may
// reach leg A.
const legBBody = "v=0\r\no=pbx 1 1 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\n"

var legBResponse = "SIP/2.0 183 Session Progress\r\n" +
	"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKlegBbranch\r\n" +
	"Record-Route: <sip:pbxproxy.ent.example;lr>\r\n" +
	"From: <sip:+15550001111@198.51.100.1>;tag=legBlocaltag\r\n" +
	"To: <sip:+15551234567@198.51.100.10>;tag=pbxtag\r\n" +
	"Call-ID: legBcallid-0001\r\n" +
	"CSeq: 7 INVITE\r\n" +
	"Contact: <sip:pbx@198.51.100.10:5060>\r\n" +
	"Server: PBXSoft/1.0\r\n" +
	"Warning: 399 pbx.ent.example \"internal detail\"\r\n" +
	"Supported: 100rel, timer\r\n" +
	"Require: 100rel\r\n" +
	"RSeq: 1\r\n" +
	"Allow: INVITE, ACK, BYE\r\n" +
	"X-Internal: yes\r\n" +
	"Content-Type: application/sdp\r\n" +
	fmt.Sprintf("Content-Length: %d\r\n", len(legBBody)) +
	"\r\n" + legBBody

var legBLeaks = []string{
	"198.51.100", "pbxproxy", "pbx.ent.example", "ent.example", "z9hG4bKlegBbranch",
	"legBlocaltag", "pbxtag", "legBcallid", "PBXSoft", "internal detail", "X-Internal",
	"pbx@", "100rel",
}

var legALocal = topology.Local{Host: "203.0.113.1", Port: 5060, Transport: "UDP", UserAgent: "EdgeSBC/test", Allow: "INVITE, ACK, BYE, CANCEL, UPDATE"}

func TestBuildResponseHidesLegB(t *testing.T) {
	req := parseReq(t, legA)
	req.SetSource("192.0.2.7:5099")
	src := parseRes(t, legBResponse)
	f := topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders)
	body := []byte("v=0\r\no=- 3 3 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\nm=audio 30002 RTP/AVP 0\r\n")

	out := topology.BuildResponse(req, 183, "Session Progress", "sbcAtag", true, legALocal, f, src, body, "")
	s := out.String()
	for _, leak := range legBLeaks {
		if strings.Contains(s, leak) {
			t.Errorf("leg A response contains leg B's %q:\n%s", leak, s)
		}
	}
	if !strings.HasPrefix(s, "SIP/2.0 183 Session Progress\r\n") {
		t.Errorf("status line = %q", strings.SplitN(s, "\r\n", 2)[0])
	}
	r := parseRes(t, s)
	if r.StatusCode != 183 || r.Reason != "Session Progress" {
		t.Errorf("status = %d %q", r.StatusCode, r.Reason)
	}

	vias := r.GetHeaders("Via")
	if len(vias) != 2 {
		t.Fatalf("%d Via headers, want leg A's 2:\n%s", len(vias), s)
	}
	top := vias[0].(*sip.ViaHeader)
	if top.Host != "203.0.113.50" || top.Port != 5060 {
		t.Errorf("top Via = %s", top.Value())
	}
	if b, _ := top.Params.Get("branch"); b != "z9hG4bKlegAproxyhop" {
		t.Errorf("top Via branch = %q", b)
	}
	if v, _ := top.Params.Get("rport"); v != "5099" {
		t.Errorf("top Via rport = %q, want 5099 (request source port)", v)
	}
	if v, _ := top.Params.Get("received"); v != "192.0.2.7" {
		t.Errorf("top Via received = %q, want 192.0.2.7 (request source IP)", v)
	}
	second := vias[1].(*sip.ViaHeader)
	if b, _ := second.Params.Get("branch"); second.Host != "10.9.8.7" || b != "z9hG4bKlegAphonehop" || second.Params.Has("rport") {
		t.Errorf("second Via = %s, want leg A's second Via unchanged", second.Value())
	}
	// The request's own Via must not have been modified through a shared pointer.
	if v, _ := req.Via().Params.Get("rport"); v != "" || req.Via().Params.Has("received") {
		t.Errorf("BuildResponse changed the request's Via: %s", req.Via().Value())
	}

	if r.From().Value() != req.From().Value() {
		t.Errorf("From = %q, want request's %q", r.From().Value(), req.From().Value())
	}
	if tag, _ := r.To().Params.Get("tag"); tag != "sbcAtag" || r.To().Address.String() != "sip:+15551234567@203.0.113.1" {
		t.Errorf("To = %q, want request's To with tag sbcAtag", r.To().Value())
	}
	if r.CallID().Value() != "legAcallid@10.9.8.7" {
		t.Errorf("Call-ID = %q", r.CallID().Value())
	}
	if r.CSeq().SeqNo != 314 || r.CSeq().MethodName != sip.INVITE {
		t.Errorf("CSeq = %q", r.CSeq().Value())
	}
	if got := values(r, "Contact"); len(got) != 1 || got[0] != "<sip:sbc@203.0.113.1:5060>" {
		t.Errorf("Contact = %q, want only the SBC's", got)
	}
	if got := values(r, "Server"); len(got) != 1 || got[0] != "EdgeSBC/test" {
		t.Errorf("Server = %q, want [EdgeSBC/test]", got)
	}
	for h, want := range map[string]string{"Allow": legALocal.Allow, "Content-Type": "application/sdp"} {
		if got := values(r, h); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%s]", h, got, want)
		}
	}
	// RSeq numbers leg B's reliable provisionals: leg A gets the SBC's own
	// (sbc/prack.go), or none.
	for _, h := range []string{"Require", "Supported", "RSeq", "Warning", "X-Internal", "User-Agent"} {
		if got := values(r, h); len(got) != 0 {
			t.Errorf("%s = %q, want none", h, got)
		}
	}
	if string(r.Body()) != string(body) {
		t.Errorf("body = %q", r.Body())
	}
	if out.Destination() != "192.0.2.7:5099" {
		t.Errorf("Destination() = %q, want the request source", out.Destination())
	}
}

// RFC 3261 12.1.1: a UAS MUST copy the request's Record-Route values, in
// order, into a response that establishes a dialog. Leg A's Record-Route
// names leg A's own proxies, so echoing it back on leg A hides nothing; not
// echoing it makes leg A's UAC bypass its proxies for ACK and BYE while the
// SBC routes its own in-dialog requests through them. Leg B's Record-Route
// must still not appear.
func TestBuildResponseEchoesRequestRecordRoute(t *testing.T) {
	req := parseReq(t, legA)
	src := parseRes(t, strings.Replace(legBResponse, "SIP/2.0 183 Session Progress", "SIP/2.0 200 OK", 1))
	f := topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders)
	for _, status := range []int{180, 200} {
		out := topology.BuildResponse(req, status, "X", "sbcAtag", true, legALocal, f, src, nil, "")
		r := parseRes(t, out.String())
		got := values(r, "Record-Route")
		want := []string{"<sip:rr1.carrier.example;lr>", "<sip:rr2.carrier.example;lr>"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%d: Record-Route = %q, want the request's %q (RFC 3261 12.1.1)", status, got, want)
		}
	}
}

func TestBuildResponseStatusAndTags(t *testing.T) {
	cases := []struct {
		status      int
		reason      string
		localTag    string
		withContact bool
		wantTag     string
	}{
		{100, "Trying", "sbcAtag", false, ""},
		{180, "Ringing", "sbcAtag", true, "sbcAtag"},
		{200, "OK", "sbcAtag", true, "sbcAtag"},
		{404, "Not Found", "sbcAtag", false, "sbcAtag"},
		{486, "Busy Here Now", "sbcAtag", false, "sbcAtag"},
		{503, "Service Unavailable", "", false, ""},
		{603, "Decline", "t2", false, "t2"},
	}
	for _, c := range cases {
		req := parseReq(t, legA)
		req.SetSource("192.0.2.7:5099")
		out := topology.BuildResponse(req, c.status, c.reason, c.localTag, c.withContact, legALocal, nil, nil, nil, "")
		s := out.String()
		if line := fmt.Sprintf("SIP/2.0 %d %s\r\n", c.status, c.reason); !strings.HasPrefix(s, line) {
			t.Errorf("%d: status line = %q, want %q", c.status, strings.SplitN(s, "\r\n", 2)[0], line)
		}
		r := parseRes(t, s)
		if r.StatusCode != c.status || r.Reason != c.reason {
			t.Errorf("%d: parsed status %d %q", c.status, r.StatusCode, r.Reason)
		}
		tag, has := r.To().Params.Get("tag")
		if tag != c.wantTag || has != (c.wantTag != "") {
			t.Errorf("%d: To tag = %q (present %v), want %q", c.status, tag, has, c.wantTag)
		}
		if got := len(r.GetHeaders("Contact")); got != map[bool]int{true: 1, false: 0}[c.withContact] {
			t.Errorf("%d: %d Contact headers, withContact=%v", c.status, got, c.withContact)
		}
		if got := values(r, "Content-Length"); len(got) != 1 || got[0] != "0" {
			t.Errorf("%d: Content-Length = %q, want [0]", c.status, got)
		}
		if got := len(r.GetHeaders("Content-Type")); got != 0 {
			t.Errorf("%d: Content-Type without a body", c.status)
		}
		// No source response: nothing but the SBC's own and the request's.
		for _, h := range []string{"Subject", "Supported", "Require", "X-Secret", "Route", "User-Agent"} {
			if got := values(r, h); len(got) != 0 {
				t.Errorf("%d: %s = %q, want none in a local response", c.status, h, got)
			}
		}
		// Allow is the SBC's own: on an INVITE's 1xx and 2xx, not its failures.
		if got, want := values(r, "Allow"), c.status > 100 && c.status < 300; (len(got) == 1 && got[0] == legALocal.Allow) != want {
			t.Errorf("%d: Allow = %q, want the SBC's own: %v", c.status, got, want)
		}
		if got := values(r, "Record-Route"); !c.withContact && len(got) != 0 {
			t.Errorf("%d: Record-Route = %q in a response that creates no dialog", c.status, got)
		}
	}
}

func TestBuildResponseKeepsExistingToTag(t *testing.T) {
	inDialog := strings.Replace(legA, "To: <sip:+15551234567@203.0.113.1>", "To: <sip:+15551234567@203.0.113.1>;tag=established", 1)
	req := parseReq(t, inDialog)
	out := topology.BuildResponse(req, 200, "OK", "sbcAtag", false, legALocal, nil, nil, nil, "")
	r := parseRes(t, out.String())
	if got := r.To().Value(); got != "<sip:+15551234567@203.0.113.1>;tag=established" {
		t.Errorf("To = %q, want the request's tag kept and no second tag", got)
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "established" || strings.Contains(req.To().Value(), "sbcAtag") {
		t.Errorf("BuildResponse changed the request's To: %s", req.To().Value())
	}
	// A request whose To has no tag keeps it that way after a tagged response.
	req2 := parseReq(t, legA)
	topology.BuildResponse(req2, 200, "OK", "sbcAtag", false, legALocal, nil, nil, nil, "")
	if req2.To().Params.Has("tag") {
		t.Errorf("BuildResponse added a tag to the request's To: %s", req2.To().Value())
	}
}

func TestBuildResponseRport(t *testing.T) {
	cases := []struct {
		name     string
		topVia   string
		wantVia  []string // substrings of the built top Via
		denyVia  []string
		received string
	}{
		{"empty rport filled", "Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKa;rport", []string{"rport=5099", "received=192.0.2.7"}, nil, "192.0.2.7"},
		{"rport with value kept", "Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKa;rport=1234", []string{"rport=1234"}, []string{"5099", "received"}, ""},
		{"no rport untouched", "Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKa", nil, []string{"rport", "received"}, ""},
	}
	for _, c := range cases {
		text := strings.Replace(legA, "Via: SIP/2.0/UDP 203.0.113.50:5060;branch=z9hG4bKlegAproxyhop;rport", c.topVia, 1)
		if text == legA {
			t.Fatalf("%s: replace failed", c.name)
		}
		req := parseReq(t, text)
		req.SetSource("192.0.2.7:5099")
		out := topology.BuildResponse(req, 200, "OK", "x", false, legALocal, nil, nil, nil, "")
		r := parseRes(t, out.String())
		v := r.Via().Value()
		for _, w := range c.wantVia {
			if !strings.Contains(v, w) {
				t.Errorf("%s: top Via %q lacks %q", c.name, v, w)
			}
		}
		for _, w := range c.denyVia {
			if strings.Contains(v, w) {
				t.Errorf("%s: top Via %q has %q", c.name, v, w)
			}
		}
		if got, _ := r.Via().Params.Get("received"); got != c.received {
			t.Errorf("%s: received = %q, want %q", c.name, got, c.received)
		}
		if n := strings.Count(v, "rport"); n > 1 {
			t.Errorf("%s: rport appears %d times in %q", c.name, n, v)
		}
	}
}
