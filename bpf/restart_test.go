package bpf

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperSpec is what the re-executed test binary opens and installs.
type helperSpec struct {
	PinDir string
	Flows  []struct {
		Key FlowKey
		Act FlowAction
	}
}

// TestHelperProcess is not a test: TestPrivilegedKill9 re-executes the test
// binary under `ip netns exec` (a private mount namespace, as sbcd runs in
// the lab) with BPF_TEST_HELPER set; this opens the datapath, installs the
// flows, says "ready" and waits to be killed (30 s at most).
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv("BPF_TEST_HELPER")
	if raw == "" {
		return // not a test of its own: TestPrivilegedKill9 runs it as a child process
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Println("bad spec:", err)
		os.Exit(2)
	}
	d, err := Open(Options{Interfaces: []string{"s0", "s1"}, PinDir: spec.PinDir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for _, f := range spec.Flows {
		if err := d.Put(f.Key, f.Act); err != nil {
			fmt.Println("put:", err)
			os.Exit(2)
		}
	}
	fmt.Println("ready", d.Path())
	time.Sleep(30 * time.Second)
	os.Exit(3)
}

// TestPrivilegedKill9: a process in a private mount namespace (`ip netns
// exec`, like sbcd in the lab) opens the datapath and is killed with
// SIGKILL; media keeps flowing, and the pins are in the machine's bpffs,
// where the next Open finds them.
func TestPrivilegedKill9(t *testing.T) {
	requirePrivileged(t)
	tp := newTopo(t, true)
	// The test runs in the machine's mount namespace: make sure its bpffs
	// is there for the helper to find (Open would mount it the same way).
	if _, err := resolvePinDir(tp.pinDir, tp.log); err != nil || !isBPFFS(bpffsRoot) {
		t.Fatalf("no bpffs at %s: %v", bpffsRoot, err)
	}
	a, b, se, si := tp.endpoints(t)

	spec := helperSpec{PinDir: tp.pinDir}
	spec.Flows = append(spec.Flows, struct {
		Key FlowKey
		Act FlowAction
	}{tp.fwd, tp.fwdAct}, struct {
		Key FlowKey
		Act FlowAction
	}{tp.rev, tp.revAct})
	js, _ := json.Marshal(spec)
	cmd := exec.Command("ip", "netns", "exec", tp.s.name, os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "BPF_TEST_HELPER="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "ready") {
				ready <- strings.Join(lines, "\n")
				return
			}
		}
		ready <- strings.Join(lines, "\n")
	}()
	select {
	case line := <-ready:
		if !strings.Contains(line, "\nready") && !strings.HasPrefix(line, "ready") {
			t.Fatalf("helper failed:\n%s", line)
		}
		t.Logf("helper: %s", line)
	case <-time.After(20 * time.Second):
		t.Fatal("helper not ready in 20s")
	}
	tp.stream(t, a, b, se, si, 0, 50)

	// kill -9 the whole process group (ip netns exec and the helper).
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	tp.stream(t, a, b, se, si, 50, 50)

	if _, err := os.Stat(layoutDir(tp.pinDir)); err != nil {
		t.Fatalf("pins not in the machine's bpffs: %v", err)
	}
	d := tp.open(t, "auto")
	defer d.Unload()
	if !strings.Contains(d.Reason(), "pinned") {
		t.Errorf("reopen: %s (%s), want the pinned links", d.Path(), d.Reason())
	}
	tp.checkStats(t, d, 100)
	if err := d.Delete(tp.fwd); err != nil {
		t.Fatal(err)
	}
	a.send(t, sExt, 0, 5)
	if got := se.recv(t, 5, time.Second); len(got.seqs) != 5 {
		t.Errorf("after Delete the SBC socket got %d of 5 packets", len(got.seqs))
	}
}
