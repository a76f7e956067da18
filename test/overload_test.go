package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// overloadStep is one SIPp run through sbcd at one offered rate: what the
// caller saw.
type overloadStep struct {
	rate, offered  int
	ok, failed     int       // SIPp's successful (answered or shed) and failed calls
	shed           []float64 // each 503's time after its INVITE, ms
	answered       int       // ok - shed: completed end to end (BYE answered)
	goodput        float64   // answered a second
	p50, p99, max_ float64   // 503 latency, ms
}

// runOverloadStep offers rate calls a second for step with
// uac_overload.xml (an answered call holds 500 ms then BYE; a 503 is
// ACKed), against a callee already running, and reads SIPp's counts and
// its per-call response times (-trace_rtt: one line per 503).
// extra is more SIPp arguments (-set hold_ms N).
func runOverloadStep(t *testing.T, rate int, step time.Duration, extra ...string) overloadStep {
	t.Helper()
	n := int(float64(rate) * step.Seconds())
	args := carrierArgs(sbcExt+":5060", "-m", fmt.Sprint(n), "-r", fmt.Sprint(rate), "-s", "1000", "-l", fmt.Sprint(rate*10),
		"-buff_size", "8388608", "-max_socket", "1000", "-trace_rtt", "-rtt_freq", "1")
	cl := startSIPp(t, "car", "uac_overload.xml", append(args, extra...)...)
	cl.exit(t, step+60*time.Second)
	st := overloadStep{rate: rate, offered: n}
	for _, m := range statRe.FindAllStringSubmatch(cl.out.String(), -1) {
		v, _ := strconv.Atoi(m[2])
		if m[1] == "Successful" {
			st.ok = v
		} else {
			st.failed = v
		}
	}
	if st.ok+st.failed == 0 {
		t.Errorf("no statistics from SIPp at %d/s:\n%s", rate, tail(cl.out.String(), 20))
		return st
	}
	files, _ := filepath.Glob(filepath.Join(cl.dir, "*_rtt.csv"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Split(strings.TrimSpace(line), ";")
			if len(fs) < 3 {
				continue
			}
			if v, err := strconv.ParseFloat(fs[1], 64); err == nil {
				st.shed = append(st.shed, v)
			}
		}
	}
	st.answered = st.ok - len(st.shed)
	st.goodput = float64(st.answered) / (float64(n) / float64(rate))
	if len(st.shed) > 0 {
		s := slices.Clone(st.shed)
		slices.Sort(s)
		st.p50, st.p99, st.max_ = s[len(s)/2], s[len(s)*99/100], s[len(s)-1]
	}
	return st
}

// TestOverloadShedsExcess (issue 16 item 6) at CI size: sbcd with room for
// 50 call setups at a time (overload.max_inflight and min_inflight 50, so
// the limit does not adapt) and a SIPp PBX that rings each call a second
// before answering, so its capacity is about 50 calls a second whatever the
// machine's load. The capacity is measured (offered 1.5x), then SIPp offers
// 2x and 3x of it: the calls completed end to end a second stay at 90% of
// the capacity or more, every other call gets a 503 (the 99th percentile
// within 50 ms), no call fails (no established call dropped, no INVITE
// left unanswered), and afterwards no call, goroutine or heap is left
// behind. Each step is SBC_OVERLOAD_STEP (default 15 s: the limit holds
// from the first second, and a ringing call lasts one).
func TestOverloadShedsExcess(t *testing.T) {
	needLab(t)
	step := 15 * time.Second
	if v := os.Getenv("SBC_OVERLOAD_STEP"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			step = d
		}
	}
	cfg := writeLabConfig(t, []string{pbxHost + ":5060"}, "2s")
	b, _ := os.ReadFile(cfg)
	extra := "sip: {transaction_linger: 2s}\nlog: {level: warn}\nmedia: {enabled: false}\noverload: {max_inflight: 50, min_inflight: 50}\n"
	if err := os.WriteFile(cfg, append(b, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	gc(t, s)
	baseG := s.metric(t, "go_goroutines")
	baseHeap := s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)

	uas := startSIPp(t, "ent", "uas_ring_pause.xml", pbxArgs("-timeout", "600s")...)
	waitUDPListen(t, "ent", pbxHost, 5060)

	capStep := runOverloadStep(t, 75, step)
	capacity := capStep.goodput
	t.Logf("capacity: offered 75/s, %d answered, %.1f/s; %d shed, %d failed", capStep.answered, capacity, len(capStep.shed), capStep.failed)
	if capacity < 30 {
		t.Fatalf("capacity %.1f calls/s: far under the 50 the limit allows; the lab is not what this test assumes", capacity)
	}
	for _, x := range []int{2, 3} {
		rate := int(float64(x)*capacity + 0.5)
		st := runOverloadStep(t, rate, step)
		t.Logf("%dx (%d/s offered for %v): %d answered, goodput %.1f/s (%.0f%% of capacity); %d shed, 503 in p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d failed",
			x, rate, step, st.answered, st.goodput, 100*st.goodput/capacity, len(st.shed), st.p50, st.p99, st.max_, st.failed)
		if st.goodput < 0.9*capacity {
			t.Errorf("%dx: goodput %.1f/s, want >= 90%% of capacity %.1f/s", x, st.goodput, capacity)
		}
		if st.failed != 0 {
			t.Errorf("%dx: %d calls failed at the caller (dropped or unanswered), want 0", x, st.failed)
		}
		if want := st.offered - int(1.1*capacity*step.Seconds()); len(st.shed) < want {
			t.Errorf("%dx: %d calls shed with 503, want at least %d (the excess)", x, len(st.shed), want)
		}
		if st.p99 > 50 {
			t.Errorf("%dx: 99th percentile of the 503s %.1f ms after their INVITE, want within 50 ms", x, st.p99)
		}
	}
	_ = uas.cmd.Process.Kill()

	// Back to baseline once the 2 s transaction linger has passed.
	var g, heap float64
	calls := -1
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		gc(t, s)
		g = s.metric(t, "go_goroutines")
		heap = s.metric(t, "go_memstats_heap_inuse_bytes") / (1 << 20)
		calls = s.activeCalls(t)
		if calls == 0 && g <= baseG+20 && heap <= baseHeap+24 {
			break
		}
	}
	t.Logf("after: %d calls, %.0f goroutines (idle %.0f), heap %.1f MiB (idle %.1f)", calls, g, baseG, heap, baseHeap)
	if calls != 0 {
		t.Errorf("%d calls left in the table after the load", calls)
	}
	if g > baseG+20 {
		t.Errorf("goroutines did not return to baseline: %.0f, idle %.0f", g, baseG)
	}
	// Not to the byte: Go's maps and goroutine records keep the size of
	// their peak (10 MiB here after the 3x step, measured).
	if heap > baseHeap+24 {
		t.Errorf("heap did not return to baseline: %.1f MiB, idle %.1f", heap, baseHeap)
	}
}

// gc has sbcd collect its garbage (pprof's heap profile with gc=1), so
// that its heap in use is what it keeps, not what it has not freed yet.
func gc(t *testing.T, s *sbcd) {
	t.Helper()
	if _, err := s.get("/debug/pprof/heap?gc=1"); err != nil {
		t.Fatal(err)
	}
}
