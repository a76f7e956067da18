package test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// TestBenchMedia is `make bench-media`: RTP from Go generators in car and
// ent through sbcd's user-space relay, and the same traffic through
// Debian's rtpengine in user-space mode (driven over ng) and through the
// kernel's own forwarding (nftables DNAT/SNAT in namespace sbc), in one
// run. All three are up at once and the steps interleave, so a shared
// machine's noise falls on all alike. N concurrent calls of two 50 pps
// G.711 streams each (N = 250, 500, 1000, 1500; 500 calls is the fixed
// 50,000 pps) go through each path in turn; then, on 50 fresh calls, the
// rate of their 100 streams is stepped until a step loses packets (the
// highest zero-loss rate), and afterwards every call is checked to still
// flow (past its limit a forwarder must drop evenly, never kill a
// stream). It reports loss, how many streams lost anything, the worst
// stream's loss, and the forwarder's CPU: the process's utime+stime from
// /proc/PID/stat, in % of one core; for nftables, which has no process,
// the machine's softirq time from /proc/stat (system-wide: the
// forwarding itself and the delivery into the sink's sockets, which the
// relays' figures include too, since softirq work done while a process
// runs is charged to it).
//
// Knobs: SBC_BENCH_WINDOW (10s, per call step), SBC_BENCH_PEAK_WINDOW (5s,
// per peak step), SBC_BENCH_CALLS (250,500,1000,1500), SBC_BENCH_PEAK
// (total pps steps), SBC_BENCH_PATHS (sbcd,rtpengine,nftables).
func TestBenchMedia(t *testing.T) {
	needLab(t)
	if os.Getenv("SBC_BENCH_MEDIA") == "" {
		t.Skip("benchmark: run with make bench-media")
	}
	window := envDuration("SBC_BENCH_WINDOW", 10*time.Second)
	peakWindow := envDuration("SBC_BENCH_PEAK_WINDOW", 5*time.Second)
	callSteps := envInts("SBC_BENCH_CALLS", []int{250, 500, 1000, 1500})
	peakSteps := envInts("SBC_BENCH_PEAK", []int{20000, 40000, 60000, 80000, 100000, 110000, 120000, 140000, 160000, 200000})
	paths := strings.Split(envString("SBC_BENCH_PATHS", "sbcd,rtpengine,nftables"), ",")
	// The peak search runs on calls of its own, set up after the call
	// steps: streams an overloaded forwarder broke in a call step must not
	// count against its peak.
	const peakCalls = 50 // 100 streams
	maxCalls := 0
	for _, n := range callSteps {
		maxCalls = max(maxCalls, n)
	}
	total := maxCalls + peakCalls
	if total > 2000 {
		t.Fatalf("at most %d calls in the call steps (port plan), asked for %d", 2000-peakCalls, maxCalls)
	}
	load := newMediaLoad(t, total)
	start := time.Now()

	// Every path is set up at once and the steps interleave (each call
	// step runs through sbcd, rtpengine, nftables in turn), so that the
	// noise of a shared machine falls on all of them alike.
	var results []*pathResult
	var states []*pathState
	for _, name := range paths {
		pr := &pathResult{name: name, rows: map[int]stepRow{}}
		results = append(results, pr)
		var fw forwarder
		switch name {
		case "sbcd":
			fw = sbcdForwarder(t, total)
		case "rtpengine":
			if _, err := exec.LookPath("rtpengine"); err != nil {
				pr.skipped = "rtpengine not installed (bash scripts/bench-deps.sh)"
			} else {
				fw = rtpengineForwarder(t)
			}
		case "nftables":
			if _, err := exec.LookPath("nft"); err != nil {
				pr.skipped = "nft not installed (bash scripts/bench-deps.sh)"
			} else {
				fw = nftForwarder(t, total)
			}
		default:
			t.Fatalf("unknown path %q in SBC_BENCH_PATHS (sbcd, rtpengine, nftables)", name)
		}
		if pr.skipped != "" {
			t.Run(name, func(t *testing.T) { t.Skip(pr.skipped) })
			continue
		}
		states = append(states, &pathState{t: t, fw: fw, pr: pr, load: load, dst: make([]unix.RawSockaddrInet4, 2*total)})
	}
	if len(states) == 0 {
		t.Skip("no path to measure")
	}
	for _, n := range callSteps {
		for _, st := range states {
			st.ensure(n)
			r, u := st.measure(0, n, 50, window, 2*time.Millisecond)
			st.logStep(fmt.Sprintf("%d calls", n), r, u)
			st.pr.rows[n] = stepRow{r, u}
		}
	}
	for _, st := range states {
		st.peakSearch(maxCalls, peakCalls, peakSteps, peakWindow)
	}
	for _, st := range states {
		if st.fw.stop != nil {
			st.fw.stop()
		}
	}

	// The table.
	byName := map[string]*pathResult{}
	for _, r := range results {
		byName[r.name] = r
	}
	// A cell: loss / streams hit / CPU, and the rate actually offered when
	// the generator fell short of the step's (calls x 100 pps).
	cell := func(name string, n int, kernel bool) string {
		r := byName[name]
		if r == nil || r.skipped != "" {
			return "skipped"
		}
		s, ok := r.rows[n]
		if !ok {
			return "-"
		}
		short := ""
		if s.res.genShort(100 * n) {
			short = fmt.Sprintf(" @%.0fk", s.res.pps()/1000)
		}
		if kernel {
			return fmt.Sprintf("%7.3f%% / %4.0f%%%s", s.res.lossPct(), s.use.softirq, short)
		}
		return fmt.Sprintf("%7.3f%% / %4d / %4.0f%%%s", s.res.lossPct(), s.res.streamsHit, s.use.proc, short)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nbench-media: %v per call step, %v per peak step, 172-byte RTP (G.711 20 ms), 2 cores shared by generator, sink and forwarder\n", window, peakWindow)
	fmt.Fprintf(&out, "CPU = forwarder process utime+stime, %% of one core; softirq = whole machine (/proc/stat), %% of one core\n")
	fmt.Fprintf(&out, "%6s | %7s | %-32s | %-32s | %-22s\n", "calls", "pps", "sbcd loss / streams hit / CPU", "rtpengine loss / hit / CPU", "nftables loss / softirq")
	for _, n := range callSteps {
		fmt.Fprintf(&out, "%6d | %7d | %-32s | %-32s | %-22s\n", n, 100*n, cell("sbcd", n, false), cell("rtpengine", n, false), cell("nftables", n, true))
	}
	fmt.Fprintf(&out, "past the limit (first lossy peak step: loss / streams hit of %d / worst stream / streams dead):", 2*peakCalls)
	for _, r := range results {
		if r.skipped != "" {
			continue
		}
		if o := r.overload; o != nil {
			fmt.Fprintf(&out, "  %s at %.0f pps %.3f%% / %d / %.1f%% / %d;", r.name, o.res.pps(), o.res.lossPct(), o.res.streamsHit, o.res.maxStreamLoss, o.res.deadStreams)
		} else {
			fmt.Fprintf(&out, "  %s no loss;", r.name)
		}
	}
	fmt.Fprintf(&out, "\nafterwards at 50 pps (loss / streams hit / streams dead), the %d peak calls and the first %d calls:", peakCalls, afterCalls)
	for _, r := range results {
		if a, b := r.afterPeak, r.after; a != nil && b != nil {
			fmt.Fprintf(&out, "  %s %.3f%% / %d / %d and %.3f%% / %d / %d;", r.name, a.res.lossPct(), a.res.streamsHit, a.res.deadStreams, b.res.lossPct(), b.res.streamsHit, b.res.deadStreams)
		}
	}
	fmt.Fprintf(&out, "\nsoftirq (machine) per step, sbcd/rtpengine:")
	for _, n := range callSteps {
		fmt.Fprintf(&out, "  %d: %.0f%%/%.0f%%", n, softirqOf(byName["sbcd"], n), softirqOf(byName["rtpengine"], n))
	}
	fmt.Fprintf(&out, "\n")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(&out, "highest zero-loss pps through %s: skipped (%s)\n", r.name, r.skipped)
			continue
		}
		fmt.Fprintf(&out, "highest zero-loss pps through %s: %.0f%s (steps: %s)\n", r.name, r.peak, r.peakNote, strings.Join(r.peakLog, " "))
	}
	if s, ok := byName["sbcd"]; ok && s.skipped == "" {
		if r, ok := s.rows[500]; ok {
			fmt.Fprintf(&out, "sbcd CPU at the fixed 50,000 pps (500 calls): %.0f%% of one core (%.0f pps offered)\n", r.use.proc, r.res.pps())
		}
		peak := verdict(s.peak >= 110000)
		if s.peak < 110000 && s.overload == nil {
			peak = fmt.Sprintf("not shown (no loss up to %.0fk, where the generator ran out)", s.peak/1000)
		}
		fmt.Fprintf(&out, "targets: >=110k pps zero loss: %s; 1000 calls zero loss at <=60%% of rtpengine's CPU: %s; no stream killed: %s\n",
			peak, target1000(s, byName["rtpengine"]), verdict(deadStreams(s) == 0))
	}
	fmt.Fprintf(&out, "run time %v\n", time.Since(start).Round(time.Second))
	fmt.Print(out.String())
	if s, ok := byName["sbcd"]; ok && s.skipped == "" && deadStreams(s) > 0 {
		t.Errorf("sbcd's relay got nothing through for %d streams: overload must drop evenly, never kill a stream", deadStreams(s))
	}
}

// forwarder is one path under test.
type forwarder struct {
	name string
	pid  int // the forwarding process, 0 for the kernel
	// setup creates call i and returns where the carrier host sends
	// (facing the carrier) and where the enterprise host sends.
	setup func(i int) (carTo, entTo netip.AddrPort, err error)
	// before and after bracket every measuring window (may be nil).
	before, after func()
	stop          func()
	// ready, when set, waits after the calls are set up and their media
	// started (the kernel paths: until every flow is offloaded).
	ready func()
	sbcd  *sbcd // the sbcd paths
}

type stepRow struct {
	res loadResult
	use usage
}

type pathResult struct {
	name      string
	skipped   string
	rows      map[int]stepRow
	peak      float64
	peakNote  string
	peakLog   []string
	overload  *stepRow // the first peak step that lost packets
	afterPeak *stepRow // the peak calls at 50 pps after the peak search
	after     *stepRow // the call steps' first calls at 50 pps, at the end
}

// After the peak search: this many calls at 50 pps for this long.
const (
	afterCalls  = 500
	afterWindow = 3 * time.Second
)

// pathState is one path's calls and where the generator sends for them.
type pathState struct {
	t     *testing.T
	fw    forwarder
	pr    *pathResult
	load  *mediaLoad
	dst   []unix.RawSockaddrInet4
	ready int
}

// measure runs one window through this path.
func (st *pathState) measure(from, n int, rate float64, d, tick time.Duration) (loadResult, usage) {
	st.load.dst = st.dst
	if st.fw.before != nil {
		st.fw.before()
	}
	r, u := st.load.run(from, n, rate, d, tick, st.fw.pid)
	if st.fw.after != nil {
		st.fw.after()
	}
	return r, u
}

// ensure sets up calls until n exist, then sends a second of media
// through the new ones so that the forwarder latches/learns both ends.
func (st *pathState) ensure(n int) {
	t0 := time.Now()
	from := st.ready
	for st.ready < n {
		carTo, entTo, err := st.fw.setup(st.ready)
		if err != nil {
			st.t.Fatalf("%s: setting up call %d: %v", st.fw.name, st.ready, err)
		}
		setDest(st.dst, st.ready, carTo, entTo)
		st.ready++
	}
	if n > from {
		st.t.Logf("%s: set up calls %d-%d in %v", st.fw.name, from, n-1, time.Since(t0).Round(time.Millisecond))
		st.measure(from, n-from, 50, time.Second, 2*time.Millisecond)
	}
}

func (st *pathState) logStep(what string, r loadResult, u usage) {
	st.t.Logf("%s %s: sent %d (%.0f pps, target %d, %d refused), lost %d (%.3f%%), %d streams hit, worst %.1f%%, %d dead; CPU %s %.0f%%, generator %.0f%%, softirq %.0f%%; drops: sbc sockets %d, sink sockets %d, backlog %d; stray %d",
		st.fw.name, what, r.sent, r.pps(), r.target, r.eagain, r.lost(), r.lossPct(), r.streamsHit, r.maxStreamLoss, r.deadStreams,
		st.fw.name, u.proc, u.self, u.softirq, u.sbcRcvbuf, u.sinkRcvbuf, u.softnet, r.stray)
}

// peakSearch steps the rate of fewer, faster streams (calls first ..
// first+peakCalls-1) until a step loses packets or the generator cannot
// send more; then it checks that every call still flows at 50 pps: the
// peak calls, which were pushed past the limit, and the first afterCalls
// calls of the call steps.
func (st *pathState) peakSearch(first, peakCalls int, peakSteps []int, peakWindow time.Duration) {
	pr := st.pr
	st.ensure(first + peakCalls)
	for _, pps := range peakSteps {
		rate := float64(pps) / float64(2*peakCalls)
		r, u := st.measure(first, peakCalls, rate, peakWindow, 10*time.Millisecond)
		st.logStep(fmt.Sprintf("peak step %d pps", pps), r, u)
		if r.lost() > 0 {
			pr.peakLog = append(pr.peakLog, fmt.Sprintf("%.0fk:lost %.3f%%", r.pps()/1000, r.lossPct()))
			pr.overload = &stepRow{r, u}
			break
		}
		pr.peakLog = append(pr.peakLog, fmt.Sprintf("%.0fk:0", r.pps()/1000))
		pr.peak = max(pr.peak, r.pps())
		if r.genShort(pps) {
			pr.peakNote = " (generator limit: nothing lost at the most this machine could send)"
			break
		}
	}
	r, u := st.measure(first, peakCalls, 50, afterWindow, 2*time.Millisecond)
	st.logStep(fmt.Sprintf("after the peak search, its %d calls at 50 pps", peakCalls), r, u)
	pr.afterPeak = &stepRow{r, u}
	n := min(afterCalls, first)
	r, u = st.measure(0, n, 50, afterWindow, 2*time.Millisecond)
	st.logStep(fmt.Sprintf("after the peak search, %d calls", n), r, u)
	pr.after = &stepRow{r, u}
}

// sbcdForwarder starts sbcd with big media port ranges and sets up calls
// with raw SIP from a caller phone in car to a callee phone in ent.
func sbcdForwarder(t *testing.T, maxCalls int) forwarder {
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-39999}}
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
	return sbcdForwarderCfg(t, cfg, maxCalls)
}

// sbcdForwarderCfg starts sbcd on cfg and sets up calls through it.
func sbcdForwarderCfg(t *testing.T, cfg string, maxCalls int) forwarder {
	s := startSBCD(t, cfg)
	pid := s.cmd.Process.Pid
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "sbcd" {
		t.Fatalf("PID %d is %q, not sbcd: CPU would be measured on the wrong process", pid, comm)
	}
	callerConn, calleeConn := nsSocket(t, "car", carrierHost, 5062), nsSocket(t, "ent", pbxHost, 5060)
	caller, callee := testphone.New(t, callerConn), testphone.New(t, calleeConn)
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"
	media := func(m sip.Message) (netip.AddrPort, error) {
		sd, err := mediarelay.ParseSDP(m.Body())
		if err != nil || len(sd.Media) == 0 {
			return netip.AddrPort{}, fmt.Errorf("SDP from sbcd: %v\n%s", err, m.Body())
		}
		return netip.AddrPortFrom(sd.Media[0].Addr, uint16(sd.Media[0].Port)), nil
	}
	return forwarder{
		name: "sbcd", pid: pid, sbcd: s,
		setup: func(i int) (carTo, entTo netip.AddrPort, err error) {
			id := fmt.Sprintf("bench-%d", i)
			caller.Invite(sbcA, "1000", id, offerSDP(carrierHost, loadPortBase+i, "sendrecv", 1))
			inv := callee.ExpectRequest(sip.INVITE, wait)
			if entTo, err = media(inv); err != nil {
				return
			}
			callee.Answer(inv, 200, "OK", "tt"+id, offerSDP(pbxHost, loadPortBase+i, "sendrecv", 1))
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			if carTo, err = media(ok); err != nil {
				return
			}
			caller.Ack(testphone.CallerDialog(ok, sbcA), 1, id+"-ack")
			return
		},
		stop: func() {
			t0 := time.Now()
			if n := s.activeCalls(t); n != maxCalls {
				t.Errorf("sbcd has %d calls at the end, want %d: calls were lost during the run", n, maxCalls)
			}
			s.stop()
			// The next sbcd path's phones take the same SIP ports.
			callerConn.Close()
			calleeConn.Close()
			t.Logf("sbcd stopped in %v", time.Since(t0).Round(time.Millisecond))
		},
	}
}

// rtpengineForwarder starts rtpengine in namespace sbc and creates calls
// over ng.
func rtpengineForwarder(t *testing.T) forwarder {
	r := startRTPEngine(t, 54000, 61999) // beside sbcd's 30000-49999
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", r.pid())); !strings.HasPrefix(strings.TrimSpace(string(comm)), "rtpengine") {
		t.Fatalf("PID %d is %q, not rtpengine", r.pid(), comm)
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", r.pid())); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Max open files") {
				t.Logf("rtpengine (PID %d): %s", r.pid(), strings.Join(strings.Fields(l), " "))
			}
		}
	}
	created := 0
	return forwarder{
		name: "rtpengine", pid: r.pid(),
		setup: func(i int) (netip.AddrPort, netip.AddrPort, error) {
			created++
			return r.newCall(i, loadPortBase+i, loadPortBase+i)
		},
		stop: func() {
			failed := 0
			for i := 0; i < created; i++ {
				if r.deleteCall(i) != nil {
					failed++
				}
			}
			if failed > 0 {
				t.Errorf("rtpengine: %d of %d calls could not be deleted", failed, created)
			}
			r.stop(t)
		},
	}
}

// The kernel path: port nftPortExt+i on the SBC's carrier address is
// DNATed to the enterprise host's socket of call i, port nftPortInt+i on
// the enterprise address to the carrier host's; the source is SNATed to
// the SBC's address on the way out (on-link, no routes needed). Forwarding
// is on only for this path: the lab's realms must otherwise never meet.
const (
	nftTable   = "edgesbcbench"
	nftPortExt = 50000
	nftPortInt = 52000
)

func nftForwarder(t *testing.T, maxCalls int) forwarder {
	var rs strings.Builder
	fmt.Fprintf(&rs, "table ip %s {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n", nftTable)
	fmt.Fprintf(&rs, "\t\tip daddr { %s, %s } udp dport %d-%d dnat ip addr . port to udp dport map {", sbcExt, sbcInt, nftPortExt, nftPortInt+maxCalls-1)
	for i := 0; i < maxCalls; i++ {
		if i > 0 {
			rs.WriteString(",")
		}
		fmt.Fprintf(&rs, " %d : %s . %d, %d : %s . %d", nftPortExt+i, pbxHost, loadPortBase+i, nftPortInt+i, carrierHost, loadPortBase+i)
	}
	rs.WriteString(" }\n\t}\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&rs, "\t\toifname \"int0\" ip saddr %s snat ip to %s\n", carrierHost, sbcInt)
	fmt.Fprintf(&rs, "\t\toifname \"ext0\" ip saddr %s snat ip to %s\n\t}\n}\n", pbxHost, sbcExt)
	f := filepath.Join(t.TempDir(), "bench.nft")
	if err := os.WriteFile(f, []byte(rs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		out, err := exec.Command("ip", append([]string{"netns", "exec", "sbc"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	undo := func() {
		_ = run("nft", "delete", "table", "ip", nftTable)
		if err := run("sysctl", "-qw", "net.ipv4.ip_forward=0"); err != nil {
			t.Errorf("restoring ip_forward=0 in namespace sbc: %v", err)
		}
	}
	t.Cleanup(undo)
	// Checked once here; loaded only around the nftables windows, so that
	// conntrack is not in the way of the other paths.
	if out, err := exec.Command("nft", "-c", "-f", f).CombinedOutput(); err != nil {
		t.Fatalf("nft ruleset: %v: %s", err, out)
	}
	ext, in := netip.MustParseAddr(sbcExt), netip.MustParseAddr(sbcInt)
	return forwarder{
		name: "nftables",
		setup: func(i int) (netip.AddrPort, netip.AddrPort, error) {
			return netip.AddrPortFrom(ext, uint16(nftPortExt+i)), netip.AddrPortFrom(in, uint16(nftPortInt+i)), nil
		},
		before: func() {
			if err := run("nft", "-f", f); err != nil {
				t.Fatal(err)
			}
			if err := run("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
				t.Fatal(err)
			}
		},
		after: undo,
		stop:  undo,
	}
}

func softirqOf(r *pathResult, n int) float64 {
	if r == nil {
		return 0
	}
	return r.rows[n].use.softirq
}

func deadStreams(r *pathResult) int {
	d := 0
	for _, s := range r.rows {
		d = max(d, s.res.deadStreams)
	}
	for _, s := range []*stepRow{r.overload, r.afterPeak, r.after} {
		if s != nil {
			d = max(d, s.res.deadStreams)
		}
	}
	return d
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func target1000(s, rtp *pathResult) string {
	r, ok := s.rows[1000]
	if !ok {
		return "not measured"
	}
	if rtp == nil || rtp.skipped != "" {
		return "no rtpengine to compare"
	}
	e, ok := rtp.rows[1000]
	if !ok || e.use.proc == 0 {
		return "no rtpengine figure"
	}
	ratio := r.use.proc / e.use.proc
	// Per packet too: when the generator fell short the two were not
	// offered quite the same rate.
	perPkt := (r.use.proc / r.res.pps()) / (e.use.proc / e.res.pps())
	return fmt.Sprintf("%s (loss %.3f%%, CPU %.0f%% of rtpengine's, %.0f%% per packet offered)", verdict(r.res.lost() == 0 && ratio <= 0.6), r.res.lossPct(), 100*ratio, 100*perPkt)
}

func envDuration(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 && d <= time.Minute {
			return d
		}
	}
	return def
}

func envInts(k string, def []int) []int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

func envString(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
