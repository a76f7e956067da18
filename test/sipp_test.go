package test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sippRun is one SIPp process in a lab namespace.
type sippRun struct {
	name string
	cmd  *exec.Cmd
	dir  string
	out  *bytes.Buffer
	done chan error
}

// startSIPp runs SIPp in namespace ns with a scenario from test/scenarios
// (or a built-in one given as "-sn NAME"). Every run is bounded: -m by the
// caller, -timeout here, and a hard kill in cleanup.
func startSIPp(t *testing.T, ns, scenario string, args ...string) *sippRun {
	t.Helper()
	dir := t.TempDir()
	full := []string{"netns", "exec", ns, "sipp"}
	if strings.HasPrefix(scenario, "-sn ") {
		full = append(full, "-sn", strings.TrimPrefix(scenario, "-sn "))
	} else {
		p, err := filepath.Abs(filepath.Join("scenarios", scenario))
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, "-sf", p)
	}
	full = append(full, args...)
	full = append(full, "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err", "-max_recv_loops", "10000")
	r := &sippRun{name: ns + ":" + scenario, dir: dir, out: &bytes.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command("ip", full...)
	r.cmd.Dir = dir
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
		}
	})
	return r
}

// wait waits for SIPp to exit and fails the test unless it exited 0 (every
// call succeeded).
func (r *sippRun) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", r.name, err, tail(r.out.String(), 30), r.errors())
		}
	case <-time.After(d):
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("%s: still running after %v\n%s", r.name, d, r.errors())
	}
}

func (r *sippRun) errors() string {
	m, _ := filepath.Glob(filepath.Join(r.dir, "*_errors.log"))
	var b strings.Builder
	for _, f := range m {
		c, _ := os.ReadFile(f)
		b.WriteString(tail(string(c), 40))
	}
	return b.String()
}

// uasArgs/uacArgs are the fixed lab ends of a SIPp pair.
func pbxArgs(extra ...string) []string {
	return append([]string{"-i", pbxHost, "-p", "5060"}, extra...)
}

func carrierArgs(extra ...string) []string {
	return append([]string{"-i", carrierHost, "-p", "5060"}, extra...)
}

// capture is tshark writing a pcap of SIP on one lab interface.
type capture struct {
	cmd  *exec.Cmd
	file string
	out  *bytes.Buffer
}

func startCapture(t *testing.T, ns, dev string) *capture {
	t.Helper()
	return startCaptureFilter(t, ns, dev, "udp port 5060 or tcp port 5060")
}

// startCaptureFilter is startCapture with a capture filter of its own.
func startCaptureFilter(t *testing.T, ns, dev, filter string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), ns+".pcap"), out: &bytes.Buffer{}}
	// dumpcap refuses to write into a directory it does not own as root
	// in some setups; the temp dir is ours and we are root.
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tshark", "-q", "-i", dev, "-f", filter, "-F", "pcap", "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	// tshark says "Capturing on" once the interface is open.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.out.String(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start: %s", c.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// stop ends the capture and returns the UDP/TCP payloads it saw.
func (c *capture) stop(t *testing.T) [][]byte {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last packets land
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pcapPayloads(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pcapPayloads reads a classic pcap of Ethernet/IPv4 frames and returns
// each UDP or TCP payload. Enough of a reader for the lab's own captures.
func pcapPayloads(b []byte) ([][]byte, error) {
	if len(b) < 24 {
		return nil, errors.New("pcap: short file")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap: bad magic %x", b[:4])
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet", lt)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frame := b[off : off+n]
		off += n
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl {
			continue
		}
		seg := ip[ihl:]
		switch ip[9] {
		case 17:
			if len(seg) >= 8 {
				out = append(out, seg[8:])
			}
		case 6:
			if len(seg) >= 20 {
				if doff := int(seg[12]>>4) * 4; len(seg) > doff {
					out = append(out, seg[doff:])
				}
			}
		}
	}
	return out, nil
}
