package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// insideNames are the hosts the SIPp peers put in identity headers
// (uac_privacy.xml, uas_pai.xml): no wire may show them on the other side.
var insideNames = []string{"pbx.corp.example", "callee.corp.example", "10.1.2.3"}

// identityConfig is the lab config with the carrier realm's trust set
// (trust "" leaves the default: trusted, as a route target).
func identityConfig(t *testing.T, trust string) string {
	t.Helper()
	carrier := fmt.Sprintf(`{name: carrier, listen: "%s:5060", transports: [udp, tcp]}`, sbcExt)
	if trust != "" {
		carrier = fmt.Sprintf(`{name: carrier, listen: "%s:5060", transports: [udp, tcp], trust: %s}`, sbcExt, trust)
	}
	y := fmt.Sprintf(`realms:
  - %s
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"], target_timeout: 3s}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
`, carrier, sbcInt, pbxHost, carrierHost)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fromSBC keeps the captured messages the SBC sent: each carries its
// User-Agent (requests) or Server (responses), which the SIPp peers'
// scenarios do not write.
func fromSBC(wire [][]byte) [][]byte {
	var out [][]byte
	for _, p := range wire {
		if s := string(p); strings.Contains(s, "\nUser-Agent: EdgeSBC") || strings.Contains(s, "\nServer: EdgeSBC") {
			out = append(out, p)
		}
	}
	return out
}

// firstMessage is the first message the SBC sent on a wire that starts
// with prefix and contains every one of with.
func firstMessage(t *testing.T, wire [][]byte, prefix string, with ...string) string {
	t.Helper()
next:
	for _, m := range sipMessages(fromSBC(wire), prefix) {
		for _, w := range with {
			if !strings.Contains(m, w) {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %q message with %q on the wire", prefix, with)
	return ""
}

func expectLines(t *testing.T, what, msg string, want, not []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, msg)
		}
	}
	for _, n := range not {
		if strings.Contains(msg, n) {
			t.Errorf("%s carries %q:\n%s", what, n, msg)
		}
	}
}

// noInsideNames fails for any message the SBC sent naming an inside host
// (the peers' own messages on their wire carry the names they wrote).
func noInsideNames(t *testing.T, name string, wire [][]byte) {
	t.Helper()
	sent := fromSBC(wire)
	if len(sent) < 4 {
		t.Fatalf("%s: only %d messages from the SBC captured", name, len(sent))
	}
	for _, p := range sent {
		for _, h := range insideNames {
			if strings.Contains(string(p), h) {
				t.Errorf("%s: a message names inside host %s:\n%s", name, h, p)
				return
			}
		}
	}
}

// P-Asserted-Identity and Privacy: id through the SBC with SIPp peers in
// both directions, both wires captured. Between trusted realms (the lab's
// default: both are route targets) the PAI, Diversion and History-Info
// cross with the SBC's address as host and Privacy: id with them, and the
// callee's connected identity comes back the same way. With the carrier
// untrusted (trust: false), Privacy: id removes the PAI toward it and
// anonymizes the From, and the carrier's own PAI is not believed. No
// inside host is on either wire, and neither side's Supported or Allow
// reaches the other.
func TestIdentityAndPrivacyThroughSBC(t *testing.T) {
	needLab(t)
	t.Run("trusted realms", func(t *testing.T) {
		s := startSBCD(t, identityConfig(t, ""))
		carWire, entWire := startCapture(t, "car", "car0"), startCapture(t, "ent", "ent0")
		pair(t, true, "uas_pai.xml", "uac_privacy.xml", 1, 1)
		pair(t, false, "uas_pai.xml", "uac_privacy.xml", 1, 1)
		s.waitIdle(t)
		car, ent := carWire.stop(t), entWire.stop(t)

		// Carrier to PBX: the caller's identity on the PBX's wire.
		inv := firstMessage(t, ent, "INVITE ", "From: \"sipp\" <sip:+4930111@"+sbcInt+">")
		expectLines(t, "PBX's INVITE", inv, []string{
			`P-Asserted-Identity: "Alice" <sip:+4930111@` + sbcInt + ">",
			"Privacy: id",
			"Diversion: <sip:+4930999@" + sbcInt + ">;reason=unconditional;counter=1",
			"History-Info: <sip:+4930999@" + sbcInt + "?Reason=SIP%3Bcause%3D302>;index=1",
		}, []string{"Remote-Party-ID", "replaces", "norefersub", "gruu"})
		// and the PBX's connected identity on the carrier's wire.
		ok := firstMessage(t, car, "SIP/2.0 200 OK", "CSeq: 1 INVITE", "P-Asserted-Identity")
		expectLines(t, "carrier's 200", ok, []string{"P-Asserted-Identity: <sip:1000@" + sbcExt + ">"},
			[]string{"gruu", "path", "X-CALLEE"})

		// PBX to carrier: the same, the other way.
		inv = firstMessage(t, car, "INVITE ", "From: \"sipp\" <sip:+4930111@"+sbcExt+">")
		expectLines(t, "carrier's INVITE", inv, []string{
			`P-Asserted-Identity: "Alice" <sip:+4930111@` + sbcExt + ">",
			"Privacy: id",
			"Diversion: <sip:+4930999@" + sbcExt + ">",
		}, []string{"Remote-Party-ID", "replaces", "gruu"})
		ok = firstMessage(t, ent, "SIP/2.0 200 OK", "CSeq: 1 INVITE", "P-Asserted-Identity")
		expectLines(t, "PBX's 200", ok, []string{"P-Asserted-Identity: <sip:1000@" + sbcInt + ">"}, []string{"gruu", "X-CALLEE"})

		noInsideNames(t, "carrier wire", car)
		noInsideNames(t, "enterprise wire", ent)
		checkHidden(t, "carrier wire", car, ent, "198.51.100.")
		checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
	})
	t.Run("untrusted carrier", func(t *testing.T) {
		s := startSBCD(t, identityConfig(t, "false"))
		carWire, entWire := startCapture(t, "car", "car0"), startCapture(t, "ent", "ent0")
		pair(t, false, "uas_pai.xml", "uac_privacy.xml", 1, 1)
		pair(t, true, "uas_pai.xml", "uac_privacy.xml", 1, 1)
		s.waitIdle(t)
		car, ent := carWire.stop(t), entWire.stop(t)

		// PBX to the untrusted carrier with Privacy: id: nothing of the caller.
		inv := firstMessage(t, car, "INVITE ", "anonymous.invalid")
		expectLines(t, "carrier's INVITE", inv, []string{`From: "Anonymous" <sip:anonymous@anonymous.invalid>`},
			[]string{"P-Asserted-Identity", "P-Preferred-Identity", "+4930111", "Remote-Party-ID"})
		// Carrier to PBX: the untrusted carrier's PAI is not believed.
		inv = firstMessage(t, ent, "INVITE ", "From: \"sipp\" <sip:+4930111@"+sbcInt+">")
		expectLines(t, "PBX's INVITE", inv, nil, []string{"P-Asserted-Identity", "Remote-Party-ID"})

		noInsideNames(t, "carrier wire", car)
		noInsideNames(t, "enterprise wire", ent)
		checkHidden(t, "carrier wire", car, ent, "198.51.100.")
		checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
	})
}
