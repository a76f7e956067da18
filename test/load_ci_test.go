package test

import (
	"os"
	"testing"
	"time"
)

// TestLoadCI is the load test CI runs: 300 calls/s for 10 s (SDP, media
// anchored, BYE after 0.5 s) from SIPp through sbcd, and the same SIPp
// pair with no SBC in between in the same run as the reference. It fails
// when sbcd completes 30% fewer calls than the direct pair, or takes 30%
// longer to get through them: a regression that large is not the shared
// machine's noise. The figures are judged at the caller (SIPp's counts).
func TestLoadCI(t *testing.T) {
	needLab(t)
	const rate, step, hold = 300, 10 * time.Second, "500"
	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "2s")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(b, []byte("log: {level: warn}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	dirOK, dirFailed := sippStep(t, "sbc", []string{"-i", sbcExt, "-p", "5070"}, sbcExt+":5070", rate, step, hold)
	dirTook := time.Since(t0)

	s := startSBCD(t, cfg)
	t0 = time.Now()
	ok, failed := sippStep(t, "ent", pbxArgs(), sbcExt+":5060", rate, step, hold)
	took := time.Since(t0)
	s.stop()

	t.Logf("%d cps for %v: sbcd %d ok / %d failed in %v; direct %d ok / %d failed in %v",
		rate, step, ok, failed, took.Round(time.Millisecond), dirOK, dirFailed, dirTook.Round(time.Millisecond))
	if dirOK < rate*int(step.Seconds())*9/10 {
		t.Fatalf("the direct pair completed only %d calls: the lab cannot carry the reference load", dirOK)
	}
	if 10*ok < 7*dirOK {
		t.Errorf("sbcd completed %d calls, under 70%% of the direct pair's %d", ok, dirOK)
	}
	if 10*took > 13*dirTook {
		t.Errorf("sbcd took %v, over 1.3x the direct pair's %v", took.Round(time.Millisecond), dirTook.Round(time.Millisecond))
	}
}
