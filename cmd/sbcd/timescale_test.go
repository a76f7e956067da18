package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/watchdog"
)

// The session-timer time scale in the real binary, judged at the caller:
// with EDGESBC_TEST_TIMESCALE=100 and the hooks on, a caller that asked
// for Session-Expires 90 as refresher and never refreshes gets the SBC's
// BYE (Reason Q.850 102) 60 scaled seconds (0.6 s) after its 200, and the
// 200 still says 90; without EDGESBC_TEST_HOOKS=1 the same value is
// refused (logged) and the call is still up 2 s later, as on a real clock.
func TestTimeScaleHook(t *testing.T) {
	t.Setenv(watchdog.TimeScaleEnv, "100")
	for _, hooks := range []bool{true, false} {
		t.Run(fmt.Sprintf("hooks=%v", hooks), func(t *testing.T) {
			caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
			admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			sipPorts := freePorts(t, "udp", 2)
			p := runSBCD(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d", session_timer: {expires: 0s}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"]}
media: {enabled: false}
admin: {listen: %q}
`, sipPorts[0], sipPorts[1], callee.Addr, admin), admin, hooks)
			sbcAddr := fmt.Sprintf("127.0.0.1:%d", sipPorts[0])
			caller.Send(sbcAddr, fmt.Sprintf(`INVITE sip:1000@%[1]s SIP/2.0
				Via: SIP/2.0/UDP %[2]s;branch=z9hG4bK-ts-inv;rport
				Max-Forwards: 70
				From: <sip:alice@%[2]s>;tag=ft-ts
				To: <sip:1000@%[1]s>
				Call-ID: ts-call
				CSeq: 1 INVITE
				Contact: <sip:alice@%[2]s>
				Supported: timer
				Session-Expires: 90;refresher=uac`, sbcAddr, caller.Addr), testphone.TestSDP)
			inv := callee.ExpectRequest(sip.INVITE, 3*time.Second)
			callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
			ok := caller.ExpectResponse(200, sip.INVITE, 3*time.Second)
			answered := time.Now()
			if se := ok.GetHeader("Session-Expires"); se == nil || se.Value() != "90;refresher=uac" {
				t.Errorf("200's Session-Expires %v, want the RFC value 90;refresher=uac whatever the clock", se)
			}
			caller.Ack(testphone.CallerDialog(ok, sbcAddr), 1, "ts-ack")
			callee.ExpectRequest(sip.ACK, 3*time.Second)
			isBye := func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.BYE }
			if !hooks {
				caller.Quiet(2*time.Second, isBye, "BYE: the time scale ran without EDGESBC_TEST_HOOKS=1")
				if !strings.Contains(p.out.String(), "session timer time scale refused") {
					t.Errorf("sbcd did not log the refused time scale:\n%s", p.out)
				}
				return
			}
			bye, _ := caller.Next(3*time.Second, isBye).(*sip.Request)
			if bye == nil {
				t.Fatal("no BYE at the caller within 3 s: the time scale did not apply")
			}
			took := time.Since(answered)
			if r := bye.GetHeader("Reason"); r == nil || !strings.Contains(r.Value(), "cause=102") {
				t.Errorf("BYE Reason %v, want Q.850 cause 102", r)
			}
			if took < 500*time.Millisecond || took > 2*time.Second {
				t.Errorf("BYE %v after the 200, want about 0.6 s (60 s at 1/100)", took)
			}
			caller.Answer(bye, 200, "OK", "", "")
			callee.ExpectRequest(sip.BYE, 3*time.Second)
			t.Logf("BYE with Reason %s %v after the 200", bye.GetHeader("Reason").Value(), took.Round(10*time.Millisecond))
		})
	}
}
