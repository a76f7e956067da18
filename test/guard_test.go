package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/ci"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// guardConfig is the lab's two realms and routes (calls from the carrier
// only for users starting 1000, so a flood to other numbers never reaches
// the PBX) plus a guard section.
func guardConfig(t *testing.T, pbxTargets, guard string) string {
	t.Helper()
	return guardConfigOn(t, sbcExt, pbxTargets, guard)
}

// guardConfigOn is guardConfig with the carrier realm on address carIP
// (sbcExt6 for an IPv6 carrier face).
func guardConfigOn(t *testing.T, carIP, pbxTargets, guard string) string {
	t.Helper()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, user_prefix: "1000", targets: [%s], target_timeout: 1s}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
%s`, net.JoinHostPort(carIP, "5060"), sbcInt, pbxTargets, carrierHost, guard)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// carAddrs adds secondary addresses 203.0.113.<from..to> to car0 (other
// hosts on the carrier side) for the test's life.
func carAddrs(t *testing.T, from, to int) []string {
	t.Helper()
	var out []string
	for i := from; i <= to; i++ {
		a := fmt.Sprintf("203.0.113.%d", i)
		if b, err := exec.Command("ip", "-n", "car", "addr", "replace", a+"/24", "dev", "car0").CombinedOutput(); err != nil {
			t.Fatalf("add %s to car0: %v: %s", a, err, b)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "-n", "car", "addr", "del", a+"/24", "dev", "car0").Run() })
		out = append(out, a)
	}
	return out
}

// carAddr6 adds the secondary address 2001:db8:1::<n> (no DAD) to car0
// for the test's life.
func carAddr6(t *testing.T, n int) string {
	t.Helper()
	a := fmt.Sprintf("2001:db8:1::%d", n)
	if b, err := exec.Command("ip", "-n", "car", "addr", "replace", a+"/64", "dev", "car0", "nodad").CombinedOutput(); err != nil {
		t.Fatalf("add %s to car0: %v: %s", a, err, b)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", "car", "addr", "del", a+"/64", "dev", "car0").Run() })
	return a
}

// carSocket is a UDP socket in namespace car on addr (any port).
func carSocket(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns("car", func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(addr)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type banInfo struct {
	Since   time.Time `json:"since"`
	Addr    string    `json:"addr"`
	Reason  string    `json:"reason"`
	Dropped uint64    `json:"dropped"`
}

func (s *sbcd) bans(t *testing.T) map[string]banInfo {
	t.Helper()
	b, err := s.get("/api/v1/bans")
	if err != nil {
		t.Fatal(err)
	}
	var l []banInfo
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	m := map[string]banInfo{}
	for _, x := range l {
		m[x.Addr] = x
	}
	return m
}

// admissionWatch samples, every 20 ms until done, the peak number of
// calls in the admin API and the peak of the admission gauge of one key.
type admissionWatch struct {
	stop         chan struct{}
	wg           sync.WaitGroup
	calls, gauge atomic.Int64
}

func watchAdmission(s *sbcd, key string) *admissionWatch {
	w := &admissionWatch{stop: make(chan struct{})}
	prefix := `sbc_admission_calls_active{key="` + key + `"} `
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// No t.Fatal off the test goroutine: errors just skip a sample.
			if b, err := s.get("/api/v1/calls"); err == nil {
				var calls []json.RawMessage
				if json.Unmarshal(b, &calls) == nil && int64(len(calls)) > w.calls.Load() {
					w.calls.Store(int64(len(calls)))
				}
			}
			if b, err := s.get("/metrics"); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, prefix); ok {
						if n, err := strconv.ParseFloat(v, 64); err == nil && int64(n) > w.gauge.Load() {
							w.gauge.Store(int64(n))
						}
					}
				}
			}
		}
	}()
	return w
}

// done stops the sampling and returns the peaks: calls, gauge.
func (w *admissionWatch) done() (int64, int64) {
	close(w.stop)
	w.wg.Wait()
	return w.calls.Load(), w.gauge.Load()
}

// The carrier realm admits 10 concurrent calls. A SIPp burst of 30 calls
// (each held 3 s) gets exactly 10 through and 20 answered 503 with
// Retry-After; the number of calls in progress never exceeds 10.
func TestLabAdmissionBurst(t *testing.T) {
	needLab(t)
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5060"`, `guard:
  realms:
    - {realm: carrier, admission: {max_calls: 10, retry_after: 3s}}
`))
	carrierBurst(t, s, "realm:carrier")
}

// carrierBurst sends a SIPp burst of 30 calls at 100/s (each held 3 s)
// from the carrier to the PBX (which takes 10) into an SBC that admits 10
// under key, and judges it at the ends: the caller's SIPp finishes all 30
// (exit 0) with exactly 10 answered and completed (BYEs sent) and 20
// refused with 503 (its message counts), the PBX's SIPp completes exactly
// its 10 (exit 0, 10 successful calls). The calls in progress never
// exceed 10 and the key's gauge peaks at exactly 10 and is back to 0.
func carrierBurst(t *testing.T, s *sbcd, key string) {
	t.Helper()
	w := watchAdmission(s, key)
	srv := startSIPp(t, "ent", "uas.xml", pbxArgs("-m", "10")...)
	waitUDPListen(t, "ent", pbxHost, 5060)
	start := time.Now()
	cl := startSIPp(t, "car", "uac_admission.xml", carrierArgs(sbcExt+":5060", "-m", "30", "-r", "100", "-s", "1000", "-set", "hold_ms", "3000")...)
	cl.wait(t, 40*time.Second)
	srv.wait(t, 10*time.Second)
	peak, peakGauge := w.done()
	s.waitIdle(t)
	ok, refused, answered := cl.stat(t, "SuccessfulCall(C)"), cl.count(t, "503_Recv"), cl.count(t, "BYE_Sent")
	pbxCalls := srv.stat(t, "SuccessfulCall(C)")
	t.Logf("%s: burst of 30 at 100/s in %v: at the caller %d successful, %d answered and hung up, %d refused with 503; at the PBX %d calls; peak calls in the admin API %d, peak admission gauge %d (sbcd counted %v refused by admission)",
		key, time.Since(start).Round(time.Millisecond), ok, answered, refused, pbxCalls, peak, peakGauge,
		s.metric(t, "sbc_policy_rejected_total", `reason="admission_max_calls"`)+s.metric(t, "sbc_calls_total", `result="trunks_full"`))
	if ok != 30 || answered != 10 || refused != 20 || pbxCalls != 10 {
		t.Errorf("caller: %d successful, %d answered, %d refused; PBX: %d calls; want 30, 10, 20 and 10", ok, answered, refused, pbxCalls)
	}
	if peak > 10 || peakGauge != 10 {
		t.Errorf("peak %d calls (gauge %d): the limit of 10 did not hold exactly", peak, peakGauge)
	}
	if n := s.metric(t, "sbc_admission_calls_active", `key="`+key+`"`); n != 0 {
		t.Errorf("admission gauge %v after all calls ended", n)
	}
}

// The carrier realm accepts INVITEs only from the carrier's address: a
// host next to it gets 403 (and nothing reaches the PBX), the carrier's
// own calls go through.
func TestLabACL(t *testing.T) {
	needLab(t)
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5060"`, `guard:
  realms:
    - {realm: carrier, acl: {allow: ["`+carrierHost+`/32"]}}
`))
	other := carAddrs(t, 40, 40)[0]
	pbx := startPBX(t, "1000")
	p := testphone.New(t, carSocket(t, other))
	p.Invite(sbcExt+":5060", "1000", "acl-lab-1", testphone.TestSDP)
	p.ExpectResponse(403, sip.INVITE, 3*time.Second)
	// Then a call from the carrier to a number the PBX refuses: once
	// its 486 is back, the PBX has seen whatever the SBC sent it.
	carrier := testphone.New(t, carSocket(t, carrierHost))
	carrier.Invite(sbcExt+":5060", "10001", "acl-lab-marker", testphone.TestSDP)
	carrier.ExpectResponse(486, sip.INVITE, 3*time.Second)
	if st := pbx.stats(); st.LegitInvites != 0 || st.OtherInvites != 1 {
		t.Errorf("at the PBX: %d INVITEs of the refused call (want 0), %d of the carrier's (want 1)", st.LegitInvites, st.OtherInvites)
	}
	t.Logf("sbcd counted %v refused by the ACL", s.metric(t, "sbc_policy_rejected_total", `realm="carrier"`, `reason="acl"`))
	pbx.close()
	pair(t, true, "uas.xml", "uac.xml", 2, 5)
}

// The PBX registers with the SBC (digest, MD5: SIPp 3.6 has no SHA-256)
// and a call from the carrier goes to its registered contact, port 5070,
// not to the route's static target, where nobody listens.
func TestLabRegistrar(t *testing.T) {
	needLab(t)
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5090"`, `guard:
  trusted: ["`+pbxHost+`"]
  realms:
    - realm: enterprise
      registrar: {aor: pbx}
      auth: {realm: edge.lab, methods: [REGISTER], algorithms: [MD5], users: [{name: pbx, password: pbxpw}]}
`))
	reg := startSIPp(t, "ent", "pbx_register.xml", "-i", pbxHost, "-p", "5071", sbcInt+":5060", "-m", "1", "-au", "pbx", "-ap", "pbxpw", "-key", "contact_port", "5070")
	reg.wait(t, 15*time.Second)
	b, err := s.get("/api/v1/registrations")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"host":"`+pbxHost+`","port":5070`) {
		t.Fatalf("registrations: %s", b)
	}
	srv := startSIPp(t, "ent", "uas.xml", "-i", pbxHost, "-p", "5070", "-m", "2")
	waitUDPListen(t, "ent", pbxHost, 5070)
	cl := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", "2", "-r", "2", "-s", "1000")...)
	cl.wait(t, 30*time.Second)
	srv.wait(t, 10*time.Second)
	s.waitIdle(t)
	if n := s.metric(t, "sbc_calls_total", `result="bye_a"`); n != 2 {
		t.Errorf("%v calls completed through the registration, want 2", n)
	}
}

// flood sends INVITEs with an SDP offer, as a real attack does, to
// routable numbers (prefix, the source's index digit, a call number:
// the PBX tells the sources apart by them), from each address for d
// at pps packets a second in total, bounded by max packets (paced).
func flood(t *testing.T, addrs []string, prefix string, pps int, d time.Duration, max int) (int64, time.Duration) {
	t.Helper()
	return paced(t, addrs, pps, d, max, func(n, i int, a string, port int) []byte {
		sdp := fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n", n, a, a, 20000+2*(n%10000))
		num := fmt.Sprintf("%s%d%06d", prefix, i%10, n)
		return fmt.Appendf(nil, "INVITE sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-f%d-%d\r\nMax-Forwards: 70\r\nFrom: <sip:flood@%s>;tag=f%d\r\nTo: <sip:%s@%s>\r\nCall-ID: flood-%d-%d\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@%s:%d>\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
			num, sbcExt, a, port, i, n, a, n, num, sbcExt, i, n, a, port, len(sdp), sdp)
	})
}

// paced sends msg(n, i, a, port), the n-th datagram of source i (address
// a, bound to port), from each address to the SBC's carrier side for d at
// pps datagrams a second in total, bounded by max. It returns how many it
// sent (writes that succeeded) and how long that took, measured at the
// sender. A sender that falls behind catches up at the next tick, so the
// rate is what it claims unless the machine cannot send it (which the
// caller asserts).
func paced(t *testing.T, addrs []string, pps int, d time.Duration, max int, msg func(n, i int, a string, port int) []byte) (int64, time.Duration) {
	t.Helper()
	var sent atomic.Int64
	dst := &net.UDPAddr{IP: net.ParseIP(sbcExt), Port: 5060}
	perSource := float64(pps) / float64(len(addrs))
	conns := make([]*net.UDPConn, len(addrs))
	for i, a := range addrs {
		conns[i] = carSocket(t, a)
	}
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i, a := range addrs {
		c := conns[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			port := c.LocalAddr().(*net.UDPAddr).Port
			for n := 0; ; {
				now := <-tick.C
				if now.After(end) {
					return
				}
				due := int(perSource * now.Sub(start).Seconds())
				for ; n < due; n++ {
					if sent.Load() >= int64(max) {
						return
					}
					if _, err := c.WriteToUDP(msg(n, i, a, port), dst); err == nil {
						sent.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	return sent.Load(), time.Since(start)
}

// checkOffered fails unless the flood went out at (nearly) the rate the
// test claims, measured at the sender: a flood test that offered less
// proves less.
func checkOffered(t *testing.T, sent int64, took time.Duration, pps int) {
	t.Helper()
	rate := float64(sent) / took.Seconds()
	t.Logf("flood offered: %d INVITEs in %v, %.0f/s (claimed %d/s)", sent, took.Round(time.Millisecond), rate, pps)
	if rate < 0.9*float64(pps) {
		t.Errorf("the flood went out at %.0f/s, under 90%% of the %d/s claimed", rate, pps)
	}
}

// legitResult judges SIPp's legitimate calls at both ends: SIPp's exit
// status (0: all succeeded, 1: some failed; anything else is a broken
// run) and its call counts, and the Go PBX's dialogs. It returns the
// calls that succeeded at the caller and completed at the PBX.
func legitResult(t *testing.T, cl *sippRun, pbx *labPBX, calls int, d time.Duration) (caller, callee int) {
	t.Helper()
	code := cl.exit(t, d)
	ok, failed := cl.stat(t, "SuccessfulCall(C)"), cl.stat(t, "FailedCall(C)")
	// The PBX's count settles when the last BYE's 200 is out.
	deadline := time.Now().Add(5 * time.Second)
	for pbx.stats().Completed < ok && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := pbx.stats()
	t.Logf("legitimate calls: SIPp exit %d, %d successful, %d failed of %d; at the PBX %d INVITEs, %d answered, %d ACKed, %d completed",
		code, ok, failed, calls, st.LegitInvites, st.Answered, st.Acked, st.Completed)
	if code != 0 && code != 1 {
		t.Fatalf("SIPp (caller) exit status %d: not a finished run\n%s", code, cl.errors())
	}
	if ok+failed != calls {
		t.Errorf("SIPp finished %d+%d calls of %d", ok, failed, calls)
	}
	return ok, st.Completed
}

// Legitimate SIPp calls at 20 calls/s from the carrier's address while ten
// other carrier-side addresses flood INVITEs with SDP to routable numbers
// at 20,000/s together (about ten times what sbcd sets up per second on
// this machine, see bench-sip) for 3 s: at least 99% of the legitimate
// calls succeed at the caller (SIPp's counts) and complete at the PBX
// (the Go PBX's dialogs), every flooding source is banned and then
// dropped before parsing, and the flood calls from each source that
// reach the PBX are at most what its bucket lets through before its ban:
// the burst plus the rate times the time until the ban.
func TestLabFlood(t *testing.T) {
	needLab(t)
	// Per source 100/s, bursts of 100: three times what the legitimate
	// carrier sends (20 calls/s, three requests each). What the flooders
	// get through before their bans (each its burst and the refill) is a
	// call each, with media ports: with bursts of 400 those 10 sources
	// had 5,000+ calls in flight at once, the realm's whole port pool, and
	// legitimate calls got 503 (ports exhausted).
	// The carrier realm takes calls from anyone here (accept: any, no
	// auth): the flood must be routable for the buckets to be what stops it.
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5060"`, `guard:
  sources: {rate: 100, burst: 100}
  bans: {rate_excess: 50, duration: 2m}
  realms: [{realm: carrier, accept: any, allow_unauthenticated: true}]
`))
	flooders := carAddrs(t, 20, 29)
	const calls, pps = 200, 20000
	pbx := startPBX(t, "1000")
	cl := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", strconv.Itoa(calls), "-r", "20", "-s", "1000", "-set", "hold_ms", "200")...)
	// The flood starts once legitimate calls are flowing (seen at the PBX).
	deadline := time.Now().Add(10 * time.Second)
	for pbx.stats().Completed < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("no legitimate call completed before the flood: %+v\n%s", pbx.stats(), cl.errors())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	sent, took := flood(t, flooders, "1000", pps, 3*time.Second, 100000)
	checkOffered(t, sent, took, pps)
	ok, completed := legitResult(t, cl, pbx, calls, 40*time.Second)
	if ok < calls*99/100 || completed < calls*99/100 {
		t.Errorf("under the flood %d of %d legitimate calls succeeded at the caller, %d completed at the PBX; want 99%%\n%s", ok, calls, completed, cl.errors())
	}
	st := pbx.stats()
	t.Logf("flood calls that reached the PBX: %d of %d sent, the last %v after the flood's start",
		st.OtherInvites, sent, st.LastOther.Sub(start).Round(time.Millisecond))
	if st.OtherInvites == 0 {
		t.Errorf("no flood call reached the PBX: the flood's numbers are not routable, it tests nothing")
	}
	s.waitIdle(t)
	bans := s.bans(t)
	var lastBan time.Time
	for i, a := range flooders {
		b, ok := bans[a]
		if !ok || b.Reason != "rate" {
			t.Errorf("flooder %s not banned for rate: %+v", a, b)
			continue
		}
		if b.Since.After(lastBan) {
			lastBan = b.Since
		}
		// 100 in the burst, 100/s refilled until the ban (its time as
		// sbcd stamped it), 10 more for the stamp's lag.
		got := st.OtherByPrefix[fmt.Sprintf("1000%d", i)]
		if limit := 100 + int(100*b.Since.Sub(start).Seconds()) + 10; got > limit {
			t.Errorf("flooder %s: %d calls reached the PBX, over the %d its bucket allows before its ban %v in", a, got, limit, b.Since.Sub(start).Round(time.Millisecond))
		}
	}
	t.Logf("every flooder banned %v after the flood started; calls that reached the PBX by source %v", lastBan.Sub(start).Round(time.Millisecond), st.OtherByPrefix)
	if _, ok := bans[carrierHost]; ok {
		t.Errorf("the legitimate carrier was banned")
	}
	// The same list through sbcctl.
	out, err := exec.Command("ip", "netns", "exec", "sbc", filepath.Join(binDir, "sbcctl"), "bans").CombinedOutput()
	if err != nil || !strings.Contains(string(out), flooders[0]) || !strings.Contains(string(out), fmt.Sprintf("%d banned", len(flooders))) {
		t.Errorf("sbcctl bans: %v\n%s", err, out)
	}
	// sbcd's own view, for the log only: the verdict is the ends'.
	t.Logf("sbcd's metrics: dropped as banned %v, over the bucket %v; INVITEs parsed %v; sbc_bans_total %v; %s",
		s.metric(t, "sbc_policy_rejected_total", `reason="banned"`), s.metric(t, "sbc_policy_rejected_total", `reason="rate"`),
		s.metric(t, "sbc_sip_requests_total", `realm="carrier"`, `method="INVITE"`), s.metric(t, "sbc_bans_total"), s.series(t, "sbc_calls_total"))
}

// sipvicious against the SBC: svmap finds nothing to fingerprint and
// svwar enumerates no extension; the scanner's address is banned.
func TestLabSipvicious(t *testing.T) {
	needLab(t)
	ci.Require(t, "svmap", "svwar")
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5060"`, ""))
	scanner := carAddrs(t, 30, 30)[0]
	// svwar ignores -b for its source address: make the route to the SBC
	// pick the scanner's address, so the carrier's own is not the one banned.
	if b, err := exec.Command("ip", "-n", "car", "route", "replace", sbcExt+"/32", "dev", "car0", "src", scanner).CombinedOutput(); err != nil {
		t.Fatalf("route via %s: %v: %s", scanner, err, b)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", "car", "route", "del", sbcExt+"/32", "dev", "car0").Run() })
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", "car"}, args...)...).CombinedOutput()
		return string(out)
	}
	m := run("svmap", "-b", scanner, "-t", "0.05", sbcExt)
	t.Logf("svmap:\n%s", m)
	if strings.Contains(m, sbcExt+":5060") {
		t.Errorf("svmap fingerprinted the SBC")
	}
	w := run("svwar", "-b", scanner, "-t", "0.02", "--force", "--maximumtime", "5", "-e", "1000-1099", sbcExt)
	t.Logf("svwar:\n%s", w)
	w2 := run("svwar", "-b", scanner, "-t", "0.02", "--force", "--maximumtime", "5", "-m", "INVITE", "-e", "1000-1099", sbcExt)
	t.Logf("svwar INVITE:\n%s", w2)
	for _, out := range []string{w, w2} {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(strings.Trim(line, "| "))
			if len(f) > 0 && strings.HasPrefix(f[0], "10") && (strings.Contains(line, "reqauth") || strings.Contains(line, "noauth") || strings.Contains(line, "weird")) {
				t.Errorf("svwar enumerated an extension: %s", line)
			}
		}
	}
	b := s.bans(t)
	t.Logf("bans: %+v", b)
	if x, ok := b[scanner]; !ok || x.Reason != "scanner" {
		t.Fatalf("scanner %s not banned: %+v", scanner, b)
	}
	if len(b) != 1 {
		t.Errorf("bans %+v: want the scanner's address only", b)
	}
	if n := s.metric(t, "sbc_sip_responses_total", `realm="carrier"`, `direction="out"`); n != 0 {
		t.Errorf("%v responses sent to the scanner", n)
	}
	t.Logf("scanner packets dropped: %v as scanner, %v while banned (ban list: %d dropped)",
		s.metric(t, "sbc_policy_rejected_total", `reason="scanner"`), s.metric(t, "sbc_policy_rejected_total", `reason="banned"`), b[scanner].Dropped)
}
