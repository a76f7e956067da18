package policy

import (
	"net/netip"
	"testing"
	"time"
)

func TestSourceLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("203.0.113.20"), netip.MustParseAddr("203.0.113.21")
	tests := []struct {
		name  string
		steps []struct {
			at    time.Duration
			src   netip.Addr
			n     int
			allow int
		}
	}{
		{"burst then refuse", []struct {
			at    time.Duration
			src   netip.Addr
			n     int
			allow int
		}{{0, a, 25, 20}}},
		{"sources are independent", []struct {
			at    time.Duration
			src   netip.Addr
			n     int
			allow int
		}{{0, a, 30, 20}, {0, b, 30, 20}}},
		{"refill at rate", []struct {
			at    time.Duration
			src   netip.Addr
			n     int
			allow int
		}{{0, a, 20, 20}, {500 * time.Millisecond, a, 10, 5}, {2 * time.Second, a, 30, 15}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewSourceLimiter(10, 20, 100)
			for i, st := range tc.steps {
				got := 0
				for j := 0; j < st.n; j++ {
					if l.Allow(st.src, t0.Add(st.at)) {
						got++
					}
				}
				if got != st.allow {
					t.Errorf("step %d: %d allowed, want %d", i, got, st.allow)
				}
			}
		})
	}
}

func TestSourceLimiterBounded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewSourceLimiter(1, 1, 16)
	// 1000 sources, one request each: the first 16 get their own bucket,
	// the rest share one bucket of 1.
	allowed := 0
	for i := 0; i < 1000; i++ {
		if l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), t0) {
			allowed++
		}
	}
	if allowed != 17 {
		t.Errorf("allowed %d, want 16 tracked + 1 from the overflow bucket", allowed)
	}
	if n := l.Sweep(t0.Add(10 * time.Second)); n != 0 {
		t.Errorf("%d sources still tracked after they refilled", n)
	}
	if !l.Allow(netip.MustParseAddr("10.9.9.9"), t0.Add(10*time.Second)) {
		t.Error("new source refused after sweep")
	}
	if !NewSourceLimiter(0, 0, 16).Allow(netip.MustParseAddr("10.0.0.1"), t0) {
		t.Error("rate 0 must allow everything")
	}
}

func TestStrikes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewStrikes(time.Minute, 100)
	a := netip.MustParseAddr("203.0.113.20")
	for i := 1; i <= 4; i++ {
		if s.Add(a, "auth", 5, t0) {
			t.Fatalf("hit after %d strikes", i)
		}
	}
	if s.Add(a, "malformed", 5, t0) {
		t.Fatal("kinds must count apart")
	}
	if !s.Add(a, "auth", 5, t0) {
		t.Fatal("no hit at the 5th strike")
	}
	// After the window the count starts again.
	for i := 0; i < 4; i++ {
		s.Add(a, "x", 5, t0)
	}
	if s.Add(a, "x", 5, t0.Add(2*time.Minute)) {
		t.Error("strikes from an old window counted")
	}
	if s.Add(a, "never", 0, t0) {
		t.Error("threshold 0 must never hit")
	}
}
