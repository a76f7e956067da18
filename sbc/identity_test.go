package sbc_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// Inside names the far side uses in identity headers: none may reach the
// other side.
var insideHosts = []string{"pbx.corp.example", "10.1.2.3", "callee.corp.example"}

func noInsideHost(t *testing.T, where string, m sip.Message) {
	t.Helper()
	s := m.String()
	for _, h := range insideHosts {
		if strings.Contains(s, h) {
			t.Errorf("%s carries inside host %s:\n%s", where, h, s)
		}
	}
}

func hvals(m sip.Message, name string) string {
	var v []string
	for _, h := range m.GetHeaders(name) {
		v = append(v, h.Value())
	}
	return strings.Join(v, " | ")
}

// tags is the set of option tags of every header with that name.
func tags(m sip.Message, names ...string) string {
	var out []string
	for _, n := range names {
		for _, h := range m.GetHeaders(n) {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" {
					out = append(out, strings.ToLower(t))
				}
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// identityInvite sends an INVITE from p into the SBC at sbcAddr with extra
// header lines.
func identityInvite(p *testphone.Phone, sbcAddr, callID, extra string) {
	p.Send(sbcAddr, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
		Max-Forwards: 70
		From: "Alice" <sip:+4930111@%s>;tag=ft-%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		%s`, sbcAddr, p.Addr, callID, p.Addr, callID, sbcAddr, callID, p.Addr, strings.TrimSpace(extra)), testphone.TestSDP)
}

const sbcAllow = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, PRACK, INFO, MESSAGE, NOTIFY, REFER"

// Between trusted realms (both are route targets) P-Asserted-Identity,
// P-Preferred-Identity, Diversion and History-Info cross with the SBC's
// host on the far side, Privacy: id crosses with them (the next hop is in
// the trust domain), Remote-Party-ID is dropped (rpid's default), and
// Supported, Allow and Require are the SBC's own on each leg.
func TestIdentityBetweenTrustedRealms(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBCMedia(t, []string{callee.Addr}, []string{"127.0.0.1:9"}, false)
	identityInvite(caller, s.carrier, "id-trusted", `
		P-Asserted-Identity: "Alice" <sip:+4930111@pbx.corp.example;user=phone>
		P-Asserted-Identity: <tel:+4930111>
		P-Preferred-Identity: <sip:alice@10.1.2.3>
		Privacy: id
		Remote-Party-ID: "Alice" <sip:+4930111@10.1.2.3>;party=calling;screen=yes
		Diversion: <sip:+4930999@10.1.2.3>;reason=unconditional;counter=1
		History-Info: <sip:+4930999@pbx.corp.example?Reason=SIP%3Bcause%3D302>;index=1
		Supported: 100rel, timer, replaces, norefersub, gruu
		Allow: INVITE, ACK, BYE, X-FANCY
		Require: timer
		Session-Expires: 1800`)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	noInsideHost(t, "leg B INVITE", inv)
	ent := strings.Split(s.enterprise, ":")[0]
	for h, want := range map[string]string{
		"P-Asserted-Identity":  `"Alice" <sip:+4930111@` + ent + `> | <tel:+4930111>`,
		"P-Preferred-Identity": "<sip:alice@" + ent + ">",
		"Privacy":              "id",
		"Remote-Party-ID":      "",
		"Diversion":            "<sip:+4930999@" + ent + ">;reason=unconditional;counter=1",
		"History-Info":         "<sip:+4930999@" + ent + "?Reason=SIP%3Bcause%3D302>;index=1",
		"Allow":                sbcAllow,
	} {
		if got := hvals(inv, h); got != want {
			t.Errorf("leg B %s = %q, want %q", h, got, want)
		}
	}
	// The SBC's own tags only: 100rel (prack.go) and timer (sessiontimer.go).
	if got := tags(inv, "Supported", "k"); got != "100rel,timer" {
		t.Errorf("leg B Supported tags %q, want 100rel,timer", got)
	}
	if got := tags(inv, "Require"); got != "" {
		t.Errorf("leg B Require %q: the caller's never crosses", got)
	}
	if inv.From().DisplayName != "Alice" || inv.From().Address.User != "+4930111" {
		t.Errorf("From %s: anonymized toward a trusted realm", inv.From().Value())
	}

	respondWith(callee, inv, 200, "OK", "callee-id", `P-Asserted-Identity: <sip:1000@callee.corp.example>
History-Info: <sip:1000@callee.corp.example>;index=1.1
Supported: gruu, path, 100rel
Allow: INVITE, X-CALLEE
Require: gruu
`, testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	callee.ExpectRequest(sip.ACK, wait)
	noInsideHost(t, "leg A 200", ok)
	car := strings.Split(s.carrier, ":")[0]
	for h, want := range map[string]string{
		"P-Asserted-Identity": "<sip:1000@" + car + ">",
		"History-Info":        "<sip:1000@" + car + ">;index=1.1",
		"Allow":               sbcAllow,
	} {
		if got := hvals(ok, h); got != want {
			t.Errorf("leg A 200 %s = %q, want %q", h, got, want)
		}
	}
	if got := tags(ok, "Supported", "k"); strings.Contains(got, "gruu") || strings.Contains(got, "path") {
		t.Errorf("leg A 200 Supported %q carries the callee's tags", got)
	}
	if got := tags(ok, "Require"); strings.Contains(got, "gruu") {
		t.Errorf("leg A 200 Require %q carries the callee's", got)
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "id-trusted-ack")
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 2, "id-trusted-bye", "")
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}

// untrustedCarrier is an SBC whose carrier realm says it is untrusted
// (trust: false) though calls go to it; the enterprise is a route target.
func untrustedCarrier(t *testing.T, pbx, carrier string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	return runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", trust: false}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q], target_timeout: 400ms}
  - {name: out, from_realm: enterprise, to_realm: carrier, targets: [%q], target_timeout: 400ms}
`, cp, ep, pbx, carrier), cp, ep)
}

// Toward an untrusted realm: Privacy: id removes the PAI and anonymizes
// the From; no PPI goes; without Privacy the PAI goes, rebuilt. From the
// untrusted realm, neither its PAI nor its PPI is believed.
func TestIdentityTowardUntrustedRealm(t *testing.T) {
	pbx, carrier := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := untrustedCarrier(t, pbx.Addr, carrier.Addr)
	car := strings.Split(s.carrier, ":")[0]

	for _, tc := range []struct {
		name, privacy string
		pai, from     string
	}{
		{"privacy id", "Privacy: id", "", `"Anonymous" <sip:anonymous@anonymous.invalid>`},
		{"no privacy", "", `"Alice" <sip:+4930111@` + car + `>`, `"Alice" <sip:+4930111@` + car + `>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "id-out-" + strings.ReplaceAll(tc.name, " ", "-")
			identityInvite(pbx, s.enterprise, id, `
				P-Asserted-Identity: "Alice" <sip:+4930111@pbx.corp.example>
				P-Preferred-Identity: <sip:alice@10.1.2.3>
				`+tc.privacy)
			pbx.ExpectResponse(100, sip.INVITE, wait)
			inv := carrier.ExpectRequest(sip.INVITE, wait)
			noInsideHost(t, "INVITE to the untrusted carrier", inv)
			if got := hvals(inv, "P-Asserted-Identity"); got != tc.pai {
				t.Errorf("PAI = %q, want %q", got, tc.pai)
			}
			if got := hvals(inv, "P-Preferred-Identity"); got != "" {
				t.Errorf("PPI = %q toward an untrusted realm", got)
			}
			from := inv.From().Value()
			if i := strings.Index(from, ";tag="); i >= 0 {
				from = from[:i]
			}
			if from != tc.from {
				t.Errorf("From = %q, want %q", from, tc.from)
			}
			respondWith(carrier, inv, 486, "Busy Here", "c-"+id, "", "")
			carrier.ExpectRequest(sip.ACK, wait)
			pbx.ExpectResponse(486, sip.INVITE, wait)
			s.waitIdle(t)
		})
	}

	identityInvite(carrier, s.carrier, "id-in-untrusted", `
		P-Asserted-Identity: <sip:+4930111@pbx.corp.example>
		P-Preferred-Identity: <sip:alice@10.1.2.3>
		Remote-Party-ID: <sip:+4930111@10.1.2.3>`)
	carrier.ExpectResponse(100, sip.INVITE, wait)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	for _, h := range []string{"P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID"} {
		if got := hvals(inv, h); got != "" {
			t.Errorf("%s = %q from an untrusted realm, unauthenticated", h, got)
		}
	}
	respondWith(pbx, inv, 486, "Busy Here", "p-in", "", "")
	pbx.ExpectRequest(sip.ACK, wait)
	carrier.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// From an untrusted realm, a P-Preferred-Identity becomes the
// P-Asserted-Identity once the INVITE proved its digest answer (RFC 3325
// 6); the PAI the caller wrote itself is still not believed.
func TestPreferredIdentityAfterAuth(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startGuarded(t, []string{callee.Addr}, `guard:
  realms:
    - realm: carrier
      auth: {realm: edge.test, methods: [INVITE], users: [{name: alice, password: alicepw}]}
`)
	send := func(cseq int, auth string) {
		extra := ""
		if auth != "" {
			extra = "Proxy-Authorization: " + auth
		}
		caller.Send(s.carrier, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
			Via: SIP/2.0/UDP %s;branch=z9hG4bK-ppi-%d
			Max-Forwards: 70
			From: <sip:alice@%s>;tag=ft-ppi
			To: <sip:1000@%s>
			Call-ID: ppi-auth
			CSeq: %d INVITE
			Contact: <sip:alice@%s>
			P-Preferred-Identity: "Alice" <sip:+4930111@10.1.2.3>
			P-Asserted-Identity: <sip:+4999999@pbx.corp.example>
			%s`, s.carrier, caller.Addr, cseq, caller.Addr, s.carrier, cseq, caller.Addr, extra), testphone.TestSDP)
	}
	send(1, "")
	ch := caller.ExpectResponse(407, sip.INVITE, wait)
	send(2, digestAnswer(t, ch.GetHeader("Proxy-Authenticate").Value(), "alice", "alicepw", "INVITE", "sip:1000@"+s.carrier))
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	noInsideHost(t, "leg B INVITE", inv)
	ent := strings.Split(s.enterprise, ":")[0]
	if got, want := hvals(inv, "P-Asserted-Identity"), `"Alice" <sip:+4930111@`+ent+`>`; got != want {
		t.Errorf("PAI = %q, want the proved caller's preferred identity %q", got, want)
	}
	if got := hvals(inv, "P-Preferred-Identity"); got != "" {
		t.Errorf("PPI = %q, want it asserted, not passed on", got)
	}
	respondWith(callee, inv, 486, "Busy Here", "c-ppi", "", "")
	callee.ExpectRequest(sip.ACK, wait)
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// The SBC's OPTIONS answer advertises only what it runs: no replaces
// (REFER/Replaces is not handled).
func TestOptionsAdvertisesOwnCapabilities(t *testing.T) {
	p := testphone.NewLoopback(t)
	s := startSBC(t, []string{"127.0.0.1:9"}, nil)
	p.Send(s.carrier, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-opt-caps
		Max-Forwards: 70
		From: <sip:probe@%s>;tag=o1
		To: <sip:%s>
		Call-ID: opt-caps
		CSeq: 1 OPTIONS`, s.carrier, p.Addr, p.Addr, s.carrier), "")
	ok := p.ExpectResponse(200, sip.OPTIONS, wait)
	if got := tags(ok, "Supported"); got != "100rel,timer" {
		t.Errorf("OPTIONS Supported %q, want 100rel,timer", got)
	}
	if got := hvals(ok, "Allow"); got != sbcAllow {
		t.Errorf("OPTIONS Allow %q", got)
	}
}

// Hostile identity headers through real sockets: no angle brackets, a
// huge value, many values, an unclosed bracket. Each is rebuilt or
// dropped, never relayed as it came, and the call goes through.
func TestMalformedIdentityBounded(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBCMedia(t, []string{callee.Addr}, []string{"127.0.0.1:9"}, false)
	ent := strings.Split(s.enterprise, ":")[0]
	many := strings.TrimSuffix(strings.Repeat("<sip:2@pbx.corp.example>, <tel:+3>, ", 12), ", ")
	cases := []struct {
		name, hdrs, pai string
	}{
		{"no angle brackets", "P-Asserted-Identity: sip:+4930111@pbx.corp.example;user=phone", "<sip:+4930111@" + ent + ">"},
		{"huge", "P-Asserted-Identity: <sip:" + strings.Repeat("9", 700) + "@pbx.corp.example>", ""},
		{"many values", "P-Asserted-Identity: " + many, "<sip:2@" + ent + "> | <tel:+3>"},
		{"many headers", strings.Repeat("P-Asserted-Identity: <sip:4@10.1.2.3>\n", 20), "<sip:4@" + ent + ">"},
		{"unclosed bracket", "P-Asserted-Identity: <sip:5@pbx.corp.example\nDiversion: <sip:6@10.1.2.3", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("id-bad-%d", i)
			identityInvite(caller, s.carrier, id, tc.hdrs)
			caller.ExpectResponse(100, sip.INVITE, wait)
			inv := callee.ExpectRequest(sip.INVITE, wait)
			noInsideHost(t, "leg B INVITE", inv)
			if got := hvals(inv, "P-Asserted-Identity"); got != tc.pai {
				t.Errorf("PAI = %q, want %q", got, tc.pai)
			}
			respondWith(callee, inv, 486, "Busy Here", "c-"+id, "", "")
			callee.ExpectRequest(sip.ACK, wait)
			caller.ExpectResponse(486, sip.INVITE, wait)
			s.waitIdle(t)
		})
	}
}
