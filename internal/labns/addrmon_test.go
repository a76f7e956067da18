package labns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/ci"
)

func TestParseAddrEvent(t *testing.T) {
	ev, ok := parseAddrEvent("a", "[2026-12-03T18:45:18.506423] Deleted 3: v0    inet 203.0.113.99/32 scope global v0")
	if !ok || ev.Added || ev.Addr != "203.0.113.99" || ev.At.Nanosecond() != 506423000 {
		t.Fatalf("%+v %v", ev, ok)
	}
	if ev, ok := parseAddrEvent("a", "[2026-12-03T18:45:18.402730] 3: v0    inet 203.0.113.99/32 scope global v0"); !ok || !ev.Added {
		t.Fatalf("%+v %v", ev, ok)
	}
	if _, ok := parseAddrEvent("a", "       valid_lft forever preferred_lft forever"); ok {
		t.Fatal("continuation line parsed")
	}
}

// TestOverlaps: a handover that adds on b before deleting on a is an
// overlap of exactly that interval; one in order is none.
func TestOverlaps(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	m := &AddrMonitor{initial: map[string]map[string]bool{"a": {"203.0.113.1": true, "10.0.0.1": true}, "b": {"10.0.0.2": true}}}
	bad := []AddrEvent{{at(10), "b", "203.0.113.1", true}, {at(13), "a", "203.0.113.1", false}}
	o := m.Overlaps(bad, "203.0.113.1")
	if len(o) != 1 || o[0].To.Sub(o[0].From) != 3*time.Millisecond || len(o[0].Holders) != 2 {
		t.Fatalf("overlaps %+v", o)
	}
	good := []AddrEvent{{at(10), "a", "203.0.113.1", false}, {at(11), "b", "203.0.113.1", true}}
	if o := m.Overlaps(good, "203.0.113.1"); len(o) != 0 {
		t.Fatalf("overlaps %+v", o)
	}
	// The same handover leaves 1 ms with no holder at all.
	if e := m.Empty(good, "203.0.113.1"); len(e) != 1 || e[0].To.Sub(e[0].From) != time.Millisecond {
		t.Fatalf("empty spans %+v", e)
	}
	if e := m.Empty(bad, "203.0.113.1"); len(e) != 0 {
		t.Fatalf("empty spans %+v", e)
	}
}

// TestPrivilegedMonitorAddrs: in two scratch namespaces, an address added
// in b before it is deleted in a shows as one overlap.
func TestPrivilegedMonitorAddrs(t *testing.T) {
	ci.Root(t, "network namespaces")
	ci.Require(t, "ip")
	var nss []string
	for _, n := range []string{"a", "b"} {
		ns := fmt.Sprintf("labns-mon-%d-%s", os.Getpid(), n)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		_ = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
		nss = append(nss, ns)
	}
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ip("-n", nss[0], "addr", "add", "192.0.2.77/32", "dev", "lo")
	m, err := MonitorAddrs(nss...)
	if err != nil {
		t.Fatal(err)
	}
	ip("-n", nss[1], "addr", "add", "192.0.2.77/32", "dev", "lo")
	ip("-n", nss[0], "addr", "del", "192.0.2.77/32", "dev", "lo")
	for deadline := time.Now().Add(5 * time.Second); m.count() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d address events seen, want 2", m.count())
		}
	}
	ev := m.Stop()
	o := m.Overlaps(ev, "192.0.2.77")
	if len(o) != 1 || o[0].To.IsZero() {
		t.Fatalf("events %+v: overlaps %+v, want one that ended", ev, o)
	}
	t.Logf("overlap of %v seen", o[0].To.Sub(o[0].From))
}

// TestPrivilegedUDPListening: a socket bound in a scratch namespace is
// seen there, and is gone once closed.
func TestPrivilegedUDPListening(t *testing.T) {
	ci.Root(t, "network namespaces")
	ns := fmt.Sprintf("labns-udp-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	_ = exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	lo := netip.MustParseAddr("127.0.0.1")
	c, err := UDP(ns, "127.0.0.1", 5071)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := UDPListening(ns, lo, 5071); !ok || err != nil {
		t.Fatalf("bound socket not seen: %v %v", ok, err)
	}
	if ok, _ := UDPListening(ns, lo, 5072); ok {
		t.Fatal("port 5072 seen bound")
	}
	c.Close()
	if ok, _ := UDPListening(ns, lo, 5071); ok {
		t.Fatal("closed socket still seen")
	}
}

// udpListed finds IPv4 and IPv6 sockets in this process's own tables (on
// loopback: nothing of the lab needed).
func TestUDPListedBothFamilies(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		a := netip.MustParseAddr(ip)
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		table, err := os.ReadFile("/proc/self/net/" + udpTable(a))
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !udpListed(table, a, port) {
			t.Errorf("%s:%d not found in /proc/self/net/%s", ip, port, udpTable(a))
		}
	}
}
