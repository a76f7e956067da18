package mediarelay

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func natAnchor(t *testing.T) *Anchor {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := NewAnchor(AnchorConfig{
		Realms: []RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: 33000, MaxPort: 33003, NAT: true},
			{Name: "pbx", Addr: lo, MinPort: 34000, MaxPort: 34003},
		},
		Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { a.Close() }) })
	closers[a] = &once
	return a
}

// closers lets a test close an anchor early without Cleanup closing it again.
var closers = map[*Anchor]*sync.Once{}

// A call's media taken as State from one anchor and Restored on another
// (same addresses, the first one gone) flows at once toward the latched
// peers, including a NAT-latched source that differs from its SDP, with
// no packet from that side first. A latch is reported through OnChange.
func TestAnchorStateRestore(t *testing.T) {
	a1 := natAnchor(t)
	var changes atomic.Int32
	a1.OnChange(func(id string) {
		if id == "r1" {
			changes.Add(1)
		}
	})
	ref := CallRef{ID: "r1", Realms: [2]string{"carrier", "pbx"}}
	natted := newPhone(t, "127.0.0.1") // the caller's real source, not in its SDP
	callee := newPhone(t, "127.0.0.1")
	off, err := a1.Offer(ref, SideA, phoneSDP("127.0.0.1", 9)) // the SDP names port 9
	if err != nil {
		t.Fatal(err)
	}
	ans, err := a1.Answer(ref, SideB, phoneSDP("127.0.0.1", int(callee.ap.Port())))
	if err != nil {
		t.Fatal(err)
	}
	so, _ := ParseSDP(off)
	sa, _ := ParseSDP(ans)
	toB := netip.AddrPortFrom(so.Media[0].Addr, uint16(so.Media[0].Port)) // callee sends here
	toA := netip.AddrPortFrom(sa.Media[0].Addr, uint16(sa.Media[0].Port)) // caller sends here
	natted.send(rtpPacket(t, 1, 0, 0xa, 'a'), toA)
	if b, _ := callee.recv(2 * time.Second); b == nil {
		t.Fatal("caller's first packet not relayed")
	}
	eventually(t, "OnChange after the latch", func() bool { return changes.Load() > 0 })
	st, ok := a1.State("r1")
	if !ok || len(st.Streams) != 1 || st.Streams[0].Sides[SideA].LatchRTP != natted.ap || st.Legs[SideB].Version < 2 {
		t.Fatalf("state: %+v %v", st, ok)
	}
	closers[a1].Do(func() { a1.Close() })

	a2 := natAnchor(t)
	if err := a2.Restore(st); err != nil {
		t.Fatal(err)
	}
	// The callee speaks first: its packet must reach the NATed caller
	// (latched on a1), not the SDP's port 9.
	callee.send(rtpPacket(t, 7, 0, 0xb, 'b'), toB)
	b, from := natted.recv(2 * time.Second)
	if b == nil {
		t.Fatal("restored call did not forward to the latched caller")
	}
	checkPacket(t, b, 7, 'b')
	if from != toA {
		t.Fatalf("packet came from %v, want the SBC's %v", from, toA)
	}
	natted.send(rtpPacket(t, 2, 160, 0xa, 'a'), toA)
	if b, _ := callee.recv(2 * time.Second); b == nil {
		t.Fatal("caller -> callee after restore")
	}
	// The restored ports are booked: a second restore of the same call
	// replaces it; another call cannot take them.
	if err := a2.Restore(st); err != nil {
		t.Fatalf("restore over itself: %v", err)
	}
	st2 := st
	st2.Ref.ID = "other"
	if err := a2.Restore(st2); err == nil {
		t.Fatal("a second call restored onto booked ports")
	}
	if got, ok := a2.State("r1"); !ok || got.Legs[SideA].SessID != st.Legs[SideA].SessID || got.Legs[SideA].Version != st.Legs[SideA].Version {
		t.Fatalf("SDP origin not kept: %+v", got)
	}
	a2.End("r1")
	if n := a2.realms["carrier"].pool.InUse() + a2.realms["pbx"].pool.InUse(); n != 0 {
		t.Fatalf("%d port pairs left booked", n)
	}
}
