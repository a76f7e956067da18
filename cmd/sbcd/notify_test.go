package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// notifySocket is the service manager's end of Type=notify: a unix
// datagram socket whose path goes into NOTIFY_SOCKET, as systemd does.
func notifySocket(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func readNotify(t *testing.T, c *net.UnixConn, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notification within %v: %v", d, err)
	}
	return string(b[:n])
}

// TestNotifyReadyOnceSIPServed: sbcd sends READY=1 to NOTIFY_SOCKET only
// when SIP is answered: an OPTIONS sent the moment READY arrives gets its
// 200 (with state_dir the node serves only after its one-voter Raft log
// elected it, so a READY sent at start would fail this). SIGHUP sends
// RELOADING=1 and, the reload done, READY=1; SIGTERM sends STOPPING=1.
// Both with and without state_dir.
func TestNotifyReadyOnceSIPServed(t *testing.T) {
	for _, state := range []bool{false, true} {
		t.Run(fmt.Sprintf("state_dir=%v", state), func(t *testing.T) {
			sock, path := notifySocket(t)
			admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			ports := freePorts(t, "udp", 2)
			y := reloadYAML(fmt.Sprintf("127.0.0.1:%d", ports[0]), ports[1], "127.0.0.1:9", admin, "")
			if state {
				y += fmt.Sprintf("state_dir: %s\n", filepath.Join(t.TempDir(), "state"))
			}
			phone := testphone.NewLoopback(t)
			p := runSBCD(t, y, admin, false, "NOTIFY_SOCKET="+path)
			msg := readNotify(t, sock, 10*time.Second)
			if !strings.Contains(msg, "READY=1") {
				t.Fatalf("first notification %q, want READY=1", msg)
			}
			sbcAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			phone.Send(sbcAddr, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
				Via: SIP/2.0/UDP %s;branch=z9hG4bK-ready
				Max-Forwards: 70
				From: <sip:probe@%s>;tag=ready
				To: <sip:%s>
				Call-ID: ready-probe
				CSeq: 1 OPTIONS`, sbcAddr, phone.Addr, phone.Addr, sbcAddr), "")
			phone.ExpectResponse(200, sip.OPTIONS, 500*time.Millisecond) // one try: served at READY
			// SIGHUP: RELOADING=1, then READY=1 once the reload is done.
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			if msg := readNotify(t, sock, 3*time.Second); msg != "RELOADING=1" {
				t.Fatalf("notification at SIGHUP %q, want RELOADING=1", msg)
			}
			if msg := readNotify(t, sock, 3*time.Second); !strings.HasPrefix(msg, "READY=1\nSTATUS=config reloaded") {
				t.Fatalf("notification after the reload %q, want READY=1 and its status", msg)
			}
			if code, took := p.term(5 * time.Second); code != 0 {
				t.Fatalf("SIGTERM: status %d after %v", code, took)
			}
			if msg := readNotify(t, sock, time.Second); !strings.Contains(msg, "STOPPING=1") {
				t.Fatalf("notification at SIGTERM %q, want STOPPING=1", msg)
			}
		})
	}
}

// Without NOTIFY_SOCKET nothing is sent and nothing fails.
func TestNotifyWithoutSocketIsQuiet(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
}
