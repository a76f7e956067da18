package test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchSIP is `make bench-sip`: SIPp uac (car) -> sbcd -> SIPp uas
// (ent) at stepped rates, and the same SIPp pair with no SBC in between
// (uas in namespace sbc, on the same veth) as the ceiling, in one run.
// Each step lasts SBC_BENCH_STEP (default 40 s: sipgo's memory only levels
// off after its 32 s transaction linger). It prints the highest rate with
// under 0.1% failed calls for each, their ratio, and sbcd's memory and
// goroutines after each step.
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
	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "2s")
	b, _ := os.ReadFile(cfg)
	// Signaling only, as the issue measures it: SIPp sends no RTP, and
	// media anchoring has its own benchmark (bench-media).
	if err := os.WriteFile(cfg, append(b, []byte("sip: {transaction_linger: "+linger+"}\nlog: {level: warn}\nmedia: {enabled: false}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	type row struct {
		rate             int
		okSBC, failSBC   int
		okDir, failDir   int
		rssMiB, heapMiB  float64
		goroutines       float64
		sbcdCPUSecsDelta float64
	}
	var rows []row
	s := startSBCD(t, cfg)
	base := s.metric(t, "go_goroutines")
	baseHeap := s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
	t.Logf("sbcd idle: %.0f goroutines, %.1f MiB heap in use", base, baseHeap)
	bestSBC, bestDir := 0, 0
	for _, rate := range rates {
		r := row{rate: rate}
		cpu0 := s.metric(t, "process_cpu_seconds_total")
		r.okSBC, r.failSBC = sippStep(t, "ent", pbxArgs(), sbcExt+":5060", rate, step)
		r.sbcdCPUSecsDelta = s.metric(t, "process_cpu_seconds_total") - cpu0
		r.rssMiB = s.metric(t, "process_resident_memory_bytes") / (1 << 20)
		r.heapMiB = s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
		r.goroutines = s.metric(t, "go_goroutines")
		r.okDir, r.failDir = sippStep(t, "sbc", []string{"-i", sbcExt, "-p", "5070"}, sbcExt+":5070", rate, step)
		rows = append(rows, r)
		if clean(r.okSBC, r.failSBC, rate, step) {
			bestSBC = rate
		}
		if clean(r.okDir, r.failDir, rate, step) {
			bestDir = rate
		}
		t.Logf("step %d cps: sbc %d ok / %d failed, direct %d ok / %d failed, sbcd CPU %.0f%% of a core, RSS %.0f MiB, heap %.0f MiB, %.0f goroutines",
			rate, r.okSBC, r.failSBC, r.okDir, r.failDir, 100*r.sbcdCPUSecsDelta/step.Seconds(), r.rssMiB, r.heapMiB, r.goroutines)
	}
	// Back to baseline: wait out the linger, then look again.
	time.Sleep(40 * time.Second)
	idleG := s.metric(t, "go_goroutines")
	idleHeap := s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
	calls := s.activeCalls(t)

	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-sip: %v per step, transaction linger %s, SIPp uac/uas, 2 cores shared by everything\n", step, linger)
	fmt.Fprintf(&out, "%8s | %22s | %22s | %8s %9s %9s %10s\n", "cps", "through sbcd ok/failed", "direct ok/failed", "sbcd CPU", "RSS MiB", "heap MiB", "goroutines")
	for _, r := range rows {
		fmt.Fprintf(&out, "%8d | %12d/%-9d | %12d/%-9d | %7.0f%% %9.0f %9.0f %10.0f\n", r.rate, r.okSBC, r.failSBC, r.okDir, r.failDir,
			100*r.sbcdCPUSecsDelta/step.Seconds(), r.rssMiB, r.heapMiB, r.goroutines)
	}
	fmt.Fprintf(&out, "highest clean rate (<0.1%% failed): through sbcd %d cps, direct %d cps, ratio %.2f\n", bestSBC, bestDir, float64(bestSBC)/float64(max(bestDir, 1)))
	fmt.Fprintf(&out, "after the run (+40 s): %d active calls, %.0f goroutines (idle %.0f), heap %.1f MiB (idle %.1f)\n", calls, idleG, base, idleHeap, baseHeap)
	fmt.Print(out.String())
	if calls != 0 {
		t.Errorf("%d calls left in the table after the run", calls)
	}
	if idleG > base+20 {
		t.Errorf("goroutines did not return to baseline: %.0f now, %.0f idle", idleG, base)
	}
}

func clean(ok, failed, rate int, step time.Duration) bool {
	total := ok + failed
	want := int(float64(rate) * step.Seconds())
	return total >= want*99/100 && float64(failed) < 0.001*float64(total)
}

var statRe = regexp.MustCompile(`(Successful|Failed) call\s+\|\s+\d+\s+\|\s+(\d+)`)

// sippStep runs one rate step: a SIPp uas in ns, a SIPp uac in car calling
// target at rate for step, and returns the uac's successful and failed
// call counts.
func sippStep(t *testing.T, ns string, uasArgs []string, target string, rate int, step time.Duration) (ok, failed int) {
	t.Helper()
	n := fmt.Sprint(int(float64(rate) * step.Seconds()))
	big := []string{"-buff_size", "8388608", "-max_socket", "1000"}
	srv := startSIPp(t, ns, "-sn uas", append(append(uasArgs, "-m", n), big...)...)
	port, _ := strconv.Atoi(uasArgs[3]) // uasArgs: -i ADDR -p PORT
	waitUDPListen(t, ns, uasArgs[1], port)
	cl := startSIPp(t, "car", "-sn uac", append(carrierArgs(target, "-m", n, "-r", fmt.Sprint(rate), "-s", "1000", "-l", fmt.Sprint(rate*10)), big...)...)
	limit := step + 90*time.Second
	select {
	case <-cl.done:
	case <-time.After(limit):
		_ = cl.cmd.Process.Kill()
		<-cl.done
	}
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.done
	}
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
	return ok, failed
}
