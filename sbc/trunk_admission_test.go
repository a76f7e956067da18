package sbc_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// isInviteAnswer matches a final answer, or a 180, to an INVITE.
func isInviteAnswer(m sip.Message) bool {
	r, ok := m.(*sip.Response)
	return ok && r.CSeq().MethodName == sip.INVITE && r.StatusCode >= 180
}

// ringAll answers 180 to every new INVITE the phone receives and returns
// them by Call-ID (retransmissions are absorbed): it waits up to wait for
// want of them, then 300 ms more for any beyond.
func ringAll(p *testphone.Phone, want int) map[string]*sip.Request {
	got := map[string]*sip.Request{}
	deadline := time.Now().Add(wait)
	extra := false
	for time.Now().Before(deadline) {
		m := p.Next(time.Until(deadline), isRequest(sip.INVITE))
		if m == nil {
			break
		}
		inv := m.(*sip.Request)
		if _, seen := got[inv.CallID().Value()]; !seen {
			got[inv.CallID().Value()] = inv
		}
		p.Answer(inv, 180, "Ringing", "r-"+inv.CallID().Value(), "")
		if len(got) >= want && !extra {
			extra, deadline = true, time.Now().Add(300*time.Millisecond)
		}
	}
	return got
}

func (s *testSBC) waitAdmitted(t *testing.T, key string, want int) {
	t.Helper()
	eventually(t, wait, fmt.Sprintf("%s admitted %d", key, want), func() bool { return s.Admission().Active(key) == want })
}

// TestTrunkAdmissionOutbound: 12 INVITEs at once for a rule over two
// trunks, a (max 3 calls) then b (max 2): a gets exactly 3, b exactly 2
// (a full trunk is skipped like a down one), the other 7 callers get 503
// with the soonest Retry-After; when the calls end the places are free.
func TestTrunkAdmissionOutbound(t *testing.T) {
	pa, pb := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - {name: a, realm: carrier, targets: [%q], target_timeout: 5s, admission: {max_calls: 3, retry_after: 9s}}
  - {name: b, realm: carrier, targets: [%q], target_timeout: 5s, admission: {max_calls: 2, retry_after: 4s}}
routing:
  rules:
    - {name: out, from_realm: enterprise, prefix: "+", trunks: [{trunk: a, priority: 1}, {trunk: b, priority: 2}]}
# The 12 callers share 127.0.0.1: the PBX's address, a known peer (more
# calls than a stranger may hold at once).
guard:
  realms: [{realm: enterprise, peers: ["127.0.0.1"]}]
`, pa.Addr, pb.Addr), "")
	const n = 12
	callers := make([]*testphone.Phone, n)
	for i := range callers {
		callers[i] = testphone.NewLoopback(t)
	}
	var start, sent sync.WaitGroup
	start.Add(1)
	for i, c := range callers {
		sent.Add(1)
		go func() {
			defer sent.Done()
			start.Wait()
			c.Invite(s.enterprise, "+4930123", fmt.Sprintf("adm-out-%d", i), testphone.TestSDP)
		}()
	}
	start.Done()
	sent.Wait()
	ringA, ringB := ringAll(pa, 3), ringAll(pb, 2)
	if len(ringA) != 3 || len(ringB) != 2 {
		t.Fatalf("trunk a got %d calls, b %d; want 3 and 2", len(ringA), len(ringB))
	}
	refused, ringing := 0, 0
	for i, c := range callers {
		m := c.Next(wait, isInviteAnswer)
		if m == nil {
			t.Fatalf("caller %d: no answer", i)
		}
		switch res := m.(*sip.Response); res.StatusCode {
		case 503:
			refused++
			if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "4" {
				t.Errorf("503 Retry-After %v, want 4", ra)
			}
		case 180:
			ringing++
		default:
			t.Errorf("caller %d got %d", i, res.StatusCode)
		}
	}
	if refused != n-5 || ringing != 5 {
		t.Fatalf("%d refused, %d ringing; want %d and 5", refused, ringing, n-5)
	}
	if a, b := s.Admission().Active("trunk:a"), s.Admission().Active("trunk:b"); a != 3 || b != 2 {
		t.Fatalf("admitted a %d b %d", a, b)
	}
	if g := gathered(t, s.Metrics().Registry, "sbc_admission_calls_active", map[string]string{"key": "trunk:a"}); g != 3 {
		t.Errorf("gauge trunk:a %v", g)
	}
	if r := s.rejected(t, "trunk_admission_max_calls"); r < n-5 {
		t.Errorf("rejected{trunk_admission_max_calls} %v", r)
	}
	if s.calls("trunks_full") != n-5 {
		t.Errorf("calls{trunks_full} %v", s.calls("trunks_full"))
	}
	if c := s.CallCounts(); c.Offered != n || c.Shed != n-5 {
		t.Errorf("CallCounts %+v, want %d offered, %d shed (every trunk full)", c, n, n-5)
	}
	// The called side is busy on every call: the calls end, places free.
	for _, p := range []*testphone.Phone{pa, pb} {
		ring := ringA
		if p == pb {
			ring = ringB
		}
		for cid, inv := range ring {
			p.Answer(inv, 486, "Busy Here", "r-"+cid, "")
		}
	}
	s.waitIdle(t)
	s.waitAdmitted(t, "trunk:a", 0)
	s.waitAdmitted(t, "trunk:b", 0)
	callers[0].Invite(s.enterprise, "+4930123", "adm-out-again", testphone.TestSDP)
	inv := pa.ExpectRequest(sip.INVITE, wait)
	s.waitAdmitted(t, "trunk:a", 1)
	pa.Answer(inv, 486, "Busy Here", "again", "")
	callers[0].ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
	s.waitAdmitted(t, "trunk:a", 0)
}

// TestTrunkAdmissionFailoverRelease: trunk a answers 503, the call fails
// over to b and gives a's place back; b's place is held while the call
// lasts and given back at its BYE.
func TestTrunkAdmissionFailoverRelease(t *testing.T) {
	pa, pb, caller := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - {name: a, realm: carrier, targets: [%q], admission: {max_calls: 1}}
  - {name: b, realm: carrier, targets: [%q], admission: {max_calls: 1}}
routing:
  rules:
    - {name: out, from_realm: enterprise, prefix: "+", trunks: [{trunk: a, priority: 1}, {trunk: b, priority: 2}]}
`, pa.Addr, pb.Addr), "")
	caller.Invite(s.enterprise, "+4930123", "adm-fo", testphone.TestSDP)
	invA := pa.ExpectRequest(sip.INVITE, wait)
	if s.Admission().Active("trunk:a") != 1 {
		t.Fatal("trunk a's place not taken while its INVITE is out")
	}
	pa.Answer(invA, 503, "Service Unavailable", "fa", "")
	invB := pb.ExpectRequest(sip.INVITE, wait)
	pb.Answer(invB, 200, "OK", "fb", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.enterprise)
	caller.Ack(dA, 1, "adm-fo-ack")
	s.waitState(t, "confirmed")
	if a, b := s.Admission().Active("trunk:a"), s.Admission().Active("trunk:b"); a != 0 || b != 1 {
		t.Fatalf("after failover: a %d b %d, want 0 and 1", a, b)
	}
	caller.Request(dA, "BYE", 2, "adm-fo-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := pb.ExpectRequest(sip.BYE, wait)
	pb.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	// The SBC's BYE transaction is over before Close (which would race
	// its start, a known wait group issue in SBC.Close).
	eventually(t, wait, "200 to leg B's BYE", func() bool {
		return gathered(t, s.Metrics().Registry, "sbc_sip_responses_total", map[string]string{"realm": "carrier", "direction": "in", "code": "200"}) == 2
	})
	s.waitAdmitted(t, "trunk:b", 0)
	s.waitAdmitted(t, "trunk:a", 0)
}

// TestTrunkAdmissionInbound: calls from a trunk's target count under the
// trunk's key; above its max_calls the next gets 503 + Retry-After, and
// calls from elsewhere in the realm do not count.
func TestTrunkAdmissionInbound(t *testing.T) {
	carrier, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	// Another source: another address, as a trunk is also recognised by
	// address alone.
	oc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	other := testphone.New(t, oc)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - {name: acme, realm: carrier, targets: [%q], admission: {max_calls: 1, retry_after: 6s}}
# 127.0.0.2 is another known peer of the realm, not of the trunk.
guard:
  realms: [{realm: carrier, peers: ["127.0.0.2"]}]
`, carrier.Addr), pbx.Addr)
	carrier.Invite(s.carrier, "1000", "adm-in-1", testphone.TestSDP)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	pbx.Answer(inv, 180, "Ringing", "p1", "")
	carrier.ExpectResponse(180, sip.INVITE, wait)
	s.waitAdmitted(t, "trunk:acme", 1)
	carrier.Invite(s.carrier, "1000", "adm-in-2", testphone.TestSDP)
	res := carrier.ExpectResponse(503, sip.INVITE, wait)
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "6" {
		t.Errorf("503 Retry-After %v, want 6", ra)
	}
	// Not from the trunk: not its limit.
	other.Invite(s.carrier, "1000", "adm-in-other", testphone.TestSDP)
	inv2 := pbx.ExpectRequest(sip.INVITE, wait)
	pbx.Answer(inv2, 486, "Busy Here", "p2", "")
	other.ExpectResponse(486, sip.INVITE, wait)
	pbx.Answer(inv, 486, "Busy Here", "p1", "")
	carrier.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
	s.waitAdmitted(t, "trunk:acme", 0)
	carrier.Invite(s.carrier, "1000", "adm-in-3", testphone.TestSDP)
	inv = pbx.ExpectRequest(sip.INVITE, wait)
	s.waitAdmitted(t, "trunk:acme", 1)
	pbx.Answer(inv, 486, "Busy Here", "p3", "")
	carrier.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
	s.waitAdmitted(t, "trunk:acme", 0)
}

// TestTrunkAdmissionCPS: a trunk with max_cps 1 takes one of two
// INVITEs in the same instant, the other goes to the next trunk; a third
// within the second, with no next trunk, gets 503 + Retry-After; a
// second later trunk a takes a call again. The admission clock is a fake
// one: "the same instant" and "a second later" are the test's, not the
// machine's.
func TestTrunkAdmissionCPS(t *testing.T) {
	pa, pb, caller := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	clock := newFakeClock()
	s := startTrunkSBCWith(t, clock.option, fmt.Sprintf(`
trunks:
  - {name: a, realm: carrier, targets: [%q], admission: {max_cps: 1, retry_after: 2s}}
  - {name: b, realm: carrier, targets: [%q]}
routing:
  rules:
    - {name: both, from_realm: enterprise, prefix: "+49", trunks: [{trunk: a, priority: 1}, {trunk: b, priority: 2}]}
    - {name: only-a, from_realm: enterprise, prefix: "+44", trunks: [{trunk: a}]}
`, pa.Addr, pb.Addr), "")
	caller.Invite(s.enterprise, "+4930123", "cps-1", testphone.TestSDP)
	caller.Invite(s.enterprise, "+4930123", "cps-2", testphone.TestSDP)
	invA := pa.ExpectRequest(sip.INVITE, wait)
	invB := pb.ExpectRequest(sip.INVITE, wait)
	if invA.CallID().Value() == invB.CallID().Value() {
		t.Fatal("one call sent to both trunks")
	}
	caller.Invite(s.enterprise, "+4420123", "cps-3", testphone.TestSDP)
	res := caller.ExpectResponse(503, sip.INVITE, wait)
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "2" || res.CallID().Value() != "cps-3" {
		t.Errorf("503 to %s Retry-After %v, want cps-3 and 2", res.CallID().Value(), ra)
	}
	pa.Quiet(200*time.Millisecond, isRequest(sip.INVITE), "a second INVITE within a second on trunk a")
	if r := s.rejected(t, "trunk_admission_max_cps"); r != 2 {
		t.Errorf("rejected{trunk_admission_max_cps} %v, want 2", r)
	}
	pa.Answer(invA, 486, "Busy Here", "ca", "")
	pb.Answer(invB, 486, "Busy Here", "cb", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	caller.ExpectResponse(486, sip.INVITE, wait)
	clock.Add(time.Second)
	caller.Invite(s.enterprise, "+4420123", "cps-4", testphone.TestSDP)
	invA = pa.ExpectRequest(sip.INVITE, wait)
	pa.Answer(invA, 486, "Busy Here", "ca4", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
	s.waitAdmitted(t, "trunk:a", 0)
}
