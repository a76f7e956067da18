package ha_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// Fixed HA lab addresses (docs/architecture.md, "The netns lab"); the
// IPv6 tests switch them to the lab's IPv6 ones (useIPv6, ipv6_test.go).
var (
	carrierHost = "203.0.113.10"
	pbxHost     = "198.51.100.10"
	vipExt      = "203.0.113.1"
	vipInt      = "198.51.100.1"
)

// configRewrite, when set, rewrites every node's config as newCluster
// writes it (useIPv6 puts the realms, VIPs and Raft on IPv6).
var configRewrite func(string) string

// node is one sbcd process of the HA lab; it can be killed and started
// again on the same data directory.
type node struct {
	t       testing.TB
	name    string // a, b, wit
	ns      string
	witness bool
	cfg     string
	cmd     *exec.Cmd
	log     *syncbuf.Buffer
	logs    []string // logs of earlier runs
	done    chan struct{}
}

// cluster is the HA lab's three voters.
type cluster struct {
	t         testing.TB
	a, b, wit *node
}

var dataDirRe = regexp.MustCompile(`(?m)^(\s*data_dir:).*$`)

// newCluster writes the shipped HA configs with fresh data directories
// (extra is appended to the SBC nodes' configs) and starts all three.
func newCluster(t testing.TB, extra string) *cluster {
	t.Helper()
	needLab(t)
	dir := t.TempDir()
	mk := func(name, ns, file string, witness bool) *node {
		b, err := os.ReadFile(filepath.Join(repoRoot, "configs", file))
		if err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(dir, "data-"+name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		y := dataDirRe.ReplaceAllString(string(b), "${1} "+data)
		if configRewrite != nil {
			y = configRewrite(y)
		}
		if !witness {
			y += extra
		}
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		return &node{t: t, name: name, ns: ns, witness: witness, cfg: p}
	}
	c := &cluster{t: t, a: mk("a", ns("sbca"), "ha-a.yaml", false), b: mk("b", ns("sbcb"), "ha-b.yaml", false), wit: mk("wit", ns("wit"), "lab-ha-witness.yaml", true)}
	t.Cleanup(func() {
		for _, n := range c.nodes() {
			n.stop()
		}
		if d := os.Getenv("EDGESBC_HA_LOGDIR"); d != "" {
			for _, n := range c.nodes() {
				if n.log != nil {
					_ = os.WriteFile(filepath.Join(d, t.Name()+"-"+n.name+".log"), []byte(strings.Join(append(n.logs, n.log.String()), "\n--- restart ---\n")), 0o644)
				}
			}
		}
		if t.Failed() {
			for _, n := range c.nodes() {
				if n.log != nil {
					t.Logf("--- sbcd %s log (last run):\n%s", n.name, tail(n.log.String(), 40))
				}
			}
		}
	})
	for _, n := range c.nodes() {
		n.start()
	}
	return c
}

// stopAll stops every node (SIGTERM).
func (c *cluster) stopAll() {
	for _, n := range c.nodes() {
		n.stop()
	}
}

func (c *cluster) nodes() []*node { return []*node{c.a, c.b, c.wit} }

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func (n *node) start() {
	n.t.Helper()
	if n.log != nil {
		n.logs = append(n.logs, n.log.String())
	}
	args := []string{"netns", "exec", n.ns, filepath.Join(binDir, "sbcd"), "-config", n.cfg}
	if n.witness {
		args = append(args, "-role", "witness")
	}
	n.log = &syncbuf.Buffer{}
	n.done = make(chan struct{})
	n.cmd = exec.Command("ip", args...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := n.done
	cmd := n.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := n.get("/healthz"); err == nil {
			return
		}
		select {
		case <-done:
			n.t.Fatalf("sbcd %s exited at start:\n%s", n.name, n.log)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("sbcd %s admin API not up:\n%s", n.name, n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) alive() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// kill9 kills sbcd at once, as a crash would. `ip netns exec` execs sbcd,
// so the process is sbcd itself.
func (n *node) kill9() {
	if !n.alive() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

func (n *node) stop() {
	if !n.alive() {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(8 * time.Second):
		n.kill9()
	}
}

func (n *node) get(path string) ([]byte, error) {
	res, err := labns.HTTPClient(n.ns, 2*time.Second).Get("http://127.0.0.1:8080" + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", path, res.Status)
	}
	return b, err
}

// haStatus is the part of /api/v1/ha the tests read.
type haStatus struct {
	Role    string `json:"role"`
	Leader  string `json:"leader"`
	Records int    `json:"records"`
}

func (n *node) status() (haStatus, error) {
	var s haStatus
	b, err := n.get("/api/v1/ha")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (n *node) calls() int {
	b, err := n.get("/api/v1/calls")
	if err != nil {
		return -1
	}
	var calls []json.RawMessage
	if json.Unmarshal(b, &calls) != nil {
		return -1
	}
	return len(calls)
}

// holdsVIPs reports whether the node's namespace has the VIPs (both, one).
func (n *node) holdsVIPs() (ext, int bool) {
	out, _ := exec.Command("ip", "-n", n.ns, "-br", "addr", "show").Output()
	s := string(out)
	return strings.Contains(s, vipExt+"/"), strings.Contains(s, vipInt+"/")
}

// active waits until exactly one SBC node leads and holds both VIPs, and
// returns it and the other.
func (c *cluster) active(d time.Duration) (*node, *node) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var act []*node
		for _, n := range []*node{c.a, c.b} {
			if !n.alive() {
				continue
			}
			st, err := n.status()
			e, i := n.holdsVIPs()
			if err == nil && st.Role == "leader" && e && i {
				act = append(act, n)
			}
		}
		if len(act) == 1 {
			if act[0] == c.a {
				return c.a, c.b
			}
			return c.b, c.a
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no single active node after %v (%d)", d, len(act))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRecords waits until a node's store holds n records.
func (n *node) waitRecords(want int, d time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := n.status()
		if err == nil && st.Records == want {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("node %s: %d records (%v), want %d", n.name, st.Records, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric sums a Prometheus series of the node's /metrics (0 if absent).
func (n *node) metric(name string) float64 {
	b, err := n.get("/metrics")
	if err != nil {
		return 0
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		var v float64
		fmt.Sscanf(rest[strings.LastIndexByte(rest, ' ')+1:], "%g", &v)
		sum += v
	}
	return sum
}
