package ha

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestUNAFrame(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:aa:bb:cc")
	got := unaFrame(mac, netip.MustParseAddr("2001:db8:1::1"))
	want := stripSpaces("333300000001 020000aabbcc 86dd" + // all-nodes MAC, ours, IPv6
		"60000000 0020 3a ff" + // version, payload 32, ICMPv6, hop limit 255
		"20010db8000100000000000000000001 ff020000000000000000000000000001" +
		"88 00 3cb3 20000000" + // NA, code 0, checksum, Override
		"20010db8000100000000000000000001" + // target
		"0201 020000aabbcc") // target link-layer address option
	if hex.EncodeToString(got) != want {
		t.Fatalf("frame\n got %x\nwant %s", got, want)
	}
	// The checksum verifies: summing the pseudo header and the message
	// with its checksum in place gives zero.
	var src, dst [16]byte
	copy(src[:], got[22:38])
	copy(dst[:], got[38:54])
	if c := icmpv6Checksum(src, dst, got[54:]); c != 0 {
		t.Errorf("checksum does not verify (%#04x)", c)
	}
}

// TestPrivilegedTakeVIP6: a node takes an IPv6 VIP on a segment where a
// peer has the VIP cached at another MAC (the node that died): the
// address is there at once (no DAD, not tentative), and the peer's
// neighbour cache moves to the new node's MAC from the unsolicited
// neighbour advertisement alone.
func TestPrivilegedTakeVIP6(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the privileged tests as root")
		}
		t.Skip("needs root (network namespaces of its own)")
	}
	node, peer := fmt.Sprintf("ha6n%d", os.Getpid()), fmt.Sprintf("ha6p%d", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for _, ns := range []string{node, peer} {
		ip("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	ip("link", "add", "v6n0", "netns", node, "type", "veth", "peer", "name", "v6p0", "netns", peer)
	ip("-n", node, "link", "set", "v6n0", "up")
	ip("-n", peer, "link", "set", "v6p0", "up")
	ip("-n", peer, "addr", "add", "2001:db8:1::10/64", "dev", "v6p0", "nodad")
	// The VIP was at the dead node's MAC.
	ip("-n", peer, "neigh", "replace", "2001:db8:1::1", "lladdr", "02:00:00:de:ad:01", "dev", "v6p0", "nud", "stale")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(node)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	v := VIP{Iface: "v6n0", Prefix: netip.MustParsePrefix("2001:db8:1::1/64")}
	err = takeVIP(v)
	held, herr := HoldsVIP(v)
	ifi, ierr := net.InterfaceByName("v6n0")
	if serr := netns.Set(orig); serr != nil {
		t.Fatal(serr)
	}
	if err != nil || herr != nil || ierr != nil || !held {
		t.Fatalf("takeVIP: %v; held %v (%v); %v", err, held, herr, ierr)
	}
	if a := ip("-n", node, "-6", "addr", "show", "dev", "v6n0"); !strings.Contains(a, "2001:db8:1::1/64") || strings.Contains(a, "tentative") {
		t.Fatalf("VIP on the node:\n%s", a)
	}
	mac := ifi.HardwareAddr.String()
	var n string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n = ip("-n", peer, "-6", "neigh", "show", "2001:db8:1::1", "dev", "v6p0")
		if strings.Contains(n, mac) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(n, mac) {
		t.Fatalf("the peer's neighbour cache still says %q, want the new node's %s", strings.TrimSpace(n), mac)
	}
	t.Logf("peer's neighbour entry after the takeover: %s", strings.TrimSpace(n))
	if bytes.Contains([]byte(n), []byte("de:ad")) {
		t.Fatal("old MAC left")
	}
}
