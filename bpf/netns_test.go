package bpf

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNS is a private network namespace named bpf-<pid>-<n>-<tag>, deleted
// when the test ends (tubular's NewNetNS, by name so `ip` can reach it).
type testNS struct {
	name string
	h    netns.NsHandle
}

var nsSeq atomic.Int32

func newTestNS(t testing.TB, tag string) *testNS {
	t.Helper()
	name := fmt.Sprintf("bpf-%d-%d-%s", os.Getpid()%100000, nsSeq.Add(1), tag)
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	n := &testNS{name: name, h: h}
	n.ip(t, "link", "set", "lo", "up")
	return n
}

func sh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *testNS) ip(t testing.TB, args ...string) {
	t.Helper()
	sh(t, append([]string{"ip", "-n", n.name}, args...)...)
}

func (n *testNS) exec(t testing.TB, args ...string) {
	t.Helper()
	sh(t, append([]string{"ip", "netns", "exec", n.name}, args...)...)
}

// do runs f on a locked OS thread inside the namespace. Sockets and
// netlink handles made there stay in the namespace. The thread is
// discarded afterwards (never unlocked), so no goroutine inherits it.
func (n *testNS) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.h); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func (n *testNS) must(t testing.TB, f func() error) {
	t.Helper()
	if err := n.do(f); err != nil {
		t.Fatal(err)
	}
}

// link returns an interface's index and MAC inside the namespace.
func (n *testNS) link(t testing.TB, name string) (int, net.HardwareAddr) {
	t.Helper()
	var idx int
	var mac net.HardwareAddr
	n.must(t, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		idx, mac = l.Attrs().Index, l.Attrs().HardwareAddr
		return nil
	})
	return idx, mac
}

// vethPair connects dev1 in n1 with dev2 in n2, both up, with addresses.
func vethPair(t testing.TB, n1 *testNS, dev1, addr1 string, n2 *testNS, dev2, addr2 string) {
	t.Helper()
	sh(t, "ip", "link", "add", dev1, "netns", n1.name, "type", "veth", "peer", "name", dev2, "netns", n2.name)
	n1.ip(t, "addr", "add", addr1, "dev", dev1)
	n2.ip(t, "addr", "add", addr2, "dev", dev2)
	n1.ip(t, "link", "set", dev1, "up")
	n2.ip(t, "link", "set", dev2, "up")
}

// nicLike gives a host veth the lab's NIC-like settings (docs/architecture.md): full
// checksums on transmit, and GRO on (NAPI, so XDP redirects into it land)
// unless gro is false.
func (n *testNS) nicLike(t testing.TB, dev string, gro bool) {
	t.Helper()
	g := "off"
	if gro {
		g = "on"
	}
	n.exec(t, "ethtool", "-K", dev, "tx", "off", "gro", g)
}
