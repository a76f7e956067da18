package test

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// family is one side of the lab in one address family: its host, the
// SBC's face toward it, and the prefixes by which its addresses (of
// either family) are recognised on the other side's wire.
type family struct {
	host, sbc string
	nets      []string
}

var (
	carrier4 = family{carrierHost, sbcExt, []string{"203.0.113.", "2001:db8:1:"}}
	carrier6 = family{carrierHost6, sbcExt6, []string{"203.0.113.", "2001:db8:1:"}}
	ent6     = family{pbxHost6, sbcInt6, []string{"198.51.100.", "2001:db8:2:"}}
)

// Calls across the lab with IPv6 on both sides (configs/lab6.yaml) and
// with an IPv4 carrier and an IPv6 enterprise (configs/lab46.yaml): SIPp
// in both directions for the basic flows, then Go phones with RTP both
// ways, while both SIP wires are captured. Neither wire may carry any
// address of the other side, of either family, nor its Call-IDs, tags or
// branches.
func TestIPv6Calls(t *testing.T) {
	needLab(t)
	for _, fc := range []struct {
		name     string
		cfg      string
		car, ent family
		kernel   bool // both legs in one family: the call's RTP is offloaded
	}{
		{"v6-v6", "lab6.yaml", carrier6, ent6, true},
		{"v4-v6", "lab46.yaml", carrier4, ent6, false},
	} {
		t.Run(fc.name, func(t *testing.T) {
			s := startSBCD(t, filepath.Join(repoRoot, "configs", fc.cfg))
			carWire := startCapture(t, "car", "car0")
			entWire := startCapture(t, "ent", "ent0")
			for _, st := range []struct {
				name     string
				uas, uac string
			}{
				{"basic", "uas.xml", "uac.xml"},
				{"BYE from callee", "uas_bye.xml", "uac_wait_bye.xml"},
				{"CANCEL", "uas_ring_noanswer.xml", "uac_cancel.xml"},
				{"re-INVITE", "uas_reinvite.xml", "uac_reinvite.xml"},
			} {
				for _, fromCarrier := range []bool{true, false} {
					dir := "carrier to PBX"
					if !fromCarrier {
						dir = "PBX to carrier"
					}
					t.Run(st.name+", "+dir, func(t *testing.T) {
						pairFamilies(t, fromCarrier, fc.car.host == carrierHost6, fc.ent.host == pbxHost6, st.uas, st.uac, 1)
						s.waitIdle(t)
					})
				}
			}
			t.Run("Go phones, RTP both ways", func(t *testing.T) {
				phonesRTP(t, s, fc.car, fc.ent, fc.kernel)
			})
			car, ent := carWire.stop(t), entWire.stop(t)
			if len(car) < 20 || len(ent) < 20 {
				t.Fatalf("captures too small: %d carrier, %d enterprise messages", len(car), len(ent))
			}
			for _, n := range fc.ent.nets {
				checkHidden(t, "carrier wire", car, ent, n)
			}
			for _, n := range fc.car.nets {
				checkHidden(t, "enterprise wire", ent, car, n)
			}
		})
	}
}

// phonesRTP is one call from a Go phone on the carrier side to one on the
// enterprise side: each SDP names only the SBC's address in the receiver's
// family, 100 packets each way arrive once, in order, intact, from the
// SBC. With kernel, the RTP is offloaded and the relay sees none of a
// second burst; without, nothing is in the kernel (the call crosses
// families: the user-space relay carries it).
func phonesRTP(t *testing.T, s *sbcd, car, ent family, kernel bool) {
	t.Helper()
	caller := testphone.New(t, nsSocket(t, "car", car.host, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", ent.host, 5060))
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", car.host, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", ent.host, 18000))
	wait := 3 * time.Second
	sbcA := net.JoinHostPort(car.sbc, "5060")

	caller.Invite(sbcA, "1000", "v6-media-1", offerSDP(car.host, 16000, "sendrecv", 1))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	mB := sdpMediaHidden(t, inv, ent.sbc, car.nets)
	callee.Answer(inv, 200, "OK", "pbxtag6", offerSDP(ent.host, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMediaHidden(t, ok, car.sbc, ent.nets)
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "car-ack")
	callee.ExpectRequest(sip.ACK, wait)
	aTo := netip.AddrPortFrom(mA.Addr, uint16(mA.Port))
	bTo := netip.AddrPortFrom(mB.Addr, uint16(mB.Port))

	exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0x6A1, 0x6B1, 1000, 100)
	if kernel {
		k := s.waitKernel(t, 2)
		relay := s.relaySeen(t)
		burst(t, aRTP, bRTP, aTo, bTo, 0x6A2, 0x6B2, 3000, 200)
		if d := s.relaySeen(t) - relay; d != 0 {
			t.Errorf("the relay saw %v packets of an offloaded IPv6 call", d)
		}
		// The kernel's counters reach the admin API on the relay's tick.
		var counted uint64
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			counted = 0
			for key, f := range s.waitKernel(t, 2) {
				counted += f.Packets - k[key].Packets
			}
			if counted >= 400 || time.Now().After(deadline) {
				break
			}
		}
		if counted != 400 {
			t.Errorf("kernel counted %d packets of the 400 sent in the burst", counted)
		}
		t.Logf("IPv6 call offloaded: the kernel counted %d of the 400 burst packets, the relay 0", counted)
	} else {
		relay := s.relaySeen(t)
		burst(t, aRTP, bRTP, aTo, bTo, 0x6A2, 0x6B2, 3000, 200)
		if n := len(kernelFlows(s.flows(t))); n != 0 {
			t.Errorf("%d kernel flows for a call that crosses families", n)
		}
		if d := s.relaySeen(t) - relay; d < 400 {
			t.Errorf("the relay saw %v of the 400 packets of a call that crosses families", d)
		}
	}
	caller.Request(dA, "BYE", 2, "car-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
}

// sdpMediaHidden is sdpMedia that also requires none of the other side's
// address prefixes, of either family, in the message.
func sdpMediaHidden(t *testing.T, m sip.Message, sbcIP string, otherNets []string) mediarelay.Media {
	t.Helper()
	for _, n := range otherNets[1:] {
		if strings.Contains(strings.ToLower(m.String()), n) {
			t.Fatalf("message carries the other side's %s:\n%s", n, m)
		}
	}
	return sdpMedia(t, m, sbcIP, otherNets[0])
}
