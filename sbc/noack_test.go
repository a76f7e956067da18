package sbc_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// noAckT1 is the T1 the no-ACK test runs with: 64*T1 = 1.6 s instead of 32 s.
const noAckT1 = 25 * time.Millisecond

// runWithT1 reports whether this process already runs with SIP T1 = t1.
// When it does not, it runs this one test again in a child process with
// t1Env set (TestMain applies it before any transaction exists), fails t
// when the child fails, and returns false: the caller returns.
func runWithT1(t *testing.T, t1 time.Duration) bool {
	t.Helper()
	if os.Getenv(t1Env) != "" {
		if sip.T1 != t1 {
			t.Fatalf("child runs with T1 %v, want %v", sip.T1, t1)
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-test.run=^" + t.Name() + "$", "-test.count=1", "-test.timeout=90s"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), t1Env+"="+t1.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child with T1=%v: %v\n%s", t1, err, out)
	}
	if !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "no tests to run") {
		t.Fatalf("child with T1=%v did not run the test:\n%s", t1, out)
	}
	if testing.Verbose() {
		t.Logf("child with T1=%v:\n%s", t1, out)
	}
	return false
}

// TestNoAckHangsUpAfter64T1: a caller that never ACKs the 2xx gets it
// retransmitted (T1 doubling, RFC 3261 13.3.1.4) until 64*T1; then the
// SBC stops retransmitting and sends BYE on both legs, and the call ends
// as no_ack. Runs with T1 = 25 ms in a child process.
func TestNoAckHangsUpAfter64T1(t *testing.T) {
	if !runWithT1(t, noAckT1) {
		return
	}
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, nil)
	caller.Invite(s.carrier, "1000", "no-ack", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "cb", testphone.TestSDP)
	callee.ExpectRequest(sip.ACK, wait) // the offer was in the INVITE: leg B is ACKed at once
	first := caller.ExpectResponse(200, sip.INVITE, wait)
	start := time.Now()

	// Count the 2xx copies until the BYE; never ACK.
	retrans := 0
	var byeA *sip.Request
	deadline := time.Now().Add(64*noAckT1 + 3*time.Second)
	for byeA == nil && time.Now().Before(deadline) {
		m := caller.Recv(time.Until(deadline))
		switch m := m.(type) {
		case *sip.Response:
			if m.StatusCode == 200 && m.CSeq().MethodName == sip.INVITE {
				if toTagOf2(m) != toTagOf2(first) {
					t.Errorf("retransmitted 2xx has another To tag")
				}
				retrans++
			}
		case *sip.Request:
			if m.Method == sip.BYE {
				byeA = m
			}
		}
	}
	took := time.Since(start)
	if byeA == nil {
		t.Fatalf("no BYE to the caller within 64*T1 + 3s (%d retransmissions seen)", retrans)
	}
	// T1 doubling from 25 ms under T2 = 4 s: copies at 25, 75, 175, 375,
	// 775 ms after the first, before the 1.6 s deadline.
	if retrans < 4 {
		t.Errorf("%d retransmissions of the 2xx before the BYE, want at least 4", retrans)
	}
	if took < 64*noAckT1-50*time.Millisecond {
		t.Errorf("hung up %v after the 2xx, before 64*T1 = %v", took, 64*noAckT1)
	}
	if byeA.CallID().Value() != "no-ack" || toTagOf(byeA) != "ftno-ack" {
		t.Errorf("BYE to the caller not in its dialog:\n%s", byeA)
	}
	caller.Answer(byeA, 200, "OK", "", "")
	byeB := callee.ExpectRequest(sip.BYE, wait)
	if byeB.CallID().Value() != inv.CallID().Value() {
		t.Errorf("BYE to the callee not in leg B's dialog:\n%s", byeB)
	}
	callee.Answer(byeB, 200, "OK", "", "")
	s.waitIdle(t)
	s.waitCalls(t, "no_ack", 1)
	// Had the retransmissions gone on, the next would come 1.6 s after the
	// last (doubling under T2): none may come within 2 s.
	caller.Quiet(2*time.Second, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}, "2xx retransmission after the no-ACK hang-up")
}
