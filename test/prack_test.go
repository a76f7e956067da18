package test

import (
	"testing"
)

// 100rel, PRACK and early UPDATE through the SBC with real SIPp peers,
// both wires captured: a caller that requires 100rel toward a plain
// callee (the SBC sends the 180 reliably and takes the PRACK itself), a
// callee's reliable 183 with SDP toward a plain caller (the SBC PRACKs
// it), both directions, and an early UPDATE with SDP after a reliable 183
// on both legs. Then the captures must show nothing of either side on
// the other, as for the basic calls.
func TestPrackAndEarlyUpdateThroughSBC(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeLabConfig(t, []string{pbxHost + ":5060"}, "3s"))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")

	steps := []struct {
		name        string
		fromCarrier bool
		uas, uac    string
		n           int
		// PRACKs the SBC takes from the caller (on the caller's realm) and
		// sends to the callee (on the callee's), per call.
		prackIn, prackOut float64
	}{
		{"caller requires 100rel, plain callee", true, "uas_ring_pause.xml", "uac_100rel.xml", 2, 1, 0},
		{"callee reliable 183 with SDP, plain caller", true, "uas_183_100rel.xml", "uac.xml", 2, 0, 1},
		{"callee reliable 183 with SDP, PBX to carrier", false, "uas_183_100rel.xml", "uac.xml", 1, 0, 1},
		{"reliable both legs and early UPDATE", true, "uas_183_100rel_update.xml", "uac_100rel_update.xml", 2, 1, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			in, out := "carrier", "enterprise"
			if !st.fromCarrier {
				in, out = out, in
			}
			metric := func(realm, event string) float64 {
				return s.metric(t, "sbc_sip_reliable_total", `realm="`+realm+`"`, `event="`+event+`"`)
			}
			beforeIn, beforeOut := metric(in, "prack_in"), metric(out, "prack_out")
			beforeBye := s.metric(t, "sbc_calls_total", `result="bye_a"`)
			pair(t, st.fromCarrier, st.uas, st.uac, st.n, 5)
			s.waitIdle(t)
			n := float64(st.n)
			if got := metric(in, "prack_in") - beforeIn; got != st.prackIn*n {
				t.Errorf("PRACKs taken on %s grew by %v, want %v", in, got, st.prackIn*n)
			}
			if got := metric(out, "prack_out") - beforeOut; got != st.prackOut*n {
				t.Errorf("PRACKs sent on %s grew by %v, want %v", out, got, st.prackOut*n)
			}
			if got := s.metric(t, "sbc_calls_total", `result="bye_a"`) - beforeBye; got != n {
				t.Errorf("sbc_calls_total{result=bye_a} grew by %v, want %v", got, n)
			}
		})
	}

	car, ent := carWire.stop(t), entWire.stop(t)
	if len(car) < 20 || len(ent) < 20 {
		t.Fatalf("captures too small: %d carrier, %d enterprise messages", len(car), len(ent))
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}
