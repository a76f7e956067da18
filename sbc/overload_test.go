package sbc_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestOverloadShedsNewCallsOnly: with room for one call setup at a time
// (overload.max_inflight 1), a new INVITE while another call rings is
// answered 503 with the configured Retry-After at once, and nothing of it
// reaches the callee; the established call's BYE still goes through, and
// once the ringing call's setup is over the next new call is let in.
func TestOverloadShedsNewCallsOnly(t *testing.T) {
	caller, caller2, caller3, callee := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
overload: {max_inflight: 1, retry_after: 3s}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
`, cp, ep, callee.Addr)
	s := runSBC(t, y, cp, ep)
	dA, _, _ := established(t, s, caller, callee, "ov-1") // its setup is over

	caller2.Invite(s.carrier, "1000", "ov-2", testphone.TestSDP)
	inv2 := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv2, 180, "Ringing", "r2", "")
	caller2.ExpectResponse(180, sip.INVITE, wait) // the one setup in progress

	sent := time.Now()
	caller3.Invite(s.carrier, "1000", "ov-3", testphone.TestSDP)
	m := caller3.Next(wait, func(m sip.Message) bool { _, ok := m.(*sip.Response); return ok })
	took := time.Since(sent)
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode != 503 {
		t.Fatalf("INVITE past the limit: first answer %v, want 503 (no 100 Trying before it)", m)
	}
	if !strings.Contains(res.To().Value(), ";tag=shed") {
		t.Errorf("503 To %q: not answered before parsing (sipguard.ShedResponse's tag)", res.To().Value())
	}
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "3" {
		t.Errorf("503 Retry-After %v, want 3", ra)
	}
	if took > 500*time.Millisecond {
		t.Errorf("503 took %v", took)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "INVITE of a call shed for overload")
	if got := gathered(t, s.Metrics().Registry, "sbc_overload_shed_total", map[string]string{"realm": "carrier", "reason": "limit"}); got != 1 {
		t.Errorf("sbc_overload_shed_total{realm=carrier,reason=limit} = %v, want 1", got)
	}

	// In-dialog requests are never shed: the established call hangs up.
	caller.Request(dA, "BYE", 2, "ov-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	callee.Answer(callee.ExpectRequest(sip.BYE, wait), 200, "OK", "", "")

	callee.Answer(inv2, 486, "Busy Here", "r2", "")
	caller2.ExpectResponse(486, sip.INVITE, wait)
	// The place comes back as the setup's handler returns, just after
	// it sent the 486.
	deadline := time.Now().Add(wait)
	for gathered(t, s.Metrics().Registry, "sbc_overload_setups_inflight", nil) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	caller3.Invite(s.carrier, "1000", "ov-4", testphone.TestSDP)
	inv4 := callee.ExpectRequest(sip.INVITE, wait) // room again
	callee.Answer(inv4, 486, "Busy Here", "r4", "")
	caller3.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// TestOverloadHeapBound: with overload.max_heap_mib 1 and 4 MiB held live
// in the process, every new INVITE is answered 503 at once and counted as
// shed for the heap, and nothing reaches the callee.
func TestOverloadHeapBound(t *testing.T) {
	ballast := make([]byte, 4<<20)
	defer runtime.KeepAlive(ballast)
	runtime.GC() // the live heap is as of the last collection
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
overload: {max_heap_mib: 1}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
`, cp, ep, callee.Addr)
	s := runSBC(t, y, cp, ep)
	reg := s.Metrics().Registry
	deadline := time.Now().Add(wait)
	for gathered(t, reg, "sbc_overload_heap_live_bytes", nil) <= 1<<20 { // the first sample
		if time.Now().After(deadline) {
			t.Fatalf("sbc_overload_heap_live_bytes = %v after %v", gathered(t, reg, "sbc_overload_heap_live_bytes", nil), wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	caller.Invite(s.carrier, "1000", "heap-1", testphone.TestSDP)
	m := caller.Next(wait, func(m sip.Message) bool { _, ok := m.(*sip.Response); return ok })
	if res, ok := m.(*sip.Response); !ok || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("INVITE over the heap bound: first answer %v, want 503 with Retry-After", m)
	}
	callee.Quiet(300*time.Millisecond, func(m sip.Message) bool { return m != nil }, "message for a call shed for memory")
	if got := gathered(t, reg, "sbc_overload_shed_total", map[string]string{"reason": "heap"}); got != 1 {
		t.Errorf("sbc_overload_shed_total{reason=heap} = %v, want 1", got)
	}
}
