package test

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// mixedFlood is flood's mix of what a real attack sends: INVITEs with an
// SDP offer to routable numbers (prefix, the source's index digit, a call
// number), REGISTERs, OPTIONS and garbage, in turn, from each address for
// d at pps datagrams a second in total, bounded by max. It returns how
// many it sent and how long that took, measured at the sender.
func mixedFlood(t *testing.T, addrs []string, prefix string, pps int, d time.Duration, max int) (int64, time.Duration) {
	t.Helper()
	return paced(t, addrs, pps, d, max, func(n, i int, a string, port int) []byte { // guard_test.go
		return floodMessage(n, i, a, port, prefix)
	})
}

// floodMessage is the n-th datagram of source i (address a, port).
func floodMessage(n, i int, a string, port int, prefix string) []byte {
	via := fmt.Sprintf("Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-m%d-%d\r\nMax-Forwards: 70\r\n", a, port, i, n)
	switch n % 4 {
	case 0:
		sdp := fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n", n, a, a, 20000+2*(n%10000))
		num := fmt.Sprintf("%s%d%06d", prefix, i%10, n)
		return fmt.Appendf(nil, "INVITE sip:%s@%s SIP/2.0\r\n%sFrom: <sip:flood@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\nCall-ID: mflood-%d-%d\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@%s:%d>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
			num, sbcExt, via, a, n, num, sbcExt, i, n, a, port, len(sdp), sdp)
	case 1:
		return fmt.Appendf(nil, "REGISTER sip:%s SIP/2.0\r\n%sFrom: <sip:%d@%s>;tag=r%d\r\nTo: <sip:%d@%s>\r\nCall-ID: mreg-%d-%d\r\nCSeq: 1 REGISTER\r\nContact: <sip:%d@%s:%d>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
			sbcExt, via, 100+n%900, sbcExt, n, 100+n%900, sbcExt, i, n, 100+n%900, a, port)
	case 2:
		return fmt.Appendf(nil, "OPTIONS sip:%s SIP/2.0\r\n%sFrom: <sip:probe@%s>;tag=o%d\r\nTo: <sip:%s>\r\nCall-ID: mopt-%d-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			sbcExt, via, a, n, sbcExt, i, n)
	}
	if n%8 == 3 { // a request that fails the raw check
		return fmt.Appendf(nil, "INVITE sip:%d@%s SIP/2.0\r\nVia: nonsense\r\nCSeq: x\r\nContent-Length: 999\r\n\r\n", n, sbcExt)
	}
	return fmt.Appendf(nil, "\x16\x03\x01garbage %d %x\r\n\r\n", n, n*7919)
}

// labWatch samples sbcd every 250 ms until done: the peak Go heap in use,
// the peak media port pairs in use (every realm), the slowest admin
// answer.
type labWatch struct {
	stop              chan struct{}
	wg                sync.WaitGroup
	heap, ports, slow atomic.Int64
}

func watchLab(s *sbcd) *labWatch {
	w := &labWatch{stop: make(chan struct{})}
	peak := func(v *atomic.Int64, x int64) {
		if x > v.Load() {
			v.Store(x)
		}
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			t0 := time.Now()
			b, err := s.get("/metrics")
			if err != nil {
				w.slow.Store(int64(time.Hour))
				continue
			}
			peak(&w.slow, int64(time.Since(t0)))
			var ports int64
			for _, l := range strings.Split(string(b), "\n") {
				f := strings.Fields(l)
				if len(f) != 2 {
					continue
				}
				v, _ := strconv.ParseFloat(f[1], 64)
				switch {
				case f[0] == "go_memstats_heap_inuse_bytes":
					peak(&w.heap, int64(v))
				case strings.HasPrefix(f[0], "sbc_media_ports_in_use{"):
					ports += int64(v)
				}
			}
			peak(&w.ports, ports)
		}
	}()
	return w
}

func (w *labWatch) done() (heap, ports int64, slowest time.Duration) {
	close(w.stop)
	w.wg.Wait()
	return w.heap.Load(), w.ports.Load(), time.Duration(w.slow.Load())
}

// The flood of issue 16 against the shipped configs/lab.yaml as it is (no
// guard section: the protection defaults): legitimate SIPp calls at 20/s
// from the carrier while twelve other carrier-side addresses flood
// INVITEs with SDP to routable numbers, REGISTERs, OPTIONS and garbage
// at 20,000/s together (ten times what sbcd sets up per second here, see
// bench-sip) for 20 s. Judged at the ends: at least 99% of the legitimate
// calls succeed at the caller (SIPp's counts) and complete at the PBX, no
// flood call reaches the PBX, no offer is refused for want of ports and
// the port pairs in use stay those of the legitimate calls, every flooder
// is banned (the carrier is not), sbcd's heap stays bounded (the
// legitimate calls' finished transactions, kept 32 s, are most of its
// growth: the flood is dropped in the kernel once banned) and its
// goroutines return to their number before the flood.
func TestLabFloodShippedConfig(t *testing.T) {
	needLab(t)
	s := startSBCD(t, "") // configs/lab.yaml
	flooders := carAddrs(t, 20, 31)
	const rate, pps, floodFor = 20, 20000, 20 * time.Second
	calls := rate * 28 // before, during and after the flood
	pbx := startPBX(t, "1000")
	cl := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-s", "1000", "-set", "hold_ms", "200")...)
	deadline := time.Now().Add(10 * time.Second)
	for pbx.stats().Completed < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("no legitimate call completed before the flood: %+v\n%s", pbx.stats(), cl.errors())
		}
		time.Sleep(20 * time.Millisecond)
	}
	heapBefore := s.metric(t, "go_memstats_heap_inuse_bytes")
	goBefore := s.metric(t, "go_goroutines")
	w := watchLab(s)
	start := time.Now()
	sent, took := mixedFlood(t, flooders, "2000", pps, floodFor, pps*int(floodFor/time.Second)+pps)
	heapPeak, portsPeak, slowest := w.done()
	checkOffered(t, sent, took, pps)
	ok, completed := legitResult(t, cl, pbx, calls, 60*time.Second)
	st := pbx.stats()
	t.Logf("legitimate calls: %d of %d succeeded at the caller (%.1f%%), %d completed at the PBX; flood calls at the PBX: %d of %d datagrams sent",
		ok, calls, 100*float64(ok)/float64(calls), completed, st.OtherInvites, sent)
	if ok < calls*99/100 || completed < calls*99/100 {
		t.Errorf("under the flood %d of %d legitimate calls succeeded at the caller, %d completed at the PBX; want 99%%\n%s", ok, calls, completed, cl.errors())
	}
	if st.OtherInvites != 0 {
		t.Errorf("%d flood calls reached the PBX (by source %v), want none", st.OtherInvites, st.OtherByPrefix)
	}
	// The pools: no offer refused for want of ports, and at the peak no
	// more pairs in use than the legitimate calls' (20/s held ~0.3 s, two
	// realms each: a few dozen at most).
	if n := s.metric(t, "sbc_media_ports_exhausted_total"); n != 0 {
		t.Errorf("%v offers refused for want of media ports", n)
	}
	if portsPeak > 100 {
		t.Errorf("peak %d media port pairs in use: more than the legitimate calls hold", portsPeak)
	}
	if slowest > 2*time.Second {
		t.Errorf("sbcd's admin API took %v (or failed) during the flood", slowest)
	}
	bans := s.bans(t)
	for _, a := range flooders {
		if _, ok := bans[a]; !ok {
			t.Errorf("flooder %s not banned", a)
		}
	}
	if _, ok := bans[carrierHost]; ok {
		t.Errorf("the legitimate carrier was banned")
	}
	s.waitIdle(t)
	var goAfter float64
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		goAfter = s.metric(t, "go_goroutines")
		if goAfter <= goBefore+10 || time.Now().After(end) {
			break
		}
	}
	if goAfter > goBefore+10 {
		t.Errorf("%v goroutines after the flood and the calls, %v before", goAfter, goBefore)
	}
	// The heap is bounded, not back to its figure before the flood within
	// the test: the legitimate calls' finished transactions are kept 32 s
	// and Go frees lazily (measured: 3-7 MiB before, 16-19 MiB after, the
	// flood or not). What the flood itself leaves is what reaches user
	// space: with the kernel datapath, all but its first datagrams per
	// source are dropped there once banned.
	heapAfter := s.metric(t, "go_memstats_heap_inuse_bytes")
	t.Logf("sbcd heap in use: %.1f MiB before, peak %.1f MiB during, %.1f MiB after; goroutines %v before, %v after; peak media port pairs in use %d; slowest admin answer %v; flood started %v ago",
		heapBefore/(1<<20), float64(heapPeak)/(1<<20), heapAfter/(1<<20), goBefore, goAfter, portsPeak, slowest.Round(time.Millisecond), time.Since(start).Round(time.Second))
	if float64(heapPeak) > heapBefore+48<<20 || heapAfter > heapBefore+48<<20 {
		t.Errorf("heap %.1f MiB before, peak %.1f MiB, %.1f MiB after: not bounded", heapBefore/(1<<20), float64(heapPeak)/(1<<20), heapAfter/(1<<20))
	}
	if strings.Contains(s.series(t, "sbc_kernel_ban_dropped_packets_total"), "sbc_kernel_ban_dropped_packets_total") {
		dropped := s.metric(t, "sbc_kernel_ban_dropped_packets_total")
		t.Logf("flood datagrams dropped in the kernel: %.0f of %d (%.2f%% reached user space)", dropped, sent, 100*(1-dropped/float64(sent)))
		if dropped < 0.99*float64(sent) {
			t.Errorf("only %.0f of the flood's %d datagrams dropped in the kernel: banned sources reach user space", dropped, sent)
		}
	} else {
		t.Log("no kernel datapath: banned sources are dropped in user space, before parsing")
	}
	t.Logf("sbcd's metrics (for the log; the verdict is the ends'): %s; %s; kernel %s; %s",
		s.series(t, "sbc_policy_rejected_total"), s.series(t, "sbc_bans_total"), s.series(t, "sbc_kernel_ban_dropped_packets_total"), s.series(t, "sbc_calls_total"))
}

// Classification with the shipped config: the carrier realm's known peer
// is the carrier (the target of the route into it). An INVITE from
// another carrier-side address gets nothing over UDP and 403 over TCP,
// and none reaches the PBX; the carrier's own calls go through.
func TestLabClassification(t *testing.T) {
	needLab(t)
	s := startSBCD(t, "") // configs/lab.yaml
	addrs := carAddrs(t, 41, 42)
	pbx := startPBX(t, "1000")
	p := testphone.New(t, carSocket(t, addrs[0]))
	p.Invite(sbcExt+":5060", "1000", "class-udp", testphone.TestSDP)
	p.Quiet(time.Second, func(sip.Message) bool { return true }, "an answer to a stranger over UDP")
	// TCP from the other address: 403.
	var c net.Conn
	if err := inNetns("car", func() error {
		var err error
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addrs[1])}, Timeout: 3 * time.Second}
		c, err = d.Dial("tcp", sbcExt+":5060")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	sdp := testphone.TestSDP
	fmt.Fprintf(c, "INVITE sip:1000@%s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-class-tcp\r\nMax-Forwards: 70\r\nFrom: <sip:x@%s>;tag=ct\r\nTo: <sip:1000@%s>\r\nCall-ID: class-tcp\r\nCSeq: 1 INVITE\r\nContact: <sip:x@%s;transport=tcp>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		sbcExt, local, addrs[1], sbcExt, local, len(sdp), sdp)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 403") {
		t.Errorf("over TCP from a stranger: %q (%v), want 403", line, err)
	}
	// The carrier's call to a number the PBX refuses: once its 486 is
	// back, the PBX has seen whatever the SBC sent it.
	carrier := testphone.New(t, carSocket(t, carrierHost))
	carrier.Invite(sbcExt+":5060", "10001", "class-marker", testphone.TestSDP)
	carrier.ExpectResponse(486, sip.INVITE, 3*time.Second)
	if st := pbx.stats(); st.LegitInvites != 0 || st.OtherInvites != 1 {
		t.Errorf("at the PBX: %d INVITEs of the strangers (want 0), %d of the carrier's (want 1)", st.LegitInvites, st.OtherInvites)
	}
	t.Logf("sbcd counted %v requests from unknown sources refused", s.metric(t, "sbc_policy_rejected_total", `reason="unknown_source"`))
	if n := s.metric(t, "sbc_media_ports_in_use"); n != 0 {
		t.Errorf("%v media port pairs in use after the strangers' INVITEs and a refused call", n)
	}
}

// A banned source's packets, SIP and media alike, are dropped in the
// kernel (the XDP/tc program's ban map, counted there) before the stack,
// and it is unbanned after the ban time: in sbcd's list, in the kernel
// map, and its packets reach the stack again. IPv4 and IPv6 sources alike
// (the IPv6 case on the carrier realm's IPv6 face).
func TestLabKernelBans(t *testing.T) {
	needLab(t)
	t.Run("ipv4", func(t *testing.T) { kernelBans(t, sbcExt, carAddrs(t, 50, 50)[0]) })
	t.Run("ipv6", func(t *testing.T) { kernelBans(t, sbcExt6, carAddr6(t, 50)) })
}

// sipHost is ip as a SIP URI's host (an IPv6 reference in brackets).
func sipHost(ip string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]"
	}
	return ip
}

// kernelBans is TestLabKernelBans with the carrier realm on sbcIP and the
// scanner on src (a car0 address of the same family).
func kernelBans(t *testing.T, sbcIP, src string) {
	s := startSBCD(t, guardConfigOn(t, sbcIP, `"`+pbxHost+`:5060"`, `guard:
  bans: {duration: 3s}
`))
	if !strings.Contains(s.log.String(), "media datapath: kernel fast path") {
		t.Fatalf("no kernel datapath in the lab: nothing to test\n%s", s.log)
	}
	c := carSocket(t, src)
	sipAddr := &net.UDPAddr{IP: net.ParseIP(sbcIP), Port: 5060}
	media := &net.UDPAddr{IP: net.ParseIP(sbcIP), Port: 20000}
	host, from := sipHost(sbcIP), sipHost(src)
	scan := fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-kb1\r\nFrom: <sip:s@%s>;tag=1\r\nTo: <sip:%s>\r\nCall-ID: kb1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n", host, c.LocalAddr(), from, host)
	if _, err := c.WriteToUDP([]byte(scan), sipAddr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the scanner banned", func() bool { _, ok := s.bans(t)[src]; return ok })
	if n := s.metric(t, "sbc_kernel_bans"); n != 1 {
		t.Errorf("kernel ban map holds %v entries, want 1", n)
	}
	userBefore := s.bans(t)[src].Dropped
	kernelBefore := s.metric(t, "sbc_kernel_ban_dropped_packets_total")
	const n = 200
	for i := range n {
		to := sipAddr
		if i%2 == 1 {
			to = media
		}
		_, _ = c.WriteToUDP([]byte(scan), to)
	}
	waitFor(t, 2*time.Second, "the kernel counting the drops", func() bool {
		return s.metric(t, "sbc_kernel_ban_dropped_packets_total")-kernelBefore >= n
	})
	kernel := s.metric(t, "sbc_kernel_ban_dropped_packets_total") - kernelBefore
	user := s.bans(t)[src].Dropped - userBefore
	t.Logf("%d packets from the banned source: %v dropped in the kernel, %d reached sbcd's own ban check", n, kernel, user)
	if user != 0 {
		t.Errorf("%d of the banned source's packets reached user space", user)
	}
	out, err := exec.Command("ip", "netns", "exec", "sbc", filepath.Join(binDir, "sbcctl"), "bans").CombinedOutput()
	if err != nil || !strings.Contains(string(out), src) || !strings.Contains(string(out), "scanner") {
		t.Errorf("sbcctl bans: %v\n%s", err, out)
	}
	// After the ban time (3 s, swept each second): lifted everywhere.
	waitFor(t, 6*time.Second, "the ban lifted", func() bool { _, ok := s.bans(t)[src]; return !ok })
	waitFor(t, 2*time.Second, "the kernel map emptied", func() bool { return s.metric(t, "sbc_kernel_bans") == 0 })
	kernelBefore = s.metric(t, "sbc_kernel_ban_dropped_packets_total")
	rejBefore := s.metric(t, "sbc_policy_rejected_total", `reason="scanner"`)
	if _, err := c.WriteToUDP([]byte(scan), sipAddr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the unbanned source's packet reaching sbcd", func() bool {
		return s.metric(t, "sbc_policy_rejected_total", `reason="scanner"`) > rejBefore
	})
	if d := s.metric(t, "sbc_kernel_ban_dropped_packets_total") - kernelBefore; d != 0 {
		t.Errorf("%v packets dropped in the kernel after the ban ended", d)
	}
}
