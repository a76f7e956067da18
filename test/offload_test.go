package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// The kernel fast path end to end: sbcd in namespace sbc with
// media.datapath auto (the lab's veths take the BPF program), real RTP
// from Go phones in car and ent.

func (s *sbcd) flows(t *testing.T) api.Flows {
	t.Helper()
	b, err := s.get("/api/v1/flows")
	if err != nil {
		t.Fatal(err)
	}
	var fi api.Flows
	if err := json.Unmarshal(b, &fi); err != nil {
		t.Fatalf("flows: %v\n%s", err, b)
	}
	return fi
}

// kernelFlows maps the SBC's local address of each kernel flow to it.
func kernelFlows(fi api.Flows) map[string]api.Flow {
	out := map[string]api.Flow{}
	for _, f := range fi.Flows {
		if f.Path != mediarelay.PathUserSpace {
			out[f.Local] = f
		}
	}
	return out
}

// waitKernel waits until n flows are in the kernel.
func (s *sbcd) waitKernel(t *testing.T, n int) map[string]api.Flow {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi := s.flows(t)
		k := kernelFlows(fi)
		if len(k) == n {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flows in the kernel, want %d (datapath %s): %+v", len(k), n, fi.Datapath, fi.Flows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// relaySeen is every datagram the user-space relay has received.
func (s *sbcd) relaySeen(t *testing.T) float64 {
	return s.metric(t, "sbc_media_packets_total")
}

// requireKernel fails unless sbcd loaded the kernel path.
func requireKernel(t *testing.T, s *sbcd) string {
	t.Helper()
	fi := s.flows(t)
	if fi.Datapath == mediarelay.PathUserSpace || fi.Datapath == "none" {
		t.Fatalf("sbcd runs without the kernel path (%s):\n%s", fi.Datapath, tail(s.log.String(), 20))
	}
	return fi.Datapath
}

// offloadCall sets up a call caller (car) -> callee (ent) with media
// anchored and returns where each side sends and the dialogs.
type labCall struct {
	caller, callee *testphone.Phone
	dA, dB         testphone.Dialog
	aTo, bTo       netip.AddrPort
}

func setupCall(t *testing.T, callID string, aPort, bPort int) *labCall {
	t.Helper()
	c := &labCall{
		caller: testphone.New(t, nsSocket(t, "car", carrierHost, 5062)),
		callee: testphone.New(t, nsSocket(t, "ent", pbxHost, 5060)),
	}
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"
	c.caller.Invite(sbcA, "1000", callID, offerSDP(carrierHost, aPort, "sendrecv", 1))
	inv := c.callee.ExpectRequest(sip.INVITE, wait)
	mB := sdpMedia(t, inv, sbcInt, "203.0.113.")
	c.callee.Answer(inv, 200, "OK", "off", offerSDP(pbxHost, bPort, "sendrecv", 1))
	ok := c.caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMedia(t, ok, sbcExt, "198.51.100.")
	c.dA = testphone.CallerDialog(ok, sbcA)
	c.caller.Ack(c.dA, 1, callID+"-ack")
	c.callee.ExpectRequest(sip.ACK, wait)
	c.dB = testphone.CalleeDialog(inv, "off")
	c.aTo = netip.AddrPortFrom(mA.Addr, uint16(mA.Port))
	c.bTo = netip.AddrPortFrom(mB.Addr, uint16(mB.Port))
	return c
}

func (c *labCall) bye(t *testing.T, cseq int) {
	t.Helper()
	wait := 3 * time.Second
	c.caller.Request(c.dA, "BYE", cseq, fmt.Sprintf("bye-%d", cseq), "")
	c.caller.ExpectResponse(200, sip.BYE, wait)
	bye := c.callee.ExpectRequest(sip.BYE, wait)
	c.callee.Answer(bye, 200, "OK", "", "")
}

// burst sends n packets each way 1 ms apart and checks that every one
// arrived once, in order, intact, from the SBC's address.
func burst(t *testing.T, a, b *testphone.RTPEnd, aTo, bTo netip.AddrPort, ssrcA, ssrcB uint32, first uint16, n int) {
	t.Helper()
	exchangeRTPEvery(t, time.Millisecond, a, b, aTo, bTo, ssrcA, ssrcB, first, n)
}

// TestOffloadedCall: once both sides latched, the call's RTP is forwarded
// by the kernel program: the user-space relay sees none of it, the kernel
// counters equal what the receivers counted, every packet arrives once, in
// order, intact, from the SBC's address; a re-INVITE that moves the callee
// takes the flows back to user space at once and they return to the
// kernel for the new port; BYE removes them.
func TestOffloadedCall(t *testing.T) {
	needLab(t)
	s := startSBCD(t, mediaConfig(t, "30s"))
	path := requireKernel(t, s)
	c := setupCall(t, "offload-1", 16000, 18000)
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))

	// Latching goes through the relay; then the flows move to the kernel.
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA1, 0xB1, 1000, 20)
	k := s.waitKernel(t, 2)
	if f := k[c.aTo.String()]; f.Dst != pbxHost+":18000" || f.Src != c.bTo.String() {
		t.Fatalf("kernel flow for %v: %+v", c.aTo, f)
	}
	time.Sleep(100 * time.Millisecond)
	relay0 := s.relaySeen(t)
	k0 := kernelFlows(s.flows(t))

	const n = 500
	burst(t, aRTP, bRTP, c.aTo, c.bTo, 0xA2, 0xB2, 2000, n)
	time.Sleep(50 * time.Millisecond)
	if d := s.relaySeen(t) - relay0; d != 0 {
		t.Errorf("the user-space relay saw %v packets of offloaded flows", d)
	}
	k1 := kernelFlows(s.flows(t))
	for _, to := range []netip.AddrPort{c.aTo, c.bTo} {
		if d := k1[to.String()].Packets - k0[to.String()].Packets; d != n {
			t.Errorf("kernel counted %d packets at %v, the receiver %d", d, to, n)
		}
		if d := k1[to.String()].Bytes - k0[to.String()].Bytes; d != n*172 {
			t.Errorf("kernel counted %d bytes at %v, want %d", d, to, n*172)
		}
	}
	// The call's media view includes what the kernel forwarded.
	var ci struct {
		Media mediarelay.CallMedia `json:"media"`
	}
	b, _ := s.get("/api/v1/calls/" + onlyCallID(t, s))
	if err := json.Unmarshal(b, &ci); err != nil || len(ci.Media.Streams) != 1 {
		t.Fatalf("call: %s (%v)", b, err)
	}
	st := ci.Media.Streams[0]
	if st.Path != path || st.FromA.Packets < 20+n || st.FromB.Packets < 20+n || st.FromA.LastSeen == "" {
		t.Errorf("call media view: %s", b)
	}
	out, err := exec.Command("ip", "netns", "exec", "sbc", filepath.Join(binDir, "sbcctl"), "flows").CombinedOutput()
	if err != nil || !strings.Contains(string(out), c.aTo.String()) || !strings.Contains(string(out), "2 kernel "+path) {
		t.Errorf("sbcctl flows: %v\n%s", err, out)
	}
	if v := s.metric(t, "sbc_media_flows", `path="`+path+`"`); v != 2 {
		t.Errorf("sbc_media_flows{path=%s} = %v", path, v)
	}
	if v := s.metric(t, "sbc_media_path_packets_total", `path="`+path+`"`); v < 2*n {
		t.Errorf("sbc_media_path_packets_total{path=%s} = %v, want >= %d", path, v, 2*n)
	}

	t.Run("re-INVITE moves the callee", func(t *testing.T) {
		wait := 3 * time.Second
		moved := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18100))
		c.callee.Request(c.dB, "INVITE", 1, "move", offerSDP(pbxHost, 18100, "sendrecv", 2))
		re := c.caller.ExpectRequest(sip.INVITE, wait)
		c.caller.Answer(re, 200, "OK", "", offerSDP(carrierHost, 16000, "sendrecv", 2))
		c.callee.ExpectResponse(200, sip.INVITE, wait)
		if n := len(kernelFlows(s.flows(t))); n != 0 {
			t.Fatalf("%d flows still in the kernel after the re-INVITE's answer", n)
		}
		c.callee.Ack(c.dB, 1, "move-ack")
		c.caller.ExpectRequest(sip.ACK, wait)
		exchangeRTP(t, aRTP, moved, c.aTo, c.bTo, 0xA3, 0xB3, 3000, 20)
		k := s.waitKernel(t, 2)
		if f := k[c.aTo.String()]; f.Dst != pbxHost+":18100" {
			t.Fatalf("after the move the kernel sends to %s", f.Dst)
		}
		burst(t, aRTP, moved, c.aTo, c.bTo, 0xA4, 0xB4, 4000, 200)
		if n := len(bRTP.Received(0xA4)); n != 0 {
			t.Fatalf("%d packets still went to the callee's old port", n)
		}
		bRTP = moved
	})

	c.bye(t, 2)
	s.waitIdle(t)
	if fi := s.flows(t); len(fi.Flows) != 0 {
		t.Fatalf("flows left after BYE: %+v", fi.Flows)
	}
	// Nothing is forwarded any more to the ended call's port.
	_ = aRTP.Send(c.aTo, 0xA5, 5000, 20, time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	if n := len(bRTP.Received(0xA5)); n != 0 {
		t.Fatalf("%d packets forwarded after the call ended", n)
	}
}

// TestOffloadMediaTimeout: the kernel's last-seen stamps keep an offloaded
// call alive past media.timeout while RTP flows (the relay sees none), and
// the call is ended once it stops.
func TestOffloadMediaTimeout(t *testing.T) {
	needLab(t)
	s := startSBCD(t, mediaConfig(t, "2s"))
	requireKernel(t, s)
	c := setupCall(t, "offload-timeout", 16000, 18000)
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA1, 0xB1, 1000, 10)
	s.waitKernel(t, 2)
	relay0 := s.relaySeen(t)
	// 4.5 s of RTP, more than twice the timeout, all in the kernel.
	var wg sync.WaitGroup
	wg.Go(func() { _ = aRTP.Send(c.aTo, 0xA2, 1, 225, 20*time.Millisecond) })
	wg.Go(func() { _ = bRTP.Send(c.bTo, 0xB2, 1, 225, 20*time.Millisecond) })
	notBye := func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.BYE }
	c.caller.Quiet(4*time.Second, notBye, "BYE while media flowed through the kernel")
	wg.Wait()
	if d := s.relaySeen(t) - relay0; d != 0 {
		t.Errorf("the relay saw %v packets", d)
	}
	if got := len(bRTP.Received(0xA2)); got != 225 {
		t.Errorf("callee received %d of 225", got)
	}
	stop := time.Now()
	bye := c.caller.ExpectRequest(sip.BYE, 5*time.Second)
	if r := bye.GetHeaders("Reason"); len(r) != 1 || !strings.Contains(r[0].Value(), "media timeout") {
		t.Errorf("BYE without a media timeout Reason: %v", r)
	}
	if d := time.Since(stop); d < time.Second {
		t.Errorf("ended %v after the media stopped, before the 2 s timeout", d)
	}
	c.caller.Answer(bye, 200, "OK", "", "")
	bb := c.callee.ExpectRequest(sip.BYE, 3*time.Second)
	c.callee.Answer(bb, 200, "OK", "", "")
	s.waitIdle(t)
}

// TestOffloadSurvivesRestart: sbcd is killed with SIGKILL during a call
// whose RTP is in the kernel; media keeps arriving both ways while sbcd is
// down (the program and its flows are pinned). On restart sbcd reconciles
// the pinned flows with the calls it knows: with state_dir (persisted call
// records) the call is restored, its flows are kept, media goes on, and BYE
// ends it and removes them. (Orphan removal, flows of calls sbcd does not
// know, is mediarelay's TestReconcileFlows.)
//
// sbcd runs under nsenter (network namespace only) so that its pins live in
// the machine's /sys/fs/bpf: `ip netns exec` gives each run a mount
// namespace of its own, whose bpffs would end with the killed process.
func TestOffloadSurvivesRestart(t *testing.T) {
	needLab(t)
	pin := sbcPinDir()
	launcher := []string{"nsenter", "--net=/var/run/netns/sbc", "--"}
	cfg := withStateDir(t, mediaConfig(t, "30s"))
	s := startSBCDWith(t, cfg, launcher...)
	requireKernel(t, s)
	s.waitLog(t, "takeover done")
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("pin dir %s: %v\n%s", pin, err, tail(s.log.String(), 10))
	}
	c := setupCall(t, "offload-restart", 16000, 18000)
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	exchangeRTP(t, aRTP, bRTP, c.aTo, c.bTo, 0xA1, 0xB1, 1000, 10)
	s.waitKernel(t, 2)

	// 8 s of RTP both ways at 50 pps, through the kill and the restart.
	var wg sync.WaitGroup
	wg.Go(func() { _ = aRTP.Send(c.aTo, 0xA2, 1, 400, 20*time.Millisecond) })
	wg.Go(func() { _ = bRTP.Send(c.bTo, 0xB2, 1, 400, 20*time.Millisecond) })
	defer wg.Wait()
	// kill -9 once the call's record is committed to state_dir (not after
	// a guessed second): a restored call is then the contract.
	s.waitRecords(t, 1)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	down := time.Now()
	a0, b0 := len(aRTP.Received(0xB2)), len(bRTP.Received(0xA2))
	time.Sleep(2 * time.Second)
	a1, b1 := len(aRTP.Received(0xB2)), len(bRTP.Received(0xA2))
	t.Logf("while sbcd was down for 2 s: %d packets reached the caller, %d the callee", a1-a0, b1-b0)
	if a1-a0 < 90 || b1-b0 < 90 {
		t.Fatalf("media stopped while sbcd was down: %d and %d packets in 2 s, want ~100 each", a1-a0, b1-b0)
	}

	s2 := startSBCDWith(t, cfg, launcher...)
	t.Logf("sbcd back after %v", time.Since(down).Round(time.Millisecond))
	s2.waitLog(t, "takeover done")
	// The restored call's flows are reinstalled from its latched
	// sources; media never stopped.
	s2.waitKernel(t, 2)
	a2, b2 := len(aRTP.Received(0xB2)), len(bRTP.Received(0xA2))
	time.Sleep(time.Second)
	a3, b3 := len(aRTP.Received(0xB2)), len(bRTP.Received(0xA2))
	if a3-a2 < 45 || b3-b2 < 45 {
		t.Errorf("media after the restart: %d and %d packets in 1 s, want ~50 each", a3-a2, b3-b2)
	}
	if !strings.Contains(s2.log.String(), "pinned flows reconciled") {
		s2.waitLog(t, "pinned flows reconciled")
	}
	if n := s2.activeCalls(t); n != 1 {
		t.Fatalf("sbcd restored %d calls from state_dir after the restart, want 1:\n%s", n, tail(s2.log.String(), 20))
	}
	c.bye(t, 2)
	s2.waitIdle(t)
	if fi := s2.flows(t); len(fi.Flows) != 0 {
		t.Fatalf("flows left after BYE: %+v", fi.Flows)
	}
}

// withStateDir adds a state_dir (persisted calls) to a config; a config
// -check-config rejects fails the test (it used to drop state_dir and skip).
func withStateDir(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg + ".state.yaml"
	y := string(b) + fmt.Sprintf("state_dir: %s\n", filepath.Join(t.TempDir(), "state"))
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(binDir, "sbcd"), "-check-config", p).CombinedOutput(); err != nil {
		t.Fatalf("sbcd -check-config rejects state_dir: %v\n%s", err, out)
	}
	return p
}

// waitRecords waits up to 10 s until sbcd's store (state_dir or ha)
// holds want committed call records (GET /api/v1/ha).
func (s *sbcd) waitRecords(t *testing.T, want int) {
	t.Helper()
	var st struct {
		Records int `json:"records"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := s.get("/api/v1/ha")
		if err == nil && json.Unmarshal(b, &st) == nil && st.Records == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sbcd: %d call records (%v), want %d: %s", st.Records, err, want, b)
		}
	}
}

// waitLog waits up to 10 s for a line of sbcd's log.
func (s *sbcd) waitLog(t *testing.T, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.log.String(), what); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sbcd never logged %q:\n%s", what, tail(s.log.String(), 20))
		}
	}
}
