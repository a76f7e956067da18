package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// With state_dir, sbcd keeps its calls across a crash: kill -9 during a
// call with RTP flowing, start it again, and the call is back (restored
// from the local Raft log): media flows through the same ports, and a BYE
// is answered 200 and ends the other leg with the right dialog.
func TestStateDirRestartKeepsCall(t *testing.T) {
	needLab(t)
	dir := t.TempDir()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-30999}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
# The carrier is the carrier realm's known peer (no route into the
# realm names it), so its calls meet the peers' limits, not a stranger's.
guard: {realms: [{realm: carrier, peers: ["`+carrierHost+`"]}]}
state_dir: %s
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

	// sbcd serves once its single-node log has elected it: retransmit.
	for i := 0; ; i++ {
		caller.Invite(sbcA, "1000", "restart-1", offerSDP(carrierHost, 16000, "sendrecv", 1))
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
	mB := sdpMedia(t, inv, sbcInt, "203.0.113.")
	callee.Answer(inv, 200, "OK", "rs", offerSDP(pbxHost, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMedia(t, ok, sbcExt, "198.51.100.")
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "rs-ack")
	callee.ExpectRequest(sip.ACK, wait)
	dB := testphone.CalleeDialog(inv, "rs")
	aTo := netip.AddrPortFrom(mA.Addr, uint16(mA.Port))
	bTo := netip.AddrPortFrom(mB.Addr, uint16(mB.Port))
	exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA1, 0xB1, 100, 25)
	// The record is written off the call path; give it a moment.
	deadline := time.Now().Add(3 * time.Second)
	for s.metric(t, "sbc_ha_record_writes_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no call record written")
		}
		time.Sleep(20 * time.Millisecond)
	}

	_ = s.cmd.Process.Kill() // kill -9: no BYE, no cleanup
	<-s.done
	s2 := startSBCD(t, cfg)
	deadline = time.Now().Add(5 * time.Second)
	for s2.activeCalls(t) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("call not restored after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA2, 0xB2, 200, 25)

	callee.Request(dB, "BYE", 1, "rs-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	if bye.CallID().Value() != "restart-1" {
		t.Fatalf("BYE to the caller in the wrong dialog: %s", bye.CallID().Value())
	}
	caller.Answer(bye, 200, "OK", "", "")
	s2.waitIdle(t)
}
