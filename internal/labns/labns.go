// Package labns is what tests need to work in the netns lab of docs/architecture.md:
// the machine-wide lab lock, running code inside a lab namespace, and
// sockets and HTTP clients that live there.
package labns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the lab lock every user of the fixed lab namespaces holds.
const LockPath = "/run/edgesbc-lab.lock"

// Lock takes the lab lock, waiting for it; the returned func releases it.
func Lock() (func(), error) {
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// Do runs f on an OS thread switched into namespace ns. Sockets f opens
// stay in that namespace after the thread switches back.
func Do(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it rather than
		// reuse a thread stuck in the wrong namespace.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// UDP opens a UDP socket on ip:port inside ns.
func UDP(ns, ip string, port int) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := Do(ns, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
		return err
	})
	return c, err
}

// HTTPClient is a client whose connections are made from inside ns (an
// admin API on that namespace's 127.0.0.1).
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// BPFFS is where sbcd pins its BPF state (cmd/sbcd) and tests read it.
const BPFFS = "/sys/fs/bpf"

// MountBPFFS makes sure a bpf filesystem is mounted at /sys/fs/bpf,
// mounting one when it is not (a fresh container may have none), so that
// a test reading pins never mistakes a missing bpffs for "no flows".
func MountBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFS, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(BPFFS, 0o700); err != nil {
		return fmt.Errorf("bpffs: %w", err)
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", BPFFS, err)
	}
	if err := unix.Statfs(BPFFS, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("bpffs at %s: still not a bpf filesystem after mounting (%v)", BPFFS, err)
	}
	return nil
}

// UDPListening reports whether a UDP socket is bound to ip:port in ns
// (read from the namespace's /proc/net/udp or udp6: no packet sent, no
// tool run).
func UDPListening(ns string, ip netip.Addr, port int) (bool, error) {
	var raw []byte
	err := Do(ns, func() error {
		var err error
		raw, err = os.ReadFile("/proc/thread-self/net/" + udpTable(ip))
		return err
	})
	if err != nil {
		return false, err
	}
	return udpListed(raw, ip, port), nil
}

// udpTable is the /proc/net file that lists ip's family's UDP sockets.
func udpTable(ip netip.Addr) string {
	if ip.Unmap().Is4() {
		return "udp"
	}
	return "udp6"
}

// udpListed reports whether a /proc/net/udp or udp6 table lists a socket
// bound to ip:port or to the wildcard address on port.
func udpListed(table []byte, ip netip.Addr, port int) bool {
	var want, wild string
	if ip.Unmap().Is4() {
		a4 := ip.Unmap().As4()
		// The address is the host-order hex of the network-order word:
		// little-endian machines reverse the bytes.
		want = fmt.Sprintf("%02X%02X%02X%02X:%04X", a4[3], a4[2], a4[1], a4[0], port)
		wild = fmt.Sprintf("00000000:%04X", port)
	} else {
		// udp6: four such words.
		a := ip.As16()
		var b strings.Builder
		for w := 0; w < 16; w += 4 {
			fmt.Fprintf(&b, "%02X%02X%02X%02X", a[w+3], a[w+2], a[w+1], a[w])
		}
		want = fmt.Sprintf("%s:%04X", b.String(), port)
		wild = fmt.Sprintf("%032X:%04X", 0, port)
	}
	for _, l := range strings.Split(string(table), "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && (f[1] == want || f[1] == wild) {
			return true
		}
	}
	return false
}
