package test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
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
	if !slices.Contains(args, "-timeout") { // a scenario longer than a minute gives its own
		full = append(full, "-timeout", "60s")
	}
	// -trace_stat and -trace_counts: the call counts at this end (stats,
	// counts), which the tests judge by instead of sbcd's metrics.
	full = append(full, "-nostdin", "-timeout_error", "-trace_err", "-max_recv_loops", "10000",
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-trace_counts")
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

// exit waits for SIPp to exit and returns its exit status (0: every call
// succeeded, 1: some failed; others: SIPp could not run its scenario).
// It fails the test only when SIPp does not exit within d.
func (r *sippRun) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil {
			return 0
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		t.Fatalf("%s: %v", r.name, err)
	case <-time.After(d):
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		t.Fatalf("%s: still running after %v\n%s", r.name, d, r.errors())
	}
	return -1
}

// lastCSV is the header and the last line of a SIPp CSV file (fields
// separated by ';'), as a map.
func lastCSV(t *testing.T, glob string) map[string]string {
	t.Helper()
	m, _ := filepath.Glob(glob)
	if len(m) != 1 {
		t.Fatalf("SIPp statistics %s: %d files", glob, len(m))
	}
	b, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("%s: no data line:\n%s", m[0], b)
	}
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	out := map[string]string{}
	for i, h := range head {
		if i < len(last) {
			out[h] = last[i]
		}
	}
	return out
}

// stat is one of SIPp's final call counters (-trace_stat), e.g.
// "SuccessfulCall(C)", "FailedCall(C)", "OutgoingCall(C)". Read it after
// SIPp exited.
func (r *sippRun) stat(t *testing.T, name string) int {
	t.Helper()
	v, ok := lastCSV(t, filepath.Join(r.dir, "stat.csv"))[name]
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if !ok || err != nil {
		t.Fatalf("%s: no SIPp statistic %q (%q)", r.name, name, v)
	}
	return n
}

// count sums SIPp's message counters (-trace_counts) of every scenario
// step named like "*_<what>", e.g. "503_Recv" or "INVITE_Sent".
func (r *sippRun) count(t *testing.T, what string) int {
	t.Helper()
	sum, found := 0, false
	for k, v := range lastCSV(t, filepath.Join(r.dir, "*_counts.csv")) {
		if strings.HasSuffix(k, "_"+what) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatalf("%s: counter %s = %q", r.name, k, v)
			}
			sum, found = sum+n, true
		}
	}
	if !found {
		t.Fatalf("%s: no SIPp counter *_%s", r.name, what)
	}
	return sum
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

// pcapPayloads reads a classic pcap of Ethernet/IPv4 or IPv6 frames and returns
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
		if len(frame) < 14+20 {
			continue
		}
		ip := frame[14:]
		var proto byte
		var seg []byte
		switch binary.BigEndian.Uint16(frame[12:]) {
		case 0x0800:
			ihl := int(ip[0]&0x0f) * 4
			if len(ip) < ihl {
				continue
			}
			proto, seg = ip[9], ip[ihl:]
		case 0x86dd: // IPv6 without extension headers: all the lab sends
			if len(ip) < 40 {
				continue
			}
			proto, seg = ip[6], ip[40:]
		default:
			continue
		}
		switch proto {
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
