// Package testphone is a raw SIP and RTP endpoint for tests. It writes
// exactly the bytes a test gives, in the order given, so a test can put
// messages on the wire in orders a real stack would not (a BYE before its
// 200, say) and see how the SBC copes; it parses what comes back with
// sipgo's parser. Its sockets may live in any network namespace.
package testphone

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Phone is a raw UDP SIP endpoint.
type Phone struct {
	t       testing.TB
	conn    *net.UDPConn
	parser  *sip.Parser
	Addr    string // ip:port
	cseq    int
	backlog []sip.Message
	// Wire, when set, sees every datagram the phone sends (out) and
	// receives, as on the wire: a test can count what the phone saw.
	Wire func(out bool, b []byte)
}

// NewLoopback is a phone on 127.0.0.1, closed with the test.
func NewLoopback(t testing.TB) *Phone {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return New(t, c)
}

// New is a phone on a socket the caller opened (in any namespace); it is
// closed with the test.
func New(t testing.TB, c *net.UDPConn) *Phone {
	t.Cleanup(func() { c.Close() })
	return &Phone{t: t, conn: c, parser: sip.NewParser(), Addr: c.LocalAddr().String(), cseq: 1}
}

func (p *Phone) Port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// send writes a message: lines joined with CRLF, Content-Length computed.
func (p *Phone) Send(to string, head string, body string) {
	p.t.Helper()
	head = strings.TrimSpace(strings.ReplaceAll(head, "\r\n", "\n"))
	var b strings.Builder
	for _, l := range strings.Split(head, "\n") {
		b.WriteString(strings.TrimSpace(l))
		b.WriteString("\r\n")
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	p.SendRaw(to, []byte(b.String()))
}

func (p *Phone) SendRaw(to string, b []byte) {
	p.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDP(b, ua); err != nil {
		p.t.Fatal(err)
	}
	if p.Wire != nil {
		p.Wire(true, b)
	}
}

// recv returns the next message within d, or nil.
func (p *Phone) Recv(d time.Duration) sip.Message {
	p.t.Helper()
	buf := make([]byte, 65535)
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	if p.Wire != nil {
		p.Wire(false, buf[:n])
	}
	m, err := p.parser.ParseSIP(buf[:n])
	if err != nil {
		p.t.Fatalf("%s: SBC sent an unparsable message: %v\n%s", p.Addr, err, buf[:n])
	}
	// Where it came from, as a transport would set it: without it sipgo
	// derives Source from the top Via and joins an IPv6 host and port
	// without brackets.
	m.SetSource(from.String())
	return m
}

// next returns the first message, from the backlog or the wire, that
// match accepts; others are kept in the backlog for later expectations, so
// a test need not guess the order in which the SBC's goroutines send.
func (p *Phone) Next(d time.Duration, match func(sip.Message) bool) sip.Message {
	p.t.Helper()
	for i, m := range p.backlog {
		if match(m) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := p.Recv(time.Until(deadline))
		if m == nil {
			continue
		}
		if match(m) {
			return m
		}
		if len(p.backlog) < 64 {
			p.backlog = append(p.backlog, m)
		}
	}
	return nil
}

// expectRequest waits for a request of that method; fails the test when
// none comes.
func (p *Phone) ExpectRequest(method sip.RequestMethod, d time.Duration) *sip.Request {
	p.t.Helper()
	m := p.Next(d, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method
	})
	if m == nil {
		p.t.Fatalf("%s: no %s within %v", p.Addr, method, d)
	}
	return m.(*sip.Request)
}

// expectResponse waits for a response with that code to that method.
func (p *Phone) ExpectResponse(code int, method sip.RequestMethod, d time.Duration) *sip.Response {
	p.t.Helper()
	m := p.Next(d, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method
	})
	if m == nil {
		var seen []string
		for _, b := range p.backlog {
			seen = append(seen, strings.SplitN(b.String(), "\r\n", 2)[0])
		}
		p.t.Fatalf("%s: no %d to %s within %v (backlog %q)", p.Addr, code, method, d, seen)
	}
	return m.(*sip.Response)
}

// quiet asserts that no message of the given kind arrives for d.
func (p *Phone) Quiet(d time.Duration, match func(sip.Message) bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := p.Recv(time.Until(deadline))
		if m != nil && match(m) {
			p.t.Fatalf("%s: unexpected %s: %s", p.Addr, what, m.String())
		}
	}
}

func (p *Phone) NextCSeq() int { p.cseq++; return p.cseq }

// TestSDP is a plain G.711 offer on loopback.
const TestSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

// invite sends an INVITE to the SBC and returns its Call-ID and From tag.
func (p *Phone) Invite(sbc, user, callID string, sdp string) (fromTag string) {
	fromTag = "ft" + callID
	p.Send(sbc, fmt.Sprintf(`INVITE sip:%s@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=%s
		To: <sip:%s@%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		User-Agent: SecretCarrierSwitch/1.0
		Record-Route: <sip:%s;lr;edge=secret-edge1>
		Subject: test call`, user, sbc, p.Addr, callID, p.Addr, fromTag, user, sbc, callID, p.Addr, p.Addr), sdp)
	return fromTag
}

// answer sends a response to a received request, as a UAS would.
func (p *Phone) Answer(req *sip.Request, code int, reason, toTag, body string) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, reason)
	for _, v := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\n", v.Value())
	}
	fmt.Fprintf(&b, "From: %s\n", req.From().Value())
	to := req.To().Value()
	if toTag != "" && !strings.Contains(to, "tag=") {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "To: %s\nCall-ID: %s\nCSeq: %s\n", to, req.CallID().Value(), req.CSeq().Value())
	if code > 100 && code < 300 {
		fmt.Fprintf(&b, "Contact: <sip:callee@%s>\n", p.Addr)
	}
	p.Send(req.Source(), b.String(), body)
}

// inDialog sends a request inside the dialog that req (received by this
// phone) or res (received by this phone as caller) established.
// Dialog is one side's view of a dialog, enough to send requests in it.
type Dialog struct {
	CallID, LocalURI, LocalTag, RemoteURI, RemoteTag, Target, SBC string
}

// calleeDialog is the dialog a UAS has after answering INVITE inv.
func CalleeDialog(inv *sip.Request, toTag string) Dialog {
	return Dialog{
		CallID: inv.CallID().Value(), LocalURI: inv.To().Address.String(), LocalTag: toTag,
		RemoteURI: inv.From().Address.String(), RemoteTag: FromTag(inv.From()),
		Target: inv.Contact().Address.String(), SBC: inv.Source(),
	}
}

// callerDialog is the dialog a UAC has after a 2xx.
func CallerDialog(res *sip.Response, sbc string) Dialog {
	tt, _ := res.To().Params.Get("tag")
	return Dialog{
		CallID: res.CallID().Value(), LocalURI: res.From().Address.String(), LocalTag: FromTag(res.From()),
		RemoteURI: res.To().Address.String(), RemoteTag: tt, Target: res.Contact().Address.String(), SBC: sbc,
	}
}

func FromTag(f *sip.FromHeader) string { v, _ := f.Params.Get("tag"); return v }

func (p *Phone) Request(d Dialog, method string, cseq int, branch string, body string) {
	p.Send(d.SBC, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: <sip:x@%s>`, method, d.Target, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, p.Addr), body)
}

// ack acknowledges a 2xx to an INVITE with CSeq number cseq.
func (p *Phone) Ack(d Dialog, cseq int, branch string) {
	p.Send(d.SBC, fmt.Sprintf(`ACK %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d ACK`, d.Target, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq), "")
}
