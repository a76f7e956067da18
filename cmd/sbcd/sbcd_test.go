package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"
)

// These tests run the real sbcd binary on loopback (user-space media, no
// root): bounded shutdown and the watchdog, through the stall test hooks
// (EDGESBC_TEST_HOOKS=1).

var sbcdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sbcd-test")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	sbcdBin = filepath.Join(dir, "sbcd")
	if out, err := exec.Command("go", "build", "-o", sbcdBin, ".").CombinedOutput(); err != nil {
		fmt.Printf("build sbcd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type sbcd struct {
	t     *testing.T
	cmd   *exec.Cmd
	admin string
	cfg   string // the config file, which a reload test rewrites
	token string // the admin token startSBCD configures ("" for none)
	sip   []int  // the carrier and enterprise realms' SIP ports
	out   *syncbuf.Buffer
	done  chan struct{}
	err   error // Wait's, once done is closed
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	return freePorts(t, network, 1)[0]
}

// freePorts is n distinct free ports: every socket stays open until all
// are picked, so the kernel cannot hand the same ephemeral port out twice
// (two realms on one port made sbcd refuse its config now and then).
func freePorts(t *testing.T, network string, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		if network == "udp" {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// testToken is the admin token startSBCD configures.
const testToken = "test-admin-token-0123456789"

// startSBCD runs sbcd on a loopback config with extra appended, the admin
// token testToken; hooks sets EDGESBC_TEST_HOOKS=1. It returns once
// /healthz answers.
func startSBCD(t *testing.T, extra string, hooks bool) *sbcd {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	sip := freePorts(t, "udp", 2)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: 40000-40999}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 41000-41999}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:9"]}
media: {datapath: userspace}
admin: {listen: %q, token: %q}
`, sip[0], sip[1], admin, testToken) + extra
	p := runSBCD(t, y, admin, hooks)
	p.sip = sip
	p.token = testToken
	return p
}

// runSBCD runs sbcd on config y whose admin API listens on admin; hooks
// sets EDGESBC_TEST_HOOKS=1. It returns once /healthz answers.
func runSBCD(t *testing.T, y, admin string, hooks bool, env ...string) *sbcd {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "sbcd.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &sbcd{t: t, admin: admin, cfg: cfg, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(sbcdBin, "-config", cfg)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "EDGESBC_TEST_HOOKS=") {
			p.cmd.Env = append(p.cmd.Env, e)
		}
	}
	if hooks {
		p.cmd.Env = append(p.cmd.Env, "EDGESBC_TEST_HOOKS=1")
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("sbcd output:\n%s", tailLines(p.out.String(), 60))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if code, _ := p.get("/healthz"); code == 200 {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("sbcd exited at start: %v\n%s", p.err, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sbcd admin API not up:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

var client = &http.Client{Timeout: 2 * time.Second}

func (p *sbcd) get(path string) (int, string) {
	res, err := client.Get("http://" + p.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// do sends an admin request with the bearer token tok ("" for none): the
// status and body.
func (p *sbcd) do(method, path, tok string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, "http://"+p.admin+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (p *sbcd) stall(component string, d time.Duration) int {
	p.t.Helper()
	code, _ := p.do(http.MethodPost, fmt.Sprintf("/debug/stall?component=%s&for=%s", component, d), p.token)
	return code
}

// term sends SIGTERM and waits up to limit for the exit: its status
// (-1: still running at limit) and how long it took.
func (p *sbcd) term(limit time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		return -1, time.Since(start)
	}
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0, took
	case errors.As(p.err, &ee):
		return ee.ExitCode(), took
	}
	p.t.Fatalf("wait: %v", p.err)
	return 0, took
}

// A healthy sbcd ends at SIGTERM at once with status 0.
func TestSIGTERMExitsCleanly(t *testing.T) {
	p := startSBCD(t, "shutdown_grace: 3s\n", false)
	code, took := p.term(5 * time.Second)
	if code != 0 || took > 2*time.Second {
		t.Fatalf("SIGTERM: status %d after %v, want 0 at once", code, took)
	}
	if strings.Contains(p.out.String(), "goroutine dump") {
		t.Error("a clean shutdown wrote a goroutine dump")
	}
}

// A shutdown that hangs (the test hook; then a relay worker stuck, which
// Relay.Close waits for) still ends within shutdown_grace plus a margin,
// with status 3 and a goroutine dump on stderr.
func TestSIGTERMBoundedWhenStuck(t *testing.T) {
	for _, component := range []string{"shutdown", "relay"} {
		t.Run(component, func(t *testing.T) {
			const grace = 2 * time.Second
			p := startSBCD(t, "shutdown_grace: 2s\n", true)
			if c := p.stall(component, time.Minute); c != 200 {
				t.Fatalf("stall hook: %d", c)
			}
			code, took := p.term(grace + 3*time.Second)
			if code != 3 || took < grace || took > grace+time.Second {
				t.Fatalf("SIGTERM with a stuck %s: status %d after %v, want 3 after %v", component, code, took, grace)
			}
			out := p.out.String()
			if !strings.Contains(out, "shutdown did not finish within its grace of 2s: goroutine dump") ||
				!strings.Contains(out, "goroutine 1 [") || !strings.Contains(out, "main.run(") {
				t.Errorf("no goroutine dump in the output:\n%s", tailLines(out, 30))
			}
		})
	}
}

// A relay worker blocked past the watchdog's bound turns /healthz 503
// naming the relay within the bound (plus a round), is counted and
// dumped; once the block ends /healthz is 200 again.
func TestWatchdogRelayStall(t *testing.T) {
	const bound, block = time.Second, 4 * time.Second
	p := startSBCD(t, "watchdog: {interval: 200ms, bound: 1s}\n", true)
	if c := p.stall("relay", block); c != 200 {
		t.Fatalf("stall hook: %d", c)
	}
	start := time.Now()
	var seen time.Duration
	for {
		code, body := p.get("/healthz")
		if code == 503 {
			if !strings.Contains(body, "relay") || !strings.Contains(body, "worker [0]") {
				t.Errorf("503 body %q does not name the relay worker", body)
			}
			seen = time.Since(start)
			break
		}
		if time.Since(start) > block {
			t.Fatalf("/healthz still %d %q %v into a %v worker block (bound %v)", code, body, time.Since(start), block, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("unhealthy %v after the block", seen)
	if seen > bound+time.Second {
		t.Errorf("unhealthy only after %v, bound %v (interval 200ms)", seen, bound)
	}
	if _, m := p.get("/metrics"); !strings.Contains(m, `sbc_watchdog_stalls_total{component="relay"} 1`) {
		t.Errorf("stall not counted:\n%s", grepLines(m, "sbc_watchdog"))
	}
	if !strings.Contains(p.out.String(), "watchdog: relay stalled: goroutine dump") {
		t.Error("no goroutine dump for the stall")
	}
	for {
		code, _ := p.get("/healthz")
		if code == 200 {
			break
		}
		if time.Since(start) > block+2*time.Second {
			t.Fatalf("/healthz still %d %v after a %v block", code, time.Since(start), block)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e := time.Since(start); e < block-100*time.Millisecond {
		t.Errorf("healthy again %v into a %v block", e, block)
	}
	if code, took := p.term(5 * time.Second); code != 0 {
		t.Errorf("SIGTERM after the stall: status %d after %v", code, took)
	}
}

// Without EDGESBC_TEST_HOOKS=1 there is no stall endpoint.
func TestStallHookNeedsEnv(t *testing.T) {
	p := startSBCD(t, "", false)
	if c := p.stall("relay", time.Minute); c != 404 && c != 405 {
		t.Fatalf("POST /debug/stall without the env: %d, want 404", c)
	}
	time.Sleep(1500 * time.Millisecond)
	if code, body := p.get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d %q", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
