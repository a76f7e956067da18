package test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/testcarrier"
)

// authRedirConfig routes both ways between the lab's PBX and carrier with
// no trunk (so no credentials of the SBC's own): numbers starting with 9
// on routes whose 3xx is relayed, the rest on routes that follow it
// (Diversion toward the PBX, History-Info toward the carrier).
func authRedirConfig(t *testing.T) string {
	return writeYAML(t, fmt.Sprintf(`realms:
  - {name: carrier, listen: "%[1]s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%[2]s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx-relay, from_realm: carrier, to_realm: enterprise, user_prefix: "9", targets: ["%[3]s:5060"], redirect: {mode: relay}}
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%[3]s:5060"], target_timeout: 3s, redirect: {diversion: diversion}}
  - {name: pbx-to-carrier-relay, from_realm: enterprise, to_realm: carrier, user_prefix: "9", targets: ["%[4]s:5060"], redirect: {mode: relay}}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%[4]s:5060"], target_timeout: 3s, redirect: {diversion: history-info}}
`, sbcExt, sbcInt, pbxHost, carrierHost))
}

// side is one end of the lab: its namespace, host, and the SBC's address
// facing it.
type side struct{ ns, host, sbc string }

var (
	pbxSide     = side{"ent", pbxHost, sbcInt}
	carrierSide = side{"car", carrierHost, sbcExt}
)

func (sd side) args(port int, extra ...string) []string {
	return append([]string{"-i", sd.host, "-p", fmt.Sprint(port), "-m", "1"}, extra...)
}

// TestLabAuthRelayed: neither side's route has credentials, so a
// challenge crosses to the caller and its answer back on the challenged
// leg B. A SIPp caller holding credentials against a SIPp callee that
// challenges with 401 and checks the answer (verifyauth), both
// directions; then against the Go test carrier, which challenges with 407
// and a nonce bound to leg B's Call-ID, and checks the digest. Both wires
// captured: the relayed challenges and credentials carry nothing of the
// other network.
func TestLabAuthRelayed(t *testing.T) {
	needLab(t)
	s := startSBCD(t, authRedirConfig(t))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")

	for _, st := range []struct {
		name           string
		caller, callee side
		domain, realm  string
	}{
		{"PBX to challenging carrier", pbxSide, carrierSide, "carrier.test", "carrier.test"},
		{"carrier to challenging PBX", carrierSide, pbxSide, "pbx.example", "pbx.example"},
	} {
		t.Run(st.name, func(t *testing.T) {
			before := s.metric(t, "sbc_calls_total", `result="challenged"`)
			srv := startSIPp(t, st.callee.ns, "uas_auth.xml", st.callee.args(5060, "-key", "realm", st.realm, "-key", "user", "acct1", "-key", "pass", "s3cret")...)
			waitUDPListen(t, st.callee.ns, st.callee.host, 5060)
			cl := startSIPp(t, st.caller.ns, "uac_auth.xml", append([]string{st.caller.sbc + ":5060"},
				st.caller.args(5060, "-s", "+4930123", "-key", "domain", st.domain, "-au", "acct1", "-ap", "s3cret", "-auth_uri", "+4930123@"+st.domain)...)...)
			cl.wait(t, 30*time.Second)
			srv.wait(t, 30*time.Second)
			if n := srv.count(t, "403_Sent"); n != 0 {
				t.Fatalf("the callee refused %d answers to its challenge", n)
			}
			s.waitIdle(t)
			if got := s.metric(t, "sbc_calls_total", `result="challenged"`) - before; got != 1 {
				t.Errorf("calls{challenged} grew by %v, want 1", got)
			}
		})
	}

	t.Run("PBX to carrier binding its nonce to the Call-ID", func(t *testing.T) {
		var conn *net.UDPConn
		if err := inNetns("car", func() (err error) {
			conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(carrierHost), Port: 5060})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		car, err := testcarrier.Start(conn, testcarrier.Options{Realm: "carrier.test", User: "acct1", Password: "s3cret",
			ChallengeInvite: true, NonceBoundToCallID: true, Domain: "carrier.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer car.Close()
		cl := startSIPp(t, "ent", "uac_auth.xml", append([]string{sbcInt + ":5060"},
			pbxSide.args(5060, "-s", "+4930123", "-key", "domain", "carrier.test", "-au", "acct1", "-ap", "s3cret", "-auth_uri", "+4930123@carrier.test")...)...)
		cl.wait(t, 30*time.Second)
		s.waitIdle(t)
		invs := car.Invites()
		if len(invs) != 2 || invs[0].CallID().Value() != invs[1].CallID().Value() || invs[1].CSeq().SeqNo != invs[0].CSeq().SeqNo+1 {
			t.Fatalf("carrier saw %d INVITEs, want 2 on one Call-ID, CSeq + 1", len(invs))
		}
		if car.Verified() != 1 {
			t.Fatalf("carrier verified %d digests, want 1", car.Verified())
		}
	})

	car, ent := carWire.stop(t), entWire.stop(t)
	if n := len(sipMessages(car, "SIP/2.0 401")) + len(sipMessages(ent, "SIP/2.0 401")); n < 4 {
		t.Fatalf("%d 401s on the wires, want each challenge on both", n)
	}
	for _, m := range sipMessages(ent, "SIP/2.0 401") {
		if strings.Contains(m, "carrier.test") && !strings.Contains(m, `WWW-Authenticate: Digest realm="carrier.test"`) {
			t.Fatalf("the carrier's 401 reached the PBX without its challenge:\n%s", m)
		}
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}

// TestLabRedirect: a 302 with two Contacts, the higher q listed second.
// Followed (the default), both directions: the q 0.9 Contact answers 486,
// the q 0.5 one answers 200, and the caller (SIPp uac.xml, which fails on
// anything but a 200) sees only the answer; the redirected INVITEs carry
// Diversion toward the PBX and History-Info toward the carrier. Relayed
// (numbers starting with 9), both directions: the caller gets the 302, its
// Contacts on the SBC's own address. Both wires captured.
func TestLabRedirect(t *testing.T) {
	needLab(t)
	s := startSBCD(t, authRedirConfig(t))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")

	for _, st := range []struct {
		name           string
		caller, callee side
	}{
		{"carrier to PBX", carrierSide, pbxSide},
		{"PBX to carrier", pbxSide, carrierSide},
	} {
		t.Run("followed "+st.name, func(t *testing.T) {
			h := st.callee.host
			contacts := fmt.Sprintf("<sip:2000@%s:5062>;q=0.5, <sip:3000@%s:5061>;q=0.9", h, h)
			redir := startSIPp(t, st.callee.ns, "uas_302.xml", st.callee.args(5060, "-key", "contacts", contacts)...)
			busy := startSIPp(t, st.callee.ns, "uas_486.xml", st.callee.args(5061)...)
			ans := startSIPp(t, st.callee.ns, "uas.xml", st.callee.args(5062)...)
			for _, p := range []int{5060, 5061, 5062} {
				waitUDPListen(t, st.callee.ns, h, p)
			}
			cl := startSIPp(t, st.caller.ns, "uac.xml", append([]string{st.caller.sbc + ":5060"}, st.caller.args(5060, "-s", "1000")...)...)
			cl.wait(t, 30*time.Second)
			for _, r := range []*sippRun{redir, busy, ans} {
				r.wait(t, 30*time.Second)
			}
			s.waitIdle(t)
		})
		t.Run("relayed "+st.name, func(t *testing.T) {
			h := st.callee.host
			contacts := fmt.Sprintf("<sip:92000@%s:5062>;q=0.5, <sip:93000@%s:5061>;q=0.9", h, h)
			redir := startSIPp(t, st.callee.ns, "uas_302.xml", st.callee.args(5060, "-key", "contacts", contacts)...)
			waitUDPListen(t, st.callee.ns, h, 5060)
			cl := startSIPp(t, st.caller.ns, "uac_302.xml", append([]string{st.caller.sbc + ":5060"}, st.caller.args(5060, "-s", "9000")...)...)
			cl.wait(t, 30*time.Second)
			redir.wait(t, 30*time.Second)
			s.waitIdle(t)
		})
	}

	car, ent := carWire.stop(t), entWire.stop(t)
	// Followed: the redirected INVITEs on the callee's wire, in q order,
	// each saying where it was diverted from; no 302 on the caller's.
	for _, w := range []struct {
		name, header string
		callee       [][]byte
		callerWire   [][]byte
	}{
		{"enterprise", "Diversion: <sip:1000@" + sbcInt, ent, car},
		{"carrier", "History-Info: <sip:1000@" + sbcExt, car, ent},
	} {
		invs := sipMessages(w.callee, "INVITE sip:")
		var order []string
		for _, m := range invs {
			first := strings.SplitN(m, "\r\n", 2)[0]
			if strings.HasPrefix(first, "INVITE sip:3000@") || strings.HasPrefix(first, "INVITE sip:2000@") {
				order = append(order, first[len("INVITE sip:"):len("INVITE sip:")+4])
				if !strings.Contains(m, w.header) {
					t.Errorf("%s wire: redirected INVITE without %s...:\n%s", w.name, w.header, m)
				}
			}
		}
		if strings.Join(order, ",") != "3000,2000" {
			t.Errorf("%s wire: redirected INVITEs to %v, want 3000 (q 0.9) then 2000", w.name, order)
		}
	}
	// Relayed: the 302 the caller got points at the SBC, highest q first.
	for _, w := range []struct {
		name, sbc string
		wire      [][]byte
	}{{"carrier", sbcExt, car}, {"enterprise", sbcInt, ent}} {
		var relayed string
		for _, m := range sipMessages(w.wire, "SIP/2.0 302") {
			if strings.Contains(m, "CSeq: 1 INVITE") && strings.Contains(m, "sip:93000@"+w.sbc+":5060>") {
				relayed = m
			}
		}
		want := "Contact: <sip:93000@" + w.sbc + ":5060>;q=0.9\r\nContact: <sip:92000@" + w.sbc + ":5060>;q=0.5\r\n"
		if !strings.Contains(relayed, want) {
			t.Errorf("%s wire: relayed 302 without Contacts %q:\n%s", w.name, want, relayed)
		}
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")

	// A carrier that knows inside addresses redirects the PBX's call
	// there: the PBX (a peer of the enterprise realm) and an address no
	// route names but in the enterprise realm's network. Neither is
	// followed (a followed .99 would time out and end in 408), and the
	// PBX gets 502.
	t.Run("redirect into the inside refused", func(t *testing.T) {
		before := s.metric(t, "sbc_calls_total", `result="redirect_unusable"`)
		entOnly := startCapture(t, "ent", "ent0")
		redir := startSIPp(t, "car", "uas_302.xml", carrierSide.args(5060, "-key", "contacts", "<sip:1000@"+pbxHost+":5060>, <sip:1000@198.51.100.99:5060>;q=0.9")...)
		waitUDPListen(t, "car", carrierHost, 5060)
		cl := startSIPp(t, "ent", "uac_502.xml", append([]string{sbcInt + ":5060"}, pbxSide.args(5070, "-s", "1000")...)...)
		cl.wait(t, 30*time.Second)
		redir.wait(t, 30*time.Second)
		s.waitIdle(t)
		if n := len(sipMessages(entOnly.stop(t), "INVITE ")); n != 1 {
			t.Errorf("%d INVITEs on the enterprise wire, want only the PBX's own", n)
		}
		if got := s.metric(t, "sbc_calls_total", `result="redirect_unusable"`) - before; got != 1 {
			t.Errorf("calls{redirect_unusable} grew by %v, want 1", got)
		}
	})
}
