package test

import (
	"testing"
)

// A forking proxy behind the PBX side, played by SIPp (uas_fork.xml): 180
// from branch A, 183 with SDP from branch B, then a 200 from each. The
// SIPp callee itself checks that the winner's 200 is ACKed on its dialog
// and the loser's ACKed and hung up with BYE on its own (RFC 3261
// 13.2.2.4); the SIPp caller sees one early dialog and one answer and
// ends the call normally. Then the captures must show nothing of either
// side on the other: the losing dialog's ACK and BYE leak nothing either.
func TestForkedAnswersThroughSBC(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeLabConfig(t, []string{pbxHost + ":5060"}, "3s"))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")

	const n = 2
	losers := s.metric(t, "sbc_forked_dialogs_total", `realm="enterprise"`, `event="loser_2xx"`)
	byeA := s.metric(t, "sbc_calls_total", `result="bye_a"`)
	pair(t, true, "uas_fork.xml", "uac.xml", n, 5, "-set", "hold_ms", "1500")
	s.waitIdle(t)
	if got := s.metric(t, "sbc_calls_total", `result="bye_a"`) - byeA; got != n {
		t.Errorf("sbc_calls_total{result=bye_a} grew by %v, want %d", got, n)
	}
	if got := s.metric(t, "sbc_forked_dialogs_total", `realm="enterprise"`, `event="loser_2xx"`) - losers; got != n {
		t.Errorf("sbc_forked_dialogs_total{event=loser_2xx} grew by %v, want %d", got, n)
	}

	car, ent := carWire.stop(t), entWire.stop(t)
	if len(car) < 10 || len(ent) < 10 {
		t.Fatalf("captures too small: %d carrier, %d enterprise messages", len(car), len(ent))
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}
