package mediarelay

import (
	"strings"
	"testing"
	"time"
)

// SetRealmPolicy changes what new calls are offered; a call begun before
// keeps its codecs on a re-offer. The pbx realm starts with PCMU only and
// is changed to PCMU and telephone-event.
func TestSetRealmPolicyNewCallsOnly(t *testing.T) {
	a := newTestAnchor(t, time.Minute)
	ref := func(id string) CallRef { return CallRef{ID: id, Realms: [2]string{"carrier", "pbx"}} }
	offer := func(id string, port int) string {
		t.Helper()
		out, err := a.Offer(ref(id), SideA, phoneSDP("192.0.2.10", port))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if out := offer("before", 4000); strings.Contains(out, "telephone-event") {
		t.Fatalf("PCMU-only realm offered telephone-event:\n%s", out)
	}
	if _, err := a.Answer(ref("before"), SideB, phoneSDP("198.51.100.10", 5000)); err != nil {
		t.Fatal(err)
	}
	pol := a.realms["pbx"].pol.Load().srtp
	if err := a.SetRealmPolicy("pbx", []string{"PCMU", "telephone-event"}, pol); err != nil {
		t.Fatal(err)
	}
	if out := offer("after", 4002); !strings.Contains(out, "telephone-event") {
		t.Fatalf("a call after SetRealmPolicy lacks the new codec:\n%s", out)
	}
	if out := offer("before", 4000); strings.Contains(out, "telephone-event") { // re-INVITE of the old call
		t.Fatalf("the call begun before SetRealmPolicy took the new codec list:\n%s", out)
	}
	if err := a.SetRealmPolicy("nowhere", nil, pol); err == nil {
		t.Fatal("SetRealmPolicy on an unknown realm: no error")
	}
}

// A stream closed after KeepKernelFlows leaves its flows in the kernel (a
// stop that keeps its calls: the pinned program forwards until the next
// run restores them); before it, Close removes them as it always did.
func TestKeepKernelFlowsOnClose(t *testing.T) {
	r, dp, _ := offloadRelay(t, nil)
	s, _, _ := offloaded(t, r, dp)
	s.Close()
	if n := len(dp.snapshot()); n != 0 {
		t.Fatalf("%d flows left after Close", n)
	}
	kept, _, _ := offloaded(t, r, dp)
	(&Anchor{relay: r}).KeepKernelFlows()
	kept.Close()
	if n := len(dp.snapshot()); n != 2 {
		t.Fatalf("%d flows after Close with KeepKernelFlows, want the stream's 2", n)
	}
}
