package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// writeLabConfig writes a lab config whose carrier->PBX route tries the
// given targets in order.
func writeLabConfig(t *testing.T, pbxTargets []string, targetTimeout string) string {
	t.Helper()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: %s}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
`, sbcExt, sbcInt, strings.Join(pbxTargets, `","`), targetTimeout, carrierHost)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitUDPListen waits (up to 10 s) until a socket is bound to ip:port in
// namespace ns: a callee is ready before its caller starts.
func waitUDPListen(t *testing.T, ns, ip string, port int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ok, err := labns.UDPListening(ns, netip.MustParseAddr(ip), port)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s:%d in %s after 10 s", ip, port, ns)
		}
	}
}

// pair runs a SIPp callee and caller for n calls and requires both to
// finish cleanly. fromCarrier picks the direction.
func pair(t *testing.T, fromCarrier bool, uas, uac string, n int, rate int, extra ...string) time.Duration {
	t.Helper()
	calleeNS, callerNS, callee, caller, sbcAddr, calleeHost := "ent", "car", pbxArgs, carrierArgs, sbcExt, pbxHost
	if !fromCarrier {
		calleeNS, callerNS, callee, caller, sbcAddr, calleeHost = "car", "ent", carrierArgs, pbxArgs, sbcInt, carrierHost
	}
	m := fmt.Sprint(n)
	srv := startSIPp(t, calleeNS, uas, callee("-m", m)...)
	waitUDPListen(t, calleeNS, calleeHost, 5060)
	start := time.Now()
	cl := startSIPp(t, callerNS, uac, append(caller(sbcAddr+":5060", "-m", m, "-r", fmt.Sprint(rate), "-s", "1000"), extra...)...)
	limit := 30*time.Second + time.Duration(n/rate)*time.Second
	cl.wait(t, limit)
	took := time.Since(start)
	srv.wait(t, limit)
	return took
}

// Every basic flow through the SBC with real SIPp peers on both sides,
// in both directions, while both wires are captured. Then the captures
// must show that neither side ever saw the other's addresses, Call-IDs,
// tags or branches in any SIP header.
func TestCallsThroughSBCAndTopologyHiding(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeLabConfig(t, []string{pbxHost + ":5060"}, "3s"))
	carWire := startCapture(t, "car", "car0")
	entWire := startCapture(t, "ent", "ent0")

	steps := []struct {
		name        string
		fromCarrier bool
		uas, uac    string
		n           int
		result      string
	}{
		{"basic carrier to PBX", true, "uas.xml", "uac.xml", 3, "bye_a"},
		{"basic PBX to carrier", false, "uas.xml", "uac.xml", 3, "bye_a"},
		{"BYE from callee", true, "uas_bye.xml", "uac_wait_bye.xml", 2, "bye_b"},
		{"BYE from callee, PBX to carrier", false, "uas_bye.xml", "uac_wait_bye.xml", 1, "bye_b"},
		{"CANCEL while ringing", true, "uas_ring_noanswer.xml", "uac_cancel.xml", 2, "cancelled"},
		{"CANCEL before any provisional", true, "uas_slow_provisional.xml", "uac_cancel.xml", 1, "cancelled"},
		{"486 busy", true, "uas_486.xml", "uac_486.xml", 2, "busy"},
		{"486 busy, PBX to carrier", false, "uas_486.xml", "uac_486.xml", 1, "busy"},
		{"re-INVITE from caller", true, "uas_reinvite.xml", "uac_reinvite.xml", 2, "bye_a"},
		{"re-INVITE from callee", true, "uas_reinvite_from_callee.xml", "uac_accept_reinvite.xml", 2, "bye_a"},
		{"re-INVITE from caller, PBX to carrier", false, "uas_reinvite.xml", "uac_reinvite.xml", 1, "bye_a"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := s.metric(t, "sbc_calls_total", `result="`+st.result+`"`)
			pair(t, st.fromCarrier, st.uas, st.uac, st.n, 5)
			s.waitIdle(t)
			if got := s.metric(t, "sbc_calls_total", `result="`+st.result+`"`) - before; got != float64(st.n) {
				t.Errorf("sbc_calls_total{result=%q} grew by %v, want %d", st.result, got, st.n)
			}
		})
	}

	car, ent := carWire.stop(t), entWire.stop(t)
	if len(car) < 20 || len(ent) < 20 {
		t.Fatalf("captures too small: %d carrier, %d enterprise messages", len(car), len(ent))
	}
	checkHidden(t, "carrier wire", car, ent, "198.51.100.")
	checkHidden(t, "enterprise wire", ent, car, "203.0.113.")
}

// checkHidden fails if any SIP message on this wire, headers or SDP body,
// carries an address of the other side's network or an identifier the other
// wire used.
func checkHidden(t *testing.T, name string, this, other [][]byte, otherNet string) {
	t.Helper()
	ids := identifiers(t, other)
	if len(ids) < 10 {
		t.Fatalf("%s: only %d identifiers found on the other wire", name, len(ids))
	}
	for _, p := range this {
		head := string(p)
		if strings.Contains(head, otherNet) {
			t.Errorf("%s: a message names the other network (%s):\n%s", name, otherNet, head)
			return
		}
		for id := range ids {
			if strings.Contains(head, id) {
				t.Errorf("%s: a message carries the other side's %q:\n%s", name, id, head)
				return
			}
		}
	}
}

// identifiers collects what identifies dialogs and hops on a wire: Call-IDs,
// From/To tags and Via branches.
func identifiers(t *testing.T, msgs [][]byte) map[string]bool {
	t.Helper()
	p := sip.NewParser()
	ids := map[string]bool{}
	for _, b := range msgs {
		m, err := p.ParseSIP(b)
		if err != nil {
			continue
		}
		if c := m.CallID(); c != nil {
			ids[c.Value()] = true
		}
		if f := m.From(); f != nil {
			if v, ok := f.Params.Get("tag"); ok {
				ids[v] = true
			}
		}
		if to := m.To(); to != nil {
			if v, ok := to.Params.Get("tag"); ok {
				ids[v] = true
			}
		}
		for _, h := range m.GetHeaders("Via") {
			if v, ok := h.(*sip.ViaHeader); ok {
				if br, ok := v.Params.Get("branch"); ok && len(br) > 9 {
					ids[br] = true
				}
			}
		}
	}
	return ids
}

// The first target is down (it never answers): after target_timeout the
// call goes to the second, and every call completes. Both ends judge:
// SIPp's exit status at the caller and the callee, and the dead target
// (a silent socket) counts the INVITEs it was sent, one call each.
func TestFailoverToSecondTarget(t *testing.T) {
	needLab(t)
	s := startSBCD(t, writeLabConfig(t, []string{pbxHost + ":5070", pbxHost + ":5060"}, "1s"))
	dead := nsSocket(t, "ent", pbxHost, 5070)
	t.Cleanup(func() { dead.Close() })
	calls := map[string]bool{}
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := dead.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := string(buf[:n])
			if strings.HasPrefix(m, "INVITE ") {
				if _, rest, ok := strings.Cut(m, "\r\nCall-ID: "); ok {
					id, _, _ := strings.Cut(rest, "\r\n")
					mu.Lock()
					calls[id] = true
					mu.Unlock()
				}
			}
		}
	}()
	start := time.Now()
	pair(t, true, "uas.xml", "uac.xml", 2, 2)
	if d := time.Since(start); d < time.Second {
		t.Errorf("calls done in %v: the dead first target cannot have been tried", d)
	}
	mu.Lock()
	tried := len(calls)
	mu.Unlock()
	if tried != 2 {
		t.Errorf("the dead first target got INVITEs of %d calls, want 2 (each call tries it first)", tried)
	}
	s.waitIdle(t)
	t.Logf("sbcd: %v calls completed, %v INVITEs toward the PBX side", s.metric(t, "sbc_calls_total", `result="bye_a"`),
		s.metric(t, "sbc_sip_requests_total", `realm="enterprise"`, `direction="out"`, `method="INVITE"`))
}

// A bounded load run: every call must succeed (SIPp's exit status, at the
// caller and the callee), the call table must drain, and SIPp must have
// offered the rate claimed. CI runs 40 calls at 20 calls/s (the function);
// SBC_BENCH_LOAD=1 (make bench-load) runs 1,500 at 100 calls/s.
func TestLoadRunNoFailedCalls(t *testing.T) {
	needLab(t)
	n, rate := 40, 20
	if benchLoad() {
		n, rate = 1500, 100
	}
	s := startSBCD(t, "")
	took := pair(t, true, "-sn uas", "-sn uac", n, rate)
	s.waitIdle(t)
	if got := s.metric(t, "sbc_calls_total", `result="bye_a"`); got != float64(n) {
		t.Errorf("%v calls completed, want %d", got, n)
	}
	// SIPp's built-in uac hangs up at once: n calls at rate take n/rate s;
	// 10% and half a second more (SIPp's start, the last call) allowed.
	ideal := time.Duration(n) * time.Second / time.Duration(rate)
	t.Logf("%d calls in %v: %.1f calls/s offered, %d claimed", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), rate)
	if limit := ideal*11/10 + 500*time.Millisecond; took > limit {
		t.Errorf("SIPp took %v for %d calls at %d/s, over %v: it offered less than the rate claimed", took.Round(time.Millisecond), n, rate, limit)
	}
}

// benchLoad: SBC_BENCH_LOAD=1 runs the load tests at benchmark size.
func benchLoad() bool { return os.Getenv("SBC_BENCH_LOAD") == "1" }
