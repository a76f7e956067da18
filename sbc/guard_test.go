package sbc_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/sbc"
)

// startGuarded runs a loopback B2BUA (carrier -> enterprise targets) with
// a guard section.
func startGuarded(t *testing.T, targets []string, guard string, opts ...func(*sbc.Options)) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms}
%s`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk), strings.Join(targets, `","`), guard)
	return runSBC(t, y, cp, ep, opts...)
}

// gathered sums a metric family's series whose labels include all of want.
func gathered(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for k, v := range want {
				found := false
				for _, l := range m.Label {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func (s *testSBC) rejected(t *testing.T, reason string) float64 {
	return gathered(t, s.Metrics().Registry, "sbc_policy_rejected_total", map[string]string{"reason": reason})
}

func isResponse(code int) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && (code == 0 || r.StatusCode == code)
	}
}

func anything(sip.Message) bool { return true }

func TestGuardACL(t *testing.T) {
	for _, action := range []string{"reject", "drop"} {
		t.Run(action, func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := startGuarded(t, []string{callee.Addr}, `guard:
  realms:
    - {realm: carrier, acl: {allow: ["192.0.2.0/24"], action: `+action+`}, options: any}
`)
			caller.Invite(s.carrier, "1000", "acl-"+action, testphone.TestSDP)
			if action == "reject" {
				res := caller.ExpectResponse(403, sip.INVITE, wait)
				if tag, _ := res.To().Params.Get("tag"); tag == "" {
					t.Error("403 without a To tag")
				}
			}
			caller.Quiet(600*time.Millisecond, anything, "answer after the ACL refused")
			callee.Quiet(10*time.Millisecond, anything, "a refused call reaching the callee")
			if n := s.rejected(t, "acl"); n != 1 {
				t.Errorf("sbc_policy_rejected_total{reason=acl} = %v, want 1", n)
			}
			// OPTIONS (keepalive) is not what the ACL guards; the realm
			// answers it from strangers too (options: any).
			caller.Send(s.carrier, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-o1\nFrom: <sip:a@x>;tag=1\nTo: <sip:%s>\nCall-ID: acl-opt\nCSeq: 1 OPTIONS\nMax-Forwards: 70", s.carrier, caller.Addr, s.carrier), "")
			caller.ExpectResponse(200, sip.OPTIONS, wait)
		})
	}
}

func TestGuardAdmission(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startGuarded(t, []string{callee.Addr}, `guard:
  realms:
    - {realm: carrier, admission: {max_calls: 1, retry_after: 7s}}
`)
	dA, _, _ := established(t, s, caller, callee, "adm-1")
	caller.Invite(s.carrier, "1000", "adm-2", testphone.TestSDP)
	res := caller.ExpectResponse(503, sip.INVITE, wait)
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "7" {
		t.Errorf("503 Retry-After %v, want 7", ra)
	}
	callee.Quiet(200*time.Millisecond, isRequest(sip.INVITE), "INVITE past admission")
	if n := gathered(t, s.Metrics().Registry, "sbc_admission_calls_active", map[string]string{"key": "realm:carrier"}); n != 1 {
		t.Errorf("admission gauge %v, want 1", n)
	}
	// The call ends: its place is free again.
	caller.Request(dA, "BYE", 2, "adm-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	deadline := time.Now().Add(wait)
	for s.Admission().Active("realm:carrier") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("admission place not released at call end")
		}
		time.Sleep(5 * time.Millisecond)
	}
	established(t, s, caller, callee, "adm-3")
	if n := s.rejected(t, "admission_max_calls"); n != 1 {
		t.Errorf("rejected{admission_max_calls} = %v, want 1", n)
	}
	// The dashboard's history counts from here: three offered, one shed.
	if c := s.CallCounts(); c.Offered != 3 || c.Shed != 1 || c.Active != 1 {
		t.Errorf("CallCounts %+v, want 3 offered, 1 shed, 1 active", c)
	}
}

func isRequest(m sip.RequestMethod) func(sip.Message) bool {
	return func(x sip.Message) bool {
		r, ok := x.(*sip.Request)
		return ok && r.Method == m
	}
}

// digestAnswer answers a challenge header value as a client would.
func digestAnswer(t *testing.T, chal, user, pw, method, uri string) string {
	t.Helper()
	c, err := digest.ParseChallenge(chal)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := digest.Digest(c, digest.Options{Method: method, URI: uri, Username: user, Password: pw, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return cr.String()
}

func inviteWithAuth(p *testphone.Phone, sbcAddr, callID string, cseq int, auth string) {
	extra := ""
	if auth != "" {
		extra = "\nProxy-Authorization: " + auth
	}
	p.Send(sbcAddr, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d
		Max-Forwards: 70
		From: <sip:alice@%s>;tag=ft%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: %d INVITE
		Contact: <sip:alice@%s>%s`, sbcAddr, p.Addr, callID, cseq, p.Addr, callID, sbcAddr, callID, cseq, p.Addr, extra), testphone.TestSDP)
}

func TestGuardDigestAuth(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startGuarded(t, []string{callee.Addr}, `guard:
  bans: {auth_failures: 2}
  realms:
    - realm: carrier
      auth: {realm: edge.test, methods: [INVITE], users: [{name: carrier, password: trunkpw}]}
`)
	uri := "sip:1000@" + s.carrier
	inviteWithAuth(caller, s.carrier, "auth-1", 1, "")
	ch := caller.ExpectResponse(407, sip.INVITE, wait)
	chals := ch.GetHeaders("Proxy-Authenticate")
	if len(chals) == 0 || !strings.Contains(chals[0].Value(), `realm="edge.test"`) {
		t.Fatalf("407 challenges %v", chals)
	}
	for _, c := range chals {
		if !strings.Contains(c.Value(), "algorithm=SHA-256") && !strings.Contains(c.Value(), "algorithm=MD5") {
			t.Errorf("challenge %q: want SHA-256 or MD5", c.Value())
		}
	}
	callee.Quiet(100*time.Millisecond, isRequest(sip.INVITE), "unauthenticated INVITE relayed")

	// The right answer (SHA-256 first, RFC 8760) goes through.
	inviteWithAuth(caller, s.carrier, "auth-1", 2, digestAnswer(t, chals[0].Value(), "carrier", "trunkpw", "INVITE", uri))
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if inv.GetHeader("Proxy-Authorization") != nil {
		t.Error("credentials carried to leg B")
	}
	callee.Answer(inv, 486, "Busy Here", "c1", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)

	// Two wrong answers ban the source: a third request gets nothing.
	for i := 0; i < 2; i++ {
		inviteWithAuth(caller, s.carrier, fmt.Sprintf("auth-bad-%d", i), 2, digestAnswer(t, chals[0].Value(), "carrier", "guess", "INVITE", uri))
		caller.ExpectResponse(403, sip.INVITE, wait)
	}
	inviteWithAuth(caller, s.carrier, "auth-after-ban", 1, "")
	caller.Quiet(500*time.Millisecond, func(m sip.Message) bool { return m.CallID().Value() == "auth-after-ban" }, "answer to a banned source")
	bans := s.Bans().List(time.Now())
	if len(bans) != 1 || bans[0].Addr != netip.MustParseAddr("127.0.0.1") || bans[0].Reason != "auth" || bans[0].Dropped == 0 {
		t.Fatalf("bans %+v", bans)
	}
	if n := gathered(t, s.Metrics().Registry, "sbc_bans_total", map[string]string{"reason": "auth"}); n != 1 {
		t.Errorf("sbc_bans_total{auth} = %v", n)
	}
	if n := s.rejected(t, "banned"); n < 1 {
		t.Errorf("rejected{banned} = %v", n)
	}
}

func TestGuardScannerAndRate(t *testing.T) {
	t.Run("scanner", func(t *testing.T) {
		p := testphone.NewLoopback(t)
		s := startGuarded(t, []string{"127.0.0.1:9"}, "")
		p.Send(s.carrier, fmt.Sprintf("OPTIONS sip:100@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-s1\nFrom: <sip:100@x>;tag=1\nTo: <sip:100@x>\nCall-ID: scan1\nCSeq: 1 OPTIONS\nUser-Agent: friendly-scanner", s.carrier, p.Addr), "")
		p.Quiet(400*time.Millisecond, anything, "answer to a scanner")
		if b := s.Bans().List(time.Now()); len(b) != 1 || b[0].Reason != "scanner" {
			t.Fatalf("bans %+v", b)
		}
		if n := gathered(t, s.Metrics().Registry, "sbc_bans_active", nil); n != 1 {
			t.Errorf("sbc_bans_active %v", n)
		}
		// Lifted through the API type: answered again.
		if !s.Bans().Unban(netip.MustParseAddr("127.0.0.1")) {
			t.Fatal("unban")
		}
		p.Send(s.carrier, fmt.Sprintf("OPTIONS sip:100@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-s2\nFrom: <sip:100@x>;tag=1\nTo: <sip:100@x>\nCall-ID: scan2\nCSeq: 1 OPTIONS", s.carrier, p.Addr), "")
		p.ExpectResponse(200, sip.OPTIONS, wait)
	})
	// The bucket's clock stands still (a fake one): exactly the burst is
	// answered however long the 20 requests take to get through.
	t.Run("rate", func(t *testing.T) {
		p := testphone.NewLoopback(t)
		s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  sources: {rate: 5, burst: 5}
  bans: {rate_excess: 3}
`, newFakeClock().option)
		for i := 0; i < 20; i++ {
			p.Send(s.carrier, fmt.Sprintf("OPTIONS sip:100@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-r%d\nFrom: <sip:100@x>;tag=1\nTo: <sip:100@x>\nCall-ID: rate%d\nCSeq: 1 OPTIONS", s.carrier, p.Addr, i, i), "")
		}
		got := 0
		for p.Next(300*time.Millisecond, isResponse(200)) != nil {
			got++
		}
		if got != 5 {
			t.Errorf("%d of 20 answered, want the burst of 5", got)
		}
		if b := s.Bans().List(time.Now()); len(b) != 1 || b[0].Reason != "rate" {
			t.Fatalf("bans %+v", b)
		}
		if r, b := s.rejected(t, "rate"), s.rejected(t, "banned"); r != 3 || b != 12 {
			t.Errorf("rejected rate=%v banned=%v, want 3 and the other 12", r, b)
		}
	})
	// The bucket refills at the rate, by the clock: 400 ms at 5/s is two
	// requests more, no fewer, no more.
	t.Run("refill", func(t *testing.T) {
		p := testphone.NewLoopback(t)
		clock := newFakeClock()
		s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  sources: {rate: 5, burst: 5}
`, clock.option)
		send := func(from, n int) int {
			for i := from; i < from+n; i++ {
				p.Send(s.carrier, fmt.Sprintf("OPTIONS sip:100@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-f%d\nFrom: <sip:100@x>;tag=1\nTo: <sip:100@x>\nCall-ID: refill%d\nCSeq: 1 OPTIONS", s.carrier, p.Addr, i, i), "")
			}
			got := 0
			for p.Next(300*time.Millisecond, isResponse(200)) != nil {
				got++
			}
			return got
		}
		if got := send(0, 8); got != 5 {
			t.Fatalf("%d of 8 answered, want the burst of 5", got)
		}
		clock.Add(400 * time.Millisecond)
		if got := send(8, 5); got != 2 {
			t.Errorf("%d of 5 answered 400 ms later, want 2 (5/s)", got)
		}
		clock.Add(time.Hour)
		if got := send(13, 8); got != 5 {
			t.Errorf("%d of 8 answered an hour later, want the burst of 5 (no more)", got)
		}
		if b := s.Bans().List(time.Now()); len(b) != 0 {
			t.Errorf("bans %+v with no rate_excess", b)
		}
	})
}

// A request from a source that has not proved its address never gets a
// larger answer: a compact-form request whose 403 (or stateless 400) would
// outgrow it gets nothing, counted.
func TestGuardNoAmplification(t *testing.T) {
	p := testphone.NewLoopback(t)
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  realms:
    - {realm: carrier, acl: {allow: ["192.0.2.0/24"]}}
`)
	small := fmt.Sprintf("INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP %s;branch=z9hG4bK-a1\r\nf: <sip:a@b>;tag=1\r\nt: <sip:a@b>\r\ni: amp1\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n", p.Addr)
	p.SendRaw(s.carrier, []byte(small))
	p.Quiet(400*time.Millisecond, isResponse(0), "a 403 larger than its request")
	if n := s.rejected(t, "amplification"); n != 1 {
		t.Errorf("rejected{amplification} = %v, want 1", n)
	}
	// Malformed (Content-Length beyond the body): the stateless 400 would
	// be larger than this request too.
	bad := fmt.Sprintf("OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP %s;branch=z9hG4bK-a2\r\nf: <sip:a@b>;tag=1\r\nt: <sip:a@b>\r\ni: amp2\r\nCSeq: 1 OPTIONS\r\nl: 99\r\n\r\n", p.Addr)
	p.SendRaw(s.carrier, []byte(bad))
	p.Quiet(400*time.Millisecond, isResponse(0), "a 400 larger than its request")
	// A full-size request is answered, and no answer is larger than it.
	big := strings.Replace(small, "i: amp1", "i: amp3\r\nSubject: "+strings.Repeat("x", 300), 1)
	p.SendRaw(s.carrier, []byte(big))
	res := p.Next(wait, isResponse(403))
	if res == nil {
		t.Fatal("no 403 to a full-size request")
	}
	if n := len(res.String()); n > len(big) {
		t.Errorf("403 of %d bytes to a %d-byte request", n, len(big))
	}
	if strings.Contains(res.String(), "X-Edgesbc-Rx-Len") {
		t.Error("internal length header leaked")
	}
}

func TestGuardRegistrar(t *testing.T) {
	caller, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	// The route's own target is dead: the call can only reach the PBX
	// through its registration.
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  trusted: ["127.0.0.1"]
  realms:
    - realm: enterprise
      registrar: {aor: pbx, min_expires: 10s}
      auth: {methods: [REGISTER], users: [{name: pbx, password: pbxpw}]}
`)
	reg := func(cseq int, expires string, auth string) {
		h := fmt.Sprintf(`REGISTER sip:%s SIP/2.0
			Via: SIP/2.0/UDP %s;branch=z9hG4bK-reg%d
			Max-Forwards: 70
			From: <sip:pbx@%s>;tag=r1
			To: <sip:pbx@%s>
			Call-ID: reg-1
			CSeq: %d REGISTER
			Contact: <sip:pbx@%s>
			Expires: %s`, s.enterprise, pbx.Addr, cseq, s.enterprise, s.enterprise, cseq, pbx.Addr, expires)
		if auth != "" {
			h += "\nAuthorization: " + auth
		}
		pbx.Send(s.enterprise, h, "")
	}
	reg(1, "300", "")
	ch := pbx.ExpectResponse(401, sip.REGISTER, wait)
	chals := ch.GetHeaders("WWW-Authenticate")
	if len(chals) != 2 {
		t.Fatalf("401 to a trusted source with %d challenges, want 2 (SHA-256, MD5)", len(chals))
	}
	uri := "sip:" + s.enterprise
	reg(2, "5", digestAnswer(t, chals[1].Value(), "pbx", "pbxpw", "REGISTER", uri))
	if r := pbx.ExpectResponse(423, sip.REGISTER, wait); r.GetHeader("Min-Expires").Value() != "10" {
		t.Errorf("423 Min-Expires %v", r.GetHeader("Min-Expires"))
	}
	reg(3, "300", digestAnswer(t, chals[0].Value(), "pbx", "pbxpw", "REGISTER", uri))
	ok := pbx.ExpectResponse(200, sip.REGISTER, wait)
	if c := ok.GetHeader("Contact"); c == nil || !strings.Contains(c.Value(), pbx.Addr) || !strings.Contains(c.Value(), "expires=300") {
		t.Fatalf("200 Contact %v", c)
	}
	caller.Invite(s.carrier, "5551234", "reg-call", testphone.TestSDP)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	if inv.Recipient.User != "5551234" {
		t.Errorf("leg B request-URI user %q", inv.Recipient.User)
	}
	pbx.Answer(inv, 486, "Busy Here", "p1", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)

	// Unregister: the call goes to the dead static target (408 after its timeout).
	reg(4, "0", digestAnswer(t, chals[0].Value(), "pbx", "pbxpw", "REGISTER", uri))
	pbx.ExpectResponse(200, sip.REGISTER, wait)
	caller.Invite(s.carrier, "5551234", "reg-call-2", testphone.TestSDP)
	pbx.Quiet(600*time.Millisecond, isRequest(sip.INVITE), "INVITE to an unregistered PBX")
	s.waitIdle(t)
}

// Repeated malformed messages ban their source.
func TestGuardMalformedBan(t *testing.T) {
	p := testphone.NewLoopback(t)
	s := startGuarded(t, []string{"127.0.0.1:9"}, `guard:
  bans: {malformed: 3}
`)
	for i := 0; i < 3; i++ {
		bad := fmt.Sprintf("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-m%d\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: mal%d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:a@127.0.0.1:5555>\r\nUser-Agent: test-phone/1.0\r\nContent-Length: 0\r\n\r\n", p.Addr, i, i)
		p.SendRaw(s.carrier, []byte(bad)) // CSeq method mismatch: 400
		if i < 2 {
			p.ExpectResponse(400, sip.INVITE, wait)
		}
	}
	deadline := time.Now().Add(wait)
	for len(s.Bans().List(time.Now())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no ban after 3 malformed messages")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b := s.Bans().List(time.Now()); b[0].Reason != "malformed" {
		t.Fatalf("bans %+v", b)
	}
	p.Send(s.carrier, fmt.Sprintf("OPTIONS sip:100@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ok\nFrom: <sip:100@x>;tag=1\nTo: <sip:100@x>\nCall-ID: after-ban\nCSeq: 1 OPTIONS", s.carrier, p.Addr), "")
	p.Quiet(400*time.Millisecond, func(m sip.Message) bool { return m.CallID() != nil && m.CallID().Value() == "after-ban" }, "answer to a banned source")
}
