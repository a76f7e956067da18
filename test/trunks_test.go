package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/internal/testcarrier"
)

func writeYAML(t *testing.T, y string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *sbcd) trunks(t *testing.T) map[string]api.Trunk {
	t.Helper()
	b, err := s.get("/api/v1/trunks")
	if err != nil {
		t.Fatal(err)
	}
	var list []api.Trunk
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Trunk{}
	for _, ti := range list {
		out[ti.Name] = ti
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sipMessages returns the captured SIP messages that start with prefix.
func sipMessages(wire [][]byte, prefix string) []string {
	var out []string
	for _, p := range wire {
		if strings.HasPrefix(string(p), prefix) {
			out = append(out, string(p))
		}
	}
	return out
}

// TestLabTrunkRegistrationAndChallenge: sbcd registers with a carrier
// registrar in namespace car (a Go/sipgo registrar offering SHA-256 and
// MD5 digest, granting 2 s so refreshes show), shows it in sbcctl trunks,
// and a SIPp call from the PBX to an E.164 number reaches the carrier,
// which answers the first INVITE with 407: sbcd re-sends it with
// Proxy-Authorization and the number in the carrier's national format.
func TestLabTrunkRegistrationAndChallenge(t *testing.T) {
	needLab(t)
	var conn *net.UDPConn
	if err := inNetns("car", func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(carrierHost), Port: 5060})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	car, err := testcarrier.Start(conn, testcarrier.Options{
		Realm: "carrier.test", User: "edge1", Password: "lab-secret", Algorithms: []string{"SHA-256", "MD5"},
		Grant: 2, ChallengeInvite: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer car.Close()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("lab-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, writeYAML(t, fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
trunks:
  - name: carrier
    realm: carrier
    targets: ["%s:5060"]
    domain: carrier.test
    credentials: {username: edge1, password_file: %s, realm: carrier.test}
    register: {enabled: true, expires: 120}
    options: {interval: 500ms}
    normalize:
      outbound: [{strip_prefix: "+49", add_prefix: "0"}, {strip_prefix: "+", add_prefix: "00"}]
routing:
  rules:
    - {name: pbx-out, from_realm: enterprise, prefix: "+", trunks: [{trunk: carrier}]}
`, sbcExt, sbcInt, pbxHost, carrierHost, pw)))
	waitFor(t, 6*time.Second, "three registrations (2 s grant, refreshed)", func() bool { return len(car.Registers()) >= 3 })
	for _, r := range car.Registers() {
		if r.Algorithm != "SHA-256" || !strings.HasPrefix(r.Contact, "sip:edge1@"+sbcExt) {
			t.Fatalf("registration %+v", r)
		}
	}
	ti := s.trunks(t)["carrier"]
	if ti.Registration == nil || ti.Registration.State != "registered" || !ti.Up || ti.Targets[0].State != "up" {
		t.Fatalf("admin: %+v %+v", ti, ti.Registration)
	}
	out, err := exec.Command("ip", "netns", "exec", "sbc", filepath.Join(binDir, "sbcctl"), "trunks").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "registered") || !strings.Contains(string(out), carrierHost+":5060;transport=udp") {
		t.Fatalf("sbcctl trunks: %v\n%s", err, out)
	}
	t.Logf("sbcctl trunks:\n%s", out)

	wire := startCapture(t, "car", "car0")
	cl := startSIPp(t, "ent", "uac.xml", pbxArgs(sbcInt+":5060", "-m", "1", "-s", "+4930123456")...)
	cl.wait(t, 30*time.Second)
	s.waitIdle(t)
	invites := car.Invites()
	if len(invites) != 2 {
		t.Fatalf("carrier saw %d INVITEs, want 2 (challenged, then authorized)", len(invites))
	}
	if invites[0].GetHeader("Proxy-Authorization") != nil || invites[1].GetHeader("Proxy-Authorization") == nil ||
		invites[1].CallID().Value() != invites[0].CallID().Value() || invites[1].CSeq().SeqNo != invites[0].CSeq().SeqNo+1 {
		t.Fatalf("INVITE pair:\n%s\n%s", invites[0], invites[1])
	}
	msgs := sipMessages(wire.stop(t), "INVITE ")
	if len(msgs) != 2 {
		t.Fatalf("%d INVITEs on the carrier wire, want 2", len(msgs))
	}
	for _, m := range msgs {
		if !strings.HasPrefix(m, "INVITE sip:030123456@"+carrierHost) {
			t.Fatalf("number not in the carrier's format on the wire:\n%s", m)
		}
	}
	if !strings.Contains(msgs[1], "Proxy-Authorization: Digest") || !strings.Contains(msgs[1], "algorithm=SHA-256") {
		t.Fatalf("no SHA-256 Proxy-Authorization on the wire:\n%s", msgs[1])
	}
	if got := s.metric(t, "sbc_calls_total", `result="bye_a"`); got != 1 {
		t.Fatalf("calls bye_a = %v", got)
	}
}

// TestLabTrunkFailoverNormalizationHeaders: SIPp carriers in namespace car
// behind three trunks of one dial-plan rule: "dead" (nothing listens; OPTIONS
// mark it down, so it is never tried), "busy" (SIPp answering 503: the call
// fails over) and "main" (SIPp answering 200). On main's wire the numbers
// are in its format (request-URI, To, From, P-Asserted-Identity) and the
// carrier realm's header rules have added, removed and rewritten headers.
// Then a call from the carrier in national format reaches the PBX in E.164,
// and the dead trunk, once something answers its OPTIONS, is up again.
func TestLabTrunkFailoverNormalizationHeaders(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeYAML(t, fmt.Sprintf(`realms:
  - name: carrier
    listen: "%s:5060"
    transports: [udp, tcp]
    headers:
      list: [P-Asserted-Identity, Subject, X-Internal]
      rules:
        - {action: add, header: X-Edge, value: edgesbc, methods: [INVITE]}
        - {action: remove, header: X-Internal}
        - {action: replace, header: P-Asserted-Identity, match: "@[^>;]+", value: "@sbc.carrier.test"}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
trunks:
  - {name: dead, realm: carrier, targets: ["%[4]s:5070"], options: {interval: 200ms, timeout: 150ms, down_after: 2}}
  - {name: busy, realm: carrier, targets: ["%[4]s:5062"], normalize: {outbound: [{strip_prefix: "+", add_prefix: "00"}]}}
  - name: main
    realm: carrier
    targets: ["%[4]s:5060"]
    domain: carrier.test
    normalize:
      outbound: [{strip_prefix: "+44", add_prefix: "0"}, {strip_prefix: "+49", add_prefix: "0"}]
      inbound: [{strip_prefix: "00", add_prefix: "+"}, {strip_prefix: "0", add_prefix: "+49"}]
routing:
  rules:
    - name: uk
      from_realm: enterprise
      prefix: "+44"
      trunks: [{trunk: dead, priority: 1}, {trunk: busy, priority: 2}, {trunk: main, priority: 3}]
`, sbcExt, sbcInt, pbxHost, carrierHost)))
	waitFor(t, 3*time.Second, "dead trunk marked down", func() bool { return !s.trunks(t)["dead"].Up })
	if tr := s.trunks(t); !tr["busy"].Up || !tr["main"].Up {
		t.Fatalf("trunks %+v", tr)
	}

	wire := startCapture(t, "car", "car0")
	busy := startSIPp(t, "car", "uas_503.xml", "-i", carrierHost, "-p", "5062", "-m", "1")
	main := startSIPp(t, "car", "uas.xml", carrierArgs("-m", "1")...)
	waitUDPListen(t, "car", carrierHost, 5062)
	waitUDPListen(t, "car", carrierHost, 5060)
	cl := startSIPp(t, "ent", "uac_pai.xml", pbxArgs(sbcInt+":5060", "-m", "1", "-s", "+442071234567")...)
	cl.wait(t, 30*time.Second)
	busy.wait(t, 10*time.Second)
	main.wait(t, 10*time.Second)
	s.waitIdle(t)
	if n := s.metric(t, "sbc_sip_requests_total", `realm="carrier"`, `direction="out"`, `method="INVITE"`); n != 2 {
		t.Fatalf("%v INVITEs sent toward the carrier, want 2 (busy, then main; dead skipped)", n)
	}
	// The capture sees both INVITEs (they leave from the SBC's port 5060).
	invites := sipMessages(wire.stop(t), "INVITE ")
	if len(invites) != 2 || !strings.HasPrefix(invites[0], "INVITE sip:00442071234567@"+carrierHost+":5062 ") {
		t.Fatalf("want busy's INVITE (its format), then main's:\n%s", strings.Join(invites, "\n---\n"))
	}
	inv := invites[1]
	for _, want := range []string{
		"INVITE sip:02071234567@" + carrierHost + ":5060 SIP/2.0",
		"<sip:02071234567@carrier.test>",                     // To
		"<sip:030111@" + sbcExt,                              // From
		"P-Asserted-Identity: <sip:030111@sbc.carrier.test>", // PAI: number and rule
		"X-Edge: edgesbc",
		"Subject: EdgeSBC uac",
	} {
		if !strings.Contains(inv, want) {
			t.Errorf("main's INVITE lacks %q:\n%s", want, inv)
		}
	}
	if strings.Contains(inv, "X-Internal") || strings.Contains(inv, "pbx.corp.example") || strings.Contains(inv, "+44") {
		t.Errorf("main's INVITE carries what the rules remove:\n%s", inv)
	}

	// Inbound: the carrier (main's address and port) dials a national
	// number; the PBX sees E.164.
	entWire := startCapture(t, "ent", "ent0")
	pbx := startSIPp(t, "ent", "uas.xml", pbxArgs("-m", "1")...)
	waitUDPListen(t, "ent", pbxHost, 5060)
	in := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", "1", "-s", "030123")...)
	in.wait(t, 30*time.Second)
	pbx.wait(t, 10*time.Second)
	s.waitIdle(t)
	entInv := sipMessages(entWire.stop(t), "INVITE ")
	if len(entInv) != 1 || !strings.HasPrefix(entInv[0], "INVITE sip:+4930123@"+pbxHost) {
		t.Fatalf("PBX INVITE not in E.164:\n%s", strings.Join(entInv, "\n---\n"))
	}

	// The dead trunk's target comes to life (a Go carrier answering
	// OPTIONS on 5070): the keepalive marks it up again.
	var conn *net.UDPConn
	if err := inNetns("car", func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(carrierHost), Port: 5070})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	alive, err := testcarrier.Start(conn, testcarrier.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	waitFor(t, 3*time.Second, "dead trunk up again", func() bool { return s.trunks(t)["dead"].Up })
	if st := s.trunks(t)["dead"].Targets[0]; st.State != "up" || st.LastCode != 200 || alive.Options() < 2 {
		t.Fatalf("dead trunk after recovery: %+v (%d OPTIONS answered)", st, alive.Options())
	}
}
