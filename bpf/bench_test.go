package bpf

import (
	"bytes"
	"testing"
	"time"
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
