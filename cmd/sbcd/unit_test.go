package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/internal/ci"
)

// TestSystemdUnit: `make install` into a temporary prefix puts sbcd,
// sbcctl, a config and the unit there with the paths rewritten, and
// systemd-analyze verify accepts the installed unit (its ExecStart is the
// binary just installed). The unit is Type=notify (the READY=1 itself is
// TestNotifyReadyOnceSIPServed), restarts on failure and bounds sbcd's
// capabilities to the four it needs.
func TestSystemdUnit(t *testing.T) {
	if testing.Short() {
		t.Skip("make install builds both binaries")
	}
	ci.Require(t, "systemd-analyze", "make")
	root := t.TempDir()
	prefix, etc, units := filepath.Join(root, "usr"), filepath.Join(root, "etc"), filepath.Join(root, "systemd")
	cmd := exec.Command("make", "-C", "../..", "install", "PREFIX="+prefix, "ETC="+etc, "SYSTEMD_DIR="+units)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/sbcd", "usr/bin/sbcctl", "etc/sbcd.yaml", "systemd/sbcd.service"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("make install: %v", err)
		}
	}
	unit := filepath.Join(units, "sbcd.service")
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	u := string(b)
	for _, want := range []string{
		"Type=notify", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
		"ExecStart=" + prefix + "/bin/sbcd -config " + etc + "/sbcd.yaml",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_RAW",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("installed unit lacks %q:\n%s", want, u)
		}
	}
	if strings.Contains(u, "/usr/local/") {
		t.Errorf("installed unit still names /usr/local:\n%s", u)
	}
	out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The installed sbcd accepts the installed config, as ExecStartPre runs it.
	if out, err := exec.Command(filepath.Join(prefix, "bin", "sbcd"), "-check-config", filepath.Join(etc, "sbcd.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("installed sbcd -check-config: %v\n%s", err, out)
	}
}
