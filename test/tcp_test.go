package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// tcpListening reports whether a TCP socket listens on ip:port in ns
// (the namespace's /proc/net/tcp, state 0A).
func tcpListening(ns string, ip netip.Addr, port int) (bool, error) {
	var b []byte
	err := labns.Do(ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/tcp")
		return err
	})
	if err != nil {
		return false, err
	}
	a4 := ip.As4()
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a4[3], a4[2], a4[1], a4[0], port)
	wild := fmt.Sprintf("00000000:%04X", port)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && (f[1] == want || f[1] == wild) && f[3] == "0A" {
			return true, nil
		}
	}
	return false, nil
}

func waitTCPListen(t *testing.T, ns, ip string, port int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ok, err := tcpListening(ns, netip.MustParseAddr(ip), port)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on tcp %s:%d in %s after 10 s", ip, port, ns)
		}
	}
}

// TestCallOverTCP: calls whose legs run over plain TCP through sbcd in the
// lab, judged at both SIPp ends (each exits 0 only when every call
// completed) and in sbcd's count. A SIPp end started with -t t1 speaks TCP
// only: had the SBC sent a leg over UDP, nothing would answer it.
func TestCallOverTCP(t *testing.T) {
	needLab(t)
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%[1]s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%[2]s:5060", transports: [udp, tcp]}
routes:
  - {name: to-pbx-udp, from_realm: carrier, to_realm: enterprise, user_prefix: "2", targets: ["%[3]s:5060"], target_timeout: 3s}
  - {name: to-pbx-tcp, from_realm: carrier, to_realm: enterprise, targets: ["%[3]s:5060;transport=tcp"], target_timeout: 3s}
  - {name: to-carrier-tcp, from_realm: enterprise, to_realm: carrier, targets: ["%[4]s:5060;transport=tcp"], target_timeout: 3s}
`, sbcExt, sbcInt, pbxHost, carrierHost)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	const n = 3
	for _, st := range []struct {
		name                 string
		fromCarrier          bool
		service              string
		callerTCP, calleeTCP bool
	}{
		{"carrier TCP to PBX TCP", true, "1000", true, true},
		{"PBX TCP to carrier TCP", false, "1000", true, true},
		{"carrier TCP to PBX UDP", true, "2000", true, false},
	} {
		t.Run(st.name, func(t *testing.T) {
			calleeNS, callerNS, callee, caller, sbcAddr, calleeHost := "ent", "car", pbxArgs, carrierArgs, sbcExt, pbxHost
			if !st.fromCarrier {
				calleeNS, callerNS, callee, caller, sbcAddr, calleeHost = "car", "ent", carrierArgs, pbxArgs, sbcInt, carrierHost
			}
			before := s.metric(t, "sbc_calls_total", `result="bye_a"`)
			calleeArgs := callee("-m", fmt.Sprint(n))
			if st.calleeTCP {
				calleeArgs = append(calleeArgs, "-t", "t1")
			}
			srv := startSIPp(t, calleeNS, "uas.xml", calleeArgs...)
			if st.calleeTCP {
				waitTCPListen(t, calleeNS, calleeHost, 5060)
			} else {
				waitUDPListen(t, calleeNS, calleeHost, 5060)
			}
			callerArgs := caller(sbcAddr+":5060", "-m", fmt.Sprint(n), "-r", "5", "-s", st.service)
			if st.callerTCP {
				callerArgs = append(callerArgs, "-t", "t1")
			}
			cl := startSIPp(t, callerNS, "uac.xml", callerArgs...)
			cl.wait(t, 40*time.Second)
			srv.wait(t, 40*time.Second)
			s.waitIdle(t)
			if got := s.metric(t, "sbc_calls_total", `result="bye_a"`) - before; got != n {
				t.Errorf("sbc_calls_total{result=bye_a} grew by %v, want %d", got, n)
			}
		})
	}
}
