package sbc

import (
	"sync"
	"testing"
	"time"
)

// A call ends once: the first end wins its result, the hooks run once and
// in order, and a hook registered after the end runs at once.
func TestCallEndsOnce(t *testing.T) {
	c := &Call{ID: "c1", done: make(chan struct{})}
	var mu sync.Mutex
	var ran []int
	for i := range 3 {
		c.OnEnd(func() { mu.Lock(); ran = append(ran, i); mu.Unlock() })
	}
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for _, r := range []string{"bye_a", "bye_b", "shutdown", "timeout"} {
		wg.Go(func() {
			if c.end(r, "") {
				wins <- r
			}
		})
	}
	wg.Wait()
	close(wins)
	var won []string
	for r := range wins {
		won = append(won, r)
	}
	if len(won) != 1 || c.Result() != won[0] || c.State() != StateEnded {
		t.Fatalf("ends that won: %v, result %q, state %v", won, c.Result(), c.State())
	}
	select {
	case <-c.done:
	default:
		t.Fatal("done not closed")
	}
	late := false
	c.OnEnd(func() { late = true })
	if len(ran) != 3 || ran[0] != 0 || ran[1] != 1 || ran[2] != 2 || !late {
		t.Fatalf("hooks ran %v, late hook %v", ran, late)
	}
}

// A request waiting out another offer's ACK (glare wait) wakes when the
// offer finishes, not at its deadline; and at the deadline when it never
// does.
func TestCallWaitOffer(t *testing.T) {
	c := &Call{ID: "c1", done: make(chan struct{})}
	c.mu.Lock()
	c.beginOfferLocked()
	c.mu.Unlock()
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.finishOffer()
	}()
	start := time.Now()
	c.mu.Lock()
	c.waitOfferLocked(5 * time.Second)
	busy := c.inviteBusy
	c.mu.Unlock()
	if busy || time.Since(start) > 2*time.Second {
		t.Fatalf("woke after %v, busy %v", time.Since(start), busy)
	}

	c.mu.Lock()
	c.beginOfferLocked()
	start = time.Now()
	c.waitOfferLocked(30 * time.Millisecond)
	busy = c.inviteBusy
	c.mu.Unlock()
	if !busy || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("woke after %v with the offer still busy %v", time.Since(start), busy)
	}

	go func() {
		time.Sleep(20 * time.Millisecond)
		c.end("bye_a", "")
	}()
	start = time.Now()
	c.mu.Lock()
	c.waitOfferLocked(5 * time.Second)
	c.mu.Unlock()
	if time.Since(start) > 2*time.Second {
		t.Fatalf("the call's end did not wake the wait (%v)", time.Since(start))
	}
}

// Calls sharing a Call-ID (an ended one and its retry) are each found by
// their own tags; the table takes at most maxCallsPerCallID of them, and
// forgets each one alone.
func TestCallTableSharedCallID(t *testing.T) {
	tab := newCallTable()
	var calls []*Call
	for i := range maxCallsPerCallID {
		c := &Call{ID: string(rune('a' + i)), a: &Leg{side: SideA}}
		c.a.d.CallID, c.a.d.LocalTag = "shared", c.ID
		if !tab.add(c) {
			t.Fatalf("call %d refused", i)
		}
		calls = append(calls, c)
	}
	extra := &Call{ID: "x", a: &Leg{side: SideA}}
	extra.a.d.CallID = "shared"
	if tab.add(extra) {
		t.Fatal("a Call-ID shared beyond the bound was taken")
	}
	if ref, _ := tab.lookup("shared"); ref.call != calls[len(calls)-1] {
		t.Fatal("lookup is not the newest call")
	}
	tab.remove(calls[0], "shared")
	refs := tab.lookupAll("shared")
	if len(refs) != maxCallsPerCallID-1 || refs[0].call != calls[1] {
		t.Fatalf("after removing the first: %d refs", len(refs))
	}
	for _, c := range calls[1:] {
		tab.remove(c, "shared")
	}
	if _, ok := tab.lookup("shared"); ok || len(tab.byCID) != 0 {
		t.Fatal("Call-ID still indexed after every call was removed")
	}
}
