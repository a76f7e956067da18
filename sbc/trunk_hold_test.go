package sbc

import (
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/policy"
)

// A trunk hold needs no SBC: an admitter, the limited trunks and a reject
// counter. Its place goes back when the call ends (OnEnd), and a full
// trunk is skipped, counted, and named in the Retry-After.
func TestTrunkHoldAlone(t *testing.T) {
	adm := policy.NewAdmission()
	adm.Configure(trunkKey("t1"), policy.AdmissionLimits{MaxCalls: 1, RetryAfter: 3 * time.Second})
	tr := &policy.Trunk{Name: "t1", Realm: "carrier"}
	dec := policy.Decision{Trunks: []*policy.Trunk{tr}}
	var rejected []string
	hold := func(c *Call) *trunkHold {
		return &trunkHold{c: c, adm: adm, limited: map[string]bool{"t1": true},
			reject: func(realm, reason string) { rejected = append(rejected, realm+"/"+reason) }}
	}
	active := func() int {
		for _, st := range adm.State() {
			if st.Key == trunkKey("t1") {
				return st.Active
			}
		}
		return -1
	}
	c1 := &Call{ID: "c1", done: make(chan struct{})}
	h1 := hold(c1)
	if !h1.admit(dec, 0) || active() != 1 {
		t.Fatalf("first call not admitted (active %d)", active())
	}
	c2 := &Call{ID: "c2", done: make(chan struct{})}
	h2 := hold(c2)
	if h2.admit(dec, 0) {
		t.Fatal("second call admitted over max_calls 1")
	}
	if h, full := h2.refusal(); !full || h.Value() != "3" || len(rejected) != 1 || rejected[0] != "carrier/trunk_admission_max_calls" {
		t.Fatalf("refusal %v %v, rejected %v", h, full, rejected)
	}
	c1.end("bye_a", "")
	if active() != 0 {
		t.Fatalf("place not given back at the call's end: active %d", active())
	}
	if h1.admit(dec, 0) {
		t.Fatal("an ended call took a new place")
	}
}
