package ha_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// TestBenchHA is make bench-ha: several kill -9 failovers in one run with
// established calls and RTP (media gap min/median/max, calls preserved,
// time to the first new call), then calls per second through the active
// node of the HA pair beside the same node without HA, interleaved.
func TestBenchHA(t *testing.T) {
	if os.Getenv("SBC_BENCH_HA") == "" {
		t.Skip("set SBC_BENCH_HA=1 (make bench-ha)")
	}
	needLab(t)
	kills, calls := envInt("SBC_BENCH_HA_KILLS", 4), envInt("SBC_BENCH_HA_CALLS", 40)
	var results []kill
	func() {
		c := newCluster(t, "")
		defer c.stopAll()
		p := newPhones(t)
		defer p.close()
		c.active(15 * time.Second)
		var cs []*call
		for i := range calls {
			cs = append(cs, p.establish(i))
		}
		for k := range kills {
			r := failover(t, c, p, cs, calls+k)
			t.Log(r)
			results = append(results, r)
			// The victim comes back as standby for the next round.
			for _, n := range []*node{c.a, c.b} {
				if !n.alive() {
					n.start()
					n.waitRecords(len(cs), 15*time.Second)
				}
			}
		}
		for i, cl := range cs {
			if err := p.bye(cl, i%2 == 0); err != nil {
				t.Error(err)
			}
		}
	}()

	step := envDur("SBC_BENCH_HA_STEP", 8*time.Second)
	// Calls are held a while, so each one is established long enough for
	// its record to be replicated (a call shorter than a write never is).
	workers := envInt("SBC_BENCH_HA_WORKERS", 300)
	hold = envDur("SBC_BENCH_HA_HOLD", 250*time.Millisecond)
	var on, off []cpsRun
	for round := range 2 {
		on = append(on, cpsHA(t, step, workers))
		off = append(off, cpsSingle(t, step, workers))
		t.Logf("round %d: CPS with HA %.0f (%d failed; %.0f records written for %.0f calls), without %.0f (%d failed)",
			round+1, on[round].cps, on[round].failed, on[round].writes, on[round].calls, off[round].cps, off[round].failed)
	}

	var gaps []time.Duration
	preserved, total := 0, 0
	var firsts []time.Duration
	for _, r := range results {
		gaps = append(gaps, r.gaps...)
		preserved += r.preserved
		total += r.total
		firsts = append(firsts, r.firstNew)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	var b strings.Builder
	fmt.Fprintf(&b, "\n=== bench-ha: %d kill -9 failovers, %d calls with RTP (20 ms G.711 both ways) ===\n", len(results), calls)
	if len(gaps) > 0 {
		fmt.Fprintf(&b, "media gap at the receivers: min %v  median %v  max %v   (target < 1s)\n", gaps[0], gaps[len(gaps)/2], gaps[len(gaps)-1])
	}
	fmt.Fprintf(&b, "calls preserved: %d/%d (%.1f%%)   (target 100%%)\n", preserved, total, 100*float64(preserved)/float64(max(total, 1)))
	if len(firsts) > 0 {
		fmt.Fprintf(&b, "first new call after the kill: min %v  median %v  max %v   (target < 2s)\n",
			firsts[0].Round(time.Millisecond), firsts[len(firsts)/2].Round(time.Millisecond), firsts[len(firsts)-1].Round(time.Millisecond))
	}
	var sumOn, sumOff float64
	for i := range on {
		sumOn += on[i].cps
		sumOff += off[i].cps
	}
	var w, n float64
	for _, r := range on {
		w += r.writes
		n += r.calls
	}
	fmt.Fprintf(&b, "CPS (%d callers in a closed loop, INVITE/200/ACK, %v up, BYE/200, SDP anchored; %v per run, interleaved x%d; HA on wrote %.0f records for %.0f calls):\n",
		workers, hold, step, len(on), w, n)
	fmt.Fprintf(&b, "  HA on (replicated to B and witness): %.0f\n  HA off (same node, no ha section):  %.0f\n  ratio on/off: %.2f   (target >= 0.80)\n",
		sumOn/float64(len(on)), sumOff/float64(len(off)), sumOn/max(sumOff, 1))
	fmt.Print(b.String())
	t.Log(b.String())
}

type cpsRun struct {
	cps           float64
	failed        int
	writes, calls float64 // HA on: records written, calls ended
}

// cpsHA measures CPS through the active node of a fresh HA pair.
func cpsHA(t *testing.T, d time.Duration, workers int) cpsRun {
	// Raft timing relaxed for this part: it measures what replication
	// costs the call path, and a closed loop that saturates a small shared
	// machine would otherwise starve heartbeats into a failover mid-run.
	c := newCluster(t, "  heartbeat_timeout: 1s\n  election_timeout: 1s\n  leader_lease: 500ms\n")
	act, stby := c.active(15 * time.Second)
	if f := os.Getenv("SBC_BENCH_HA_PROFILE"); f != "" {
		go func() {
			res, err := labns.HTTPClient(act.ns, d+5*time.Second).Get(fmt.Sprintf("http://127.0.0.1:8080/debug/pprof/profile?seconds=%d", int(d.Seconds())-1))
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				_ = os.WriteFile(f, b, 0o644)
			}
		}()
	}
	r := measureCPS(t, d, workers)
	r.writes = act.metric("sbc_ha_record_writes_total")
	if n := act.metric("sbc_ha_record_write_seconds_count"); n > 0 {
		t.Logf("record write latency (change to committed): mean %.1f ms over %.0f writes and deletes; %.0f errors",
			1000*act.metric("sbc_ha_record_write_seconds_sum")/n, n, act.metric("sbc_ha_record_errors_total"))
	}
	r.calls = act.metric("sbc_calls_total")
	_ = stby
	c.stopAll()
	return r
}

// cpsSingle measures CPS through node A's namespace with the same config
// minus the ha section, the VIPs added by hand.
func cpsSingle(t *testing.T, d time.Duration, workers int) cpsRun {
	b, err := os.ReadFile(filepath.Join(repoRoot, "configs", "ha-a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	y = y[:strings.Index(y, "\nha:")+1]
	p := filepath.Join(t.TempDir(), "single.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	vips := [][]string{{vipExt + "/24", "ext0"}, {vipInt + "/24", "int0"}}
	for _, v := range vips {
		if out, err := exec.Command("ip", "-n", ns("sbca"), "addr", "replace", v[0], "dev", v[1]).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	defer func() {
		for _, v := range vips {
			_ = exec.Command("ip", "-n", ns("sbca"), "addr", "del", v[0], "dev", v[1]).Run()
		}
	}()
	flushNeigh()
	n := &node{t: t, name: "single", ns: ns("sbca"), cfg: p}
	n.start()
	defer n.stop()
	return measureCPS(t, d, workers)
}

// flushNeigh makes car and ent ARP for the VIPs again (they moved).
func flushNeigh() {
	for _, n := range []string{"car", "ent"} {
		_ = exec.Command("ip", "-n", ns(n), "neigh", "flush", "all").Run()
	}
}

// measureCPS runs workers callers, each placing calls back to back (INVITE,
// 200, ACK, BYE, 200) for d, against a PBX that answers at once; it
// returns completed calls per second.
func measureCPS(t *testing.T, d time.Duration, workers int) cpsRun {
	t.Helper()
	flushNeigh()
	pbx := udp(t, ns("ent"), pbxHost, 5060)
	defer pbx.Close()
	stopPBX := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); autoAnswer(pbx, stopPBX) }()
	defer func() { close(stopPBX); pbx.Close(); pwg.Wait() }()

	var done, failed atomic.Int64
	var emu sync.Mutex
	errs := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for w := range workers {
		conn := udp(t, ns("car"), carrierHost, 6000+w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			parser := sip.NewParser()
			buf := make([]byte, 65535)
			for n := 0; time.Now().Before(end); n++ {
				if err := oneCall(conn, parser, buf, fmt.Sprintf("cps-%d-%d-%d", w, n, start.UnixNano()), 16000+2*w); err != nil {
					failed.Add(1)
					emu.Lock()
					errs[err.Error()]++
					emu.Unlock()
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Logf("failed calls: %v", errs)
	}
	return cpsRun{cps: float64(done.Load()) / time.Since(start).Seconds(), failed: int(failed.Load())}
}

var errTimeout = errors.New("timeout")

// hold is how long each bench call stays up between ACK and BYE.
var hold time.Duration

// oneCall is one short call from a raw UDP caller; each step waits up to
// 2 s, retransmitting the INVITE and BYE every 500 ms (T1).
func oneCall(c *net.UDPConn, parser *sip.Parser, buf []byte, callID string, rtpPort int) error {
	me := c.LocalAddr().String()
	sbc, _ := net.ResolveUDPAddr("udp", vipExt+":5060")
	sdp := offer(carrierHost, rtpPort, 1)
	inv := fmt.Sprintf("INVITE sip:1000@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-i;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bench@%s>;tag=f%s\r\nTo: <sip:1000@%s>\r\nCall-ID: %s\r\nCSeq: 1 INVITE\r\nContact: <sip:bench@%s>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		vipExt, me, callID, carrierHost, callID, vipExt, callID, me, len(sdp), sdp)
	res, err := transact(c, parser, buf, sbc, inv, callID, sip.INVITE)
	if err != nil {
		return err
	}
	tt, _ := res.To().Params.Get("tag")
	target := res.Contact().Address.String()
	ack := fmt.Sprintf("ACK %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-a\r\nMax-Forwards: 70\r\nFrom: <sip:bench@%s>;tag=f%s\r\nTo: <sip:1000@%s>;tag=%s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
		target, me, callID, carrierHost, callID, vipExt, tt, callID)
	if _, err := c.WriteToUDP([]byte(ack), sbc); err != nil {
		return err
	}
	time.Sleep(hold)
	bye := fmt.Sprintf("BYE %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-b\r\nMax-Forwards: 70\r\nFrom: <sip:bench@%s>;tag=f%s\r\nTo: <sip:1000@%s>;tag=%s\r\nCall-ID: %s\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
		target, me, callID, carrierHost, callID, vipExt, tt, callID)
	_, err = transact(c, parser, buf, sbc, bye, callID, sip.BYE)
	return err
}

// transact sends req until a final response for callID and method comes.
func transact(c *net.UDPConn, parser *sip.Parser, buf []byte, to *net.UDPAddr, req, callID string, method sip.RequestMethod) (*sip.Response, error) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.WriteToUDP([]byte(req), to); err != nil {
			return nil, err
		}
		resend := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(resend) {
			_ = c.SetReadDeadline(resend)
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				break
			}
			m, err := parser.ParseSIP(buf[:n])
			if err != nil {
				continue
			}
			res, ok := m.(*sip.Response)
			if !ok {
				// In-dialog requests to the caller (none expected): ignore.
				continue
			}
			if res.CallID().Value() != callID || res.CSeq().MethodName != method || res.IsProvisional() {
				continue
			}
			if !res.IsSuccess() {
				return nil, fmt.Errorf("%s: %d", method, res.StatusCode)
			}
			return res, nil
		}
	}
	return nil, errTimeout
}

// autoAnswer is the PBX: 200 with SDP to every INVITE, 200 to every BYE.
func autoAnswer(c *net.UDPConn, stop chan struct{}) {
	parser := sip.NewParser()
	buf := make([]byte, 65535)
	me := c.LocalAddr().String()
	sdp := offer(pbxHost, 18000, 1)
	for {
		select {
		case <-stop:
			return
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		m, err := parser.ParseSIP(buf[:n])
		if err != nil {
			continue
		}
		req, ok := m.(*sip.Request)
		if !ok || (req.Method != sip.INVITE && req.Method != sip.BYE) {
			continue
		}
		var b strings.Builder
		b.WriteString("SIP/2.0 200 OK\r\n")
		for _, v := range req.GetHeaders("Via") {
			fmt.Fprintf(&b, "Via: %s\r\n", v.Value())
		}
		to := req.To().Value()
		if !strings.Contains(to, "tag=") {
			to += ";tag=pbx"
		}
		fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.From().Value(), to, req.CallID().Value(), req.CSeq().Value())
		if req.Method == sip.INVITE {
			fmt.Fprintf(&b, "Contact: <sip:pbx@%s>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", me, len(sdp), sdp)
		} else {
			b.WriteString("Content-Length: 0\r\n\r\n")
		}
		_, _ = c.WriteToUDP([]byte(b.String()), from)
	}
}

func envInt(k string, def int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv(k), &v); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(k string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
