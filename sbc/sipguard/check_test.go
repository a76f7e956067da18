package sipguard

import (
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

const sdpBody = "v=0\r\n" +
	"o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.101\r\n" +
	"t=0 0\r\n" +
	"m=audio 49172 RTP/AVP 0 8 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=sendrecv\r\n"

// invite is a typical ~700-byte INVITE; the table mutates it.
var invite = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\n" +
	"From: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>\r\n" +
	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n" +
	"User-Agent: EdgeSBC-test/1.0\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: " + strconv.Itoa(len(sdpBody)) + "\r\n" +
	"\r\n" + sdpBody

const okResponse = "SIP/2.0 200 OK\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n" +
	"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

// without drops the header line starting with prefix.
func without(msg, prefix string) string {
	i := strings.Index(msg, "\r\n"+prefix)
	if i < 0 {
		panic("no " + prefix)
	}
	j := strings.Index(msg[i+2:], "\r\n")
	return msg[:i] + msg[i+2+j:]
}

// with replaces the first old by new.
func with(msg, old, new string) string {
	if !strings.Contains(msg, old) {
		panic("no " + old)
	}
	return strings.Replace(msg, old, new, 1)
}

// insert adds lines right after the start line.
func insert(msg, lines string) string {
	i := strings.Index(msg, "\r\n") + 2
	return msg[:i] + lines + msg[i:]
}

func garbage(n int, seed int64) string {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	b[0] = 0x80 // never a token char: the start line cannot look like SIP
	return string(b)
}

var manyHeaders = func() string {
	var b strings.Builder
	for i := range 200 {
		b.WriteString("X-H" + strconv.Itoa(i) + ": v\r\n")
	}
	return b.String()
}()

type checkCase struct {
	name   string
	msg    string
	action Action
	status int
	why    string
}

var checkCases = []checkCase{
	{"typical INVITE", invite, Accept, 0, ""},
	{"200 OK", okResponse, Accept, 0, ""},
	{"keepalive CRLF", "\r\n", Accept, 0, ""},
	{"keepalive CRLFCRLF", "\r\n\r\n", Accept, 0, ""},
	{"only CR and LF bytes", "\r\n\n\r\r\n\r\n", Accept, 0, ""},
	{"bare LF line ends", bareLF, Accept, 0, ""},
	{"empty datagram", "", Drop, 0, "garbage"},

	{"truncated in headers", invite[:strings.Index(invite, "Call-ID")+9], Reject, 400, "truncated"},
	{"truncated before blank line", invite[:strings.Index(invite, "\r\n\r\n")+2], Reject, 400, "truncated"},
	{"truncated in Via", invite[:60], Drop, 0, "missing_header"},
	{"truncated in start line", invite[:20], Drop, 0, "truncated"},

	{"Content-Length larger", with(invite, "Content-Length: ", "Content-Length: 9"), Reject, 400, "bad_content_length"},
	{"Content-Length huge", with(invite, "Content-Length: ", "Content-Length: 99999999999999999999"), Reject, 400, "bad_content_length"},
	{"Content-Length negative", with(invite, "Content-Length: ", "Content-Length: -"), Reject, 400, "bad_content_length"},
	{"Content-Length non-numeric", with(invite, "Content-Length: ", "Content-Length: x"), Reject, 400, "bad_content_length"},
	{"Content-Length empty", with(invite, "Content-Length: "+strconv.Itoa(len(sdpBody)), "Content-Length: "), Reject, 400, "bad_content_length"},
	{"Content-Length two values in one field", with(invite, "Content-Length: ", "Content-Length: 10, "), Reject, 400, "bad_content_length"},
	{"Content-Length twice", insert(invite, "l: 10\r\n"), Reject, 400, "multiple_values"},
	{"Content-Length smaller", with(invite, "Content-Length: "+strconv.Itoa(len(sdpBody)), "Content-Length: 10"), Accept, 0, ""},
	{"Content-Length absent", without(invite, "Content-Length"), Accept, 0, ""},

	{"missing Via", without(invite, "Via"), Drop, 0, "missing_header"},
	{"missing From", without(invite, "From"), Reject, 400, "missing_header"},
	{"missing To", without(invite, "To"), Reject, 400, "missing_header"},
	{"missing Call-ID", without(invite, "Call-ID"), Reject, 400, "missing_header"},
	{"missing CSeq", without(invite, "CSeq"), Reject, 400, "missing_header"},
	{"missing Max-Forwards is fine", without(invite, "Max-Forwards"), Accept, 0, ""},
	{"response missing To", without(okResponse, "To"), Drop, 0, "missing_header"},
	{"ACK missing To is not answered", without(with(with(invite, "INVITE sip", "ACK sip"), "314159 INVITE", "314159 ACK"), "To"), Drop, 0, "missing_header"},

	{"header line over limit", insert(invite, "Subject: "+strings.Repeat("a", 3000)+"\r\n"), Reject, 400, "line_too_long"},
	{"200 headers", insert(invite, manyHeaders), Reject, 400, "too_many_headers"},
	{"200 headers in a response", insert(okResponse, manyHeaders), Drop, 0, "too_many_headers"},
	{"64 KiB datagram", invite + strings.Repeat("a", 64<<10), Drop, 0, "too_large"},

	{"random garbage", garbage(700, 1), Drop, 0, "garbage"},
	{"random garbage 2", garbage(1400, 2), Drop, 0, "garbage"},
	{"NUL bytes", strings.Repeat("\x00", 64), Drop, 0, "garbage"},
	{"NUL in start line", with(invite, "INVITE sip:bob", "INVITE sip:b\x00b"), Drop, 0, "garbage"},
	{"NUL in Call-ID", with(invite, "Call-ID: a84", "Call-ID: a\x0084"), Reject, 400, "bad_call_id"},
	{"HTTP request", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Drop, 0, "garbage"},

	{"response code 999", with(okResponse, "200 OK", "999 OK"), Drop, 0, "response_invalid"},
	{"response code 099", with(okResponse, "200 OK", "099 OK"), Drop, 0, "response_invalid"},
	{"response code 2000", with(okResponse, "200 OK", "2000 OK"), Drop, 0, "response_invalid"},
	{"response code letters", with(okResponse, "200 OK", "2x0 OK"), Drop, 0, "response_invalid"},
	{"response without reason SP", with(okResponse, "200 OK", "200"), Drop, 0, "response_invalid"},
	{"response SIP/3.0", with(okResponse, "SIP/2.0 200", "SIP/3.0 200"), Drop, 0, "bad_version"},

	{"request SIP/3.0", with(invite, "SIP/2.0\r\n", "SIP/3.0\r\n"), Reject, 505, "bad_version"},
	{"request no version", with(invite, " SIP/2.0\r\n", "\r\n"), Drop, 0, "garbage"},
	{"request version garbled", with(invite, " SIP/2.0\r\n", " SIP/2.0a\r\n"), Reject, 400, "bad_start_line"},
	{"request trailing SP", with(invite, " SIP/2.0\r\n", " SIP/2.0 \r\n"), Reject, 400, "bad_start_line"},
	{"request-URI in <>", with(invite, "INVITE sip:bob@biloxi.example.com", "INVITE <sip:bob@biloxi.example.com>"), Reject, 400, "bad_start_line"},
	{"request-URI without scheme", with(invite, "INVITE sip:bob@biloxi.example.com", "INVITE bob@biloxi.example.com"), Reject, 400, "bad_start_line"},
	{"request-URI with odd scheme", with(invite, "INVITE sip:", "INVITE x-sip:"), Reject, 416, "unsupported_scheme"},

	{"CSeq max", with(invite, "CSeq: 314159", "CSeq: 2147483647"), Accept, 0, ""},
	{"CSeq 2**31", with(invite, "CSeq: 314159", "CSeq: 2147483648"), Reject, 400, "bad_cseq"},
	{"CSeq 2**32", with(invite, "CSeq: 314159", "CSeq: 4294967296"), Reject, 400, "bad_cseq"},
	{"CSeq method mismatch", with(invite, "314159 INVITE", "314159 BYE"), Reject, 400, "bad_cseq"},
	{"CSeq without method", with(invite, "314159 INVITE", "314159"), Reject, 400, "bad_cseq"},
	{"Max-Forwards 256", with(invite, "Max-Forwards: 70", "Max-Forwards: 256"), Reject, 400, "bad_max_forwards"},
	{"Max-Forwards signed", with(invite, "Max-Forwards: 70", "Max-Forwards: +7"), Reject, 400, "bad_max_forwards"},
	{"two To", insert(invite, "t: <sip:carol@example.com>\r\n"), Reject, 400, "multiple_values"},
	{"To with two values", with(invite, "To: Bob <sip:bob@biloxi.example.com>", "To: <sip:a@b>, <sip:c@d>"), Reject, 400, "multiple_values"},
	{"Via without sent-by", with(invite, "SIP/2.0/UDP pc33", "SIP/2.0/UDP;pc33"), Reject, 400, "bad_via"},
	{"Via branch magic cookie only", with(invite, "z9hG4bK776asdhds", "z9hG4bK"), Reject, 400, "bad_branch"},
	{"Via port too big", with(invite, ":5060;", ":65536;"), Reject, 400, "bad_via"},
	{"Via IPv6 sent-by", with(invite, "pc33.atlanta.example.com:5060;", "[2001:db8::1]:5060;"), Accept, 0, ""},
	{"Via IPv6 sent-by, three colons", with(invite, "pc33.atlanta.example.com:5060;", "[2001:db8:::1]:5060;"), Reject, 400, "bad_via"},
	{"request-URI IPv6", with(invite, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@[2001:db8::192.0.2.1]"), Accept, 0, ""},
	{"request-URI IPv6, three colons (RFC 5118 4.10)", with(invite, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@[2001:db8:::192.0.2.1]"), Reject, 400, "bad_start_line"},
	{"request-URI IPv4 in brackets", with(invite, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@[192.0.2.1]"), Reject, 400, "bad_start_line"},
	{"folded header", insert(invite, "Subject: a long\r\n  folded\r\n\tsubject\r\n"), Accept, 0, ""},
	{"header without colon", insert(invite, "Foobar roobar\r\n"), Reject, 400, "bad_header"},
	{"continuation before any header", insert(invite, " folded\r\n"), Reject, 400, "bad_header"},
	{"bare CR in a header", with(invite, "User-Agent: Edge", "User-Agent: Ed\rge"), Reject, 400, "bad_header"},
	{"Contact wildcard", with(invite, "Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>", "Contact: *"), Accept, 0, ""},
	{"Contact list", with(invite, "Contact: <sip:alice@pc33.atlanta.example.com;transport=udp>", "m: <sip:a@b>;q=0.5, \"B\" <sip:c@d>, sip:e@f;expires=60"), Accept, 0, ""},
	{"Contact empty param", with(invite, "transport=udp>", "transport=udp>;;"), Reject, 400, "bad_addr"},
	{"Date not GMT", insert(invite, "Date: Sat, 13 Nov 2010 23:29:00 PST\r\n"), Reject, 400, "bad_date"},
}

func TestCheckTable(t *testing.T) {
	if n := len(invite); n < 650 || n > 750 {
		t.Fatalf("typical INVITE is %d bytes, want about 700", n)
	}
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			v := Check([]byte(tc.msg), Limits{})
			if v.Action != tc.action || v.Status != tc.status || v.Why != tc.why {
				t.Fatalf("got %s %d %q (%s), want %s %d %q", v.Action, v.Status, v.Why, v.Reason, tc.action, tc.status, tc.why)
			}
			if v.Action == Reject && StatelessResponse([]byte(tc.msg), v.Status, v.Reason) == nil {
				t.Fatal("Reject, but StatelessResponse has nothing to send")
			}
		})
	}
}

// bareLF is the INVITE with LF line ends, headers and body alike.
var bareLF = strings.ReplaceAll(with(invite, "Content-Length: "+strconv.Itoa(len(sdpBody)),
	"Content-Length: "+strconv.Itoa(len(strings.ReplaceAll(sdpBody, "\r\n", "\n")))), "\r\n", "\n")

// sipgoRefusesValid are table messages that are valid SIP, accepted by
// Check, yet refused by sipgo v1.7.2. The listener could normalise bare LF
// before handing the datagram on; the Contact case is a sipgo bug.
var sipgoRefusesValid = map[string]string{
	"bare LF line ends": "sipgo splits lines on CRLF only",
	"Contact list":      "sipgo fails on a bare addr-spec after \", \" in Contact",
}

// Accept must mean that sipgo can take the message, apart from the cases
// listed in sipgoRefusesValid.
func TestAcceptedParseWithSipgo(t *testing.T) {
	p := sip.NewParser()
	for _, tc := range checkCases {
		if tc.action != Accept || onlyCRLF([]byte(tc.msg)) {
			continue
		}
		_, err := p.ParseSIP([]byte(tc.msg))
		why, known := sipgoRefusesValid[tc.name]
		switch {
		case err != nil && known:
			t.Logf("%s: accepted, sipgo refuses it (%s): %v", tc.name, why, err)
		case err != nil:
			t.Errorf("%s: accepted, but sipgo says %v", tc.name, err)
		case known:
			t.Errorf("%s: sipgo parses it now; drop it from sipgoRefusesValid", tc.name)
		}
	}
}

func TestLimits(t *testing.T) {
	msg := []byte(invite)
	longest, headers := 0, -1 // the start line is no header
	for _, l := range strings.Split(invite[:strings.Index(invite, "\r\n\r\n")], "\r\n") {
		longest = max(longest, len(l))
		headers++
	}
	cases := []struct {
		lim Limits
		why string
	}{
		{Limits{MaxMessage: len(msg)}, ""},
		{Limits{MaxMessage: len(msg) - 1}, "too_large"},
		{Limits{MaxHeaders: headers}, ""},
		{Limits{MaxHeaders: headers - 1}, "too_many_headers"},
		{Limits{MaxHeaderLine: longest}, ""},
		{Limits{MaxHeaderLine: longest - 1}, "line_too_long"},
	}
	for _, tc := range cases {
		if v := Check(msg, tc.lim); v.Why != tc.why {
			t.Errorf("%+v: got %+v, want why %q", tc.lim, v, tc.why)
		}
	}
}

func TestCanonicalName(t *testing.T) {
	for in, want := range map[string]string{"v": "Via", "F": "From", "t": "To", "i": "Call-ID", "l": "Content-Length",
		"m": "Contact", "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding", "o": "Event",
		"u": "Allow-Events", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "y": "Identity", "z": "z", "Via": "Via"} {
		if got := CanonicalName(in); got != want {
			t.Errorf("CanonicalName(%q) = %q, want %q", in, got, want)
		}
	}
}
