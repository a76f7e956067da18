// Package ha_test runs the HA pair end to end: three real sbcd processes
// (node A in namespace sbca, node B in sbcb, the witness in wit) in the
// HA lab of docs/architecture.md, Go test phones with real RTP in car and ent, and
// kill -9 of the active node. Root only; it takes the lab lock and builds
// the lab with scripts/lab.sh ha-up.
package ha_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/labns"
)

var (
	// nsPrefix: EDGESBC_HA_NS_PREFIX runs against a private copy of the HA
	// lab whose namespaces carry this prefix, already up (a developer's
	// lab beside the shared one); no lab lock, no lab.sh then.
	nsPrefix = os.Getenv("EDGESBC_HA_NS_PREFIX")
	repoRoot string
	binDir   string
	labReady bool
	skipWhy  string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(filepath.Dir(wd))
	if testing.Short() {
		skipWhy = "-short: lab tests skipped"
	} else {
		skipWhy = ci.Why("ip", "go", "bash", "ethtool", "ping")
	}
	if skipWhy != "" {
		if ci.Fatal() {
			// CI runs the HA lab tests: a lab that cannot come up is a failure.
			fmt.Println("FAIL: CI=true and the HA lab tests cannot run:", skipWhy)
			return 1
		}
		fmt.Println("HA lab tests skipped:", skipWhy)
		return m.Run()
	}
	if nsPrefix == "" {
		unlock, err := labns.Lock()
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer unlock()
	}
	// The XDP failover tests count the flows sbcd pinned in /sys/fs/bpf.
	if err := labns.MountBPFFS(); err != nil {
		fmt.Println("FAIL:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "edgesbc-ha")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "sbcd"), filepath.Join(repoRoot, "cmd", "sbcd")).CombinedOutput(); err != nil {
		fmt.Printf("build sbcd: %v\n%s", err, out)
		return 1
	}
	if nsPrefix != "" {
		labReady = true
		return m.Run()
	}
	lab := filepath.Join(repoRoot, "scripts", "lab.sh")
	if out, err := exec.Command("bash", lab, "ha-up").CombinedOutput(); err != nil {
		fmt.Printf("lab ha-up: %v\n%s", err, out)
		return 1
	}
	labReady = true
	defer exec.Command("bash", lab, "ha-down").Run()
	return m.Run()
}

// ns is a lab namespace's name.
func ns(name string) string { return nsPrefix + name }

func needLab(t testing.TB) {
	t.Helper()
	if !labReady {
		t.Skip(skipWhy)
	}
}
