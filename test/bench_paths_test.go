package test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestBenchMediaPaths is the second half of `make bench-media`: the same
// RTP traffic (Go generator and sink in car and ent) through every
// forwarding path, one after the other (two kernel programs cannot share
// an interface's hook, and sbcd owns the SIP port, so these cannot
// interleave like TestBenchMedia's):
//
//	ceiling      a bare tcx program: fixed rewrite + redirect, no lookup
//	xdp          sbcd, media.datapath xdp (native XDP on the veths)
//	xdp-generic  sbcd, media.datapath xdp-generic
//	tc           sbcd, media.datapath tc (tcx)
//	userspace    sbcd, media.datapath userspace (the epoll relay)
//	rtpengine    Debian's rtpengine, user-space mode, over ng
//	nftables     kernel forwarding with nftables DNAT/SNAT
//
// Per path: 500 calls (50,000 pps) and 1,000 calls (100,000 pps) for
// loss and CPU, then the highest zero-loss rate on 50 calls whose streams
// are sped up step by step. CPU is the forwarder process's utime+stime
// plus the machine's softirq time (where kernel forwarding runs; it also
// holds the sink's and generator's packet handling, which is the same on
// every path), in % of one core; per packet it is that over the rate.
// For the BPF paths the programs' own run time per packet
// (kernel.bpf_stats_enabled) is printed too.
//
// Knobs: SBC_BENCH_KPATHS (the list above), SBC_BENCH_KWINDOW (5s),
// SBC_BENCH_KPEAK_WINDOW (3s), SBC_BENCH_KPEAK (pps steps).
func TestBenchMediaPaths(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_BENCH_MEDIA") == "" {
		t.Skip("benchmark: run with make bench-media")
	}
	start := time.Now()
	window := envDuration("SBC_BENCH_KWINDOW", 5*time.Second)
	peakWindow := envDuration("SBC_BENCH_KPEAK_WINDOW", 3*time.Second)
	peakSteps := envInts("SBC_BENCH_KPEAK", []int{40000, 80000, 120000, 160000, 200000, 240000, 280000, 320000})
	paths := strings.Split(envString("SBC_BENCH_KPATHS", "ceiling,xdp,xdp-generic,tc,userspace,rtpengine,nftables"), ",")
	const calls, peakCalls = 1000, 50
	total := calls + peakCalls

	if out, err := exec.Command("sysctl", "-qw", "kernel.bpf_stats_enabled=1").CombinedOutput(); err != nil {
		t.Logf("bpf run-time stats unavailable: %v %s", err, out)
	} else {
		t.Cleanup(func() { _ = exec.Command("sysctl", "-qw", "kernel.bpf_stats_enabled=0").Run() })
	}
	picked := autoPath(t)
	t.Logf("media.datapath auto picks %q on this lab", picked)

	load := newMediaLoad(t, total)
	type row struct {
		name         string
		skipped      string
		r50, r100    loadResult
		u50, u100    usage
		ns50         float64 // BPF program ns per packet at 50k pps
		peak         float64
		peakLog      []string
		peakGenLimit bool
	}
	var rows []*row
	for _, name := range paths {
		rw := &row{name: name}
		rows = append(rows, rw)
		fw, skip := benchForwarder(t, name, total)
		if skip != "" {
			rw.skipped = skip
			t.Logf("%s: skipped (%s)", name, skip)
			continue
		}
		st := &pathState{t: t, fw: fw, pr: &pathResult{name: name, rows: map[int]stepRow{}}, load: load, dst: make([]unix.RawSockaddrInet4, 2*total)}
		st.ensure(total)
		if fw.ready != nil {
			fw.ready()
		}
		ns0 := bpfRunNs()
		rw.r50, rw.u50 = st.measure(0, 500, 50, window, 2*time.Millisecond)
		if ns1 := bpfRunNs(); ns1.count > ns0.count {
			rw.ns50 = float64(ns1.ns-ns0.ns) / float64(ns1.count-ns0.count)
		}
		st.logStep("500 calls", rw.r50, rw.u50)
		rw.r100, rw.u100 = st.measure(0, 1000, 50, window, 2*time.Millisecond)
		st.logStep("1000 calls", rw.r100, rw.u100)
		for _, pps := range peakSteps {
			rate := float64(pps) / float64(2*peakCalls)
			r, u := st.measure(calls, peakCalls, rate, peakWindow, 10*time.Millisecond)
			st.logStep(fmt.Sprintf("peak step %d pps", pps), r, u)
			if r.lost() > 0 {
				rw.peakLog = append(rw.peakLog, fmt.Sprintf("%.0fk:lost %.2f%%", r.pps()/1000, r.lossPct()))
				break
			}
			rw.peakLog = append(rw.peakLog, fmt.Sprintf("%.0fk:0", r.pps()/1000))
			// The generator shares the machine: past its limit a higher
			// step only sends about as much again.
			if r.pps() < 1.05*rw.peak {
				rw.peakGenLimit = true
				rw.peak = max(rw.peak, r.pps())
				break
			}
			rw.peak = max(rw.peak, r.pps())
		}
		if fw.stop != nil {
			fw.stop()
		}
	}

	cost := func(u usage) float64 { return u.proc + u.softirq }
	perPkt := func(u usage, r loadResult) float64 { // µs of CPU per packet
		if r.pps() == 0 {
			return 0
		}
		return cost(u) / 100 * 1e6 / r.pps()
	}
	byName := map[string]*row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-media paths: %v per call step, %v per peak step, 172-byte RTP, 2 cores shared by generator, sink and forwarder; auto picks %q\n", window, peakWindow, picked)
	fmt.Fprintf(&out, "CPU = forwarder process + machine softirq, %% of one core (softirq also holds the generator's and sink's packet handling, alike on every path)\n")
	fmt.Fprintf(&out, "%-12s | %-28s | %-34s | %-34s | %s\n", "path", "max zero-loss pps", "50k pps: loss / CPU (proc+sirq) / us/pkt", "100k pps (1000 calls): loss / CPU", "BPF ns/pkt")
	for _, r := range rows {
		if r.skipped != "" {
			fmt.Fprintf(&out, "%-12s | skipped: %s\n", r.name, r.skipped)
			continue
		}
		peak := fmt.Sprintf("%.0f", r.peak)
		if r.peakGenLimit {
			peak += " (generator limit)"
		}
		ns := "-"
		if r.ns50 > 0 {
			ns = fmt.Sprintf("%.0f", r.ns50)
		}
		fmt.Fprintf(&out, "%-12s | %-28s | %6.3f%% / %3.0f%% (%2.0f+%2.0f) / %5.2f | %6.3f%% / %3.0f%% (%2.0f+%2.0f) @%3.0fk | %s\n", r.name, peak,
			r.r50.lossPct(), cost(r.u50), r.u50.proc, r.u50.softirq, perPkt(r.u50, r.r50),
			r.r100.lossPct(), cost(r.u100), r.u100.proc, r.u100.softirq, r.r100.pps()/1000, ns)
	}
	for _, r := range rows {
		if r.skipped == "" {
			fmt.Fprintf(&out, "peak steps %s: %s\n", r.name, strings.Join(r.peakLog, " "))
		}
	}
	k, ceil, user, rtpe := byName[picked], byName["ceiling"], byName["userspace"], byName["rtpengine"]
	ok := func(r *row) bool { return r != nil && r.skipped == "" && picked != "userspace" }
	if ok(k) && ok(ceil) && ceil.peak > 0 {
		fmt.Fprintf(&out, "target: %s peak within 10%% of the ceiling: %s (%.0f vs %.0f, %.0f%%)\n", picked, verdict(k.peak >= 0.9*ceil.peak), k.peak, ceil.peak, 100*k.peak/ceil.peak)
	}
	if ok(k) && ok(user) && user.peak > 0 {
		fmt.Fprintf(&out, "target: %s peak >= 2.5x the user-space relay: %s (%.1fx)\n", picked, verdict(k.peak >= 2.5*user.peak), k.peak/user.peak)
	}
	if ok(k) && ok(user) && cost(user.u50) > 0 {
		fmt.Fprintf(&out, "target: %s CPU at 50k pps <= 1/3 of the relay's: %s (%.0f%% vs %.0f%%, ratio %.2f)\n", picked, verdict(cost(k.u50) <= cost(user.u50)/3), cost(k.u50), cost(user.u50), cost(k.u50)/cost(user.u50))
	}
	if ok(k) && ok(rtpe) && cost(rtpe.u100) > 0 {
		fmt.Fprintf(&out, "target: 1000 calls through %s, zero loss, CPU <= 1/5 of rtpengine's: %s (loss %.3f%%, %.0f%% vs rtpengine %.0f%%, ratio %.2f; our relay %.0f%%, loss %.3f%%)\n", picked,
			verdict(k.r100.lost() == 0 && cost(k.u100) <= cost(rtpe.u100)/5), k.r100.lossPct(), cost(k.u100), cost(rtpe.u100), cost(k.u100)/cost(rtpe.u100), cost(user.u100), user.r100.lossPct())
	}
	fmt.Fprintf(&out, "run time %v\n", time.Since(start).Round(time.Second))
	fmt.Print(out.String())
}

// autoPath starts sbcd with media.datapath auto and reports the path it
// picked.
func autoPath(t *testing.T) string {
	s := startSBCD(t, benchSBCDConfig(t, "auto"))
	p := s.flows(t).Datapath
	s.stop()
	return p
}

func benchSBCDConfig(t *testing.T, datapath string) string {
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-39999}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-49999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
media: {timeout: 600s, datapath: %s}
log: {level: warn}
`, sbcExt, sbcInt, pbxHost, carrierHost, datapath)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// benchForwarder starts one path, or says why it cannot run here.
func benchForwarder(t *testing.T, name string, total int) (forwarder, string) {
	switch name {
	case "ceiling":
		lo, hi := uint16(loadPortBase), uint16(loadPortBase+total)
		stop, err := attachCeiling(lo, hi)
		if err != nil {
			return forwarder{}, err.Error()
		}
		ext, in := netip.MustParseAddr(sbcExt), netip.MustParseAddr(sbcInt)
		return forwarder{
			name: name,
			setup: func(i int) (netip.AddrPort, netip.AddrPort, error) {
				return netip.AddrPortFrom(ext, uint16(loadPortBase+i)), netip.AddrPortFrom(in, uint16(loadPortBase+i)), nil
			},
			stop: stop,
		}, ""
	case "xdp", "xdp-generic", "tc", "userspace":
		fw := sbcdForwarderCfg(t, benchSBCDConfig(t, name), total)
		fw.name = "sbcd-" + name
		if name != "userspace" {
			s := fw.sbcd
			if p := s.flows(t).Datapath; p != name {
				fw.stop()
				return forwarder{}, fmt.Sprintf("sbcd runs %q, not %s", p, name)
			}
			fw.ready = func() {
				deadline := time.Now().Add(10 * time.Second)
				for {
					n := len(kernelFlows(s.flows(t)))
					if n == 2*total {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %d of %d flows offloaded", name, n, 2*total)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		return fw, ""
	case "rtpengine":
		if _, err := exec.LookPath("rtpengine"); err != nil {
			return forwarder{}, "rtpengine not installed (bash scripts/bench-deps.sh)"
		}
		return rtpengineForwarder(t), ""
	case "nftables":
		if _, err := exec.LookPath("nft"); err != nil {
			return forwarder{}, "nft not installed (bash scripts/bench-deps.sh)"
		}
		return nftForwarder(t, total), ""
	}
	t.Fatalf("unknown path %q in SBC_BENCH_KPATHS", name)
	return forwarder{}, ""
}

type runNs struct{ ns, count uint64 }

// bpfRunNs sums the run time and run count of the media programs
// (xdp_fwd, tc_fwd, the ceiling) loaded on the machine.
func bpfRunNs() runNs {
	var out runNs
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) || err != nil {
			return out
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		var st *ebpf.ProgramStats
		if err == nil {
			st, err = p.Stats()
		}
		p.Close()
		if err != nil || (info.Name != "xdp_fwd" && info.Name != "tc_fwd" && info.Name != "ceiling") {
			continue
		}
		out.ns += uint64(st.Runtime)
		out.count += st.RunCount
	}
}
