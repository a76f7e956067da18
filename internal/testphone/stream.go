package testphone

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// StreamPhone is a raw SIP endpoint over stream connections (TCP or TLS):
// what Phone is for UDP. It may hold one connection it dialed (requests it
// originates go there) and any number it accepted from a listener; every
// message read from any of them is parsed with sipgo's stream parser, and
// an answer goes back on the connection its request came on, as RFC 3261
// 18.2.2 wants for stream transports. Connections may live in any network
// namespace: the caller opens them.
type StreamPhone struct {
	t         testing.TB
	Transport string // "TLS" or "TCP", for Via
	Addr      string // ip:port put in Via and Contact
	Scheme    string // "sip" or "sips" for the Contact it sends

	msgs    chan streamMsg
	backlog []streamMsg

	mu    sync.Mutex
	out   net.Conn
	conns []net.Conn
	from  map[sip.Message]net.Conn
}

type streamMsg struct {
	m sip.Message
	c net.Conn
}

// NewStream is a phone that names itself addr (its listener, or the local
// address of the connection it dials) and speaks transport ("TLS", "TCP").
func NewStream(t testing.TB, transport, addr string) *StreamPhone {
	p := &StreamPhone{t: t, Transport: transport, Addr: addr, Scheme: "sip", msgs: make(chan streamMsg, 256), from: map[sip.Message]net.Conn{}}
	t.Cleanup(p.Close)
	return p
}

// Close closes every connection the phone holds.
func (p *StreamPhone) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// Use makes c the connection the phone's own requests go out on, and
// reads from it.
func (p *StreamPhone) Use(c net.Conn) {
	p.mu.Lock()
	p.out = c
	p.mu.Unlock()
	p.read(c)
}

// Serve accepts connections from l (until it is closed) and reads them.
func (p *StreamPhone) Serve(l net.Listener) {
	p.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.read(c)
		}
	}()
}

func (p *StreamPhone) read(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	go func() {
		par := sip.NewParser().NewSIPStream()
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if strings.Trim(string(buf[:n]), "\r\n") == "" {
				continue // keepalive
			}
			perr := par.ParseSIPStream(buf[:n], func(m sip.Message) {
				m.SetSource(c.RemoteAddr().String())
				select {
				case p.msgs <- streamMsg{m, c}:
				default: // a test that stopped listening
				}
			})
			if perr != nil && perr != sip.ErrParseSipPartial {
				return
			}
		}
	}()
}

// write sends a message built like Phone.Send on c (the dialed connection
// when nil).
func (p *StreamPhone) write(c net.Conn, head, body string) {
	p.t.Helper()
	if c == nil {
		p.mu.Lock()
		c = p.out
		p.mu.Unlock()
	}
	if c == nil {
		p.t.Fatalf("%s: no connection to send on", p.Addr)
	}
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
	_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(b.String())); err != nil {
		p.t.Fatalf("%s: write: %v", p.Addr, err)
	}
}

// Next returns the first message, from the backlog or the wire, that match
// accepts, within d; nil when none comes.
func (p *StreamPhone) Next(d time.Duration, match func(sip.Message) bool) sip.Message {
	for i, m := range p.backlog {
		if match(m.m) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return p.keep(m)
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-p.msgs:
			if match(m.m) {
				return p.keep(m)
			}
			if len(p.backlog) < 64 {
				p.backlog = append(p.backlog, m)
			}
		case <-timer.C:
			return nil
		}
	}
}

func (p *StreamPhone) keep(m streamMsg) sip.Message {
	p.mu.Lock()
	p.from[m.m] = m.c
	p.mu.Unlock()
	return m.m
}

// ExpectRequest waits for a request of that method; fails the test when
// none comes.
func (p *StreamPhone) ExpectRequest(method sip.RequestMethod, d time.Duration) *sip.Request {
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

// ExpectResponse waits for a response with that code to that method.
func (p *StreamPhone) ExpectResponse(code int, method sip.RequestMethod, d time.Duration) *sip.Response {
	p.t.Helper()
	m := p.Next(d, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method
	})
	if m == nil {
		var seen []string
		for _, b := range p.backlog {
			seen = append(seen, strings.SplitN(b.m.String(), "\r\n", 2)[0])
		}
		p.t.Fatalf("%s: no %d to %s within %v (backlog %q)", p.Addr, code, method, d, seen)
	}
	return m.(*sip.Response)
}

// ConnOf is the connection a message the phone received came on.
func (p *StreamPhone) ConnOf(m sip.Message) net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.from[m]
}

func (p *StreamPhone) contact(user string) string {
	if p.Scheme == "sips" {
		return fmt.Sprintf("<sips:%s@%s>", user, p.Addr)
	}
	return fmt.Sprintf("<sip:%s@%s;transport=%s>", user, p.Addr, strings.ToLower(p.Transport))
}

// Invite sends an INVITE for ruri (e.g. "sip:100@203.0.113.1:5061") on the
// dialed connection and returns its From tag.
func (p *StreamPhone) Invite(ruri, callID, sdp string) (fromTag string) {
	p.t.Helper()
	fromTag = "ft" + callID
	p.write(nil, fmt.Sprintf(`INVITE %s SIP/2.0
		Via: SIP/2.0/%s %s;branch=z9hG4bK-%s-inv
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=%s
		To: <%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: %s
		Subject: tls test call`, ruri, p.Transport, p.Addr, callID, p.Addr, fromTag, ruri, callID, p.contact("alice")), sdp)
	return fromTag
}

// Answer responds to req on the connection it came on.
func (p *StreamPhone) Answer(req *sip.Request, code int, reason, toTag, body string) {
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
		fmt.Fprintf(&b, "Contact: %s\n", p.contact("callee"))
	}
	p.write(p.ConnOf(req), b.String(), body)
}

// Request sends an in-dialog request on c (the dialed connection when nil).
func (p *StreamPhone) Request(c net.Conn, d Dialog, method string, cseq int, branch string, body string) {
	p.t.Helper()
	p.write(c, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/%s %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: %s`, method, d.Target, p.Transport, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, p.contact("x")), body)
}

// Ack acknowledges a 2xx to the INVITE with CSeq number cseq, on c (the
// dialed connection when nil).
func (p *StreamPhone) Ack(c net.Conn, d Dialog, cseq int, branch string) {
	p.t.Helper()
	p.write(c, fmt.Sprintf(`ACK %s SIP/2.0
		Via: SIP/2.0/%s %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d ACK`, d.Target, p.Transport, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq), "")
}
