package test

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchCapacity is `make bench-capacity`: SBC_BENCH_CAPACITY_CALLS
// (default 5,000) calls set up by SIPp through sbcd with media anchored
// (no RTP) and held, what they cost sbcd per call (live heap after a
// forced collection, RSS, file descriptors, goroutines, media flows) over
// idle, then, after SIPp hangs them all up and sbcd's transaction linger
// runs out, that everything is back to its idle figure. The calls are
// judged at the caller (SIPp's counts); the per-call figures come from
// sbcd's /metrics, /proc and its admin API.
func TestBenchCapacity(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_BENCH_CAPACITY") == "" {
		t.Skip("benchmark: run with make bench-capacity")
	}
	calls := 5000
	if v, err := strconv.Atoi(os.Getenv("SBC_BENCH_CAPACITY_CALLS")); err == nil && v > 0 {
		calls = v
	}
	const rate = 500
	ramp := time.Duration(calls/rate) * time.Second
	hold := ramp + 15*time.Second // every call is up for at least 15 s together

	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "2s")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(b, []byte("log: {level: warn}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	idle := s.footprint(t)
	// What sbcd burns with no calls (its pollers), which a per-call CPU
	// figure at a low rate carries too.
	cpu0 := s.metric(t, "process_cpu_seconds_total")
	time.Sleep(5 * time.Second)
	idleCPU := (s.metric(t, "process_cpu_seconds_total") - cpu0) / 5

	n := fmt.Sprint(calls)
	big := []string{"-buff_size", "8388608", "-max_socket", "1000", "-timeout", fmt.Sprint(int((hold+ramp).Seconds())+60) + "s"}
	srv := startSIPp(t, "ent", "-sn uas", append(pbxArgs("-m", n), big...)...)
	waitUDPListen(t, "ent", pbxHost, 5060)
	cl := startSIPp(t, "car", "-sn uac", append(carrierArgs(sbcExt+":5060", "-m", n, "-r", fmt.Sprint(rate), "-l", fmt.Sprint(calls+100),
		"-d", fmt.Sprint(hold.Milliseconds())), big...)...)

	// Wait until every call is up (the table holds calls, not SIPp's view;
	// SIPp's counts judge the calls below), then measure.
	deadline := time.Now().Add(ramp + 10*time.Second)
	for s.activeCalls(t) < calls && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	up := s.footprint(t)
	if up.calls < calls {
		t.Errorf("only %d of %d calls up after %v", up.calls, calls, ramp+10*time.Second)
	}

	cl.end(hold + ramp + 60*time.Second)
	srv.end(10 * time.Second)
	ok, failed := 0, 0
	for _, m := range statRe.FindAllStringSubmatch(cl.out.String(), -1) {
		v, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			ok = v
		} else {
			failed = v
		}
	}
	if ok != calls || failed != 0 {
		t.Errorf("caller: %d ok, %d failed of %d\n%s", ok, failed, calls, tail(cl.out.String(), 20))
	}

	// Teardown: the calls' transactions linger 32 s (timers J, L, M) and
	// their Call-IDs 8 s more; poll until sbcd is back to idle, up to 90 s.
	var end footprint
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(2 * time.Second) {
		end = s.footprint(t)
		if end.backTo(idle) || time.Now().After(deadline) {
			break
		}
	}

	per := func(v, v0 float64) float64 { return (v - v0) / float64(max(up.calls, 1)) }
	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-capacity: %d calls at %d/s, media anchored (no RTP), held together %v; load %s\n", calls, rate, hold-ramp, loadAvg())
	fmt.Fprintf(&out, "%-10s %6s %10s %9s %6s %8s %6s\n", "", "calls", "heap MiB", "RSS MiB", "fds", "gorout", "flows")
	for _, r := range []struct {
		name string
		f    footprint
	}{{"idle", idle}, {"held", up}, {"after", end}} {
		fmt.Fprintf(&out, "%-10s %6d %10.1f %9.1f %6d %8d %6d\n", r.name, r.f.calls, r.f.heap/(1<<20), r.f.rss/(1<<20), r.f.fds, r.f.goroutines, r.f.flows)
	}
	fmt.Fprintf(&out, "idle CPU: %.1f%% of a core\n", 100*idleCPU)
	fmt.Fprintf(&out, "per held call: heap %.1f KiB, RSS %.1f KiB, %.2f fds, %.2f goroutines\n",
		per(up.heap, idle.heap)/1024, per(up.rss, idle.rss)/1024, per(float64(up.fds), float64(idle.fds)), per(float64(up.goroutines), float64(idle.goroutines)))
	fmt.Print(out.String())
	if !end.backTo(idle) {
		t.Errorf("not back to idle 90 s after the calls ended: %+v, idle %+v", end, idle)
	}
}

// footprint is what sbcd holds at one moment.
type footprint struct {
	calls, fds, goroutines, flows int
	heap, rss                     float64 // bytes; heap is live after a forced collection
}

// backTo: no calls or flows, and sockets, goroutines and live heap within
// a fixed allowance of idle's, far under one per call: the first calls
// leave state that stays (Go's maps keep their grown buckets; measured
// after 5,000 calls: +4 fds, +2 goroutines, +5.3 MiB), a leak grows with
// the calls.
func (f footprint) backTo(idle footprint) bool {
	return f.calls == 0 && f.flows <= idle.flows && f.fds <= idle.fds+8 && f.goroutines <= idle.goroutines+4 && f.heap <= idle.heap+8<<20
}

func (s *sbcd) footprint(t *testing.T) footprint {
	t.Helper()
	// The heap profile with gc=1 collects first, so heap_alloc is the live heap.
	if _, err := s.getWithin("/debug/pprof/heap?gc=1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	f := footprint{
		calls:      s.activeCalls(t),
		heap:       s.metric(t, "go_memstats_heap_alloc_bytes"),
		rss:        s.metric(t, "process_resident_memory_bytes"),
		goroutines: int(s.metric(t, "go_goroutines")),
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f.fds = len(fds)
	if b, err := s.get("/api/v1/flows"); err == nil {
		var fl struct{ Flows []json.RawMessage }
		if json.Unmarshal(b, &fl) == nil {
			f.flows = len(fl.Flows)
		}
	}
	return f
}
