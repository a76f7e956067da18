package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// redirectSBC runs an SBC whose route "in" (carrier -> enterprise) goes to
// target with the given redirect settings (YAML flow map body, "" for the
// defaults); route "out" goes to back.
func redirectSBC(t *testing.T, target, back, redirect string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	r := ""
	if redirect != "" {
		r = ", redirect: {" + redirect + "}"
	}
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms%s}
  - {name: out, from_realm: enterprise, to_realm: carrier, targets: ["%s"], target_timeout: 400ms}
`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk), target, r, back)
	return runSBC(t, y, cp, ep)
}

// answerWith sends a final answer with extra header lines.
func answerWith(p *testphone.Phone, req *sip.Request, code int, reason, tag, extra string) {
	head := fmt.Sprintf("SIP/2.0 %d %s\nVia: %s\nFrom: %s\nTo: %s;tag=%s\nCall-ID: %s\nCSeq: %s",
		code, reason, req.Via().Value(), req.From().Value(), req.To().Value(), tag, req.CallID().Value(), req.CSeq().Value())
	if extra != "" {
		head += "\n" + extra
	}
	p.Send(req.Source(), head, "")
}

// By default the SBC follows a 302 itself: its Contacts in q order (the
// higher q listed second here), the first failing and the second
// answering; the caller sees only the answer, and each redirected INVITE
// says where it was diverted from.
func TestRedirectFollowedInQOrder(t *testing.T) {
	for _, mode := range []string{"diversion", "history-info"} {
		t.Run(mode, func(t *testing.T) {
			caller, redirector, low, high, back := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := redirectSBC(t, redirector.Addr, back.Addr, "diversion: "+mode)
			caller.Invite(s.carrier, "1000", "redir-q-"+mode, testphone.TestSDP)
			inv := redirector.ExpectRequest(sip.INVITE, wait)
			answerWith(redirector, inv, 302, "Moved Temporarily", "rd",
				fmt.Sprintf("Contact: <sip:2000@%s>;q=0.5, <sip:3000@%s>;q=0.9", low.Addr, high.Addr))
			redirector.ExpectRequest(sip.ACK, wait)

			first := high.ExpectRequest(sip.INVITE, wait)
			if first.Recipient.User != "3000" {
				t.Errorf("redirected INVITE to %s, want the Contact's user 3000", first.Recipient.String())
			}
			checkDiverted(t, mode, first, "1000")
			answerWith(high, first, 480, "Temporarily Unavailable", "hi", "")
			high.ExpectRequest(sip.ACK, wait)

			second := low.ExpectRequest(sip.INVITE, wait)
			if second.Recipient.User != "2000" {
				t.Errorf("second redirected INVITE to %s, want user 2000", second.Recipient.String())
			}
			checkDiverted(t, mode, second, "1000")
			low.Answer(second, 200, "OK", "lo", testphone.TestSDP)
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			dA := testphone.CallerDialog(ok, s.carrier)
			caller.Ack(dA, 1, "redir-ack")
			low.ExpectRequest(sip.ACK, wait)
			s.waitState(t, "confirmed")
			caller.Request(dA, "BYE", 2, "redir-bye", "")
			caller.ExpectResponse(200, sip.BYE, wait)
			bye := low.ExpectRequest(sip.BYE, wait)
			low.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
			caller.Quiet(100*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Response)
				return ok && (r.StatusCode/100 == 3 || r.StatusCode == 480)
			}, "3xx or a redirected target's failure at the caller")
		})
	}
}

func checkDiverted(t *testing.T, mode string, inv *sip.Request, from string) {
	t.Helper()
	switch mode {
	case "diversion":
		d := inv.GetHeader("Diversion")
		if d == nil || !strings.Contains(d.Value(), "sip:"+from+"@") || !strings.Contains(d.Value(), "reason=") {
			t.Errorf("redirected INVITE has Diversion %v, want one naming %s:\n%s", d, from, inv)
		}
	case "history-info":
		hs := inv.GetHeaders("History-Info")
		all := ""
		for _, h := range hs {
			all += h.Value() + ","
		}
		if !strings.Contains(all, "sip:"+from+"@") || !strings.Contains(all, "index=1.1") || !strings.Contains(all, "cause=302") {
			t.Errorf("redirected INVITE has History-Info %q, want entries 1 (%s) and 1.1 with cause=302:\n%s", all, from, inv)
		}
	}
}

// redirect.mode relay hands the 3xx to the caller, its Contacts pointing at
// the SBC's own face with the new user: nothing of the inside.
func TestRedirectRelayed(t *testing.T) {
	caller, redirector, back := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := redirectSBC(t, redirector.Addr, back.Addr, "mode: relay")
	caller.Invite(s.carrier, "1000", "redir-relay", testphone.TestSDP)
	inv := redirector.ExpectRequest(sip.INVITE, wait)
	answerWith(redirector, inv, 302, "Moved Temporarily", "rd",
		fmt.Sprintf("Contact: <sip:2000@%s;transport=udp>;q=0.5, <sip:3000@%s>;q=0.9\nX-Inside: %s", redirector.Addr, back.Addr, redirector.Addr))
	res := caller.ExpectResponse(302, sip.INVITE, wait)
	cs := res.GetHeaders("Contact")
	var got []string
	for _, h := range cs {
		got = append(got, h.Value())
	}
	want := []string{"<sip:3000@" + s.carrier + ">;q=0.9", "<sip:2000@" + s.carrier + ">;q=0.5"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("relayed 302 Contacts %q, want %q", got, want)
	}
	for _, leak := range []string{redirector.Addr, back.Addr, inv.CallID().Value(), "rd"} {
		if strings.Contains(res.String(), leak) {
			t.Errorf("relayed 302 leaks %q:\n%s", leak, res)
		}
	}
	s.waitIdle(t)
	s.waitCalls(t, "redirect_relayed", 1)
}

// Bad redirects end as the failures they are, at the caller, counted.
func TestRedirectRefused(t *testing.T) {
	cases := []struct {
		name     string
		redirect string
		contact  func(self, back, sbcIn string) string
		code     int
		result   string
		invites  int // INVITEs the redirector gets
	}{
		{"no contact", "", func(_, _, _ string) string { return "" }, 502, "redirect_unusable", 1},
		{"not sip", "", func(_, _, _ string) string { return "Contact: <mailto:x@example.org>" }, 502, "redirect_unusable", 1},
		{"host name", "", func(_, _, _ string) string { return "Contact: <sip:2000@pbx.example.org>" }, 502, "redirect_unusable", 1},
		{"denied network", "deny: [127.0.0.0/8]", func(self, _, _ string) string { return "Contact: <sip:2000@" + self + ">" }, 502, "redirect_unusable", 1},
		{"outside allow", "allow: [192.0.2.0/24]", func(self, _, _ string) string { return "Contact: <sip:2000@" + self + ">" }, 502, "redirect_unusable", 1},
		{"other realm's peer", "", func(_, back, _ string) string { return "Contact: <sip:2000@" + back + ">" }, 502, "redirect_unusable", 1},
		{"the SBC itself", "", func(_, _, sbcIn string) string { return "Contact: <sip:2000@" + sbcIn + ">" }, 502, "redirect_unusable", 1},
		{"loop at hop limit", "max_hops: 2", func(self, _, _ string) string { return "Contact: <sip:1000@" + self + ">" }, 482, "redirect_loop", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			caller, redirector, back := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := redirectSBC(t, redirector.Addr, back.Addr, c.redirect)
			caller.Invite(s.carrier, "1000", "redir-bad", testphone.TestSDP)
			for i := range c.invites {
				inv := redirector.ExpectRequest(sip.INVITE, wait)
				answerWith(redirector, inv, 302, "Moved", fmt.Sprint("rd", i), c.contact(redirector.Addr, back.Addr, s.enterprise))
			}
			res := caller.ExpectResponse(c.code, sip.INVITE, wait)
			if res.GetHeader("Contact") != nil {
				t.Errorf("refusal carries a Contact:\n%s", res)
			}
			redirector.Quiet(200*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Request)
				return ok && r.Method == sip.INVITE
			}, "INVITE past the hop limit or to a refused Contact")
			back.Quiet(10*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Request)
				return ok && r.Method == sip.INVITE
			}, "INVITE to the other realm's peer")
			s.waitIdle(t)
			s.waitCalls(t, c.result, 1)
		})
	}
}
