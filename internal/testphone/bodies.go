package testphone

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Messages whose body is not a lone SDP: SIP-I multipart, gzip, other
// types. head's lines may include Content-Encoding and the like; ctype is
// the Content-Type (none when empty), body goes as it is (binary is fine).

// SendTyped sends head, then Content-Type ctype and body.
func (p *Phone) SendTyped(to, head, ctype string, body []byte) {
	p.t.Helper()
	head = strings.TrimSpace(strings.ReplaceAll(head, "\r\n", "\n"))
	var b strings.Builder
	for _, l := range strings.Split(head, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	if ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	p.SendRaw(to, append([]byte(b.String()), body...))
}

// InviteTyped is Invite with any body; extra adds header lines.
func (p *Phone) InviteTyped(sbc, user, callID, extra, ctype string, body []byte) {
	p.t.Helper()
	p.SendTyped(sbc, fmt.Sprintf(`INVITE sip:%s@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ft%s
		To: <sip:%s@%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		%s`, user, sbc, p.Addr, callID, p.Addr, callID, user, sbc, callID, p.Addr, extra), ctype, body)
}

// AnswerTyped is Answer with any body.
func (p *Phone) AnswerTyped(req *sip.Request, code int, reason, toTag, extra, ctype string, body []byte) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, reason)
	for _, v := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\n", v.Value())
	}
	to := req.To().Value()
	if toTag != "" && !strings.Contains(to, "tag=") {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "From: %s\nTo: %s\nCall-ID: %s\nCSeq: %s\n", req.From().Value(), to, req.CallID().Value(), req.CSeq().Value())
	if code > 100 && code < 300 {
		fmt.Fprintf(&b, "Contact: <sip:callee@%s>\n", p.Addr)
	}
	b.WriteString(extra)
	p.SendTyped(req.Source(), b.String(), ctype, body)
}

// RequestTyped is Request with any body; extra adds header lines.
func (p *Phone) RequestTyped(d Dialog, method string, cseq int, branch, extra, ctype string, body []byte) {
	p.t.Helper()
	p.SendTyped(d.SBC, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: <sip:x@%s>
		%s`, method, d.Target, p.Addr, branch, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, p.Addr, extra), ctype, body)
}
