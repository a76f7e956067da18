package ha_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// useIPv6 switches the HA tests to the lab's IPv6 addresses for one test:
// the phones on the carrier and enterprise hosts' IPv6 addresses, the
// realms listening on the IPv6 VIPs (2001:db8:1::1, 2001:db8:2::1) that
// the active node takes, and Raft over the control network's IPv6
// addresses (2001:db8:c::2, ::3, ::4).
func useIPv6(t *testing.T) {
	t.Helper()
	old := []string{carrierHost, pbxHost, vipExt, vipInt}
	carrierHost, pbxHost, vipExt, vipInt = "2001:db8:1::10", "2001:db8:2::10", "2001:db8:1::1", "2001:db8:2::1"
	r := strings.NewReplacer(
		"listen: 203.0.113.1:5060", `listen: "[2001:db8:1::1]:5060"`,
		"listen: 198.51.100.1:5060", `listen: "[2001:db8:2::1]:5060"`,
		`"198.51.100.10:5060"`, `"[2001:db8:2::10]:5060"`,
		`"203.0.113.10:5060"`, `"[2001:db8:1::10]:5060"`,
		"address: 203.0.113.1/24", "address: 2001:db8:1::1/64",
		"address: 198.51.100.1/24", "address: 2001:db8:2::1/64",
		"192.0.2.2:7000", `"[2001:db8:c::2]:7000"`,
		"192.0.2.3:7000", `"[2001:db8:c::3]:7000"`,
		"192.0.2.4:7000", `"[2001:db8:c::4]:7000"`,
	)
	configRewrite = r.Replace
	t.Cleanup(func() {
		carrierHost, pbxHost, vipExt, vipInt = old[0], old[1], old[2], old[3]
		configRewrite = nil
	})
}

// kill -9 of the active node with IPv6 calls up, realms and VIPs on IPv6
// and Raft over IPv6: the standby takes the IPv6 VIPs, announces them with
// unsolicited neighbour advertisements (the carrier's and the PBX's
// neighbour caches move to its MACs without a new solicitation), every
// call's media flows again both ways, and calls end from either side.
// Once on the default (kernel) datapath, where the victim's pinned flows
// keep forwarding until the caches move, and once in user space, where
// the gap is the takeover's own.
func TestFailoverIPv6(t *testing.T) {
	// User space first: a node killed on the kernel path leaves its pinned
	// flows in its namespace, and a later user-space run whose calls got
	// the same ports would be forwarded by them (a gap of 0 measured so).
	for _, dp := range []struct{ name, extra string }{
		{"userspace", "media: {datapath: userspace}\n"},
		{"kernel", ""},
	} {
		t.Run(dp.name, func(t *testing.T) { failoverIPv6(t, dp.extra) })
	}
}

func failoverIPv6(t *testing.T, extra string) {
	useIPv6(t)
	c := newCluster(t, extra)
	p := newPhones(t)
	first, heir := c.active(15 * time.Second)
	const n = 4
	var calls []*call
	for i := range n {
		calls = append(calls, p.establish(i))
	}
	if got := first.calls(); got != n {
		t.Fatalf("active node %s has %d calls, want %d", first.name, got, n)
	}
	// Before the kill the peers reach the VIPs at the active node's MACs.
	for _, nb := range []struct{ ns, dev, vip, sbcDev string }{{"car", "car0", vipExt, "ext0"}, {"ent", "ent0", vipInt, "int0"}} {
		if got, want := neighMAC(t, ns(nb.ns), nb.dev, nb.vip), devMAC(t, first.ns, nb.sbcDev); got != want {
			t.Fatalf("%s has %s at %q before the kill, want the active node's %s", nb.ns, nb.vip, got, want)
		}
	}

	k := failover(t, c, p, calls, n)
	t.Log(k)
	checkKill(t, k)
	if act, _ := c.active(time.Second); act != heir {
		t.Fatalf("node %s active after the kill, want %s", act.name, heir.name)
	}
	for _, nb := range []struct{ ns, dev, vip, sbcDev string }{{"car", "car0", vipExt, "ext0"}, {"ent", "ent0", vipInt, "int0"}} {
		if got, want := neighMAC(t, ns(nb.ns), nb.dev, nb.vip), devMAC(t, heir.ns, nb.sbcDev); got != want {
			t.Errorf("%s has %s at %q after the takeover, want the new active node's %s", nb.ns, nb.vip, got, want)
		}
	}
	for i, cl := range calls {
		if err := p.bye(cl, i%2 == 0); err != nil {
			t.Fatalf("after failover: %v", err)
		}
	}
	waitCalls(t, heir, 0)
}

// neighMAC is the link-layer address namespace ns has for ip on dev ("" when none).
func neighMAC(t *testing.T, ns, dev, ip string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "neigh", "show", ip, "dev", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh in %s: %v: %s", ns, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// devMAC is dev's MAC in namespace ns.
func devMAC(t *testing.T, ns, dev string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v: %s", ns, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "link/ether" && i+1 < len(f) {
			if _, err := net.ParseMAC(f[i+1]); err == nil {
				return f[i+1]
			}
		}
	}
	t.Fatalf("no MAC for %s in %s: %s", dev, ns, out)
	return ""
}
