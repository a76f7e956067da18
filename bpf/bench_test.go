package bpf

import (
	"bytes"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkProgram measures one run of each program on a 214-byte RTP
// frame (G.711, 20 ms) with BPF_PROG_RUN: a hit (full rewrite) and a miss.
// Figures are per packet, side by side for xdp and tc:
//
//	go test -run '^$' -bench Program ./bpf
func BenchmarkProgram(b *testing.B) {
	objs := loadTestObjects(b)
	putTestFlow(b, objs, FlowKey{sbcExt}, FlowAction{Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1})
	payload := bytes.Repeat([]byte{0xd5}, 172)
	hit := frameSpec{src: carrier, dst: sbcExt, payload: payload}.build()
	miss := frameSpec{src: carrier, dst: sbcInt, payload: payload}.build()
	for _, pc := range progCases {
		for _, f := range []struct {
			name  string
			frame []byte
		}{{"hit", hit}, {"miss", miss}} {
			b.Run(pc.name+"/"+f.name, func(b *testing.B) {
				var total time.Duration
				for b.Loop() {
					// Benchmark repeats in the kernel; the per-run figure
					// it reports excludes the syscall.
					_, d, err := pc.prog(objs).Benchmark(f.frame, 1000, nil)
					if err != nil {
						b.Fatal(err)
					}
					total += d
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
			})
		}
	}
}

// BenchmarkProgramBans measures the ban check's cost: a hit (IPv4 and
// IPv6) while the ban maps hold another source, so the per-family lookup
// runs, and the drop of a banned source. Compare with BenchmarkProgram's
// hit (empty maps: one array lookup).
//
//	go test -run '^$' -bench ProgramBans ./bpf
func BenchmarkProgramBans(b *testing.B) {
	objs := loadTestObjects(b)
	putTestFlow(b, objs, FlowKey{sbcExt}, FlowAction{Src: sbcInt, Dst: pbx, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1})
	putTestFlow(b, objs, FlowKey{sbcExt6}, FlowAction{Src: sbcInt6, Dst: pbx6, SrcMAC: egrMAC, DstMAC: pbxMAC, Ifindex: 1})
	payload := bytes.Repeat([]byte{0xd5}, 172)
	banned6 := netip.MustParseAddr("2001:db8:1::99")
	for _, a := range []netip.Addr{netip.MustParseAddr("203.0.113.99"), banned6} {
		m, k, err := banKey(objs, a)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Update(k, uint64(0), ebpf.UpdateAny); err != nil {
			b.Fatal(err)
		}
	}
	if err := objs.BanCount.Update(uint32(0), uint32(2), ebpf.UpdateAny); err != nil {
		b.Fatal(err)
	}
	frames := []struct {
		name  string
		frame []byte
	}{
		{"hit4", frameSpec{src: carrier, dst: sbcExt, payload: payload}.build()},
		{"hit6", frameSpec{src: car6, dst: sbcExt6, payload: payload}.build()},
		{"banned6", frameSpec{src: netip.AddrPortFrom(banned6, 5004), dst: sbcExt6, payload: payload}.build()},
	}
	for _, pc := range progCases {
		for _, f := range frames {
			b.Run(pc.name+"/"+f.name, func(b *testing.B) {
				var total time.Duration
				for b.Loop() {
					_, d, err := pc.prog(objs).Benchmark(f.frame, 1000, nil)
					if err != nil {
						b.Fatal(err)
					}
					total += d
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
			})
		}
	}
}

// BenchmarkPrivilegedForward sends real UDP packets from A to B through the
// SBC namespace on each path and reports the program's own cost per
// packet in the kernel (bpf_stats run time / run count, which includes the
// redirect helper but not the transmit) and the share delivered. The
// sockets at either end dominate the wall time; bench-media measures pps.
//
//	go test -run '^$' -bench PrivilegedForward -benchtime 20000x ./bpf
func BenchmarkPrivilegedForward(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("bpf stats: %v", err)
	}
	defer stats.Close()
	for _, mode := range []string{PathXDP, PathXDPGeneric, PathTC} {
		b.Run(mode, func(b *testing.B) {
			tp := newTopo(b, true)
			d := tp.open(b, mode)
			defer d.Unload()
			tp.s.must(b, func() error { return d.Put(tp.fwd, tp.fwdAct) })
			a, bb := tp.a.endpoint(b, aAddr), tp.b.endpoint(b, bAddr)
			prog := d.program(mode)
			before, _ := prog.Stats()
			got := 0
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				n := min(500, b.N-sent)
				a.send(b, sExt, sent, n)
				got += len(bb.recv(b, n, time.Second).seqs)
				sent += n
			}
			b.StopTimer()
			after, _ := prog.Stats()
			if runs := after.RunCount - before.RunCount; runs > 0 {
				b.ReportMetric(float64((after.Runtime-before.Runtime).Nanoseconds())/float64(runs), "bpf-ns/pkt")
			}
			b.ReportMetric(100*float64(got)/float64(b.N), "%delivered")
		})
	}
}
