package sbc_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestReloadRoutesWhileCallsStart: calls start from several goroutines
// while Reload flips the route between two PBXs (run under -race: the
// swap is one atomic store read once per call). Every call reaches one of
// the two PBXs and is answered; once the last Reload returned, new calls
// go to its PBX only. A Reload that moves a listen address is refused
// naming it and the route stays.
func TestReloadRoutesWhileCallsStart(t *testing.T) {
	pbxA, pbxB := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{pbxA.Addr}, nil)
	withTarget := func(target string) *config.Config {
		c := *s.cfg
		c.Routes = append([]config.Route(nil), s.cfg.Routes...)
		c.Routes[0].Targets = []string{target}
		return &c
	}
	const callers, each = 4, 5
	var wg sync.WaitGroup
	for g := range callers {
		caller := testphone.NewLoopback(t)
		wg.Go(func() {
			for i := range each {
				caller.Invite(s.carrier, "1000", fmt.Sprintf("flip-%d-%d", g, i), testphone.TestSDP)
				caller.ExpectResponse(486, sip.INVITE, wait)
			}
		})
	}
	answer := func(p *testphone.Phone, stop chan struct{}) *int {
		n := new(int)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := p.Next(20*wait/100, func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.INVITE })
				if m == nil {
					continue
				}
				*n++
				p.Answer(m.(*sip.Request), 486, "Busy Here", "busy", "")
			}
		})
		return n
	}
	stop := make(chan struct{})
	nA, nB := answer(pbxA, stop), answer(pbxB, stop)
	for i := range 20 {
		target := pbxA.Addr
		if i%2 == 0 {
			target = pbxB.Addr
		}
		if err := s.Reload(withTarget(target)); err != nil {
			t.Fatal(err)
		}
	}
	s.waitCalls(t, "busy", callers*each)
	close(stop)
	wg.Wait()
	if *nA+*nB != callers*each {
		t.Fatalf("PBXs got %d and %d INVITEs, want %d between them", *nA, *nB, callers*each)
	}

	// The last reload routed to A; now move to B and check at once.
	if err := s.Reload(withTarget(pbxB.Addr)); err != nil {
		t.Fatal(err)
	}
	caller := testphone.NewLoopback(t)
	caller.Invite(s.carrier, "1000", "after-flips", testphone.TestSDP)
	inv := pbxB.ExpectRequest(sip.INVITE, wait)
	pbxB.Answer(inv, 486, "Busy Here", "busy", "")
	caller.ExpectResponse(486, sip.INVITE, wait)

	moved := withTarget(pbxA.Addr)
	moved.Realms = append([]config.Realm(nil), s.cfg.Realms...)
	moved.Realms[0].Listen = "127.0.0.1:1"
	if err := s.Reload(moved); err == nil || !strings.Contains(err.Error(), "realms[carrier].listen") {
		t.Fatalf("Reload with a moved listen address: %v, want a refusal naming realms[carrier].listen", err)
	}
	caller.Invite(s.carrier, "1000", "after-refusal", testphone.TestSDP)
	inv = pbxB.ExpectRequest(sip.INVITE, wait) // still B: the refused reload changed nothing
	pbxB.Answer(inv, 486, "Busy Here", "busy", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
}

// TestReloadRefusesTrustChange: a realm's trust follows from the routes
// (config.Trusted) and its identity handling took it at start, so a reload
// whose routes would make the enterprise realm untrusted is refused naming
// realms[enterprise].trust, and the route stays in service.
func TestReloadRefusesTrustChange(t *testing.T) {
	pbx := testphone.NewLoopback(t)
	s := startSBC(t, []string{pbx.Addr}, nil)
	if !s.cfg.Trusted("enterprise") {
		t.Fatal("the harness's enterprise realm should be trusted: it is a route target")
	}
	c := *s.cfg
	c.Routes = nil // no route into enterprise: no longer trusted by default
	err := s.Reload(&c)
	if err == nil || !strings.Contains(err.Error(), "realms[enterprise].trust") {
		t.Fatalf("Reload dropping every route: %v, want a refusal naming realms[enterprise].trust", err)
	}
	caller := testphone.NewLoopback(t)
	caller.Invite(s.carrier, "1000", "after-trust-refusal", testphone.TestSDP)
	inv := pbx.ExpectRequest(sip.INVITE, wait) // the old route still serves
	pbx.Answer(inv, 486, "Busy Here", "busy", "")
	caller.ExpectResponse(486, sip.INVITE, wait)
}

// While draining a new call gets 503 and reaches no PBX.
func TestDrainRefusesNewCalls(t *testing.T) {
	caller, pbx := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{pbx.Addr}, nil)
	s.Drain()
	caller.Invite(s.carrier, "1000", "drained", testphone.TestSDP)
	res := caller.ExpectResponse(503, sip.INVITE, wait)
	if h := res.GetHeader("Retry-After"); h != nil {
		t.Errorf("503 while draining carries Retry-After (the caller should try elsewhere, not wait here): %s", h.Value())
	}
	pbx.Quiet(100*wait/1000, func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok }, "request to the PBX while draining")
	s.waitCalls(t, "draining", 1)
}
