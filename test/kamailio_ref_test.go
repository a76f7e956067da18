package test

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// kamailioRef is Kamailio running one of test/kamailio/*.cfg in namespace
// sbc, in sbcd's place: the reference system of make bench-sip
// (stateful.cfg) and make bench-overload (overload.cfg, with pike).
type kamailioRef struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startKamailioRef runs the stateful record-routing proxy on the SBC's
// addresses with children UDP workers per socket and waits until it
// listens on both.
func startKamailioRef(t *testing.T, children int) *kamailioRef {
	t.Helper()
	return startKamailioCfg(t, "stateful.cfg", 512, "CHILDREN", strconv.Itoa(children))
}

// startKamailioCfg runs test/kamailio/<file>, its SBC_EXT, SBC_INT and
// PBX_HOST set to the lab's addresses and vars (name, value pairs) put in,
// with shmMiB of shared memory, and waits until it listens on both of the
// SBC's addresses.
func startKamailioCfg(t *testing.T, file string, shmMiB int, vars ...string) *kamailioRef {
	t.Helper()
	if _, err := exec.LookPath("kamailio"); err != nil {
		t.Fatal("kamailio not installed (scripts/bench-deps.sh installs it)")
	}
	tmpl, err := os.ReadFile(filepath.Join("kamailio", file))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(append([]string{"SBC_EXT", sbcExt, "SBC_INT", sbcInt, "PBX_HOST", pbxHost}, vars...)...).Replace(string(tmpl))
	dir := t.TempDir()
	p := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kamailioRef{out: &bytes.Buffer{}, done: make(chan error, 1)}
	// -DD: stay in the foreground (children still forked), -E: log to
	// stderr; -m: shared memory (the transactions of a few thousand calls
	// per second held for their wait timer), -M: 16 MiB private per
	// process; -Y: runtime files in the temp dir.
	k.cmd = exec.Command("ip", "netns", "exec", "sbc", "kamailio", "-DD", "-E", "-f", p, "-m", strconv.Itoa(shmMiB), "-M", "16", "-Y", dir)
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.done <- k.cmd.Wait() }()
	t.Cleanup(func() { k.stop(t) })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-k.done:
			k.done <- err
			t.Fatalf("kamailio exited: %v\n%s", err, tail(k.out.String(), 30))
		default:
		}
		a, _ := labns.UDPListening("sbc", netip.MustParseAddr(sbcExt), 5060)
		b, _ := labns.UDPListening("sbc", netip.MustParseAddr(sbcInt), 5060)
		if a && b {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("kamailio not listening after 10 s\n%s", tail(k.out.String(), 30))
		}
	}
}

func (k *kamailioRef) stop(t *testing.T) {
	select {
	case err := <-k.done:
		k.done <- err
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-k.done:
		k.done <- err
	case <-time.After(8 * time.Second):
		_ = k.cmd.Process.Kill()
		k.done <- <-k.done
		t.Errorf("kamailio did not stop on SIGTERM")
	}
}

// pids is Kamailio's main process and its children (its workers and
// timers are all forked by the main one).
func (k *kamailioRef) pids() []int {
	main := k.cmd.Process.Pid
	out := []int{main}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == main {
			continue
		}
		if f := procStat(pid); len(f) > 1 && f[1] == strconv.Itoa(main) {
			out = append(out, pid)
		}
	}
	return out
}

// cpuSeconds is the user and system CPU of every Kamailio process so far.
func (k *kamailioRef) cpuSeconds() float64 {
	var ticks float64
	for _, pid := range k.pids() {
		if f := procStat(pid); len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			ticks += u + s
		}
	}
	return ticks / 100 // USER_HZ is 100 on Linux
}

// pssMiB sums the proportional set size of Kamailio's processes (shared
// memory counted once overall, not once per worker).
func (k *kamailioRef) pssMiB() float64 {
	var kb float64
	for _, pid := range k.pids() {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				v, _ := strconv.ParseFloat(f[1], 64)
				kb += v
			}
		}
	}
	return kb / 1024
}

// procStat is /proc/pid/stat split into fields after the command name
// (field 0 is the state, 1 the parent's pid, 11 and 12 utime and stime).
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}
