package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/syncbuf"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestDrainEndsCleanly: `sbcctl drain` with one call up: a new call gets
// 503 at the caller and never reaches the PBX, the call up carries on
// until its BYE, then sbcd exits 0 and sbcctl returns 0.
func TestDrainEndsCleanly(t *testing.T) {
	ctl := buildSbcctl(t)
	caller, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	ports := freePorts(t, "udp", 2)
	carrier := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := runSBCD(t, reloadYAML(carrier, ports[1], pbx.Addr, admin, ""), admin, false)
	dA, _ := loopCall(t, caller, pbx, carrier, "drain-1", "td")
	if code, _ := p.do(http.MethodPost, "/api/v1/drain", ""); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Fatalf("POST /api/v1/drain without the token: %d", code)
	}

	out := &syncbuf.Buffer{}
	cmd := exec.Command(ctl, "-admin", "http://"+admin, "drain", "20s")
	cmd.Env = append(os.Environ(), "SBCCTL_TOKEN="+testToken)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-ctlDone
		}
	})
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, st := p.get("/api/v1/drain"); strings.Contains(st, `"draining":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not draining:\n%s", out)
		}
	}

	caller.Invite(carrier, "1000", "drain-2", testphone.TestSDP)
	caller.ExpectResponse(503, sip.INVITE, 3*time.Second)
	pbx.Quiet(200*time.Millisecond, isInvite, "INVITE of a new call while draining")
	select {
	case <-p.done:
		t.Fatal("sbcd exited with a call still up")
	default:
	}

	caller.Request(dA, "BYE", 2, "drain-1-bye", "")
	bye := pbx.ExpectRequest(sip.BYE, 3*time.Second)
	pbx.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, 3*time.Second)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("sbcd after the drain: %v", p.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sbcd still running 5 s after its last call ended")
	}
	select {
	case err := <-ctlDone:
		if err != nil {
			t.Fatalf("sbcctl drain: %v\n%s", err, out)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("sbcctl drain still waiting after sbcd exited:\n%s", out)
	}
	if !strings.Contains(out.String(), "draining: new calls get 503; 1 calls up") {
		t.Errorf("sbcctl drain output:\n%s", out)
	}
	if !strings.Contains(p.out.String(), "drained: no call left") {
		t.Errorf("sbcd did not log the end of the drain")
	}
}

// TestDrainBound: sbcd without state_dir says at start that SIGTERM ends
// the calls; a drain whose bound passes with a call up exits as SIGTERM
// would then: the call's both legs get BYE. Bad bounds are refused 400.
func TestDrainBound(t *testing.T) {
	caller, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	ports := freePorts(t, "udp", 2)
	carrier := fmt.Sprintf("127.0.0.1:%d", ports[0])
	p := runSBCD(t, reloadYAML(carrier, ports[1], pbx.Addr, admin, ""), admin, false)
	if !strings.Contains(p.out.String(), "no state_dir or ha: SIGTERM ends every call with BYE") {
		t.Errorf("sbcd without a store did not say at start that SIGTERM ends the calls")
	}
	loopCall(t, caller, pbx, carrier, "bound-1", "tb")
	for _, bad := range []string{"nonsense", "-1s", "25h"} {
		if code, body := p.do(http.MethodPost, "/api/v1/drain?timeout="+bad, testToken); code != 400 {
			t.Fatalf("POST /api/v1/drain?timeout=%s: %d %s, want 400", bad, code, body)
		}
	}
	if _, st := p.get("/api/v1/drain"); !strings.Contains(st, `"draining":false`) {
		t.Fatalf("a refused drain started one: %s", st)
	}
	start := time.Now()
	if code, body := p.do(http.MethodPost, "/api/v1/drain?timeout=1s", testToken); code != 202 {
		t.Fatalf("POST /api/v1/drain: %d %s", code, body)
	}
	for _, ph := range []*testphone.Phone{caller, pbx} {
		bye := ph.ExpectRequest(sip.BYE, 4*time.Second)
		ph.Answer(bye, 200, "OK", "", "")
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("BYE %v into a 1 s drain bound", took)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("sbcd still running after its drain bound")
	}
}
