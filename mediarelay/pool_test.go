package mediarelay

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPoolEvenPairs(t *testing.T) {
	p, err := NewPool(netip.MustParseAddr("127.0.0.1"), 10001, 10010)
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("Addr = %v", p.Addr())
	}
	// 10001 rounds up to 10002; pairs 10002/3 .. 10008/9 (10010 has no 10011).
	want := []int{10002, 10004, 10006, 10008}
	for i, w := range want {
		got, err := p.Alloc()
		if err != nil {
			t.Fatalf("Alloc %d: %v", i, err)
		}
		if got != w || got%2 != 0 {
			t.Fatalf("Alloc %d = %d, want %d", i, got, w)
		}
		if p.InUse() != i+1 {
			t.Fatalf("InUse = %d, want %d", p.InUse(), i+1)
		}
	}
	if _, err := p.Alloc(); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("Alloc on a full pool: %v, want ErrPortsExhausted", err)
	}
	p.Free(10004)
	p.Free(10004) // double free is harmless
	p.Free(10005) // odd: not ours
	p.Free(99)    // out of range
	if p.InUse() != 3 {
		t.Fatalf("InUse after Free = %d, want 3", p.InUse())
	}
	if got, err := p.Alloc(); err != nil || got != 10004 {
		t.Fatalf("Alloc after Free = %d, %v; want 10004", got, err)
	}
}

func TestPoolRoundRobin(t *testing.T) {
	p, err := NewPool(netip.MustParseAddr("::1"), 20000, 20007)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Alloc()
	p.Free(a)
	b, _ := p.Alloc()
	if b == a {
		t.Fatalf("just-freed port %d handed out again at once", a)
	}
	// The cursor comes back round to a once the others were offered.
	seen := map[int]bool{b: true}
	for range 3 {
		c, err := p.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		seen[c] = true
	}
	if !seen[a] || len(seen) != 4 {
		t.Fatalf("allocations %v, want the 4 pairs from 20000", seen)
	}
}

func TestPoolBadRange(t *testing.T) {
	addr := netip.MustParseAddr("127.0.0.1")
	for _, r := range [][2]int{{10001, 10002}, {10000, 10000}, {10, 5}, {0, 100}, {65534, 65536}} {
		if _, err := NewPool(addr, r[0], r[1]); err == nil {
			t.Errorf("NewPool(%d, %d) succeeded", r[0], r[1])
		}
	}
	if _, err := NewPool(netip.Addr{}, 10000, 10001); err == nil {
		t.Error("NewPool with an invalid address succeeded")
	}
	if _, err := NewPool(addr, 10000, 10001); err != nil {
		t.Errorf("one pair: %v", err)
	}
}
