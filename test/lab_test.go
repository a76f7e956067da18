// Package test holds the end-to-end tests: sbcd in the netns lab between
// real SIPp peers (carrier in namespace car, PBX in ent), wire captures, and
// hostile input. They need root (network namespaces); without it they skip
// and say why.
package test

import (
	"context"
	"encoding/json"
	"flag"
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

	"github.com/edgesbc/edgesbc/bpf"
	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/labns"
)

// Fixed lab addresses (docs/architecture.md, "The netns lab").
const (
	carrierHost = "203.0.113.10"
	sbcExt      = "203.0.113.1"
	sbcInt      = "198.51.100.1"
	pbxHost     = "198.51.100.10"
)

// labTools is every program the tests of this package run (benchmark-only
// ones, rtpengine, aside): checked once at the start so that a missing one
// is named instead of failing (or skipping) a test in the middle.
var labTools = []string{"ip", "go", "bash", "sipp", "tshark", "ethtool", "ping", "nsenter", "nft", "baresip", "svwar", "svmap"}

var (
	repoRoot string
	binDir   string
	labReady bool
	skipWhy  string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	if testing.Short() {
		skipWhy = "-short: lab tests skipped"
	} else {
		skipWhy = ci.Why(labTools...)
	}
	if skipWhy != "" {
		if ci.Fatal() {
			// CI runs every lab test: a lab that cannot come up is a failure.
			fmt.Println("FAIL: CI=true and the lab tests cannot run:", skipWhy)
			return 1
		}
		fmt.Println("lab tests skipped:", skipWhy)
		return m.Run()
	}
	// One lab per machine: runs of this package (a developer's and a
	// benchmark's, say) take turns instead of tearing down each other's
	// namespaces.
	unlock, err := labns.Lock()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer unlock()
	// The restart and counter tests read sbcd's pins in /sys/fs/bpf.
	if err := labns.MountBPFFS(); err != nil {
		fmt.Println("FAIL:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "edgesbc-e2e")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	for _, cmd := range []string{"sbcd", "sbcctl"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, cmd), "../cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Printf("build %s: %v\n%s", cmd, err, out)
			return 1
		}
	}
	if out, err := exec.Command("bash", "../scripts/lab.sh", "up").CombinedOutput(); err != nil {
		fmt.Printf("lab up: %v\n%s", err, out)
		return 1
	}
	labReady = true
	defer exec.Command("bash", "../scripts/lab.sh", "down").Run()
	// A new namespace may get the inode of a deleted one, and with it
	// that one's pinned BPF state: start clean.
	removeSBCPins()
	return m.Run()
}

func needLab(t *testing.T) {
	t.Helper()
	if !labReady {
		t.Skip(skipWhy)
	}
}

// sbcd is one sbcd process running in namespace sbc.
type sbcd struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan struct{}
}

// startSBCD runs sbcd in namespace sbc on the given config file (the lab
// config when empty) and waits until its admin API answers.
func startSBCD(t *testing.T, cfg string) *sbcd {
	t.Helper()
	return startSBCDWith(t, cfg, "ip", "netns", "exec", "sbc")
}

// startSBCDWith runs sbcd under a launcher that puts it in namespace sbc
// (ip netns exec, or nsenter, which keeps the machine's mount namespace).
func startSBCDWith(t *testing.T, cfg string, launcher ...string) *sbcd {
	t.Helper()
	return startSBCDExe(t, filepath.Join(binDir, "sbcd"), cfg, launcher...)
}

// startSBCDExe is startSBCDWith for a given sbcd binary (the benchmarks
// run an older build beside this one).
func startSBCDExe(t *testing.T, exe, cfg string, launcher ...string) *sbcd {
	t.Helper()
	if cfg == "" {
		cfg = filepath.Join(repoRoot, "configs", "lab.yaml")
	}
	s := &sbcd{t: t, log: &syncbuf.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(launcher[0], append(launcher[1:], exe, "-config", cfg)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.get("/healthz"); err == nil {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("sbcd exited at start:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sbcd admin API not up:\n%s", s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sbcd) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *sbcd) stop() {
	if !s.alive() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(8 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.t.Failed() {
		s.t.Logf("sbcd log:\n%s", tail(s.log.String(), 60))
	}
	removeSBCPins() // the next test's sbcd starts without this one's flows
}

// sbcPinDir is where sbcd in namespace sbc pins its BPF state (one
// directory per network namespace, named by its inode: bpf.NetnsPinDir).
func sbcPinDir() string {
	d, err := bpf.NetnsPinDir("/var/run/netns/sbc")
	if err != nil {
		return ""
	}
	return d
}

// removeSBCPins unpins sbcd's BPF state in namespace sbc: its links (which
// detaches the programs) and maps.
func removeSBCPins() {
	if d := sbcPinDir(); d != "" {
		_ = bpf.UnloadPinned(d) // detaches at once, not when bpffs lets go
		_ = os.RemoveAll(d)
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// get fetches an admin API path; the admin API listens on 127.0.0.1 inside
// namespace sbc, so the connection is made from in there.
func (s *sbcd) get(path string) ([]byte, error) {
	return s.getWithin(path, 3*time.Second)
}

// getWithin is get with its own timeout (a CPU profile takes its seconds).
func (s *sbcd) getWithin(path string, timeout time.Duration) ([]byte, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns("sbc", func() error {
			var err error
			c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout}
	res, err := cl.Get("http://127.0.0.1:8080" + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", path, res.Status)
	}
	return io.ReadAll(res.Body)
}

// metric returns the sum of a Prometheus counter's series whose labels
// contain every given label="value".
func (s *sbcd) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	b, err := s.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		fmt.Sscanf(rest[strings.LastIndexByte(rest, ' ')+1:], "%g", &v)
		sum += v
	}
	return sum
}

// series is every series of a metric, one "name{labels} value" each,
// for a log line.
func (s *sbcd) series(t *testing.T, name string) string {
	t.Helper()
	b, err := s.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			out = append(out, line)
		}
	}
	return strings.Join(out, ", ")
}

func (s *sbcd) activeCalls(t *testing.T) int {
	t.Helper()
	b, err := s.get("/api/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls []json.RawMessage
	if err := json.Unmarshal(b, &calls); err != nil {
		t.Fatal(err)
	}
	return len(calls)
}

func (s *sbcd) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.activeCalls(t) != 0 {
		if time.Now().After(deadline) {
			b, _ := s.get("/api/v1/calls")
			t.Fatalf("calls left active: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inNetns runs f on an OS thread switched into a lab namespace. Sockets f
// opens stay in that namespace after the thread switches back.
func inNetns(name string, f func() error) error { return labns.Do(name, f) }
