package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/syncbuf"
)

// TestBenchDashboard (SBC_BENCH_DASHBOARD=1; SBC_BENCH_WINDOW=60s,
// SBC_BENCH_CALLS=1000) measures what the dashboard's own polling costs
// sbcd: 1,000 calls held up by SIPp on loopback (media anchored in user
// space, no RTP, so sbcd is otherwise quiet), then sbcd's CPU over
// windows without a browser and with headless Chromium showing the page
// at its default interval, in turn, twice. The figure is the difference,
// in % of one core.
func TestBenchDashboard(t *testing.T) {
	if os.Getenv("SBC_BENCH_DASHBOARD") == "" {
		t.Skip("benchmark: run with SBC_BENCH_DASHBOARD=1 (make bench-dashboard)")
	}
	ci.Require(t, "sipp", "chromium")
	window := envDuration("SBC_BENCH_WINDOW", 60*time.Second)
	calls := 1000
	if n, err := strconv.Atoi(os.Getenv("SBC_BENCH_CALLS")); err == nil && n > 0 {
		calls = n
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	ports := freePorts(t, "udp", 4) // carrier, enterprise, uas, uac
	p := runSBCD(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: 30000-33999}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 34000-37999}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:%d"]}
media: {datapath: userspace, timeout: 1h}
admin: {listen: %q}
# SIPp's 1,000 calls come from 127.0.0.1: the carrier realm's known peer
# (no route into the realm names it), not a stranger held to 10 calls.
guard: {realms: [{realm: carrier, peers: ["127.0.0.1"]}]}
`, ports[0], ports[1], ports[2], admin), admin, false)

	scen, err := filepath.Abs("../../test/scenarios")
	if err != nil {
		t.Fatal(err)
	}
	uas := startProc(t, "sipp", "-sf", filepath.Join(scen, "uas.xml"), "-i", "127.0.0.1", "-p", strconv.Itoa(ports[2]), "-nostdin", "-max_recv_loops", "10000")
	uac := startProc(t, "sipp", "-sf", filepath.Join(scen, "uac.xml"), "-set", "hold_ms", "3600000",
		"-i", "127.0.0.1", "-p", strconv.Itoa(ports[3]), "-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-r", "200",
		"-nostdin", "-max_recv_loops", "10000", fmt.Sprintf("127.0.0.1:%d", ports[0]))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var list []api.Call
		_, body := p.get("/api/v1/calls")
		_ = json.Unmarshal([]byte(body), &list)
		up := 0
		for _, c := range list {
			if c.State == "confirmed" {
				up++
			}
		}
		if up == calls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls up after 60 s\nuac:\n%s\nuas:\n%s", up, calls, tailLines(uac.String(), 20), tailLines(uas.String(), 20))
		}
	}
	sizes := map[string]int{}
	for _, path := range []string{"/api/v1/calls", "/api/v1/flows", "/api/v1/history"} {
		_, body := p.get(path)
		sizes[path] = len(body)
	}
	time.Sleep(10 * time.Second) // setup's garbage collected, transactions lingered out

	pid := p.cmd.Process.Pid
	measure := func() float64 {
		before, start := cpuTicks(t, pid), time.Now()
		time.Sleep(window)
		return float64(cpuTicks(t, pid)-before) / 100 / time.Since(start).Seconds() * 100 // USER_HZ 100, in % of a core
	}
	var idle, polled []float64
	for range 2 {
		idle = append(idle, measure())
		browser := startProc(t, "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
			"--no-first-run", "--user-data-dir="+t.TempDir(), "--remote-debugging-port=0", "http://"+admin+"/")
		time.Sleep(3 * time.Second) // the page loaded and polling
		polled = append(polled, measure())
		browser.stop()
	}
	t.Logf("sbcd with %d calls up, %v windows, the page polling every 2 s (6 endpoints, history every 10 s)", calls, window)
	t.Logf("GET sizes: calls %d B, flows %d B, history %d B", sizes["/api/v1/calls"], sizes["/api/v1/flows"], sizes["/api/v1/history"])
	t.Logf("%-6s | %-12s | %-12s | %s", "round", "no browser", "dashboard", "cost")
	worst := 0.0
	for i := range idle {
		cost := polled[i] - idle[i]
		worst = max(worst, cost)
		t.Logf("%-6d | %10.2f%% | %10.2f%% | %+.2f%% of a core", i+1, idle[i], polled[i], cost)
	}
	fmt.Printf("dashboard polling with %d calls up: at most %+.2f%% of a core over sbcd without a browser\n", calls, worst)
	uac.stop()
	uas.stop()
}

// cpuTicks is the process's user plus system CPU time in clock ticks
// (/proc/PID/stat fields 14 and 15).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// proc is a helper process in its own process group, so stopping it
// stops its children too (Chromium's zygote and renderers).
type proc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) String() string { return p.out.String() }

// stop kills the process's group (by its id) and waits for the process.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
