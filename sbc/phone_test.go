package sbc_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// phone is a raw UDP SIP endpoint for tests: it writes exactly the bytes a
// test gives, in the order given, so a test can put messages on the wire in
// an order a real stack would not (a BYE before its 200, say) and see how
// the SBC copes.
type phone struct {
	t       *testing.T
	conn    *net.UDPConn
	parser  *sip.Parser
	addr    string // ip:port
	cseq    int
	backlog []sip.Message
}

func newPhone(t *testing.T) *phone {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &phone{t: t, conn: c, parser: sip.NewParser(), addr: c.LocalAddr().String(), cseq: 1}
}

func (p *phone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// send writes a message: lines joined with CRLF, Content-Length computed.
func (p *phone) send(to string, head string, body string) {
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
	p.sendRaw(to, []byte(b.String()))
}

func (p *phone) sendRaw(to string, b []byte) {
	p.t.Helper()
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDP(b, ua); err != nil {
		p.t.Fatal(err)
	}
}

// recv returns the next message within d, or nil.
func (p *phone) recv(d time.Duration) sip.Message {
	p.t.Helper()
	buf := make([]byte, 65535)
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	n, _, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	m, err := p.parser.ParseSIP(buf[:n])
	if err != nil {
		p.t.Fatalf("%s: SBC sent an unparsable message: %v\n%s", p.addr, err, buf[:n])
	}
	return m
}

// next returns the first message, from the backlog or the wire, that
// match accepts; others are kept in the backlog for later expectations, so
// a test need not guess the order in which the SBC's goroutines send.
func (p *phone) next(d time.Duration, match func(sip.Message) bool) sip.Message {
	p.t.Helper()
	for i, m := range p.backlog {
		if match(m) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return m
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := p.recv(time.Until(deadline))
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
func (p *phone) expectRequest(method sip.RequestMethod, d time.Duration) *sip.Request {
	p.t.Helper()
	m := p.next(d, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method
	})
	if m == nil {
		p.t.Fatalf("%s: no %s within %v", p.addr, method, d)
	}
	return m.(*sip.Request)
}

// expectResponse waits for a response with that code to that method.
func (p *phone) expectResponse(code int, method sip.RequestMethod, d time.Duration) *sip.Response {
	p.t.Helper()
	m := p.next(d, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method
	})
	if m == nil {
		var seen []string
		for _, b := range p.backlog {
			seen = append(seen, strings.SplitN(b.String(), "\r\n", 2)[0])
		}
		p.t.Fatalf("%s: no %d to %s within %v (backlog %q)", p.addr, code, method, d, seen)
	}
	return m.(*sip.Response)
}

// quiet asserts that no message of the given kind arrives for d.
func (p *phone) quiet(d time.Duration, match func(sip.Message) bool, what string) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		m := p.recv(time.Until(deadline))
		if m != nil && match(m) {
			p.t.Fatalf("%s: unexpected %s: %s", p.addr, what, m.String())
		}
	}
}

func (p *phone) nextCSeq() int { p.cseq++; return p.cseq }

const testSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

// invite sends an INVITE to the SBC and returns its Call-ID and From tag.
func (p *phone) invite(sbc, user, callID string, sdp string) (fromTag string) {
	fromTag = "ft" + callID
	p.send(sbc, fmt.Sprintf(`INVITE sip:%s@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=%s
		To: <sip:%s@%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		User-Agent: SecretCarrierSwitch/1.0
		Record-Route: <sip:%s;lr;edge=secret-edge1>
		Subject: test call`, user, sbc, p.addr, callID, p.addr, fromTag, user, sbc, callID, p.addr, p.addr), sdp)
	return fromTag
}

// answer sends a response to a received request, as a UAS would.
func (p *phone) answer(req *sip.Request, code int, reason, toTag, body string) {
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
		fmt.Fprintf(&b, "Contact: <sip:callee@%s>\n", p.addr)
	}
	p.send(req.Source(), b.String(), body)
}

// inDialog sends a request inside the dialog that req (received by this
// phone) or res (received by this phone as caller) established.
type dialog struct {
	callID, localURI, localTag, remoteURI, remoteTag, target, sbc string
}

// calleeDialog is the dialog a UAS has after answering INVITE inv.
func calleeDialog(inv *sip.Request, toTag string) dialog {
	return dialog{
		callID: inv.CallID().Value(), localURI: inv.To().Address.String(), localTag: toTag,
		remoteURI: inv.From().Address.String(), remoteTag: fromTagOf(inv.From()),
		target: inv.Contact().Address.String(), sbc: inv.Source(),
	}
}

// callerDialog is the dialog a UAC has after a 2xx.
func callerDialog(res *sip.Response, sbc string) dialog {
	tt, _ := res.To().Params.Get("tag")
	return dialog{
		callID: res.CallID().Value(), localURI: res.From().Address.String(), localTag: fromTagOf(res.From()),
		remoteURI: res.To().Address.String(), remoteTag: tt, target: res.Contact().Address.String(), sbc: sbc,
	}
}

func fromTagOf(f *sip.FromHeader) string { v, _ := f.Params.Get("tag"); return v }

func (p *phone) request(d dialog, method string, cseq int, branch string, body string) {
	p.send(d.sbc, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: <sip:x@%s>`, method, d.target, p.addr, branch, d.localURI, d.localTag,
		d.remoteURI, d.remoteTag, d.callID, cseq, method, p.addr), body)
}

// ack acknowledges a 2xx to an INVITE with CSeq number cseq.
func (p *phone) ack(d dialog, cseq int, branch string) {
	p.send(d.sbc, fmt.Sprintf(`ACK %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d ACK`, d.target, p.addr, branch, d.localURI, d.localTag,
		d.remoteURI, d.remoteTag, d.callID, cseq), "")
}
