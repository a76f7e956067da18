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
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, user_prefix: "1000", targets: [%s], target_timeout: 1s}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
%s`, sbcExt, sbcInt, pbxTargets, carrierHost, guard)
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
// under key, and checks what the SBC counted for the burst: exactly 10
// completed, 20 refused by admission and answered 503, calls in progress
// never above 10, the key's gauge peaking at exactly 10 and back to 0.
func carrierBurst(t *testing.T, s *sbcd, key string) {
	t.Helper()
	before := func() [3]float64 {
		return [3]float64{
			s.metric(t, "sbc_policy_rejected_total", `realm="carrier"`, `reason="admission_max_calls"`),
			s.metric(t, "sbc_sip_responses_total", `realm="carrier"`, `direction="out"`, `code="503"`),
			s.metric(t, "sbc_calls_total", `result="bye_a"`),
		}
	}
	b := before()
	w := watchAdmission(s, key)
	srv := startSIPp(t, "ent", "uas.xml", pbxArgs("-m", "10")...)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cl := startSIPp(t, "car", "uac_admission.xml", carrierArgs(sbcExt+":5060", "-m", "30", "-r", "100", "-s", "1000", "-set", "hold_ms", "3000")...)
	cl.wait(t, 40*time.Second)
	srv.wait(t, 10*time.Second)
	peak, peakGauge := w.done()
	s.waitIdle(t)
	a := before()
	refused, sent503, done := a[0]-b[0], a[1]-b[1], a[2]-b[2]
	t.Logf("%s: burst of 30 at 100/s in %v: %v completed, %v refused (503 sent %v); peak calls in the admin API %d, peak admission gauge %d",
		key, time.Since(start).Round(time.Millisecond), done, refused, sent503, peak, peakGauge)
	if done != 10 || refused != 20 || sent503 != 20 {
		t.Errorf("completed %v, refused %v, 503s %v; want 10, 20, 20", done, refused, sent503)
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
	p := testphone.New(t, carSocket(t, other))
	p.Invite(sbcExt+":5060", "1000", "acl-lab-1", testphone.TestSDP)
	p.ExpectResponse(403, sip.INVITE, 3*time.Second)
	if n := s.metric(t, "sbc_policy_rejected_total", `realm="carrier"`, `reason="acl"`); n != 1 {
		t.Errorf("rejected{acl} = %v, want 1", n)
	}
	if n := s.metric(t, "sbc_sip_requests_total", `realm="enterprise"`, `direction="out"`); n != 0 {
		t.Errorf("%v requests sent to the PBX for a refused call", n)
	}
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
	time.Sleep(300 * time.Millisecond)
	cl := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", "2", "-r", "2", "-s", "1000")...)
	cl.wait(t, 30*time.Second)
	srv.wait(t, 10*time.Second)
	s.waitIdle(t)
	if n := s.metric(t, "sbc_calls_total", `result="bye_a"`); n != 2 {
		t.Errorf("%v calls completed through the registration, want 2", n)
	}
}

// flood sends INVITEs from each address for d at pps packets a second in
// total, bounded by max packets; it returns how many it sent.
func flood(t *testing.T, addrs []string, pps int, d time.Duration, max int) int64 {
	t.Helper()
	var sent atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	dst := &net.UDPAddr{IP: net.ParseIP(sbcExt), Port: 5060}
	per := pps / len(addrs) / 100 // packets per 10 ms per source
	var wg sync.WaitGroup
	for i, a := range addrs {
		c := carSocket(t, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			port := c.LocalAddr().(*net.UDPAddr).Port
			for n := 0; ; {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				for j := 0; j < per; j++ {
					if sent.Add(1) > int64(max) {
						return
					}
					n++
					msg := fmt.Sprintf("INVITE sip:9999%d@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK-f%d-%d\r\nMax-Forwards: 70\r\nFrom: <sip:flood@%s>;tag=f%d\r\nTo: <sip:9999@%s>\r\nCall-ID: flood-%d-%d\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@%s:%d>\r\nContent-Length: 0\r\n\r\n",
						n, sbcExt, a, port, i, n, a, n, sbcExt, i, n, a, port)
					_, _ = c.WriteToUDP([]byte(msg), dst)
				}
			}
		}()
	}
	wg.Wait()
	return min(sent.Load(), int64(max))
}

// Legitimate SIPp calls at 20 calls/s from the carrier's address while ten
// other carrier-side addresses flood INVITEs at 20,000/s together (about
// ten times what sbcd sets up per second on this machine, see bench-sip):
// at least 99% of the legitimate calls complete and every flooding source
// is banned and then dropped before parsing.
func TestLabFlood(t *testing.T) {
	needLab(t)
	s := startSBCD(t, guardConfig(t, `"`+pbxHost+`:5060"`, `guard:
  sources: {rate: 200, burst: 400}
  bans: {rate_excess: 50, duration: 2m}
`))
	flooders := carAddrs(t, 20, 29)
	const calls = 200
	srv := startSIPp(t, "ent", "uas.xml", pbxArgs("-m", strconv.Itoa(calls))...)
	time.Sleep(300 * time.Millisecond)
	cl := startSIPp(t, "car", "uac.xml", carrierArgs(sbcExt+":5060", "-m", strconv.Itoa(calls), "-r", "20", "-s", "1000", "-set", "hold_ms", "200")...)
	time.Sleep(time.Second)
	start := time.Now()
	sent := flood(t, flooders, 20000, 4*time.Second, 100000)
	took := time.Since(start)
	t.Logf("flood: %d INVITEs from %d sources in %v (%.0f/s)", sent, len(flooders), took.Round(time.Millisecond), float64(sent)/took.Seconds())
	// SIPp may report a failed call or two; the SBC's count decides.
	select {
	case err := <-cl.done:
		cl.done <- err
	case <-time.After(40 * time.Second):
		t.Fatal("legitimate caller still running")
	}
	_ = srv.cmd.Process.Kill()
	s.waitIdle(t)
	done := s.metric(t, "sbc_calls_total", `result="bye_a"`)
	t.Logf("legitimate calls completed: %v of %d (%.1f%%)", done, calls, 100*done/calls)
	if done < 0.99*calls {
		t.Errorf("only %v of %d legitimate calls completed under the flood\n%s", done, calls, cl.errors())
	}
	bans := s.bans(t)
	var lastBan time.Time
	for _, a := range flooders {
		b, ok := bans[a]
		if !ok || b.Reason != "rate" {
			t.Errorf("flooder %s not banned for rate: %+v", a, b)
		}
		if b.Since.After(lastBan) {
			lastBan = b.Since
		}
	}
	t.Logf("every flooder banned %v after the flood started", lastBan.Sub(start).Round(time.Millisecond))
	if _, ok := bans[carrierHost]; ok {
		t.Errorf("the legitimate carrier was banned")
	}
	// The same list through sbcctl.
	out, err := exec.Command("ip", "netns", "exec", "sbc", filepath.Join(binDir, "sbcctl"), "bans").CombinedOutput()
	if err != nil || !strings.Contains(string(out), flooders[0]) || !strings.Contains(string(out), fmt.Sprintf("%d banned", len(flooders))) {
		t.Errorf("sbcctl bans: %v\n%s", err, out)
	}
	banned := s.metric(t, "sbc_policy_rejected_total", `reason="banned"`)
	rate := s.metric(t, "sbc_policy_rejected_total", `reason="rate"`)
	parsed := s.metric(t, "sbc_sip_requests_total", `realm="carrier"`, `method="INVITE"`)
	t.Logf("flood INVITEs dropped before parsing: %v as banned, %v over the bucket; INVITEs that reached the B2BUA: %v (of which %d legitimate); sbc_bans_total %v, sbc_bans_active %v",
		banned, rate, parsed, calls, s.metric(t, "sbc_bans_total"), s.metric(t, "sbc_bans_active"))
	if s.metric(t, "sbc_bans_total", `reason="rate"`) != float64(len(flooders)) || s.metric(t, "sbc_bans_active") != float64(len(flooders)) {
		t.Errorf("ban metrics: total %v active %v, want %d", s.metric(t, "sbc_bans_total"), s.metric(t, "sbc_bans_active"), len(flooders))
	}
	if banned < float64(sent)*0.8 {
		t.Errorf("only %v of %d flood packets dropped as banned", banned, sent)
	}
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
