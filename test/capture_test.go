package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"
)

// capture is tshark writing a pcap on one lab interface. tshark runs
// dumpcap as a child, which may keep the output pipe open after tshark
// exits: both run in a process group of their own, stopped as a group,
// and every wait is bounded.
type capture struct {
	cmd  *exec.Cmd
	file string
	out  *syncbuf.Buffer // written by exec's copier, read while tshark runs
	once sync.Once
	err  error
}

// captureWait bounds a capture's exit after SIGINT; then the group is killed.
const captureWait = 5 * time.Second

// startCapture captures SIP (UDP and TCP port 5060).
func startCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	return startCaptureFilter(t, ns, dev, "udp port 5060 or tcp port 5060")
}

// startCaptureFilter captures what filter (a BPF capture filter) lets
// through on dev in namespace ns, and returns once tshark is capturing.
func startCaptureFilter(t *testing.T, ns, dev, filter string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), ns+"-"+dev+".pcap"), out: &syncbuf.Buffer{}}
	// dumpcap itself, not tshark: tshark -w copies what dumpcap hands it
	// through a pipe, and a short capture stopped while tshark was still
	// starting lost every packet (TestSIPIThroughSBC saw a whole wire
	// empty). dumpcap writes the file and flushes it on SIGINT. -P: pcap.
	c.cmd = exec.Command("ip", "netns", "exec", ns, "dumpcap", "-q", "-P", "-i", dev, "-f", filter, "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait returns this long after tshark exits even if dumpcap still
	// holds the pipe.
	c.cmd.WaitDelay = 2 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.halt(syscall.SIGKILL) })
	// tshark says "Capturing on" once the interface is open.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(c.out.String(), "Capturing on"); {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start: %s", c.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// halt signals the capture's process group and waits at most captureWait
// before killing it; only the first call acts.
func (c *capture) halt(sig syscall.Signal) {
	c.once.Do(func() {
		pgid := c.cmd.Process.Pid
		_ = syscall.Kill(-pgid, sig)
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }()
		select {
		case c.err = <-done:
		case <-time.After(captureWait):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			c.err = <-done
		}
	})
}

// stop ends the capture and returns the UDP/TCP payloads it saw.
func (c *capture) stop(t *testing.T) [][]byte {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last packets land
	c.halt(syscall.SIGINT)
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatalf("capture %s: %v (tshark: %v %s)", c.file, err, c.err, c.out)
	}
	p, err := pcapPayloads(b)
	if err != nil {
		t.Fatalf("capture %s: %v (tshark: %v %s)", c.file, err, c.err, c.out)
	}
	return p
}
