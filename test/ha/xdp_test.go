package ha_test

import (
	"encoding/json"
	"github.com/edgesbc/edgesbc/bpf"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// flowsInfo is the part of /api/v1/flows the tests read.
type flowsInfo struct {
	Datapath string `json:"datapath"`
	Flows    []struct {
		Local   string `json:"local"`
		Path    string `json:"path"`
		Packets uint64 `json:"packets"`
	} `json:"flows"`
}

func (n *node) flows() (flowsInfo, error) {
	var f flowsInfo
	b, err := n.get("/api/v1/flows")
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(b, &f)
}

// kernelFlows counts the node's flows forwarded by the kernel program
// (path xdp or tc) and their packets.
func (n *node) kernelFlows() (path string, flows int, packets uint64) {
	f, err := n.flows()
	if err != nil {
		return "", -1, 0
	}
	for _, fl := range f.Flows {
		if fl.Path == "xdp" || fl.Path == "tc" {
			flows++
			packets += fl.Packets
		}
	}
	return f.Datapath, flows, packets
}

// waitKernelFlows waits until the node's kernel forwards want flows and
// they have carried packets.
func waitKernelFlows(t testing.TB, n *node, want int, d time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		path, got, pk := n.kernelFlows()
		if got == want && pk > 0 && n.metric(`sbc_media_flows{path="`+path+`"}`) == float64(want) {
			return path, time.Since(start)
		}
		if time.Since(start) > d {
			b, _ := n.get("/api/v1/flows")
			t.Fatalf("node %s: %d kernel flows (%d packets) after %v, want %d: %s", n.name, got, pk, d, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pinnedFlows counts the entries of the flows map a node's sbcd pinned
// (bpf.NetnsPinDir + bpf.PinnedFlowsPath), read
// straight from bpffs: what the kernel program would forward, whatever
// the process says. A missing map is a failure, not 0 flows: a running
// node keeps its program and maps pinned (fencing empties the map).
func pinnedFlows(t testing.TB, n *node) int {
	t.Helper()
	dir, err := bpf.NetnsPinDir(filepath.Join("/run/netns", n.ns))
	if err != nil {
		t.Fatal(err)
	}
	p := bpf.PinnedFlowsPath(dir)
	m, err := ebpf.LoadPinnedMap(p, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("node %s pinned flows %s: %v", n.name, p, err)
	}
	defer m.Close()
	count := 0
	var k, v []byte
	it := m.Iterate()
	for it.Next(&k, &v) {
		count++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("node %s pinned flows: %v", n.name, err)
	}
	return count
}

// watchOffload empties the standby's neighbour table (the node taking
// over must resolve its next hops itself: the relay sends first, the
// kernel ARPs, then the flows go to the kernel) and reports when it first
// forwards want flows in the kernel (within 20 s).
func watchOffload(t testing.TB, stby *node, want int) <-chan time.Time {
	t.Helper()
	if out, err := exec.Command("ip", "-n", stby.ns, "neigh", "flush", "all").CombinedOutput(); err != nil {
		t.Fatalf("flush %s neighbours: %v %s", stby.name, err, out)
	}
	for _, h := range []string{carrierHost, pbxHost} {
		out, _ := exec.Command("ip", "-n", stby.ns, "neigh", "show", h).Output()
		if strings.Contains(string(out), "lladdr") {
			t.Fatalf("standby %s still has a neighbour entry for %s: %s", stby.name, h, out)
		}
	}
	ch := make(chan time.Time, 1)
	go func() {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, got, _ := stby.kernelFlows(); got == want {
				ch <- time.Now()
				return
			}
		}
		ch <- time.Time{}
	}()
	return ch
}

// The kernel fast path on an HA pair: the active node attaches the BPF
// program to the VIPs' interfaces and offloads the calls' RTP (path xdp
// or tc in /api/v1/flows and sbc_media_flows). After kill -9 of the
// active node, the new active node serves the restored calls' media at
// once (user space while its neighbour table fills) and offloads them
// again; the dead node's pinned flows stay behind, and when it restarts as
// standby it removes them before anything else (it must never forward for
// a VIP it does not hold). The second failover back offloads again. Last,
// the active node cut from the control network steps down and removes its
// flows while the other takes the calls over.
func TestFailoverXDP(t *testing.T) {
	c := newCluster(t, "")
	p := newPhones(t)
	first, _ := c.active(15 * time.Second)
	const n = 4
	var calls []*call
	for i := range n {
		calls = append(calls, p.establish(i))
	}
	want := 2 * n // RTP both ways per call (the phones send no RTCP)
	path, took := waitKernelFlows(t, first, want, 10*time.Second)
	t.Logf("node %s: %d flows on %s, %v after the calls were up", first.name, want, path, took.Round(time.Millisecond))

	_, stby := c.active(time.Second)
	offloaded := watchOffload(t, stby, want)
	k1 := failover(t, c, p, calls, n)
	t.Log(k1)
	checkKill(t, k1)
	act, _ := c.active(time.Second)
	victim := c.a
	if act == c.a {
		victim = c.b
	}
	path, _ = waitKernelFlows(t, act, want, 10*time.Second)
	t.Logf("node %s after takeover: %d flows on %s again, %v after the kill", act.name, want, path, (<-offloaded).Sub(k1.at).Round(time.Millisecond))
	if got := pinnedFlows(t, act); got != want {
		t.Errorf("node %s: %d pinned flows, want %d", act.name, got, want)
	}
	// kill -9 left the dead node's flows pinned (so it could keep media
	// up across a plain restart); as standby it must drop them.
	if got := pinnedFlows(t, victim); got != want {
		t.Errorf("dead node %s: %d stale pinned flows, want %d (kill -9 leaves them)", victim.name, got, want)
	}
	victim.start()
	victim.waitRecords(n, 10*time.Second)
	if st, err := victim.status(); err != nil || st.Role != "follower" {
		t.Fatalf("restarted node %s: role %q (%v), want follower", victim.name, st.Role, err)
	}
	if got := pinnedFlows(t, victim); got != 0 {
		t.Fatalf("restarted standby %s: %d pinned flows, want 0", victim.name, got)
	}
	if !strings.Contains(victim.log.String(), "standby at start") {
		t.Errorf("restarted standby %s did not log the fencing of its flows", victim.name)
	}
	for _, cl := range calls {
		if err := cl.flowing(2 * time.Second); err != nil {
			t.Fatalf("with the old node back as standby: %v", err)
		}
	}

	// Failover back: the restarted node offloads the calls in turn, and
	// the node it replaces (killed again) keeps nothing that forwards once
	// restarted.
	offloaded = watchOffload(t, victim, want)
	k2 := failover(t, c, p, calls, n+1)
	t.Log(k2)
	checkKill(t, k2)
	back, _ := c.active(time.Second)
	if back != victim {
		t.Fatalf("second failover went to %s", back.name)
	}
	path, _ = waitKernelFlows(t, back, want, 10*time.Second)
	t.Logf("node %s after takeover: %d flows on %s again, %v after the kill", back.name, want, path, (<-offloaded).Sub(k2.at).Round(time.Millisecond))

	// Fencing without a kill: the active node is cut from the control
	// network, loses its quorum and steps down (VIPs released, calls let
	// go); its kernel flows must go with them, while the other node takes
	// over and offloads the calls.
	other := c.a
	if back == c.a {
		other = c.b
	}
	other.start()
	other.waitRecords(n, 10*time.Second)
	offloaded = watchOffload(t, other, want)
	cut := time.Now()
	link := func(state string) error {
		return exec.Command("ip", "-n", back.ns, "link", "set", "ctl0", state).Run()
	}
	if err := link("down"); err != nil {
		t.Fatalf("cut %s: %v", back.name, err)
	}
	t.Cleanup(func() { _ = link("up") })
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, i := back.holdsVIPs()
		if st, err := back.status(); err == nil && st.Role != "leader" && !e && !i && pinnedFlows(t, back) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cut-off node %s: still active or %d pinned flows after 10 s", back.name, pinnedFlows(t, back))
		}
		time.Sleep(20 * time.Millisecond)
	}
	fenced := time.Since(cut)
	if a, _ := c.active(10 * time.Second); a != other {
		t.Fatalf("after the cut %s is active, want %s", a.name, other.name)
	}
	path, _ = waitKernelFlows(t, other, want, 10*time.Second)
	t.Logf("cut %s off: fenced with no kernel flow after %v; %s offloads %d flows on %s, %v after the cut",
		back.name, fenced.Round(time.Millisecond), other.name, want, path, (<-offloaded).Sub(cut).Round(time.Millisecond))
	for _, cl := range calls {
		if err := cl.flowing(2 * time.Second); err != nil {
			t.Fatalf("after the cut: %v", err)
		}
	}
	if err := link("up"); err != nil {
		t.Fatalf("heal %s: %v", back.name, err)
	}
	for i, cl := range calls {
		if err := p.bye(cl, i%2 == 0); err != nil {
			t.Fatalf("after the cut: %v", err)
		}
	}
	back = other
	waitCalls(t, back, 0)
	deadline = time.Now().Add(3 * time.Second)
	for pinnedFlows(t, back) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node %s: %d pinned flows after every call ended", back.name, pinnedFlows(t, back))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
