package ha_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// stall blocks one of the node's relay workers for d through the test
// hook (EDGESBC_TEST_HOOKS=1): the process stays alive but that worker
// is stuck, as in issue 11's deadlock.
func (n *node) stall(component string, d time.Duration) {
	n.t.Helper()
	res, err := labns.HTTPClient(n.ns, 2*time.Second).Post(
		fmt.Sprintf("http://127.0.0.1:8080/debug/stall?component=%s&for=%s", component, d), "", nil)
	if err != nil {
		n.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		n.t.Fatalf("stall %s on %s: %s %s", component, n.name, res.Status, b)
	}
}

// The active node stays alive but one of its relay workers is stuck: its
// watchdog sees the stall within the bound, /healthz turns 503, the node
// releases the VIPs and hands leadership over, the standby takes over the
// calls (media flows again both ways, BYE ends both legs) and new calls;
// the stalled node does not take the VIPs back while stuck, and comes
// back healthy as a follower after the stall.
func TestStalledActiveStepsDown(t *testing.T) {
	t.Setenv("EDGESBC_TEST_HOOKS", "1") // inherited by the sbcd processes
	const bound, block = 2 * time.Second, 15 * time.Second
	c := newCluster(t, "watchdog: {interval: 250ms, bound: 2s}\n")
	p := newPhones(t)
	act, stby := c.active(15 * time.Second)
	const n = 4
	var calls []*call
	for i := range n {
		calls = append(calls, p.establish(i))
	}
	stby.waitRecords(n, 5*time.Second)
	for _, cl := range calls {
		if err := cl.flowing(2 * time.Second); err != nil {
			t.Fatalf("before the stall: %v", err)
		}
	}

	start := time.Now()
	act.stall("relay", block)
	t.Logf("relay worker of %s blocked for %v at %s", act.name, block, start.UTC().Format("15:04:05.000"))
	// The stalled node keeps its VIPs until the watchdog's bound has
	// passed; then the standby must become the single active node.
	for {
		heir, _ := c.active(5 * time.Second)
		if heir == stby {
			break
		}
		if time.Since(start) > bound+5*time.Second {
			t.Fatalf("%s still active %v after its relay stalled (watchdog bound %v)", act.name, time.Since(start), bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("%s active %v after the stall", stby.name, took.Round(time.Millisecond))
	if took < bound {
		t.Errorf("standby active %v after the stall, before the watchdog's bound %v", took, bound)
	}
	if took > bound+3*time.Second {
		t.Errorf("standby active %v after the stall, watchdog bound %v", took, bound)
	}
	if _, err := act.get("/healthz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("stalled node's /healthz: %v, want 503", err)
	}
	if v := act.metric(`sbc_watchdog_stalls_total{component="relay"}`); v < 1 {
		t.Errorf("stall not counted on %s: %v", act.name, v)
	}
	if !strings.Contains(act.log.String(), "watchdog: relay stalled: goroutine dump") {
		t.Errorf("no goroutine dump in %s's log", act.name)
	}

	// The calls continue on the new active node, new ones are answered.
	time.Sleep(time.Second)
	for _, cl := range calls {
		if err := cl.flowing(3 * time.Second); err != nil {
			t.Errorf("after the takeover: %v", err)
		}
	}
	nc, _, err := p.firstNewCall(n, time.Now(), 5*time.Second)
	if err != nil {
		t.Fatalf("new call after the takeover: %v", err)
	}
	if err := p.bye(nc, true); err != nil {
		t.Fatalf("new call after the takeover: %v", err)
	}

	// While stuck the old active node never holds a VIP again.
	for time.Since(start) < block-500*time.Millisecond {
		if e, i := act.holdsVIPs(); e || i {
			t.Fatalf("stalled node %s holds VIPs again (%v %v) %v into the stall", act.name, e, i, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the stall: healthy, a follower without VIPs or calls.
	deadline := time.Now().Add(bound + 5*time.Second)
	for {
		_, err := act.get("/healthz")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still unhealthy %v after the stall ended: %v", act.name, time.Since(start)-block, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if now, _ := c.active(5 * time.Second); now != stby {
		t.Fatalf("after the stall %s is active again", now.name)
	}
	for i, cl := range calls {
		if err := p.bye(cl, i%2 == 0); err != nil {
			t.Errorf("after the takeover: %v", err)
		}
	}
	waitCalls(t, stby, 0)
	waitCalls(t, act, 0)
}
