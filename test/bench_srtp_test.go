package test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// TestBenchMediaSRTP is the SRTP row of `make bench-media`: one sbcd whose
// carrier realm has srtp: optional carries two sets of calls from car to
// ent at once, plain RTP<->RTP calls and SRTP<->RTP calls (the carrier leg
// RTP/SAVP, the PBX leg plain), and the two sets are measured in turn,
// interleaved, so the machine's noise falls on both alike. Per set: sbcd's
// CPU per packet at a fixed rate (three windows each), and the highest
// zero-loss rate with sbcd's CPU there, as packets per second per core.
// The target: SRTP interworking costs at most 2x the plain relay per
// packet (datapath userspace: plain calls would otherwise go to the kernel
// path, which TestBenchMediaPaths measures).
//
// The carrier-side generator encrypts each packet with pion/srtp (its own
// key per call); the sinks count packets by the clear RTP header (SSRC =
// window<<20 | stream), so they need not decrypt. Knobs:
// SBC_BENCH_SRTP_WINDOW (5s), SBC_BENCH_SRTP_RATE (fixed total pps per
// set, 20000), SBC_BENCH_SRTP_PEAK (total pps steps).
func TestBenchMediaSRTP(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_BENCH_MEDIA") == "" {
		t.Skip("benchmark: run with make bench-media")
	}
	window := envDuration("SBC_BENCH_SRTP_WINDOW", 5*time.Second)
	fixed := envInts("SBC_BENCH_SRTP_RATE", []int{20000})[0]
	peakSteps := envInts("SBC_BENCH_SRTP_PEAK", []int{20000, 40000, 60000, 80000, 100000, 120000, 140000})
	const calls = 50 // per set: 100 streams
	start := time.Now()

	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-39999, srtp: optional}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-49999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
media: {timeout: 600s, datapath: userspace}
log: {level: warn}
`, sbcExt, sbcInt, pbxHost, carrierHost)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	pid := s.cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "sbcd" {
		t.Fatalf("PID %d is %q, not sbcd", pid, comm)
	}

	l := newSRTPLoad(t, 2*calls)
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"
	media := func(m sip.Message) (netip.AddrPort, []string) {
		sd, err := mediarelay.ParseSDP(m.Body())
		if err != nil || len(sd.Media) == 0 {
			t.Fatalf("SDP from sbcd: %v\n%s", err, m.Body())
		}
		return netip.AddrPortFrom(sd.Media[0].Addr, uint16(sd.Media[0].Port)), sd.Media[0].Crypto
	}
	// Calls 0..calls-1 plain, calls..2*calls-1 SRTP on the carrier leg.
	for i := 0; i < 2*calls; i++ {
		id := fmt.Sprintf("bsrtp-%d", i)
		var offer string
		var key testphone.SRTPKey
		if i >= calls {
			key = testphone.NewSRTPKey(1)
			offer = savpSDP(carrierHost, loadPortBase+i, 1, key)
		} else {
			offer = offerSDP(carrierHost, loadPortBase+i, "sendrecv", 1)
		}
		caller.Invite(sbcA, "1000", id, offer)
		inv := callee.ExpectRequest(sip.INVITE, wait)
		entTo, _ := media(inv)
		callee.Answer(inv, 200, "OK", "tt"+id, offerSDP(pbxHost, loadPortBase+i, "sendrecv", 1))
		ok := caller.ExpectResponse(200, sip.INVITE, wait)
		carTo, crypto := media(ok)
		caller.Ack(testphone.CallerDialog(ok, sbcA), 1, id+"-ack")
		if (i >= calls) != (len(crypto) == 1) {
			t.Fatalf("call %d: SRTP %v but the answer has %d a=crypto", i, i >= calls, len(crypto))
		}
		if i >= calls {
			ctx, err := srtp.CreateContext(key.KeySalt[:16], key.KeySalt[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
			if err != nil {
				t.Fatal(err)
			}
			l.enc[2*i] = ctx
		}
		setDest(l.dst, i, carTo, entTo)
	}
	sets := []struct {
		name string
		from int
	}{{"plain RTP<->RTP", 0}, {"SRTP<->RTP", calls}}
	// Latch both ends of every call.
	for _, st := range sets {
		l.run(st.from, calls, 50, time.Second, pid)
	}

	type agg struct {
		pkts, cpuSec float64 // summed over the fixed windows
		lost         uint64
		peak         float64 // highest zero-loss pps
		peakCPU      float64 // sbcd CPU there, % of one core
		peakLog      []string
		stopped      bool
		steps        map[int][2]float64 // zero-loss step -> pps sent, CPU %
	}
	res := make([]agg, len(sets))
	for k := range res {
		res[k].steps = map[int][2]float64{}
	}
	for rep := 0; rep < 3; rep++ {
		for k, st := range sets {
			r, u := l.run(st.from, calls, float64(fixed)/(2*calls), window, pid)
			t.Logf("%s fixed %d pps: sent %d (%.0f pps), lost %d (%.3f%%), sbcd CPU %.1f%%, generator %.0f%%",
				st.name, fixed, r.sent, r.pps(), r.lost(), r.lossPct(), u.proc, u.self)
			res[k].pkts += float64(r.sent)
			res[k].cpuSec += u.proc / 100 * r.dur.Seconds()
			res[k].lost += r.lost()
		}
	}
	for _, pps := range peakSteps {
		for k, st := range sets {
			a := &res[k]
			if a.stopped {
				continue
			}
			r, u := l.run(st.from, calls, float64(pps)/(2*calls), window, pid)
			t.Logf("%s peak step %d pps: sent %.0f pps, lost %d (%.3f%%), sbcd CPU %.1f%%", st.name, pps, r.pps(), r.lost(), r.lossPct(), u.proc)
			if r.lost() > 0 {
				a.peakLog = append(a.peakLog, fmt.Sprintf("%.0fk:lost %.3f%%", r.pps()/1000, r.lossPct()))
				a.stopped = true
				continue
			}
			a.peakLog = append(a.peakLog, fmt.Sprintf("%.0fk:0", r.pps()/1000))
			a.steps[pps] = [2]float64{r.pps(), u.proc}
			if r.pps() > a.peak {
				a.peak, a.peakCPU = r.pps(), u.proc
			}
			if r.genShort(pps) {
				a.peakLog = append(a.peakLog, "(generator limit)")
				a.stopped = true
			}
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-media SRTP: one sbcd, %d plain and %d SRTP<->RTP calls, measured in turn; %v windows; 172-byte RTP (182 as SRTP, AES_CM_128_HMAC_SHA1_80); 2 cores shared by generator, sink and sbcd\n", calls, calls, window)
	fmt.Fprintf(&out, "%-16s | %-28s | %-22s | %-34s | %s\n", "path", "fixed-rate CPU per packet", "highest zero-loss pps", "zero-loss pps per core (CPU there)", "peak steps")
	us := make([]float64, len(sets))
	for k, st := range sets {
		a := res[k]
		us[k] = 1e6 * a.cpuSec / a.pkts
		perCore := 0.0
		if a.peakCPU > 0 {
			perCore = a.peak / (a.peakCPU / 100)
		}
		fmt.Fprintf(&out, "%-16s | %6.2f us/pkt (lost %d)%6s | %-22.0f | %-34s | %s\n", st.name, us[k], a.lost, "", a.peak,
			fmt.Sprintf("%.0f (%.0f%% of a core)", perCore, a.peakCPU), strings.Join(a.peakLog, " "))
	}
	ratio := us[1] / us[0]
	fmt.Fprintf(&out, "SRTP<->RTP cost per packet at %d pps: %.2fx the plain relay's (target <= 2x: %s)\n", fixed, ratio, verdict(ratio <= 2))
	// And at the highest step both passed without loss, where batching is
	// fuller and per-packet costs are lower.
	top := 0
	for _, pps := range peakSteps {
		_, p := res[0].steps[pps]
		_, q := res[1].steps[pps]
		if p && q {
			top = pps
		}
	}
	if top > 0 {
		p, q := res[0].steps[top], res[1].steps[top]
		up, uq := 1e4*p[1]/p[0], 1e4*q[1]/q[0]
		fmt.Fprintf(&out, "at the %d pps step (both zero loss): plain %.2f us/pkt (%.0f pps per core), SRTP<->RTP %.2f us/pkt (%.0f pps per core): %.2fx\n",
			top, up, 1e6/up, uq, 1e6/uq, uq/up)
	}
	fmt.Fprintf(&out, "run time %v\n", time.Since(start).Round(time.Second))
	fmt.Print(out.String())
	if d := s.metric(t, "sbc_media_srtp_dropped_total"); d != 0 {
		t.Errorf("sbcd dropped %v SRTP packets as bad during the benchmark", d)
	}
}

// srtpLoad is the SRTP bench's generator and sinks: per call one socket in
// car and one in ent (ports loadPortBase+i, as mediaLoad); stream 2i goes
// car -> ent, 2i+1 ent -> car.
type srtpLoad struct {
	t        *testing.T
	car, ent loadSide
	dst      []unix.RawSockaddrInet4
	enc      []*srtp.Context // per stream: the car phone's SRTP key, nil = plain
	recv     []atomic.Uint32
	window   atomic.Uint32
	stop     atomic.Bool
	wg       sync.WaitGroup
	seq      []uint16
}

func newSRTPLoad(t *testing.T, calls int) *srtpLoad {
	l := &srtpLoad{t: t, dst: make([]unix.RawSockaddrInet4, 2*calls), enc: make([]*srtp.Context, 2*calls),
		recv: make([]atomic.Uint32, 2*calls), seq: make([]uint16, 2*calls)}
	l.car = loadSide{ns: "car", ip: carrierHost, epfd: -1}
	l.ent = loadSide{ns: "ent", ip: pbxHost, epfd: -1}
	t.Cleanup(l.close)
	for _, s := range []*loadSide{&l.car, &l.ent} {
		if err := s.open(calls); err != nil {
			t.Fatalf("generator sockets in %s: %v", s.ns, err)
		}
	}
	l.wg.Add(2)
	go l.receive(&l.ent, 0)
	go l.receive(&l.car, 1)
	return l
}

func (l *srtpLoad) close() {
	if l.stop.Swap(true) {
		return
	}
	l.wg.Wait()
	l.car.close()
	l.ent.close()
}

// receive counts packets of this window per stream, by SSRC.
func (l *srtpLoad) receive(s *loadSide, parity int) {
	defer l.wg.Done()
	s.drain(&l.stop, func(b []byte) {
		if len(b) < loadPktLen {
			return
		}
		ssrc := binary.BigEndian.Uint32(b[8:])
		st := int(ssrc & (1<<20 - 1))
		if ssrc>>20 != l.window.Load()&0xfff || st >= len(l.recv) || st%2 != parity {
			return
		}
		l.recv[st].Add(1)
	})
}

// sendSide paces streams from..from+n-1 of one side at rate pps each,
// encrypting where the stream has a key.
func (l *srtpLoad) sendSide(s *loadSide, parity, from, n int, rate float64, d time.Duration, win uint32, sent []uint64) {
	plain := make([]byte, loadPktLen)
	plain[0], plain[1] = 0x80, 0
	for k := 12; k < loadPktLen; k++ {
		plain[k] = 0xd5
	}
	bufs := make([][256]byte, loadBatch)
	iovs := make([]unix.Iovec, loadBatch)
	hdrs := make([]unix.Mmsghdr, loadBatch)
	for i := range hdrs {
		iovs[i].Base = &bufs[i][0]
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
		hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	}
	start := time.Now()
	for {
		el := time.Since(start)
		last := el >= d
		if last {
			el = d
		}
		for i := from; i < from+n; i++ {
			st := 2*i + parity
			want := uint64(el.Seconds()*rate + float64(i-from)/float64(n))
			if want <= sent[st] {
				continue
			}
			k := min(int(want-sent[st]), loadBatch)
			for j := 0; j < k; j++ {
				seq := l.seq[st] + uint16(j)
				binary.BigEndian.PutUint16(plain[2:], seq)
				binary.BigEndian.PutUint32(plain[4:], uint32(seq)*160)
				binary.BigEndian.PutUint32(plain[8:], (win&0xfff)<<20|uint32(st))
				out := bufs[j][:loadPktLen]
				copy(out, plain)
				if c := l.enc[st]; c != nil {
					var err error
					if out, err = c.EncryptRTP(bufs[j][:0], plain, nil); err != nil {
						l.t.Errorf("encrypt: %v", err)
						return
					}
				}
				iovs[j].SetLen(len(out))
				hdrs[j].Hdr.Name = (*byte)(unsafe.Pointer(&l.dst[st]))
			}
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fds[i]), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
			if e != 0 {
				r = 0
			}
			// Unsent packets were encrypted under their sequence numbers
			// already: skip those numbers rather than reuse them.
			l.seq[st] += uint16(k)
			sent[st] += uint64(r)
		}
		if last {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// run sends one window through calls from..from+n-1 and returns what
// arrived and sbcd's CPU.
func (l *srtpLoad) run(from, n int, rate float64, d time.Duration, pid int) (loadResult, usage) {
	win := l.window.Add(1)
	lo, hi := 2*from, 2*(from+n)
	for i := lo; i < hi; i++ {
		l.recv[i].Store(0)
	}
	sent := make([]uint64, len(l.recv))
	var wg sync.WaitGroup
	s0 := takeSample(pid)
	t0 := time.Now()
	wg.Add(2)
	go func() { defer wg.Done(); l.sendSide(&l.car, 0, from, n, rate, d, win, sent) }()
	go func() { defer wg.Done(); l.sendSide(&l.ent, 1, from, n, rate, d, win, sent) }()
	wg.Wait()
	dur := time.Since(t0)
	s1 := takeSample(pid)
	var last uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		var tot uint64
		for i := lo; i < hi; i++ {
			tot += uint64(l.recv[i].Load())
		}
		if tot == last {
			break
		}
		last = tot
	}
	r := loadResult{calls: n, rate: rate, dur: dur, target: uint64(2 * float64(n) * rate * d.Seconds())}
	for i := lo; i < hi; i++ {
		got := uint64(l.recv[i].Load())
		r.sent += sent[i]
		r.received += got
		if got < sent[i] {
			r.streamsHit++
			if got == 0 {
				r.deadStreams++
			}
		}
	}
	return r, between(s0, s1)
}
