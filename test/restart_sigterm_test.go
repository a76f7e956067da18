package test

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestSIGTERMRestartKeepsCalls is `systemctl restart` with state_dir: a
// call with 50 pps of RTP each way, SIGTERM (sbcd exits 0 and sends no
// BYE), sbcd started again at once. The call is restored, media flows on,
// and a BYE afterwards ends both legs. The media gap (the longest run of
// packets that never arrived, at either end) is measured for the kernel
// path (the pinned flows forward while sbcd is down) and for the
// user-space relay (nothing forwards until the restored relay binds its
// ports again).
func TestSIGTERMRestartKeepsCalls(t *testing.T) {
	needLab(t)
	for _, c := range []struct {
		name, media string
		maxGap      time.Duration
	}{
		{"kernel", "", 60 * time.Millisecond},
		{"userspace", ", datapath: userspace", 3 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			// nsenter keeps the machine's bpffs, so the pins outlive sbcd
			// (TestOffloadSurvivesRestart).
			launcher := []string{"nsenter", "--net=/var/run/netns/sbc", "--"}
			cfg := withStateDir(t, mediaConfigWith(t, "30s", c.media))
			s := startSBCDWith(t, cfg, launcher...)
			s.waitLog(t, "takeover done")
			if !strings.Contains(s.log.String(), "calls are kept: SIGTERM stops sbcd without BYE") {
				t.Errorf("sbcd did not say at start that SIGTERM keeps the calls")
			}
			call := setupCall(t, "sigterm-"+c.name, 16000, 18000)
			aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
			bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
			exchangeRTP(t, aRTP, bRTP, call.aTo, call.bTo, 0xA1, 0xB1, 1000, 10)
			if c.name == "kernel" {
				requireKernel(t, s)
				s.waitKernel(t, 2)
			}
			s.waitRecords(t, 1)

			// 6 s of RTP both ways through the stop and the start.
			const n = 300
			var wg sync.WaitGroup
			wg.Go(func() { _ = aRTP.Send(call.aTo, 0xA2, 1, n, 20*time.Millisecond) })
			wg.Go(func() { _ = bRTP.Send(call.bTo, 0xB2, 1, n, 20*time.Millisecond) })
			time.Sleep(time.Second)
			stopped := time.Now()
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Fatal("sbcd still running 10 s after SIGTERM")
			}
			if code := s.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("sbcd exited %d at SIGTERM", code)
			}
			down := time.Since(stopped)
			s2 := startSBCDWith(t, cfg, launcher...)
			s2.waitLog(t, "takeover done")
			back := time.Since(stopped)
			wg.Wait()
			bRTP.WaitFor(0xA2, n, 2*time.Second) // what is missing now never comes
			aRTP.WaitFor(0xB2, n, 2*time.Second)
			gapA, lostA := longestGap(aRTP.Received(0xB2), n)
			gapB, lostB := longestGap(bRTP.Received(0xA2), n)
			gap := max(gapA, gapB)
			t.Logf("%s: sbcd stopped in %v, serving again %v after SIGTERM; media gap %v at the caller (%d lost), %v at the callee (%d lost)",
				c.name, down.Round(time.Millisecond), back.Round(time.Millisecond), gapA, lostA, gapB, lostB)
			if gap > c.maxGap {
				t.Errorf("media gap %v across the restart, want at most %v", gap, c.maxGap)
			}
			for _, ph := range []*testphone.Phone{call.caller, call.callee} {
				ph.Quiet(100*time.Millisecond, func(m sip.Message) bool {
					r, ok := m.(*sip.Request)
					return ok && r.Method == sip.BYE
				}, "BYE at SIGTERM with state_dir")
			}
			if got := s2.activeCalls(t); got != 1 {
				t.Fatalf("%d calls after the restart, want the 1 restored", got)
			}
			exchangeRTP(t, aRTP, bRTP, call.aTo, call.bTo, 0xA3, 0xB3, 1, 25)
			call.bye(t, 2)
			s2.waitIdle(t)
		})
	}
}

// longestGap is the longest run of sequence numbers 1..n missing from
// got, as time at 20 ms a packet, and how many are missing in all.
func longestGap(got []uint16, n int) (time.Duration, int) {
	seen := make([]bool, n+1)
	for _, s := range got {
		if int(s) <= n {
			seen[s] = true
		}
	}
	run, longest, lost := 0, 0, 0
	for i := 1; i <= n; i++ {
		if seen[i] {
			run = 0
			continue
		}
		lost++
		run++
		longest = max(longest, run)
	}
	return time.Duration(longest) * 20 * time.Millisecond, lost
}
