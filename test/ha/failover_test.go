package ha_test

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/labns"
)

// kill is what one failover did to the calls.
type kill struct {
	victim, heir string
	gaps         []time.Duration // per call: the longest media gap either way
	preserved    int             // calls whose media flowed again both ways
	total        int
	firstNew     time.Duration // kill to the first new call answered
	at           time.Time     // the kill
	notFlowing   []string
}

func (k kill) gapStats() (lo, med, hi time.Duration) {
	if len(k.gaps) == 0 {
		return
	}
	g := append([]time.Duration(nil), k.gaps...)
	sort.Slice(g, func(i, j int) bool { return g[i] < g[j] })
	return g[0], g[len(g)/2], g[len(g)-1]
}

func (k kill) String() string {
	lo, med, hi := k.gapStats()
	return fmt.Sprintf("kill -9 %s -> %s active: media gap min/median/max %v/%v/%v, calls preserved %d/%d, first new call after %v",
		k.victim, k.heir, lo, med, hi, k.preserved, k.total, k.firstNew.Round(time.Millisecond))
}

// failover kills the active node with established calls up and media
// flowing, tries a new call at once and until one is answered, then
// checks every call's media on the new active node. newIdx is the call
// index the new call uses; it is ended before returning.
func failover(t testing.TB, c *cluster, p *phones, calls []*call, newIdx int) kill {
	t.Helper()
	act, stby := c.active(10 * time.Second)
	// The standby must have every record before the kill: writes are
	// asynchronous, and a call whose record is not committed yet is lost
	// with the node (the bench reports how long that window is).
	stby.waitRecords(len(calls), 5*time.Second)
	for _, cl := range calls {
		if err := cl.flowing(2 * time.Second); err != nil {
			t.Fatalf("before the kill: %v", err)
		}
	}
	k := kill{victim: act.name, heir: stby.name, total: len(calls)}
	marks := make([]uint16, len(calls))
	for i, cl := range calls {
		marks[i] = cl.sentSoFar()
	}
	start := time.Now()
	k.at = start
	act.kill9()
	t.Logf("kill -9 %s at %s", act.name, start.UTC().Format("15:04:05.000"))
	nc, took, err := p.firstNewCall(newIdx, start, 6*time.Second)
	if err != nil {
		t.Fatalf("after kill -9 %s: %v", act.name, err)
	}
	k.firstNew = took
	if heir, _ := c.active(5 * time.Second); heir != stby {
		t.Fatalf("node %s took over, not the standby %s", heir.name, stby.name)
	}
	// Let media run on the new active node, then measure.
	time.Sleep(1500 * time.Millisecond)
	for i, cl := range calls {
		if err := cl.flowing(2 * time.Second); err != nil {
			k.notFlowing = append(k.notFlowing, err.Error())
			continue
		}
		k.preserved++
		g, _ := cl.gaps(marks[i]-5, cl.sentSoFar()-10) // the last 200 ms may be in flight
		k.gaps = append(k.gaps, g)
	}
	if err := p.bye(nc, true); err != nil {
		t.Fatalf("new call after failover: %v", err)
	}
	return k
}

// The active node dies (kill -9) with calls up and RTP flowing: the
// standby takes over the VIPs, every call's media flows again, a new call
// is answered within 2 s of the kill, and BYE from either side after the
// failover is answered 200 and ends both legs. The killed node comes back
// as standby, catches up, and a second failover (back to it) keeps the
// remaining calls up too.
func TestFailoverKeepsCalls(t *testing.T) {
	c := newCluster(t, "")
	p := newPhones(t)
	first, _ := c.active(15 * time.Second)
	const n = 10
	var calls []*call
	for i := range n {
		calls = append(calls, p.establish(i))
	}
	if got := first.calls(); got != n {
		t.Fatalf("active node %s has %d calls, want %d", first.name, got, n)
	}

	k1 := failover(t, c, p, calls, n)
	t.Log(k1)
	checkKill(t, k1)
	act, _ := c.active(time.Second)

	// BYE from either side on the new active node ends both legs.
	for i, cl := range calls[:n/2] {
		if err := p.bye(cl, i%2 == 0); err != nil {
			t.Fatalf("after failover: %v", err)
		}
	}
	rest := calls[n/2:]
	waitCalls(t, act, len(rest))
	// A re-INVITE from the PBX on a restored call: relayed in the
	// caller's dialog with the leg's next CSeq (the SBC sent nothing on
	// leg A before: 1), answered, ACKed both ways; media keeps flowing.
	if err := p.reinvite(rest[0], 1); err != nil {
		t.Fatalf("after failover: %v", err)
	}
	if err := rest[0].flowing(2 * time.Second); err != nil {
		t.Fatalf("after the re-INVITE: %v", err)
	}

	// The killed node restarts and rejoins as standby: it catches up with
	// the records and serves nothing.
	victim := c.a
	if act == c.a {
		victim = c.b
	}
	victim.start()
	victim.waitRecords(len(rest), 10*time.Second)
	if st, err := victim.status(); err != nil || st.Role != "follower" {
		t.Fatalf("restarted node %s: role %q (%v), want follower", victim.name, st.Role, err)
	}
	if e, i := victim.holdsVIPs(); e || i || victim.calls() != 0 {
		t.Fatalf("restarted node %s holds VIPs (%v %v) or calls (%d)", victim.name, e, i, victim.calls())
	}

	// Failover back.
	k2 := failover(t, c, p, rest, n+1)
	t.Log(k2)
	checkKill(t, k2)
	back, _ := c.active(time.Second)
	if back != victim {
		t.Fatalf("second failover went to %s", back.name)
	}
	for i, cl := range rest {
		if err := p.bye(cl, i%2 == 1); err != nil {
			t.Fatalf("after the second failover: %v", err)
		}
	}
	waitCalls(t, back, 0)
	back.waitRecords(0, 5*time.Second)
}

func checkKill(t *testing.T, k kill) {
	t.Helper()
	if k.preserved != k.total {
		t.Errorf("%d of %d calls lost their media: %s", k.total-k.preserved, k.total, strings.Join(k.notFlowing, "; "))
	}
	if k.firstNew > 2*time.Second {
		t.Errorf("first new call %v after the kill, want within 2 s", k.firstNew)
	}
	// The target: media back within 1 s of the kill (measured at the
	// receivers in 20 ms packets; make bench-ha reports the figures).
	if _, _, hi := k.gapStats(); hi > time.Second {
		t.Errorf("media gap up to %v, over the 1 s target", hi)
	}
}

func waitCalls(t *testing.T, n *node, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.calls() != want {
		if time.Now().After(deadline) {
			b, _ := n.get("/api/v1/calls")
			t.Fatalf("node %s: %d calls, want %d: %s", n.name, n.calls(), want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The control network between A and B is cut (both still reach the
// witness): at no moment do both hold a VIP, and once it settles exactly
// one holds them; the same after the cut heals.
func TestPartitionOneActive(t *testing.T) {
	c := newCluster(t, "")
	c.active(15 * time.Second)
	cut := [][]string{{ns("sbca"), "192.0.2.3/32"}, {ns("sbcb"), "192.0.2.2/32"}}
	for _, r := range cut {
		if out, err := exec.Command("ip", "-n", r[0], "route", "add", "prohibit", r[1]).CombinedOutput(); err != nil {
			t.Fatalf("cut %v: %v %s", r, err, out)
		}
	}
	heal := func() {
		for _, r := range cut {
			_ = exec.Command("ip", "-n", r[0], "route", "del", "prohibit", r[1]).Run()
		}
	}
	t.Cleanup(heal)
	watchVIPs(t, c, 5*time.Second)
	act, _ := c.active(5 * time.Second)
	t.Logf("cut: %s active", act.name)
	heal()
	watchVIPs(t, c, 3*time.Second)
	act, _ = c.active(5 * time.Second)
	t.Logf("healed: %s active", act.name)
}

// watchVIPs records every VIP address change in both SBC namespaces for d
// (ip monitor, kernel timestamps: an overlap of a millisecond shows) and
// fails if both ever held a VIP at once.
func watchVIPs(t *testing.T, c *cluster, d time.Duration) {
	t.Helper()
	m, err := labns.MonitorAddrs(c.a.ns, c.b.ns)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(d) // the window watched, not a synchronisation
	ev := m.Stop()
	n := 0
	for _, e := range ev {
		if e.Addr == vipExt || e.Addr == vipInt {
			n++
		}
	}
	t.Logf("%d VIP address changes in %v", n, d)
	for _, o := range m.Overlaps(ev, vipExt, vipInt) {
		end := "to the end of the window"
		if !o.To.IsZero() {
			end = fmt.Sprintf("for %v", o.To.Sub(o.From))
		}
		t.Errorf("both nodes held a VIP from %s %s (%v)", o.From.Format("15:04:05.000000"), end, o.Holders)
	}
}
