package test

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// sessionTimeScale is how much faster sbcd's session-timer clock runs in
// the session-timer lab test (EDGESBC_TEST_TIMESCALE).
const sessionTimeScale = 10

// Session timers (RFC 4028) with real SIPp peers: the caller's Session-
// Expires 60 gets 422 (Min-SE 90) and its retry with 90 is answered with
// refresher=uac; it refreshes once (UPDATE, answered by the SBC, not
// relayed) and then goes silent, and the SBC ends both legs with a Q.850
// Reason before the session expires. The callee's leg has its own timer
// (the realm's default 1800) and never sees the caller's. Both wires are
// captured and checked for the other side's hosts and identifiers.
//
// sbcd runs its session-timer clock sessionTimeScale times faster (the
// test hook EDGESBC_TEST_TIMESCALE, with EDGESBC_TEST_HOOKS=1): every
// value on the wire is the RFC's (90, Min-SE 90, 1800), and SIPp's waits
// are scaled to match, so the 105 s of real session time take about 13 s.
// SBC_LONG=1 (make test-long) runs it on the real clock.
func TestSessionTimerSilentCaller(t *testing.T) {
	needLab(t)
	k := sessionTimeScale
	if os.Getenv("SBC_LONG") != "" {
		k = 1
	}
	scaled := func(d time.Duration) time.Duration { return d / time.Duration(k) }
	ms := func(d time.Duration) string { return fmt.Sprint(scaled(d).Milliseconds()) }
	t.Setenv("EDGESBC_TEST_HOOKS", "1") // inherited by sbcd
	t.Setenv("EDGESBC_TEST_TIMESCALE", fmt.Sprint(k))
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
	sippTimeout := fmt.Sprintf("%ds", int(max(30*time.Second, scaled(180*time.Second)).Seconds()))
	// The callee's deadline for the BYE: 150 s of session time.
	srv := startSIPp(t, "ent", "uas_session_timer.xml", pbxArgs("-m", "2", "-timeout", sippTimeout, "-recv_timeout", ms(150*time.Second))...)
	waitUDPListen(t, "ent", pbxHost, 5060)
	start := time.Now()
	// The refresh 40 s after the answer; the BYE at most 88 s after the
	// refresh (the session expires at 90).
	cl := startSIPp(t, "car", "uac_session_timer.xml", carrierArgs(sbcExt+":5060", "-m", "2", "-r", "1", "-s", "1000",
		"-timeout", sippTimeout, "-set", "refresh_ms", ms(40*time.Second), "-recv_timeout", ms(88*time.Second))...)
	cl.wait(t, 20*time.Second+scaled(170*time.Second))
	took := time.Since(start)
	srv.wait(t, 10*time.Second)
	// 40 s to the refresh, then the SBC's 60 s (90 s less a third): the
	// scenario itself fails a BYE later than 88 s after the refresh.
	if took < scaled(95*time.Second) {
		t.Errorf("calls ended %v after they started, want about %v (refresh at 40 s, then 60 s, at 1/%d)", took.Round(time.Millisecond), scaled(100*time.Second), k)
	}
	t.Logf("both calls ended by the SBC %v after the first started (session clock at 1/%d)", took.Round(time.Millisecond), k)
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
