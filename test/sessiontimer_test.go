package test

import (
	"os"
	"testing"
	"time"
)

// Session timers (RFC 4028) with real SIPp peers: the caller's Session-
// Expires 60 gets 422 (Min-SE 90) and its retry with 90 is answered with
// refresher=uac; it refreshes once (UPDATE, answered by the SBC, not
// relayed) and then goes silent, and the SBC ends both legs with a Q.850
// Reason before the session expires. The callee's leg has its own timer
// (the realm's default 1800) and never sees the caller's. Both wires are
// captured and checked for the other side's hosts and identifiers.
func TestSessionTimerSilentCaller(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_LONG") == "" {
		// RFC 4028's 90 s floor in real time: 105 s, a sixth of CI's budget.
		// The same behaviour runs in CI on a scaled clock (sbc's
		// sessiontimer_test.go); this is the real binary against SIPp.
		t.Skip("long: 105 s of real session time; make test-long runs it")
	}
	// SIPp sends no RTP: the media timeout must not end the calls first.
	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "3s")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, "media: {timeout: 300s}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")
	before := s.metric(t, "sbc_calls_total", `result="session_expired"`)

	const n = 2
	srv := startSIPp(t, "ent", "uas_session_timer.xml", pbxArgs("-m", "2", "-timeout", "180s")...)
	waitUDPListen(t, "ent", pbxHost, 5060)
	start := time.Now()
	cl := startSIPp(t, "car", "uac_session_timer.xml", carrierArgs(sbcExt+":5060", "-m", "2", "-r", "1", "-s", "1000", "-timeout", "180s")...)
	cl.wait(t, 170*time.Second)
	took := time.Since(start)
	srv.wait(t, 10*time.Second)
	// 40 s to the refresh, then the SBC's 60 s (90 s less a third): the
	// scenario itself fails a BYE later than 88 s after the refresh.
	if took < 95*time.Second {
		t.Errorf("calls ended %v after they started, want about 100 s (refresh at 40 s, then 60 s)", took.Round(time.Second))
	}
	s.waitIdle(t)
	if got := s.metric(t, "sbc_calls_total", `result="session_expired"`) - before; got != n {
		t.Errorf("sbc_calls_total{result=session_expired} grew by %v, want %d", got, n)
	}
	if got := s.metric(t, "sbc_session_timer_total", `realm="carrier"`, `event="too_small"`); got != n {
		t.Errorf("422s counted %v, want %d", got, n)
	}
	car, ent := carWire.stop(t), entWire.stop(t)
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}
