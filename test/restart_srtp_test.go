package test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// An SRTP call (carrier phone with SDES keys, plain-RTP PBX) survives a
// kill -9 of sbcd with state_dir: restored from the local Raft log, the
// new process decrypts and encrypts with the keys negotiated before the
// crash (no re-INVITE, no new key), including the rollover counters of a
// sequence wrap that happened before the crash, so media both ways is
// intact, never in the clear at the SRTP phone, and no key shows in
// either process's log, the admin API or the metrics.
func TestStateDirRestartKeepsSRTPCall(t *testing.T) {
	needLab(t)
	dir := t.TempDir()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-30999, srtp: required}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
# The carrier is the carrier realm's known peer (no route into the
# realm names it), so its calls meet the peers' limits, not a stranger's.
guard: {realms: [{realm: carrier, peers: ["`+carrierHost+`"]}]}
state_dir: %s
log: {level: debug}
`, sbcExt, sbcInt, pbxHost, filepath.Join(dir, "state"))
	cfg := filepath.Join(dir, "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"
	keyA := testphone.NewSRTPKey(1)
	if err := aRTP.SetSendKey(&keyA); err != nil {
		t.Fatal(err)
	}

	for i := 0; ; i++ {
		caller.Invite(sbcA, "1000", "restart-srtp", savpSDP(carrierHost, 16000, 1, keyA))
		if caller.Next(500*time.Millisecond, func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			return ok && r.StatusCode == 100
		}) != nil {
			break
		}
		if i == 10 {
			t.Fatal("sbcd with state_dir never answered")
		}
	}
	inv := callee.ExpectRequest(sip.INVITE, wait)
	mB := plainTowardPBX(t, inv, keyA)
	callee.Answer(inv, 200, "OK", "rss", offerSDP(pbxHost, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMedia(t, ok, sbcExt, "198.51.100.")
	keyS := sbcKey(t, ok)
	if err := aRTP.SetRecvKey(&keyS); err != nil {
		t.Fatal(err)
	}
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "rss-ack")
	callee.ExpectRequest(sip.ACK, wait)
	dB := testphone.CalleeDialog(inv, "rss")
	aTo := netip.AddrPortFrom(mA.Addr, uint16(mA.Port))
	bTo := netip.AddrPortFrom(mB.Addr, uint16(mB.Port))

	// Latch, let the record settle, then cross the sequence wrap both
	// ways (ROC 1): that change is written to the record too.
	send := func(first uint16, n int) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = aRTP.Send(aTo, 0xA1, first, n, 10*time.Millisecond) }()
		go func() { defer wg.Done(); _ = bRTP.Send(bTo, 0xB1, first, n, 10*time.Millisecond) }()
		wg.Wait()
	}
	check := func(first uint16, n int) {
		t.Helper()
		bRTP.WaitFor(0xA1, n, 3*time.Second)
		aRTP.WaitFor(0xB1, n, 3*time.Second)
		for _, c := range []struct {
			e    *testphone.RTPEnd
			ssrc uint32
		}{{bRTP, 0xA1}, {aRTP, 0xB1}} {
			if err := c.e.CheckStream(c.ssrc, first, n); err != nil {
				t.Fatal(err)
			}
		}
		if f, c := aRTP.AuthFailed(), aRTP.ClearSeen(); f != 0 || c != 0 {
			t.Fatalf("at the SRTP phone: %d packets did not decrypt, %d came in the clear", f, c)
		}
	}
	send(65480, 20)
	check(65480, 20)
	waitMetric := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	waitMetric("no call record written", func() bool { return s.metric(t, "sbc_ha_record_writes_total") >= 1 })
	time.Sleep(300 * time.Millisecond)
	w := s.metric(t, "sbc_ha_record_writes_total")
	send(65500, 40) // 65500..65535, 0..3
	check(65480, 60)
	waitMetric("the sequence wrap was not written to the record", func() bool { return s.metric(t, "sbc_ha_record_writes_total") > w })
	time.Sleep(300 * time.Millisecond)

	_ = s.cmd.Process.Kill() // kill -9
	<-s.done
	s2 := startSBCD(t, cfg)
	waitMetric("call not restored after the restart", func() bool { return s2.activeCalls(t) == 1 })
	send(4, 40)
	check(65480, 100)

	var out []byte
	for _, p := range []string{"/api/v1/calls", "/metrics"} {
		b, err := s2.get(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	out = append(append(out, s.log.Bytes()...), s2.log.Bytes()...)
	for _, k := range []testphone.SRTPKey{keyA, keyS} {
		if bytes.Contains(out, []byte(k.Inline()[:20])) {
			t.Fatal("an SRTP key appears in a log, the admin API or the metrics")
		}
	}

	callee.Request(dB, "BYE", 1, "rss-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	s2.waitIdle(t)
}
