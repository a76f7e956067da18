package policy

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAdmission(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAdmission()
	a.Configure("realm:carrier", AdmissionLimits{MaxCalls: 2, RetryAfter: 5 * time.Second})
	a.Configure("trunk:acme", AdmissionLimits{MaxCPS: 3, RetryAfter: time.Second})

	type step struct {
		at     time.Duration
		keys   []string
		reason string // "" admitted
		hold   bool   // keep the ticket
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"concurrency", []step{
			{0, []string{"realm:carrier"}, "", true},
			{0, []string{"realm:carrier"}, "", true},
			{0, []string{"realm:carrier"}, "max_calls", false},
			{0, []string{"unknown"}, "", false}, // unknown keys admit
		}},
		{"cps refills", []step{
			{0, []string{"trunk:acme"}, "", false},
			{0, []string{"trunk:acme"}, "", false},
			{0, []string{"trunk:acme"}, "", false},
			{0, []string{"trunk:acme"}, "max_cps", false},
			{400 * time.Millisecond, []string{"trunk:acme"}, "", false},
			{400 * time.Millisecond, []string{"trunk:acme"}, "max_cps", false},
		}},
		{"all or none", []step{
			{10 * time.Second, []string{"realm:carrier", "trunk:acme"}, "", true},
			{10 * time.Second, []string{"realm:carrier", "trunk:acme"}, "", true},
			// The realm is full: the trunk's cps token must not be spent.
			{10 * time.Second, []string{"trunk:acme", "realm:carrier"}, "max_calls", false},
			{10 * time.Second, []string{"trunk:acme"}, "", false},
			{10 * time.Second, []string{"trunk:acme"}, "max_cps", false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var held []*Ticket
			for i, st := range tc.steps {
				tk, rej := a.Admit(t0.Add(st.at), st.keys...)
				got := ""
				if rej != nil {
					got = rej.Reason
					if rej.RetryAfter <= 0 {
						t.Errorf("step %d: no Retry-After", i)
					}
				}
				if got != st.reason {
					t.Fatalf("step %d: got %q, want %q", i, got, st.reason)
				}
				if tk != nil && st.hold {
					held = append(held, tk)
				} else {
					tk.Release()
				}
			}
			for _, tk := range held {
				tk.Release()
				tk.Release() // twice is harmless
			}
			if n := a.Active("realm:carrier"); n != 0 {
				t.Fatalf("%d still active after release", n)
			}
		})
	}
}

// Many goroutines race for a limit of 10: never more than 10 at once,
// and exactly 10 admitted while all hold.
func TestAdmissionExactUnderRace(t *testing.T) {
	a := NewAdmission()
	a.Configure("k", AdmissionLimits{MaxCalls: 10})
	var admitted, peak, cur atomic.Int64
	var wg, tried sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		tried.Add(1)
		go func() {
			defer wg.Done()
			tk, rej := a.Admit(time.Now(), "k")
			tried.Done()
			if rej != nil {
				return
			}
			admitted.Add(1)
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			cur.Add(-1)
			tk.Release()
		}()
	}
	// Every goroutine has had its try while the admitted ones hold.
	tried.Wait()
	close(release)
	wg.Wait()
	if admitted.Load() != 10 || peak.Load() != 10 {
		t.Fatalf("admitted %d, peak %d; want 10 and 10", admitted.Load(), peak.Load())
	}
	if st := a.State(); len(st) != 1 || st[0].Active != 0 || st[0].MaxCalls != 10 {
		t.Fatalf("state %+v", st)
	}
}
