package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLabTrunkAdmissionBurst: the carrier trunk "main" admits 10
// concurrent calls, counted in both directions under trunk:main.
//
// Out: a SIPp burst of 30 calls from the PBX (each held 3 s) toward the
// trunk: exactly 10 INVITEs reach the carrier, the other 20 callers get
// 503 with Retry-After from the SBC (the only trunk of the rule is full).
// In: a burst of 30 from the trunk's address toward the PBX: exactly 10
// reach the PBX, 20 get 503. The trunk's admission gauge peaks at exactly
// 10 and is back to 0 after each burst.
func TestLabTrunkAdmissionBurst(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeYAML(t, fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
trunks:
  - {name: main, realm: carrier, targets: ["%s:5060"], admission: {max_calls: 10, retry_after: 3s}}
routing:
  rules:
    - {name: uk, from_realm: enterprise, prefix: "+44", trunks: [{trunk: main}]}
`, sbcExt, sbcInt, pbxHost, carrierHost)))

	// Out, PBX -> SBC -> carrier. Judged at the ends: the PBX's SIPp
	// (10 answered and hung up, 20 refused with 503), the carrier's
	// (exactly 10 calls) and the 503s on the PBX's wire.
	wire := startCapture(t, "ent", "ent0")
	w := watchAdmission(s, "trunk:main")
	srv := startSIPp(t, "car", "uas.xml", carrierArgs("-m", "10")...)
	waitUDPListen(t, "car", carrierHost, 5060)
	start := time.Now()
	cl := startSIPp(t, "ent", "uac_admission.xml", pbxArgs(sbcInt+":5060", "-m", "30", "-r", "100", "-s", "+442071234567", "-set", "hold_ms", "3000")...)
	cl.wait(t, 40*time.Second)
	srv.wait(t, 10*time.Second)
	_, peakGauge := w.done()
	s.waitIdle(t)
	outDur := time.Since(start)
	ok, answered, refused503 := cl.stat(t, "SuccessfulCall(C)"), cl.count(t, "BYE_Sent"), cl.count(t, "503_Recv")
	carrierCalls := srv.stat(t, "SuccessfulCall(C)")
	var refusals []string
	for _, m := range sipMessages(wire.stop(t), "SIP/2.0 503 ") {
		if strings.Contains(m, "CSeq: 1 INVITE") {
			refusals = append(refusals, m)
		}
	}
	t.Logf("out: burst of 30 at 100/s in %v: at the PBX %d successful, %d answered, %d refused (%d 503s on the wire); at the carrier %d calls; peak trunk gauge %d (sbcd: %v INVITEs to the trunk, %v trunks_full)",
		outDur.Round(time.Millisecond), ok, answered, refused503, len(refusals), carrierCalls, peakGauge,
		s.metric(t, "sbc_sip_requests_total", `realm="carrier"`, `direction="out"`, `method="INVITE"`), s.metric(t, "sbc_calls_total", `result="trunks_full"`))
	if ok != 30 || answered != 10 || refused503 != 20 || len(refusals) != 20 || carrierCalls != 10 {
		t.Errorf("out: PBX %d successful, %d answered, %d refused, %d 503s on the wire; carrier %d calls; want 30, 10, 20, 20, 10", ok, answered, refused503, len(refusals), carrierCalls)
	}
	for _, m := range refusals {
		if !strings.Contains(m, "\r\nRetry-After: 3\r\n") {
			t.Fatalf("503 without Retry-After: 3:\n%s", m)
		}
	}
	if peakGauge != 10 {
		t.Errorf("out: peak trunk gauge %d, want exactly 10", peakGauge)
	}
	if n := s.metric(t, "sbc_admission_calls_active", `key="trunk:main"`); n != 0 {
		t.Errorf("out: trunk gauge %v after all calls ended", n)
	}

	// In, carrier (the trunk's address and port) -> SBC -> PBX.
	carrierBurst(t, s, "trunk:main")
}
