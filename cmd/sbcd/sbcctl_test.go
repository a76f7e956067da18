package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// buildSbcctl builds the real sbcctl binary for this test.
func buildSbcctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sbcctl")
	if out, err := exec.Command("go", "build", "-o", bin, "../sbcctl").CombinedOutput(); err != nil {
		t.Fatalf("build sbcctl: %v\n%s", err, out)
	}
	return bin
}

// sbcctl runs the binary against p's admin API with p's token in
// $SBCCTL_TOKEN: its output and exit code.
func (p *sbcd) sbcctl(bin string, args ...string) (string, int) {
	p.t.Helper()
	return p.sbcctlToken(bin, p.token, args...)
}

// sbcctlToken runs sbcctl with tok as its admin token ("" for none).
func (p *sbcd) sbcctlToken(bin, tok string, args ...string) (string, int) {
	p.t.Helper()
	cmd := exec.Command(bin, append([]string{"-admin", "http://" + p.admin}, args...)...)
	cmd.Env = append(os.Environ(), "SBCCTL_TOKEN="+tok)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		p.t.Fatalf("sbcctl %v: %v", args, err)
	}
	return string(out), 0
}

// TestSbcctlUnban: a source the guard banned (a scanner User-Agent) is
// listed by `sbcctl bans` and gets no answer; `sbcctl unban ADDR` lifts
// the ban and its next request is answered. sbcd and sbcctl are the real
// binaries.
func TestSbcctlUnban(t *testing.T) {
	ctl := buildSbcctl(t)
	p := startSBCD(t, "", false)
	phone := testphone.NewLoopback(t)
	sbcAddr := fmt.Sprintf("127.0.0.1:%d", p.sip[0])
	options := func(cid, ua string) {
		phone.Send(sbcAddr, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
			Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
			Max-Forwards: 70
			From: <sip:probe@%s>;tag=%s
			To: <sip:%s>
			Call-ID: %s
			CSeq: 1 OPTIONS
			User-Agent: %s`, sbcAddr, phone.Addr, cid, phone.Addr, cid, sbcAddr, cid, ua), "")
	}
	answered := func(cid string) func(sip.Message) bool {
		return func(m sip.Message) bool { return m.CallID() != nil && m.CallID().Value() == cid }
	}

	options("before", "test-phone/1.0")
	phone.ExpectResponse(200, sip.OPTIONS, 3*time.Second) // answered before any ban
	if out, code := p.sbcctl(ctl, "bans"); code != 0 || !strings.Contains(out, "0 banned") {
		t.Fatalf("sbcctl bans before: exit %d\n%s", code, out)
	}

	options("scan", "friendly-scanner") // dropped, its source banned
	var out string
	for deadline := time.Now().Add(3 * time.Second); ; {
		var code int
		out, code = p.sbcctl(ctl, "bans")
		if code != 0 {
			t.Fatalf("sbcctl bans: exit %d\n%s", code, out)
		}
		if strings.Contains(out, "1 banned") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scanner not listed by sbcctl bans:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, "scanner") {
		t.Errorf("sbcctl bans does not name the source and reason:\n%s", out)
	}
	options("banned", "test-phone/1.0")
	phone.Quiet(500*time.Millisecond, answered("banned"), "answer to a banned source")

	// A write action: refused without the token, even on loopback.
	if out, code := p.sbcctlToken(ctl, "", "unban", "127.0.0.1"); code == 0 || !strings.Contains(out, "401") {
		t.Fatalf("sbcctl unban without the token: exit %d\n%s", code, out)
	}
	if out, code := p.sbcctlToken(ctl, "wrong-token-0123456789", "unban", "127.0.0.1"); code == 0 || !strings.Contains(out, "401") {
		t.Fatalf("sbcctl unban with a wrong token: exit %d\n%s", code, out)
	}
	options("still-banned", "test-phone/1.0")
	phone.Quiet(300*time.Millisecond, answered("still-banned"), "answer to a source whose unban was refused")
	if out, code := p.sbcctl(ctl, "unban", "127.0.0.1"); code != 0 || !strings.Contains(out, "unbanned 127.0.0.1") {
		t.Fatalf("sbcctl unban: exit %d\n%s", code, out)
	}
	options("after", "test-phone/1.0")
	if m := phone.Next(3*time.Second, answered("after")); m == nil {
		t.Fatal("no answer after sbcctl unban")
	} else if r, ok := m.(*sip.Response); !ok || r.StatusCode != 200 {
		t.Fatalf("after unban:\n%s", m)
	}
	if out, code := p.sbcctl(ctl, "bans"); code != 0 || !strings.Contains(out, "0 banned") {
		t.Errorf("sbcctl bans after unban: exit %d\n%s", code, out)
	}
	if out, code := p.sbcctl(ctl, "unban", "127.0.0.1"); code == 0 {
		t.Errorf("sbcctl unban of an address not banned exits 0:\n%s", out)
	}
}
