package ha_test

// Real processes: two hanode voters (the SBC-node stand-in, holding a VIP
// while leader) and `sbcd -role witness`, each in its own network
// namespace on a private copy of the HA lab's control and external
// bridges (namespaces haraft-<rand>-*, created and deleted here), with an
// observer host on the external bridge that sees the VIP's ARP. kill -9,
// restart, partitions with nftables.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/ha"
	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/labns"
)

const (
	vipAddr  = "203.0.113.1"
	vipCIDR  = "203.0.113.1/24"
	observer = "203.0.113.10"
)

type netLab struct {
	t      *testing.T
	prefix string
}

func (l *netLab) ns(name string) string { return l.prefix + "-" + name }

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetLab builds: sw (bridges brctl, brext), a and b (ctl0 on brctl,
// ext0 on brext), w (ctl0), c (car0 on brext: the observer).
func newNetLab(t *testing.T) *netLab {
	var rb [2]byte
	_, _ = rand.Read(rb[:])
	l := &netLab{t: t, prefix: "haraft-" + hex.EncodeToString(rb[:])}
	names := []string{"sw", "a", "b", "w", "c"}
	t.Cleanup(func() {
		for _, n := range names {
			_ = exec.Command("ip", "netns", "del", l.ns(n)).Run()
		}
	})
	for _, n := range names {
		run(t, "ip", "netns", "add", l.ns(n))
		run(t, "ip", "-n", l.ns(n), "link", "set", "lo", "up")
	}
	for _, br := range []string{"brctl", "brext"} {
		run(t, "ip", "-n", l.ns("sw"), "link", "add", br, "type", "bridge")
		run(t, "ip", "-n", l.ns("sw"), "link", "set", br, "up")
	}
	plug := func(n, dev, br, cidr string) {
		port := n + "-" + dev
		run(t, "ip", "link", "add", dev, "netns", l.ns(n), "type", "veth", "peer", "name", port, "netns", l.ns("sw"))
		run(t, "ip", "-n", l.ns(n), "link", "set", dev, "up")
		run(t, "ip", "-n", l.ns("sw"), "link", "set", port, "master", br)
		run(t, "ip", "-n", l.ns("sw"), "link", "set", port, "up")
		run(t, "ip", "-n", l.ns(n), "addr", "add", cidr, "dev", dev)
	}
	plug("a", "ctl0", "brctl", "192.0.2.2/24")
	plug("a", "ext0", "brext", "203.0.113.2/24")
	plug("b", "ctl0", "brctl", "192.0.2.3/24")
	plug("b", "ext0", "brext", "203.0.113.3/24")
	plug("w", "ctl0", "brctl", "192.0.2.4/24")
	plug("c", "car0", "brext", observer+"/24")
	return l
}

// mac is the Ethernet address of dev in namespace n.
func (l *netLab) mac(n, dev string) string {
	f := strings.Fields(run(l.t, "ip", "-n", l.ns(n), "-br", "link", "show", dev))
	return f[2]
}

// observedMAC is the observer's ARP entry for the VIP ("" if none).
func (l *netLab) observedMAC() string {
	out, _ := exec.Command("ip", "-n", l.ns("c"), "neigh", "show", vipAddr, "dev", "car0").Output()
	f := strings.Fields(string(out))
	for i, x := range f {
		if x == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func (l *netLab) pingVIP() bool {
	return exec.Command("ip", "netns", "exec", l.ns("c"), "ping", "-c1", "-W1", vipAddr).Run() == nil
}

// cut drops traffic between namespace n and the given control addresses
// (nftables in n, both directions).
func (l *netLab) cut(n string, addrs ...string) {
	set := strings.Join(addrs, ", ")
	rules := fmt.Sprintf(`table inet haraft {
  chain in { type filter hook input priority 0; ip saddr { %s } drop; }
  chain out { type filter hook output priority 0; ip daddr { %s } drop; }
}
`, set, set)
	cmd := exec.Command("ip", "netns", "exec", l.ns(n), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft in %s: %v\n%s", n, err, out)
	}
}

func (l *netLab) heal(n string) {
	run(l.t, "ip", "netns", "exec", l.ns(n), "nft", "delete", "table", "inet", "haraft")
}

// dialIn dials from inside namespace ns (the socket keeps its namespace).
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("setns %s: %w", ns, err)
		}
		c, derr := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine.
			if c != nil {
				c.Close()
			}
			return nil, fmt.Errorf("setns back: %w", err)
		}
		runtime.UnlockOSThread()
		return c, derr
	}
}

// proc is one node process.
type proc struct {
	t    *testing.T
	name string // a, b, w
	ns   string
	args []string
	url  string
	http *http.Client
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	p.log.WriteString("---- start\n")
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", p.ns}, p.args...)...)
	w := &lockedWriter{mu: &p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
}

// kill9 is the crash: SIGKILL (ip netns exec execs the node: same PID).
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill9()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) get(path string) ([]byte, error) {
	res, err := p.http.Get(p.url + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %s: %s", path, res.Status, b)
	}
	return b, err
}

func (p *proc) status() (ha.Status, error) {
	path := "/status"
	if p.name == "w" {
		path = "/api/v1/ha"
	}
	var s ha.Status
	b, err := p.get(path)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (p *proc) intGet(path string) int {
	b, err := p.get(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

type fillResult struct {
	N          int     `json:"n"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	LogEntries uint64  `json:"log_entries"`
}

func (p *proc) fill(prefix string, n, conc, size int, mode string) fillResult {
	p.t.Helper()
	res, err := p.http.Post(fmt.Sprintf("%s/fill?prefix=%s&n=%d&conc=%d&size=%d&mode=%s", p.url, prefix, n, conc, size, mode), "", nil)
	if err != nil {
		p.t.Fatalf("fill on %s: %v", p.name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		p.t.Fatalf("fill on %s: %s: %s", p.name, res.Status, b)
	}
	var r fillResult
	if err := json.Unmarshal(b, &r); err != nil {
		p.t.Fatal(err)
	}
	return r
}

type cluster struct {
	t      *testing.T
	sbcctl string
	lab    *netLab
	procs  map[string]*proc
}

func buildBinaries(t *testing.T) (hanode, sbcd, sbcctl string) {
	dir := t.TempDir()
	hanode, sbcd, sbcctl = filepath.Join(dir, "hanode"), filepath.Join(dir, "sbcd"), filepath.Join(dir, "sbcctl")
	for out, pkg := range map[string]string{hanode: "../internal/hanode", sbcd: "../cmd/sbcd", sbcctl: "../cmd/sbcctl"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return hanode, sbcd, sbcctl
}

func newCluster(t *testing.T) *cluster {
	hanode, sbcd, sbcctl := buildBinaries(t)
	lab := newNetLab(t)
	c := &cluster{t: t, sbcctl: sbcctl, lab: lab, procs: map[string]*proc{}}
	peers := "a=192.0.2.2:7000,b=192.0.2.3:7000,w=192.0.2.4:7000"
	data := t.TempDir()
	for _, id := range []string{"a", "b"} {
		c.procs[id] = &proc{name: id, args: []string{hanode, "-id", id, "-data", filepath.Join(data, id), "-peers", peers,
			"-vip", "ext0=" + vipCIDR, "-http", "127.0.0.1:9000", "-trailing-logs", "32", "-wal-segment", "131072"}, url: "http://127.0.0.1:9000"}
	}
	wcfg := filepath.Join(data, "witness.yaml")
	y := fmt.Sprintf(`ha:
  node_id: w
  bind: 192.0.2.4:7000
  data_dir: %s
  peers:
    - {id: a, addr: 192.0.2.2:7000}
    - {id: b, addr: 192.0.2.3:7000}
    - {id: w, addr: 192.0.2.4:7000}
admin: {listen: "127.0.0.1:8080"}
`, filepath.Join(data, "w"))
	if err := os.WriteFile(wcfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	c.procs["w"] = &proc{name: "w", args: []string{sbcd, "-role", "witness", "-config", wcfg}, url: "http://127.0.0.1:8080"}
	for id, p := range c.procs {
		p.t, p.ns, p.log = t, lab.ns(id), &bytes.Buffer{}
		p.http = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dialIn(p.ns), DisableKeepAlives: true}}
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if t.Failed() && os.Getenv("HA_TEST_STACKS") != "" && p.cmd != nil {
				_ = p.cmd.Process.Signal(syscall.SIGQUIT)
				time.Sleep(500 * time.Millisecond)
			}
			p.stop()
		}
		if t.Failed() {
			for id, p := range c.procs {
				p.mu.Lock()
				t.Logf("==== log of %s\n%s", id, lastLines(p.log.String(), logLines()))
				p.mu.Unlock()
			}
		}
	})
	for _, p := range c.procs {
		p.start()
	}
	return c
}

func logLines() int {
	if n, err := strconv.Atoi(os.Getenv("HA_TEST_LOG_LINES")); err == nil {
		return n
	}
	return 80
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// leader waits for an effective leader among a and b and returns its name.
func (c *cluster) leader(timeout time.Duration) string {
	c.t.Helper()
	var got string
	c.waitFor("an SBC-node leader", timeout, func() bool {
		got = ""
		for _, id := range []string{"a", "b"} {
			if s, err := c.procs[id].status(); err == nil && s.Role == "leader" {
				got = id
			}
		}
		return got != ""
	})
	return got
}

func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func other(id string) string {
	if id == "a" {
		return "b"
	}
	return "a"
}

var ctlAddr = map[string]string{"a": "192.0.2.2", "b": "192.0.2.3", "w": "192.0.2.4"}

// vipHolders is which of a and b have the VIP on ext0 now.
func (c *cluster) vipHolders() []string {
	var h []string
	for _, id := range []string{"a", "b"} {
		out, _ := exec.Command("ip", "-n", c.lab.ns(id), "-br", "addr", "show", "ext0").Output()
		if strings.Contains(string(out), vipAddr+"/") {
			h = append(h, id)
		}
	}
	return h
}

// watchHolders records every VIP change on a and b (ip monitor address,
// kernel timestamps) while during runs, and returns the spans in which
// both held the VIP and those in which neither did.
func (c *cluster) watchHolders(during func()) (two, none []labns.Span) {
	c.t.Helper()
	m, err := labns.MonitorAddrs(c.lab.ns("a"), c.lab.ns("b"))
	if err != nil {
		c.t.Fatal(err)
	}
	during()
	ev := m.Stop()
	return m.Overlaps(ev, vipAddr), m.Empty(ev, vipAddr)
}

// spans prints spans of a timeline for a failure message.
func spans(s []labns.Span) string {
	var b strings.Builder
	for _, sp := range s {
		to := "the end"
		if !sp.To.IsZero() {
			to = sp.To.Format("15:04:05.000000")
		}
		from := "the start"
		if !sp.From.IsZero() {
			from = sp.From.Format("15:04:05.000000")
		}
		fmt.Fprintf(&b, "[%s to %s: %v] ", from, to, sp.Holders)
	}
	return b.String()
}

func needPrivileged(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: multi-process raft test skipped")
	}
	ci.Root(t, "network namespaces, nftables, netlink")
	ci.Require(t, "ip", "nft", "ping", "go")
	// Its namespaces are its own, but its timings (elections, leases) must
	// not share the two cores with a lab package's sbcd processes.
	unlock, err := labns.Lock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
}

type failover struct {
	elect, vip, arp time.Duration
	witnessLed      bool
}

func summary(fos []failover) string {
	pick := func(f func(failover) time.Duration) string {
		v := make([]time.Duration, len(fos))
		for i, fo := range fos {
			v[i] = f(fo)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return fmt.Sprintf("%5s %5s %5s", v[0].Round(time.Millisecond), v[len(v)/2].Round(time.Millisecond), v[len(v)-1].Round(time.Millisecond))
	}
	witness := 0
	for _, fo := range fos {
		if fo.witnessLed {
			witness++
		}
	}
	return fmt.Sprintf("\nafter kill -9 of the leader, %d rounds    min / median / max\n"+
		"  survivor is effective leader        %s\n"+
		"  survivor holds the VIP              %s\n"+
		"  observer's ARP entry moved (GARP)   %s\n"+
		"  rounds where the witness led first  %d\n",
		len(fos), pick(func(f failover) time.Duration { return f.elect }), pick(func(f failover) time.Duration { return f.vip }),
		pick(func(f failover) time.Duration { return f.arp }), witness)
}

// TestPrivilegedRaftProcesses: kill -9 the leader twice (failover and
// back), restart rejoins and catches up, data intact, the VIP and the
// observer's ARP entry follow the leader; then partitions.
func TestPrivilegedRaftProcesses(t *testing.T) {
	needPrivileged(t)
	c := newCluster(t)
	lead := c.leader(15 * time.Second)
	c.waitFor("the leader to hold the VIP", 3*time.Second, func() bool { h := c.vipHolders(); return len(h) == 1 && h[0] == lead })
	if !c.lab.pingVIP() {
		t.Fatal("observer cannot reach the VIP")
	}
	if m := c.lab.observedMAC(); m != c.lab.mac(lead, "ext0") {
		t.Fatalf("observer has VIP at %s, leader %s is %s", m, lead, c.lab.mac(lead, "ext0"))
	}
	f := c.procs[lead].fill("r0", 1000, 16, 512, "batched")
	t.Logf("initial fill: %+v", f)
	want := 1000
	for _, id := range []string{"a", "b", "w"} {
		c.waitFor(id+" to replicate", 5*time.Second, func() bool {
			s, err := c.procs[id].status()
			return err == nil && s.Records == want
		})
	}
	w, _ := c.procs["w"].status()
	if w.Role != "witness" {
		t.Fatalf("witness role %q", w.Role)
	}
	// sbcctl ha against the witness's admin API.
	out := run(t, "ip", "netns", "exec", c.lab.ns("w"), c.sbcctl, "ha")
	if !strings.Contains(out, "node w  role witness") || !strings.Contains(out, "records 1000") || !strings.Contains(out, "leader "+lead) {
		t.Fatalf("sbcctl ha:\n%s", out)
	}
	t.Logf("sbcctl ha on the witness:\n%s", out)
	if m := run(t, "ip", "netns", "exec", c.lab.ns("w"), c.sbcctl, "metrics"); !strings.Contains(m, "ha_applied_index") || !strings.Contains(m, "ha_replication_lag_entries") {
		t.Fatalf("witness metrics lack ha_*:\n%s", m)
	}

	var fos []failover
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("HA_KILL_ROUNDS")); err == nil && v > 0 {
		rounds = v // for measurement: HA_KILL_ROUNDS=10
	}
	for round := 1; round <= rounds; round++ {
		old := lead
		surv := other(old)
		oldMAC, newMAC := c.lab.mac(old, "ext0"), c.lab.mac(surv, "ext0")
		if c.lab.observedMAC() != oldMAC {
			t.Fatalf("round %d: observer's VIP entry is not the leader's before the kill", round)
		}
		var fo failover
		var sawWitness bool
		kill := time.Now()
		c.procs[old].kill9()
		fo.elect = c.waitFor("survivor to lead", 10*time.Second, func() bool {
			if s, err := c.procs["w"].status(); err == nil && s.RaftState == "Leader" {
				sawWitness = true
			}
			s, err := c.procs[surv].status()
			return err == nil && s.Role == "leader"
		})
		fo.vip = c.waitFor("survivor to hold the VIP", 3*time.Second, func() bool { return c.procs[surv].intGet("/vips") == 1 }) + fo.elect
		c.waitFor("observer's ARP entry to move (gratuitous ARP)", 3*time.Second, func() bool { return c.lab.observedMAC() == newMAC })
		fo.arp = time.Since(kill)
		fo.witnessLed = sawWitness
		fos = append(fos, fo)
		t.Logf("round %d: killed %s; %s leader after %s, VIP after %s, observer ARP moved after %s (witness led in between: %v)",
			round, old, surv, fo.elect.Round(time.Millisecond), fo.vip.Round(time.Millisecond), fo.arp.Round(time.Millisecond), sawWitness)
		if !c.lab.pingVIP() {
			t.Fatalf("round %d: observer cannot reach the VIP on the new leader", round)
		}
		// Data intact on the new leader.
		if n := c.procs[surv].intGet("/len"); n != want {
			t.Fatalf("round %d: new leader has %d records, want %d", round, n, want)
		}
		if v, err := c.procs[surv].get("/get?key=r0/999"); err != nil || !bytes.HasPrefix(v, []byte("r0/999")) {
			t.Fatalf("round %d: r0/999 on new leader: %q %v", round, v, err)
		}
		// Writes go on with one voter down.
		prefix := fmt.Sprintf("r%d", round)
		c.procs[surv].fill(prefix, 500, 16, 512, "batched")
		want += 500
		// Even rounds: snapshot and compact the log, so the restarted node
		// must catch up by snapshot install over TCP; odd: from the log.
		viaSnapshot := round%2 == 0
		if viaSnapshot {
			res, err := c.procs[surv].http.Post(c.procs[surv].url+"/snapshot", "", nil)
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("snapshot on %s: %v %v", surv, err, res)
			}
			res.Body.Close()
		}
		var oldSnap uint64
		if s, err := c.procs[old].status(); err == nil {
			oldSnap = s.SnapshotIndex
		}
		// The killed node restarts (same data dir) and rejoins as
		// standby: it catches up, holds no VIP, does not take over.
		c.procs[old].start()
		var rejoined ha.Status
		deadline := time.Now().Add(15 * time.Second)
		for {
			s, err := c.procs[old].status()
			rejoined = s
			if err == nil && s.Role == "follower" && s.Records == want && s.Leader == surv &&
				(!viaSnapshot || s.SnapshotIndex > oldSnap) {
				break
			}
			if time.Now().After(deadline) {
				ls, _ := c.procs[surv].status()
				t.Fatalf("round %d: %s did not rejoin and catch up (want %d records): %+v\nleader: %+v", round, old, want, rejoined, ls)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("round %d: %s caught up (snapshot index %d, via snapshot: %v)", round, old, rejoined.SnapshotIndex, viaSnapshot)
		if h := c.vipHolders(); len(h) != 1 || h[0] != surv {
			t.Fatalf("round %d: VIP holders after rejoin %v, want [%s]", round, h, surv)
		}
		if s, _ := c.procs[surv].status(); s.Role != "leader" {
			t.Fatalf("round %d: rejoin disturbed the leader: %+v", round, s)
		}
		lead = surv
	}
	t.Log(summary(fos))

	// Partition A<->B only: the witness still reaches both. Exactly one
	// node keeps the VIP the whole time.
	c.lab.cut(lead, ctlAddr[other(lead)])
	two, none := c.watchHolders(func() { time.Sleep(3 * time.Second) }) // the window watched
	if len(two) > 0 || len(none) > 0 {
		t.Fatalf("A<->B cut: both held the VIP %s; neither %s", spans(two), spans(none))
	}
	if h := c.vipHolders(); len(h) != 1 || h[0] != lead {
		t.Fatalf("A<->B cut: holders %v, want the leader %s", h, lead)
	}
	c.procs[lead].fill("cut", 100, 8, 256, "batched")
	want += 100
	c.lab.heal(lead)
	c.waitFor("standby to catch up after the cut heals", 10*time.Second, func() bool {
		s, err := c.procs[other(lead)].status()
		return err == nil && s.Records == want
	})
	t.Logf("A<->B cut: %s kept the VIP without a change over 3s", lead)

	// Leader cut off from everyone: it must drop the VIP at once (lease),
	// the other side takes over; never two holders.
	old := lead
	surv := other(old)
	cut := time.Now()
	c.lab.cut(old, ctlAddr[surv], ctlAddr["w"])
	var dropped, taken time.Duration
	m, err := labns.MonitorAddrs(c.lab.ns("a"), c.lab.ns("b"))
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("old leader to drop and survivor to take the VIP", 10*time.Second, func() bool {
		h := c.vipHolders()
		has := map[string]bool{}
		for _, x := range h {
			has[x] = true
		}
		if dropped == 0 && !has[old] {
			dropped = time.Since(cut)
		}
		if taken == 0 && has[surv] {
			taken = time.Since(cut)
		}
		return dropped > 0 && taken > 0
	})
	ev := m.Stop()
	t.Logf("leader %s isolated: dropped the VIP after %s, %s took it after %s; timeline %s",
		old, dropped.Round(time.Millisecond), surv, taken.Round(time.Millisecond), spans(m.Timeline(ev, vipAddr)))
	if two := m.Overlaps(ev, vipAddr); len(two) > 0 {
		t.Fatalf("two nodes held the VIP at once: %s", spans(two))
	}
	if dropped > time.Second {
		t.Fatalf("isolated leader kept the VIP for %s (want < 1s)", dropped)
	}
	two, none = c.watchHolders(func() { time.Sleep(time.Second) }) // the window watched
	if h := c.vipHolders(); len(two) > 0 || len(none) > 0 || len(h) != 1 || h[0] != surv {
		t.Fatalf("after isolation: holders %v, want [%s]; both held it %s; neither %s", h, surv, spans(two), spans(none))
	}
	c.procs[surv].fill("iso", 100, 8, 256, "batched")
	want += 100
	c.lab.heal(old)
	c.waitFor("isolated node to rejoin as standby", 10*time.Second, func() bool {
		s, err := c.procs[old].status()
		return err == nil && s.Role == "follower" && s.Records == want
	})
	if h := c.vipHolders(); len(h) != 1 || h[0] != surv {
		t.Fatalf("after heal: holders %v, want [%s]", h, surv)
	}
	if !c.lab.pingVIP() || c.lab.observedMAC() != c.lab.mac(surv, "ext0") {
		t.Fatal("observer does not reach the VIP at the leader after heal")
	}
}

// cpuTicks is the user+system CPU time of a process in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start after ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// TestPrivilegedPutThroughput: Put latency, throughput and CPU over real
// TCP and a real WAL, batched (the batcher) beside unbatched (one log
// entry per put), interleaved over three rounds in one run (the machine
// is shared and noisy): medians per mode.
// A measurement, not a CI check (make bench-raft sets HA_BENCH=1):
// batching's coalescing is checked by TestBatchingCoalesces.
func TestPrivilegedPutThroughput(t *testing.T) {
	needPrivileged(t)
	if os.Getenv("HA_BENCH") == "" {
		t.Skip("measurement: set HA_BENCH=1 (make bench-raft)")
	}
	c := newCluster(t)
	lead := c.leader(15 * time.Second)
	p := c.procs[lead]
	const hz = 100 // USER_HZ
	type key struct {
		mode string
		conc int
	}
	type sample struct {
		r     fillResult
		cpuUS float64 // CPU of all three processes per put, µs
	}
	// Idle cost: heartbeats, lease checks.
	idle := map[string]int64{}
	for id, q := range c.procs {
		idle[id] = cpuTicks(q.cmd.Process.Pid)
	}
	time.Sleep(3 * time.Second)
	var idleLine strings.Builder
	for _, id := range []string{"a", "b", "w"} {
		fmt.Fprintf(&idleLine, " %s %.1f%%", id, float64(cpuTicks(c.procs[id].cmd.Process.Pid)-idle[id])/hz/3*100)
	}
	res := map[key][]sample{}
	loads := []struct{ conc, n int }{{1, 200}, {32, 2000}, {128, 4000}}
	for round := 0; round < 3; round++ {
		for _, ld := range loads {
			for _, mode := range []string{"unbatched", "batched"} {
				var before int64
				for _, q := range c.procs {
					before += cpuTicks(q.cmd.Process.Pid)
				}
				r := p.fill(fmt.Sprintf("%s-%d-%d", mode, ld.conc, round), ld.n, ld.conc, 1024, mode)
				var after int64
				for _, q := range c.procs {
					after += cpuTicks(q.cmd.Process.Pid)
				}
				k := key{mode, ld.conc}
				res[k] = append(res[k], sample{r, float64(after-before) / hz * 1e6 / float64(r.N)})
			}
		}
	}
	median := func(ss []sample, f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nidle CPU of one core (leader %s):%s\n", lead, idleLine.String())
	fmt.Fprintf(&b, "1 KiB puts, median of 3 interleaved rounds; CPU = all three processes per put\n")
	fmt.Fprintf(&b, "%-10s %5s %7s %9s %8s %8s %9s %10s\n", "mode", "conc", "n", "puts/s", "p50 ms", "p99 ms", "entries", "CPU us/put")
	for _, ld := range loads {
		var tput [2]float64
		for i, mode := range []string{"unbatched", "batched"} {
			ss := res[key{mode, ld.conc}]
			tput[i] = median(ss, func(s sample) float64 { return s.r.PerSecond })
			fmt.Fprintf(&b, "%-10s %5d %7d %9.0f %8.2f %8.2f %9.0f %10.0f\n", mode, ld.conc, ld.n, tput[i],
				median(ss, func(s sample) float64 { return s.r.P50MS }), median(ss, func(s sample) float64 { return s.r.P99MS }),
				median(ss, func(s sample) float64 { return float64(s.r.LogEntries) }), median(ss, func(s sample) float64 { return s.cpuUS }))
		}
		fmt.Fprintf(&b, "conc %d: batched/unbatched throughput x%.2f\n", ld.conc, tput[1]/tput[0])
	}
	t.Log(b.String())
	// Batching must coalesce under concurrency.
	for _, s := range res[key{"batched", 128}] {
		if s.r.LogEntries*4 > uint64(s.r.N) {
			t.Fatalf("batched conc 128: %d puts in %d entries: not coalesced", s.r.N, s.r.LogEntries)
		}
	}
}
