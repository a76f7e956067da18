package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchSIP is `make bench-sip`: SIPp uac (car) -> sbcd -> SIPp uas
// (ent) at stepped rates, calls with SDP, media anchored (no RTP sent), BYE
// after SBC_BENCH_HOLD (default 0.5 s); on the same ladder in the same run,
// Kamailio as a stateful record-routing proxy (test/kamailio/stateful.cfg,
// no media) in sbcd's place, and the same SIPp pair with no SBC in between
// (uas in namespace sbc, on the same veth) as the ceiling. With
// SBC_BENCH_SIP_BASELINE=/path/to/an/older/sbcd, that build runs the same
// steps too. The systems alternate step by step, so a ratio comes from one
// run on one (noisy) machine, and each starts afresh for each step, so
// none inherits another's memory.
// Each step lasts SBC_BENCH_STEP (default 40 s: sipgo's memory only levels
// off after its 32 s transaction linger). It prints the highest rate with
// under 0.1% failed calls for each system, their ratios, and each system's
// CPU (and CPU per completed call), memory and goroutines after each step.
// SBC_BENCH_SIP_KAMAILIO=0 leaves Kamailio out.
func TestBenchSIP(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_BENCH_SIP") == "" {
		t.Skip("benchmark: run with make bench-sip")
	}
	step := 40 * time.Second
	if v := os.Getenv("SBC_BENCH_STEP"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			step = d
		}
	}
	rates := []int{500, 1000, 1500, 2000, 2500, 3000, 3500, 4000}
	if v := os.Getenv("SBC_BENCH_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(f)
			rates = append(rates, n)
		}
	}
	linger := os.Getenv("SBC_BENCH_LINGER")
	if linger == "" {
		linger = "32s"
	}
	hold := "500"
	if v := os.Getenv("SBC_BENCH_HOLD"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			hold = fmt.Sprint(d.Milliseconds())
		}
	}
	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "2s")
	b, _ := os.ReadFile(cfg)
	// Media anchored (the default), as an SBC carries a call: each call
	// allocates its relay ports and rewrites both SDPs. SIPp sends no RTP;
	// the relay's per-packet cost has its own benchmark (bench-media).
	if err := os.WriteFile(cfg, append(b, []byte("sip: {transaction_linger: "+linger+"}\nlog: {level: warn}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	type system struct{ name, exe string }
	systems := []system{{"sbcd", filepath.Join(binDir, "sbcd")}}
	if b := os.Getenv("SBC_BENCH_SIP_BASELINE"); b != "" {
		systems = append(systems, system{"baseline", b})
	}
	kam := -1 // Kamailio's index in systems
	if os.Getenv("SBC_BENCH_SIP_KAMAILIO") != "0" {
		kam = len(systems)
		systems = append(systems, system{name: "kamailio"})
	}
	type row struct {
		rate   int
		sbc    []result // one per system
		direct result
	}
	var rows []row
	best := make([]int, len(systems))
	bestDir := 0
	var afterCalls int
	var afterG, idleG, afterHeap, idleHeap float64
	for i, rate := range rates {
		r := row{rate: rate, sbc: make([]result, len(systems))}
		for j, sys := range systems {
			res := &r.sbc[j]
			if j == kam {
				k := startKamailioRef(t, 4)
				cpu0 := k.cpuSeconds()
				res.ok, res.failed = sippStep(t, "ent", pbxArgs(), sbcExt+":5060", rate, step, hold)
				res.cpu = (k.cpuSeconds() - cpu0) / step.Seconds()
				res.rssMiB, res.heapMiB, res.goroutines = k.pssMiB(), -1, -1
				k.stop(t)
				if clean(res.ok, res.failed, rate, step) {
					best[j] = rate
				}
				t.Logf("step %d cps kamailio: %d ok / %d failed, CPU %.0f%% of a core (%.2f ms per call), PSS %.0f MiB",
					rate, res.ok, res.failed, 100*res.cpu, res.msPerCall(step), res.rssMiB)
				continue
			}
			s := startSBCDExe(t, sys.exe, cfg, "ip", "netns", "exec", "sbc")
			g0 := s.metric(t, "go_goroutines")
			h0 := s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
			cpu0 := s.metric(t, "process_cpu_seconds_total")
			prof := profileStep(t, s, sys.name, rate, step)
			res.ok, res.failed = sippStep(t, "ent", pbxArgs(), sbcExt+":5060", rate, step, hold)
			prof()
			res.cpu = (s.metric(t, "process_cpu_seconds_total") - cpu0) / step.Seconds()
			res.rssMiB = s.metric(t, "process_resident_memory_bytes") / (1 << 20)
			res.heapMiB = s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
			res.goroutines = s.metric(t, "go_goroutines")
			if clean(res.ok, res.failed, rate, step) {
				best[j] = rate
			}
			if j == 0 && i == len(rates)-1 {
				// Back to baseline: wait out the linger, then look again.
				time.Sleep(40 * time.Second)
				// The heap profile with gc=1 collects first: idle, the
				// runtime would not collect for up to two minutes.
				if _, err := s.getWithin("/debug/pprof/heap?gc=1", 30*time.Second); err != nil {
					t.Logf("forcing a collection: %v", err)
				}
				afterCalls = s.activeCalls(t)
				afterG, idleG = s.metric(t, "go_goroutines"), g0
				afterHeap, idleHeap = s.metric(t, "go_memstats_heap_inuse_bytes")/(1<<20), h0
			}
			s.stop()
			t.Logf("step %d cps %s: %d ok / %d failed, CPU %.0f%% of a core (%.2f ms per call), RSS %.0f MiB, heap %.0f MiB, %.0f goroutines",
				rate, sys.name, res.ok, res.failed, 100*res.cpu, res.msPerCall(step), res.rssMiB, res.heapMiB, res.goroutines)
		}
		r.direct.ok, r.direct.failed = sippStep(t, "sbc", []string{"-i", sbcExt, "-p", "5070"}, sbcExt+":5070", rate, step, hold)
		if clean(r.direct.ok, r.direct.failed, rate, step) {
			bestDir = rate
		}
		t.Logf("step %d cps direct: %d ok / %d failed", rate, r.direct.ok, r.direct.failed)
		rows = append(rows, r)
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-sip: %v per step, hold %s ms, media anchored (no RTP), transaction linger %s, SIPp uac/uas, 2 cores shared by everything (load at the end: %s)\n", step, hold, linger, loadAvg())
	fmt.Fprintf(&out, "%8s", "cps")
	for _, sys := range systems {
		fmt.Fprintf(&out, " | %-18s %6s %7s %7s %7s %6s", sys.name+" ok/failed", "CPU", "ms/call", "RSS MiB", "heapMiB", "gorout")
	}
	fmt.Fprintf(&out, " | %s\n", "direct ok/failed")
	for _, r := range rows {
		fmt.Fprintf(&out, "%8d", r.rate)
		for _, x := range r.sbc {
			fmt.Fprintf(&out, " | %18s %5.0f%% %7.2f %7.0f %7s %6s", fmt.Sprintf("%d/%d", x.ok, x.failed), 100*x.cpu, x.msPerCall(step), x.rssMiB, dash(x.heapMiB), dash(x.goroutines))
		}
		fmt.Fprintf(&out, " | %d/%d\n", r.direct.ok, r.direct.failed)
	}
	for j, sys := range systems {
		fmt.Fprintf(&out, "highest clean rate (<0.1%% failed): %s %d cps (%.2f of direct's %d)\n", sys.name, best[j], float64(best[j])/float64(max(bestDir, 1)), bestDir)
	}
	for j := 1; j < len(systems); j++ {
		fmt.Fprintf(&out, "sbcd / %s: %.2f\n", systems[j].name, float64(best[0])/float64(max(best[j], 1)))
	}
	fmt.Fprintf(&out, "sbcd after its last step (+40 s): %d active calls, %.0f goroutines (idle %.0f), heap %.1f MiB (idle %.1f)\n", afterCalls, afterG, idleG, afterHeap, idleHeap)
	fmt.Print(out.String())
	if afterCalls != 0 {
		t.Errorf("%d calls left in the table after the run", afterCalls)
	}
	if afterG > idleG+20 {
		t.Errorf("goroutines did not return to baseline: %.0f now, %.0f idle", afterG, idleG)
	}
}

// profileStep, when SBC_BENCH_PROFILE names a directory and rate is one
// of SBC_BENCH_PROFILE_RATES (default 200), takes a CPU profile of sbcd
// over the middle of the step (from 5 s in, until 5 s before its end) and,
// when the returned func is called after the step, its allocation profile
// (everything allocated since this sbcd started) and heap profile, as
// DIR/<system>-<rate>-{cpu,allocs,heap}.pprof for go tool pprof.
func profileStep(t *testing.T, s *sbcd, name string, rate int, step time.Duration) func() {
	dir := os.Getenv("SBC_BENCH_PROFILE")
	rates := os.Getenv("SBC_BENCH_PROFILE_RATES")
	if rates == "" {
		rates = "200"
	}
	if dir == "" || !slices.Contains(strings.Split(rates, ","), strconv.Itoa(rate)) || step < 15*time.Second {
		return func() {}
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%d-", name, rate))
	save := func(kind, path string, timeout time.Duration) {
		b, err := s.getWithin(path, timeout)
		if err == nil {
			err = os.WriteFile(base+kind+".pprof", b, 0o644)
		}
		if err != nil {
			t.Logf("profile %s: %v", kind, err)
		}
	}
	secs := int((step - 10*time.Second).Seconds())
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(5 * time.Second)
		save("cpu", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), time.Duration(secs+10)*time.Second)
	}()
	return func() {
		<-done
		save("allocs", "/debug/pprof/allocs", 10*time.Second)
		save("heap", "/debug/pprof/heap", 10*time.Second)
	}
}

// result is one system's figures over one step. Kamailio's RSS is the
// PSS of all its processes; it has no heap or goroutines (-1).
type result struct {
	ok, failed      int
	cpu             float64 // share of one core over the step
	rssMiB, heapMiB float64
	goroutines      float64
}

// msPerCall is the CPU the system spent per completed call over the step.
func (r result) msPerCall(step time.Duration) float64 {
	return 1000 * r.cpu * step.Seconds() / float64(max(r.ok, 1))
}

func dash(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func head(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[:min(n, len(l))], "\n")
}

// end waits up to d for SIPp to exit, then kills it. The exit status goes
// back into done, where startSIPp's cleanup looks for it.
func (r *sippRun) end(d time.Duration) {
	var err error
	select {
	case err = <-r.done:
	case <-time.After(d):
		_ = r.cmd.Process.Kill()
		err = <-r.done
	}
	r.done <- err
}

func clean(ok, failed, rate int, step time.Duration) bool {
	total := ok + failed
	want := int(float64(rate) * step.Seconds())
	return total >= want*99/100 && float64(failed) < 0.001*float64(total)
}

var statRe = regexp.MustCompile(`(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)`)

// sippStep runs one rate step: a SIPp uas in ns, a SIPp uac in car calling
// target at rate for step, each call hung up after holdMs, and returns the
// uac's successful and failed call counts.
func sippStep(t *testing.T, ns string, uasArgs []string, target string, rate int, step time.Duration, holdMs string) (ok, failed int) {
	t.Helper()
	n := fmt.Sprint(int(float64(rate) * step.Seconds()))
	// A proxy with several worker processes (Kamailio) may forward a 180
	// after its 200; a phone ignores that late 180, so SIPp does too
	// (-abortunexp off) rather than failing the call. A call still fails on
	// any missing or error response.
	big := []string{"-buff_size", "8388608", "-max_socket", "1000", "-default_behaviors", "all,-abortunexp"}
	srv := startSIPp(t, ns, "-sn uas", append(append(uasArgs, "-m", n), big...)...)
	port, _ := strconv.Atoi(uasArgs[3]) // uasArgs: -i ADDR -p PORT
	waitUDPListen(t, ns, uasArgs[1], port)
	cl := startSIPp(t, "car", "-sn uac", append(carrierArgs(target, "-m", n, "-r", fmt.Sprint(rate), "-s", "1000", "-l", fmt.Sprint(rate*10), "-d", holdMs), big...)...)
	cl.end(step + 90*time.Second)
	srv.end(10 * time.Second)
	for _, m := range statRe.FindAllStringSubmatch(cl.out.String(), -1) {
		v, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			ok = v
		} else {
			failed = v
		}
	}
	if ok+failed == 0 {
		t.Logf("no statistics from SIPp:\n%s", tail(cl.out.String(), 20))
	}
	if failed > 0 { // why, in the caller's words
		errs, _ := filepath.Glob(filepath.Join(cl.dir, "*_errors.log"))
		for _, e := range errs {
			b, _ := os.ReadFile(e)
			t.Logf("%d failed calls; the caller's first errors:\n%s", failed, head(string(b), 6))
		}
	}
	return ok, failed
}
