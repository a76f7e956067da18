// Package firstcall runs the README's five-minute first call as written:
// sbcd exactly as `make run` starts it (the built binary, no config file,
// so the embedded loopback default) and the two SIPp commands of the
// fenced block under the README's firstcall marker. It needs no root and
// no lab; it binds the embedded config's fixed loopback ports (SIP
// 127.0.0.1:5060/5070/5080/5090, admin 127.0.0.1:8080, media
// 20000-29999), which no other loopback test in the repo uses.
package firstcall

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"
)

const (
	repo   = "../.."
	marker = "<!-- firstcall"
	// The test's whole budget; each process is killed when it runs out.
	budget = 2 * time.Minute
)

// firstCall holds the commands of the README's first call.
type firstCall struct {
	run, uas, uac []string
}

// readFirstCall finds the fenced block after the marker and splits it into
// its commands; comments after " #" are dropped.
func readFirstCall(t *testing.T) firstCall {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q marker before the first-call commands", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```")
	if start < 0 {
		t.Fatal("README.md: no fenced block after the firstcall marker")
	}
	s = s[start+3:]
	s = s[strings.Index(s, "\n")+1:]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatal("README.md: the firstcall block is not closed")
	}
	var fc firstCall
	for _, line := range strings.Split(s[:end], "\n") {
		if j := strings.Index(line, " #"); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.ContainsAny(line, `"'$|&;<>`):
			t.Fatalf("README.md firstcall: %q needs a shell; keep the commands plain", line)
		case f[0] == "make" && fc.run == nil:
			fc.run = f
		case f[0] == "sipp" && has(f, "-sn", "uas") && fc.uas == nil:
			fc.uas = f
		case f[0] == "sipp" && has(f, "-sn", "uac") && fc.uac == nil:
			fc.uac = f
		default:
			t.Fatalf("README.md firstcall: unexpected command %q", line)
		}
	}
	if strings.Join(fc.run, " ") != "make run" || fc.uas == nil || fc.uac == nil {
		t.Fatalf("README.md firstcall: want `make run`, a SIPp uas and a SIPp uac; got %q %q %q", fc.run, fc.uas, fc.uac)
	}
	for _, c := range [][]string{fc.uas, fc.uac} {
		if !has(c, "-m", "1") {
			t.Fatalf("README.md firstcall: %q must end after one call (-m 1)", strings.Join(c, " "))
		}
	}
	return fc
}

// has reports whether args holds flag followed by val.
func has(args []string, flag, val string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == val {
			return true
		}
	}
	return false
}

// checkMakeRun holds the Makefile to what this test does for `make run`:
// build, then $(BIN)/sbcd with no arguments.
func checkMakeRun(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^run:[^\n]*\n((?:\t[^\n]*\n)+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile has no run target")
	}
	if got := strings.TrimSpace(string(m[1])); got != "$(BIN)/sbcd" {
		t.Fatalf("Makefile run recipe is %q; this test runs the built sbcd with no arguments, as `$(BIN)/sbcd` did", got)
	}
	if !regexp.MustCompile(`(?m)^build:\n\t\$\(GO\) build -o \$\(BIN\)/sbcd \./cmd/sbcd$`).Match(b) {
		t.Fatal("Makefile build target no longer builds $(BIN)/sbcd from ./cmd/sbcd as this test does")
	}
}

// proc is one process the test started; its output is kept for failures.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan error
}

func start(t *testing.T, ctx context.Context, dir, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, args[0], args[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.done:
			p.done <- err
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: still running when the test's %v ran out", p.name, budget)
	}
}

func (p *proc) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// successful reads the "Successful call" total from SIPp's final screen.
func successful(out string) int {
	m := regexp.MustCompile(`Successful call\s*\|\s*\d+\s*\|\s*(\d+)`).FindAllStringSubmatch(out, -1)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

func TestFirstCall(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		// CI installs sipp (make test runs make deps): missing there is a failure.
		if os.Getenv("CI") != "" {
			t.Fatal("sipp not installed under CI (make deps installs it: apt sip-tester)")
		}
		t.Skip("sipp not installed (make deps installs it: apt sip-tester)")
	}
	fc := readFirstCall(t)
	checkMakeRun(t)
	uasPort := flagValue(t, fc.uas, "-p")
	uacPort := flagValue(t, fc.uac, "-p")
	for _, a := range []string{"127.0.0.1:5060", "127.0.0.1:5080", "127.0.0.1:" + uasPort, "127.0.0.1:" + uacPort} {
		if udpListening(t, a) {
			t.Fatalf("%s is already in use on this machine: the first call needs it", a)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "sbcd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, filepath.Join(repo, "cmd", "sbcd")).CombinedOutput(); err != nil {
		t.Fatalf("build sbcd: %v\n%s", err, out)
	}

	// make run: the built binary, no arguments, run from a directory with
	// no config file in it.
	sbcd := start(t, ctx, dir, "sbcd", bin)
	for !strings.Contains(sbcd.out.String(), `msg="sbcd running"`) {
		if sbcd.exited() || ctx.Err() != nil {
			t.Fatalf("sbcd did not come up:\n%s", sbcd.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The SIPp commands as written, bounded: -nostdin because no terminal
	// is attached, and a timeout that fails the run instead of hanging.
	bound := []string{"-nostdin", "-timeout", "30s", "-timeout_error"}
	uas := start(t, ctx, dir, "uas", append(append([]string{sipp}, fc.uas[1:]...), bound...)...)
	for !udpListening(t, "127.0.0.1:"+uasPort) {
		if uas.exited() || ctx.Err() != nil {
			t.Fatalf("SIPp uas did not come up:\n%s", uas.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	uac := start(t, ctx, dir, "uac", append(append([]string{sipp}, fc.uac[1:]...), bound...)...)

	if err := uac.wait(ctx); err != nil {
		t.Fatalf("SIPp uac (%s): %v\n%s\nsbcd:\n%s", strings.Join(fc.uac, " "), err, tail(uac.out.String()), sbcd.out.String())
	}
	if n := successful(uac.out.String()); n != 1 {
		t.Errorf("SIPp uac: %d successful calls on its final screen, want 1\n%s", n, tail(uac.out.String()))
	}
	if err := uas.wait(ctx); err != nil {
		t.Fatalf("SIPp uas (%s): %v\n%s\nsbcd:\n%s", strings.Join(fc.uas, " "), err, tail(uas.out.String()), sbcd.out.String())
	}
	if n := successful(uas.out.String()); n != 1 {
		t.Errorf("SIPp uas: %d successful calls on its final screen, want 1\n%s", n, tail(uas.out.String()))
	}

	// sbcd relayed the call and ended it on the caller's BYE.
	if err := sbcd.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := sbcd.wait(ctx); err != nil {
		t.Errorf("sbcd on SIGTERM: %v", err)
	}
	log := sbcd.out.String()
	if !regexp.MustCompile(`msg="call ended" realm=carrier .*result=bye_a route=carrier-to-pbx`).MatchString(log) {
		t.Errorf("sbcd did not log the call ended by the caller's BYE:\n%s", log)
	}
}

func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	t.Fatalf("%q has no %s", strings.Join(args, " "), flag)
	return ""
}

// udpListening reports whether a UDP socket is bound to addr (IPv4), read
// from /proc/net/udp so the check never takes the port itself.
func udpListening(t *testing.T, addr string) bool {
	t.Helper()
	ap, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := ap.IP.To4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port)
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 1 && fs[1] == want {
			return true
		}
	}
	return false
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
