package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadLabConfig is the lab config with the carrier->PBX route to
// pbxHost:port, carrier listening on carrierListen. No route leads into
// the carrier realm, so the carrier is named its peer (else SIPp is a
// stranger under the strict default limits, and banned at 20 calls/s).
func reloadLabConfig(carrierListen string, port int) string {
	return fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s", media: {ports: 30000-30999}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:%d"]}
guard: {realms: [{realm: carrier, peers: ["%s"]}]}
`, carrierListen, sbcInt, pbxHost, port, carrierHost)
}

// TestReloadRoutesUnderLoad: SIPp calls at a steady 20/s, each held 1.5 s,
// toward PBX A; mid-run the route is changed to PBX B and SIGHUP sent.
// Judged at the ends: SIPp's caller counts every call successful (none
// dropped, the ones up through the reload included), the two PBXs got
// every call between them and completed each with its BYE, and PBX A got
// no new call once the reload was in (new calls follow it at once). Then
// a file that moves the carrier's listen address is refused naming the
// key and the calls go on to PBX B.
func TestReloadRoutesUnderLoad(t *testing.T) {
	needLab(t)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	write := func(y string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadLabConfig(sbcExt+":5060", 5060))
	s := startSBCD(t, cfg)
	pbxA, pbxB := startPBXOn(t, 5060, "1000"), startPBXOn(t, 5070, "1000")

	const n, rate = 60, 20
	uac := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-s", "1000", "-m", fmt.Sprint(n), "-r", fmt.Sprint(rate), "-set", "hold_ms", "1500")...)
	// Reload with calls up: at 20/s held 1.5 s, about 30 once SIPp is 1.5 s in.
	upAtReload := 0
	for deadline := time.Now().Add(5 * time.Second); upAtReload < 20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls up 5 s into the run", upAtReload)
		}
		upAtReload = s.activeCalls(t)
	}
	write(reloadLabConfig(sbcExt+":5060", 5070))
	sent := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for s.metric(t, "sbc_config_reloads_total", `result="ok"`) != 1 {
		if time.Since(sent) > 3*time.Second {
			t.Fatalf("reload not applied:\n%s", tail(s.log.String(), 20))
		}
		time.Sleep(5 * time.Millisecond)
	}
	applied := time.Now()
	uac.wait(t, 30*time.Second)
	s.waitIdle(t)

	a, b := pbxA.stats(), pbxB.stats()
	t.Logf("%d calls at %d/s, %d up at the reload; PBX A got %d, PBX B %d; reload seen applied %v after SIGHUP",
		n, rate, upAtReload, a.LegitInvites, b.LegitInvites, applied.Sub(sent).Round(time.Millisecond))
	if got := uac.stat(t, "SuccessfulCall(C)"); got != n || uac.stat(t, "FailedCall(C)") != 0 {
		t.Errorf("caller: %d successful calls of %d, %d failed", got, n, uac.stat(t, "FailedCall(C)"))
	}
	if a.LegitInvites+b.LegitInvites != n || a.Completed != a.LegitInvites || b.Completed != b.LegitInvites {
		t.Errorf("PBXs: A %d calls %d completed, B %d calls %d completed; want %d between them, each ended by BYE",
			a.LegitInvites, a.Completed, b.LegitInvites, b.Completed, n)
	}
	if upAtReload == 0 || a.LegitInvites == 0 || b.LegitInvites == 0 {
		t.Fatalf("the reload did not fall under load: %d calls up, A %d, B %d", upAtReload, a.LegitInvites, b.LegitInvites)
	}
	// The metric poll sees the swap within a few ms; an INVITE routed just
	// before it may reach A a moment later.
	if late := a.LastLegit.Sub(applied); late > 50*time.Millisecond {
		t.Errorf("PBX A got a new call %v after the reload was applied", late.Round(time.Millisecond))
	}
	if b.FirstLegit.Before(sent) {
		t.Errorf("PBX B got a call before the reload was asked for")
	}

	// A restart-only change is refused and the reloaded config serves on.
	write(reloadLabConfig(sbcExt+":5061", 5060))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for s.metric(t, "sbc_config_reloads_total", `result="refused"`) != 1 {
		if time.Since(sent) > 10*time.Second {
			t.Fatal("restart-only change not refused")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, err := s.get("/api/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), "realms[carrier].listen") {
		t.Errorf("/api/v1/config does not name the refused key: %s", st)
	}
	uac2 := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-s", "1000", "-m", "5", "-r", "10")...)
	uac2.wait(t, 15*time.Second)
	if a2, b2 := pbxA.stats(), pbxB.stats(); a2.LegitInvites != a.LegitInvites || b2.LegitInvites != b.LegitInvites+5 {
		t.Errorf("after the refused reload: A %d new calls, B %d, want 0 and 5", a2.LegitInvites-a.LegitInvites, b2.LegitInvites-b.LegitInvites)
	}
}
